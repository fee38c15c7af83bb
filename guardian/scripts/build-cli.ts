// `npm run build -w guardian` (run by the repository's `prepare`, so `npm ci` leaves it built):
// bundles the CLI with esbuild into guardian/dist/cli/ — one chunk per command, loaded only when
// that command runs — so a short command (`flags`, `events`, `rollback`, …) loads a handful of
// files instead of about 130 modules (zod alone is 95) through the ESM loader and type stripping.
// Measured on this machine: `guardian flags --help` 522 → 126 ms of CPU. bin/guardian.js uses the
// bundle only while it matches the sources it was built from (manifest.json: size and mtime of
// every repository file in it), and never for the daemon (`start`, `demo`, `check`), which runs
// from source as before.
//
// The bundle sits at the same depth as guardian/src/<part>/, so the few `new URL('../../…',
// import.meta.url)` paths in the sources (package.json, supabase/, dashboard/dist) resolve to the
// same files from either. Packages that load files or workers at run time stay external.
//
// Usage: node guardian/scripts/build-cli.ts [--outdir DIR]   (default guardian/dist/cli)
import { mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { build } from 'esbuild';

const guardian = fileURLToPath(new URL('..', import.meta.url));
const repo = resolve(guardian, '..');
const { values } = parseArgs({ options: { outdir: { type: 'string' } } });
const outdir = resolve(values.outdir ?? join(guardian, 'dist', 'cli'));

/** Loaded from node_modules as they are: WebAssembly and data files, worker threads, instrumentation. */
const EXTERNAL = ['@electric-sql/*', 'pino', 'pino-*', 'thread-stream', '@sentry/*', '@opentelemetry/*', 'posthog-node', 'nodemailer', 'pg-native'];

// Built beside the output, then moved in: a CLI started during a build finds the old bundle or
// the new one (manifest.json is moved last), never half of one.
const staging = `${outdir}.build-${process.pid}`;
rmSync(staging, { recursive: true, force: true });
const result = await build({
  absWorkingDir: repo, // metafile paths are relative to it
  entryPoints: { main: join(guardian, 'src/cli/main.ts') },
  outdir: staging,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  conditions: ['@rollback-guardian/source'], // the SDK from its sources, as the guardian's own code sees it
  target: 'node22',
  external: EXTERNAL,
  sourcemap: 'linked',
  metafile: true,
  logLevel: 'error',
  // CommonJS dependencies bundled into ESM still call require() for Node's built-ins.
  banner: { js: "import { createRequire as __guardianRequire } from 'node:module'; const require = __guardianRequire(import.meta.url);" },
});

// The repository files the bundle was made from (not node_modules: `npm ci` rebuilds it).
const files: Record<string, [number, number]> = {};
for (const input of Object.keys(result.metafile.inputs)) {
  const abs = resolve(repo, input);
  const rel = relative(repo, abs);
  if (rel.startsWith('..') || rel.split(/[\\/]/).includes('node_modules')) continue;
  const st = statSync(abs);
  files[rel] = [st.size, st.mtimeMs];
}

mkdirSync(outdir, { recursive: true });
const built = new Set<string>();
for (const name of readdirSync(staging)) {
  built.add(name);
  renameSync(join(staging, name), join(outdir, name));
}
const manifest = join(staging, 'manifest.json');
writeFileSync(manifest, `${JSON.stringify({ entry: 'main.js', files }, null, 1)}\n`);
renameSync(manifest, join(outdir, 'manifest.json'));
built.add('manifest.json');
// Chunks of an earlier build that this one no longer has.
for (const name of readdirSync(outdir)) if (!built.has(name)) rmSync(join(outdir, name), { force: true });
rmSync(staging, { recursive: true, force: true });
console.error(`guardian: bundled the CLI into ${relative(repo, outdir)} (${Object.keys(files).length} source files)`);
