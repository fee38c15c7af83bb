// `npm run build -w sdk`: bundles each entry point to dist/<entry>.js (ESM, minified, peers
// external) for publishing. Tests and in-repo use need no build: the exports map points at src.
import { build } from 'esbuild';
import { readFileSync } from 'node:fs';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
  exports: Record<string, string>;
  peerDependencies: Record<string, string>;
};
const peers = Object.keys(pkg.peerDependencies).flatMap((p) => [p, `${p}/*`]);
const entries = Object.entries(pkg.exports).filter(([key]) => key !== './package.json');
for (const [key, src] of entries) {
  const out = key === '.' ? 'index' : key.slice(2).replaceAll('/', '-');
  await build({
    entryPoints: [new URL(`../${src}`, import.meta.url).pathname],
    outfile: new URL(`../dist/${out}.js`, import.meta.url).pathname,
    bundle: true,
    format: 'esm',
    minify: true,
    sourcemap: true,
    platform: key === './postgres' || key === './openfeature/server' ? 'node' : 'neutral',
    external: peers,
    target: 'es2022',
  });
  console.log(`dist/${out}.js ← ${src}`);
}
