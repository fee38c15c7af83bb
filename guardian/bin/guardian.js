#!/usr/bin/env node
/* global process, URL */
// The `guardian` command. All logic lives in ../src/cli/main.ts; this file only wires the process
// and picks where main comes from. Plain JavaScript on purpose: a .ts entry makes Node start its
// type stripper (about 65 ms of CPU) before anything else, and the short commands need none.
//  - The short commands (`flags`, `events`, `rollback`, `restore`, `plans`, `validate`, --help,
//    --version) run from the bundle in ../dist/cli (scripts/build-cli.ts, built by `npm ci`)
//    while it matches the sources it was built from (its manifest: size and mtime of each);
//  - everything else, the daemon (`start`, `demo`, `check`) included, runs from the sources.
// GUARDIAN_CLI_FROM_SOURCE=1 forces the sources. `guardian --version` says which one answered.
import { readFileSync, statSync } from 'node:fs';
import module from 'node:module';

// Cache compiled code between runs (about a third off every command's start-up).
module.enableCompileCache?.();

// A reader that went away (`guardian events | head -1`) is not an error: stop quietly, exit 0.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
}

const FROM_SOURCE = new Set(['start', 'demo', 'check']);

/** The bundle's main module, when it exists and every file it was built from is unchanged. */
function bundledMain() {
  if (process.env.GUARDIAN_CLI_FROM_SOURCE === '1') return undefined;
  const dir = new URL('../dist/cli/', import.meta.url);
  const repo = new URL('../../', import.meta.url);
  try {
    const manifest = JSON.parse(readFileSync(new URL('manifest.json', dir), 'utf8'));
    for (const [file, [size, mtimeMs]] of Object.entries(manifest.files)) {
      const st = statSync(new URL(file, repo));
      if (st.size !== size || st.mtimeMs !== mtimeMs) return undefined;
    }
    return new URL(manifest.entry, dir);
  } catch {
    return undefined; // no bundle yet, or an unreadable one: the sources always work
  }
}

const argv = process.argv.slice(2);
const bundle = FROM_SOURCE.has(argv[0] ?? '') ? undefined : bundledMain();
const { main } = bundle ? await import(bundle.href) : await import('../src/cli/main.ts');
process.exitCode = await main(argv, {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  env: process.env,
});
