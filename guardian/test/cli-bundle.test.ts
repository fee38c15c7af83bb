/**
 * The bundled CLI (guardian/scripts/build-cli.ts, built by `npm ci`) and how guardian/bin/guardian.js
 * picks it: the short commands run from the bundle while every file it was built from is unchanged,
 * else from the sources; the daemon's commands always run from the sources. The selection is tested
 * on a copy of the real bin in a scratch tree (so no repository file is touched), the build on a
 * scratch output folder.
 */
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const REPO = join(import.meta.dirname, '..', '..');
const NODE = join(REPO, 'node_modules/.bin/node');
const BIN = join(REPO, 'guardian/bin/guardian.js');

/** A scratch tree shaped like the repository: the real bin, a stub main in src/ and in dist/cli/. */
function scratchTree(): { root: string; watched: string; bin: string } {
  const root = mkdtempSync(join(tmpdir(), 'guardian-bin-'));
  mkdirSync(join(root, 'guardian/bin'), { recursive: true });
  mkdirSync(join(root, 'guardian/src/cli'), { recursive: true });
  mkdirSync(join(root, 'guardian/dist/cli'), { recursive: true });
  copyFileSync(BIN, join(root, 'guardian/bin/guardian.js'));
  const stub = (who: string) => `export async function main(argv, io) { io.stdout('${who} ' + argv.join(' ') + '\\n'); return 0; }\n`;
  writeFileSync(join(root, 'guardian/src/cli/main.ts'), stub('source'));
  writeFileSync(join(root, 'guardian/dist/cli/main.js'), stub('bundle'));
  const watched = join(root, 'guardian/src/cli/main.ts');
  const st = statSync(watched);
  writeFileSync(join(root, 'guardian/dist/cli/manifest.json'), JSON.stringify({ entry: 'main.js', files: { 'guardian/src/cli/main.ts': [st.size, st.mtimeMs] } }));
  return { root, watched, bin: join(root, 'guardian/bin/guardian.js') };
}

async function answer(bin: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  const { stdout } = await run(NODE, [bin, ...args], { env: { ...process.env, GUARDIAN_CLI_FROM_SOURCE: '', ...env } });
  return stdout.trim();
}

describe('guardian/bin/guardian.js: bundle or sources', () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('short commands use the bundle while it matches its sources; start, demo and check always use the sources', async () => {
    const t = scratchTree();
    dirs.push(t.root);
    expect(await answer(t.bin, ['flags', 'list'])).toBe('bundle flags list');
    expect(await answer(t.bin, ['--version'])).toBe('bundle --version');
    for (const cmd of ['start', 'demo', 'check']) expect(await answer(t.bin, [cmd])).toBe(`source ${cmd}`);
    expect(await answer(t.bin, ['events'], { GUARDIAN_CLI_FROM_SOURCE: '1' })).toBe('source events');
  });

  it('a source file changed since the build (size or mtime) sends every command to the sources', async () => {
    const t = scratchTree();
    dirs.push(t.root);
    const later = new Date(statSync(t.watched).mtimeMs + 5_000);
    utimesSync(t.watched, later, later); // same size, newer mtime: an edit and its undo
    expect(await answer(t.bin, ['events'])).toBe('source events');

    const u = scratchTree();
    dirs.push(u.root);
    writeFileSync(u.watched, `${readFileSync(u.watched, 'utf8')}// edited\n`);
    expect(await answer(u.bin, ['events'])).toBe('source events');

    const v = scratchTree();
    dirs.push(v.root);
    rmSync(join(v.root, 'guardian/dist/cli/manifest.json'));
    expect(await answer(v.bin, ['events'])).toBe('source events'); // never built
  });

  it('the build bundles main with one chunk per command and a manifest of the repository files it read', async () => {
    const out = mkdtempSync(join(tmpdir(), 'guardian-cli-build-'));
    dirs.push(out);
    await run(NODE, [join(REPO, 'guardian/scripts/build-cli.ts'), '--outdir', out]);
    const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as { entry: string; files: Record<string, [number, number]> };
    expect(manifest.entry).toBe('main.js');
    const main = statSync(join(REPO, 'guardian/src/cli/main.ts'));
    expect(manifest.files['guardian/src/cli/main.ts']).toEqual([main.size, main.mtimeMs]);
    expect(Object.keys(manifest.files).some((f) => f.includes('node_modules'))).toBe(false);
    // The bundle answers like the sources (main is imported from the scratch output, where its
    // package.json lookup is the only path that differs, so only --help is compared).
    const bundled = (await import(join(out, 'main.js'))) as typeof import('../src/cli/main.ts');
    const source = await import('../src/cli/main.ts');
    const capture = async (m: typeof source): Promise<string> => {
      const lines: string[] = [];
      await m.main(['--help'], { stdout: (t) => void lines.push(t), stderr: (t) => void lines.push(t), env: {} });
      return lines.join('');
    };
    expect(await capture(bundled)).toBe(await capture(source));
  }, 120_000);
});
