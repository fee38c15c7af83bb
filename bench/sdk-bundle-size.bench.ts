// `npm run bench -- bundle-size`: what the SDK costs a browser, measured on the BUILT package
// (sdk/dist, what `npm pack` ships; rebuilt first): every entry of the exports map bundled alone
// with esbuild (minified, browser platform, peers external), gzip level 9; then the app a browser
// really loads, "browser client + Supabase transport + React hook", with the peers external (the
// SDK's own share) and bundled (the whole page's flag code: react, react-dom and supabase-js
// included); and the /react entry's graph with and without the server client it used to import
// for an `instanceof` check (the shrink of issue 14). Budget: the core ≤ 4 KB min+gzip.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';

const sdk = fileURLToPath(new URL('../sdk/', import.meta.url));
execFileSync(process.execPath, [`${sdk}scripts/build.ts`], { stdio: 'inherit' });
const pkg = JSON.parse(readFileSync(`${sdk}package.json`, 'utf8')) as { exports: Record<string, Record<string, string> | string>; peerDependencies: Record<string, string> };
const PEERS = Object.keys(pkg.peerDependencies).flatMap((p) => [p, `${p}/*`]);

async function size(contents: string, external: string[]): Promise<{ min: number; gz: number }> {
  const out = await build({ stdin: { contents, resolveDir: sdk, loader: 'js' }, bundle: true, minify: true, format: 'esm', platform: 'browser', write: false, logLevel: 'silent', external, define: { 'process.env.NODE_ENV': '"production"' } });
  const code = out.outputFiles[0]!.contents;
  return { min: code.length, gz: gzipSync(code, { level: 9 }).length };
}
const kb = (n: number): string => `${(n / 1024).toFixed(2)} KB`;
const row = (name: string, s: { min: number; gz: number }): void => console.log(`${name.padEnd(58)} ${kb(s.min).padStart(10)} min ${kb(s.gz).padStart(9)} min+gzip`);

console.log('entry (peers external)');
const core = await size(`export * from './dist/core/index.js';`, PEERS);
row('  core (evaluation: murmur3, buckets)', core);
for (const [entry, target] of Object.entries(pkg.exports)) {
  if (typeof target === 'string') continue;
  row(`  ${entry}`, await size(`export * from ${JSON.stringify(`./${target['import']!.slice(2)}`)};`, PEERS));
}

const app = `
import { createBrowserClient } from './dist/index.js';
import { supabaseTransport } from './dist/supabase/index.js';
import { FlagsProvider, useFeatureFlag } from './dist/react/index.js';
export { createBrowserClient, supabaseTransport, FlagsProvider, useFeatureFlag };`;
console.log('browser client + Supabase transport + React hook');
row('  SDK only (react, supabase-js external)', await size(app, PEERS));
row('  with react, react-dom/client and @supabase/supabase-js', await size(`${app}\nexport { createClient } from '@supabase/supabase-js';\nexport { hydrateRoot } from 'react-dom/client';`, []));

console.log('server code in the browser graph (the /react entry used to import the server client)');
const appNow = await size(app, PEERS);
const appBefore = await size(`${app}\nexport { ServerFlagClient } from './dist/client/server.js';`, PEERS);
row('  browser client + Supabase + React, now', appNow);
row('  the same plus the server client /react imported before', appBefore);
console.log(`  shrink: ${appBefore.gz - appNow.gz} B min+gzip (${appBefore.min - appNow.min} B min)`);

const ok = core.gz <= 4096;
console.log(`budget: core ${core.gz} B min+gzip ${ok ? '≤' : '>'} 4096 B`);
if (!ok) process.exitCode = 1;
