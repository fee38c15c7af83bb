// `npm run build -w sdk` (also run by `prepack` and by the repository's `prepare`, so `npm ci`
// leaves a built SDK): compiles sdk/src with tsc into dist/ — one ES module per source file, each
// with its declaration file and the source maps of both — so the published exports map points at
// plain JavaScript that Node 20+, Deno, Bun, browsers and bundlers load without type stripping.
// Unbundled on purpose: entries share modules (one SdkError class, one client base) instead of
// each carrying its own copy, and bundlers tree-shake per module. Consumers minify.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const sdk = fileURLToPath(new URL('..', import.meta.url));
const dist = join(sdk, 'dist');
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');

// Built beside dist/ (same depth, so source-map paths are the same), then moved in file by file:
// a rename is atomic, so a process loading the SDK while a build runs (a test packing the SDK
// while another starts a guardian) finds every file, old or new, never a missing one.
const staging = join(sdk, `.dist-build-${process.pid}`);
rmSync(staging, { recursive: true, force: true });
execFileSync(process.execPath, [tsc, '-p', join(sdk, 'tsconfig.build.json'), '--outDir', staging], { stdio: ['ignore', process.stderr, process.stderr] });

// tsc rewrites `./x.ts` to `./x.js` in the JavaScript it emits but not in declaration files;
// resolvers of .d.ts files (TypeScript under node16/bundler, attw) want the `.js` name.
const RELATIVE_TS = /((?:from|import)\s*\(?\s*['"])(\.{1,2}\/[^'"]+?)\.ts(['"])/g;
function walk(dir: string): string[] {
  mkdirSync(dir, { recursive: true });
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? walk(path) : [path];
  });
}
let files = 0;
for (const file of walk(staging)) {
  if (!file.endsWith('.d.ts')) continue;
  const text = readFileSync(file, 'utf8');
  const next = text.replace(RELATIVE_TS, '$1$2.js$3');
  if (next !== text) writeFileSync(file, next);
  files++;
}
const built = new Set<string>();
for (const file of walk(staging)) {
  const rel = relative(staging, file);
  built.add(rel);
  mkdirSync(dirname(join(dist, rel)), { recursive: true });
  renameSync(file, join(dist, rel));
}
for (const file of walk(dist)) if (!built.has(relative(dist, file))) unlinkSync(file);
rmSync(staging, { recursive: true, force: true });
console.error(`sdk: built dist/ (${files} declaration files)`);
