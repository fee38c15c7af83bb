// The SDK as people install it: `npm pack` of sdk/ (prepack builds dist/ with tsc), installed from
// the tarball into a fresh project, then every entry of the exports map imported by its public
// name and used under plain Node 20 (no type stripping), Node 22, Deno 2 and Bun. The published
// shape is checked by publint and @arethetypeswrong/cli (pinned dev dependencies).
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { installedApp, packSdk, REPO_ROOT } from '../../test/helpers/sdk-tarball.ts';
import { bucket, evaluate } from '../src/index.ts';

const run = promisify(execFile);
const BIN = join(REPO_ROOT, 'node_modules/.bin');
const SMOKE = fileURLToPath(new URL('./fixtures/tarball-smoke.mjs', import.meta.url));
const USERS = ['user-1', 'user-2', 'qa-1', 'ünïcødé-7', '👩‍🚀'];
const FLAG = { name: 'ai_beta_users', enabled: true, rolloutPercentage: 50, bucketGroup: 'ai_rollout', version: 3, guardState: 'watching' as const, rollbackMessage: null, targets: ['qa-1'] };

/** The machine's own Node 20 (the first `node` on PATH outside node_modules, which is Node 22). */
async function node20(): Promise<string> {
  for (const dir of (process.env['PATH'] ?? '').split(':').filter((d) => d !== '' && !d.includes('node_modules'))) {
    const bin = join(dir, 'node');
    if (!existsSync(bin)) continue;
    const { stdout } = await run(bin, ['--version']);
    if (stdout.startsWith('v20.')) return bin;
  }
  throw new Error('no Node 20 on PATH outside node_modules: the tarball test proves the package on the oldest supported Node (20.19+); install Debian/NodeSource Node 20');
}

let app: { dir: string; remove(): void };
let tgz: string;

beforeAll(async () => {
  tgz = await packSdk();
  app = await installedApp({ links: ['react', 'react-dom', '@openfeature'] });
  copyFileSync(SMOKE, join(app.dir, 'smoke.mjs'));
}, 240_000);
afterAll(() => app?.remove());

async function smoke(cmd: string, args: string[]): Promise<Record<string, unknown>> {
  const { stdout } = await run(cmd, [...args, 'smoke.mjs'], { cwd: app.dir, env: { ...process.env, NO_COLOR: '1', DENO_NO_UPDATE_CHECK: '1', DENO_DIR: join(app.dir, '.deno') } });
  const { runtime, ...rest } = JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
  expect(typeof runtime).toBe('string');
  return rest;
}

describe('the packed SDK', () => {
  test('the tarball holds built JavaScript, declarations and source maps for every entry, and no tests', async () => {
    const { stdout } = await run('tar', ['-tzf', tgz]);
    const files = new Set(stdout.split('\n').filter(Boolean).map((f) => f.replace(/^package\//, '')));
    const pkg = (await import('../package.json', { with: { type: 'json' } })).default as { exports: Record<string, Record<string, string> | string> };
    for (const [entry, target] of Object.entries(pkg.exports)) {
      if (typeof target === 'string') continue;
      expect(Object.keys(target).filter((k) => k !== '@rollback-guardian/source'), entry).toEqual(['types', 'import', 'default']);
      for (const key of ['types', 'import'] as const) expect(files.has(target[key]!.slice(2)), `${entry} ${key}`).toBe(true);
      for (const map of [`${target['import']!.slice(2)}.map`, `${target['types']!.slice(2)}.map`]) expect(files.has(map), map).toBe(true);
    }
    expect([...files].filter((f) => f.includes('test/'))).toEqual([]);
  });

  test('publint reports nothing', async () => {
    const { stdout } = await run(join(BIN, 'publint'), ['--strict', tgz]);
    expect(stdout).toContain('All good!');
  });

  test('@arethetypeswrong/cli finds no problem for ESM consumers (node16 ESM and bundlers)', async () => {
    // ESM only (see README): CommonJS callers on Node ≥ 20.19 reach it through require(esm).
    const result = await run(join(BIN, 'attw'), [tgz, '--profile', 'esm-only', '--format', 'json']).catch((e: { stdout: string }) => e);
    const report = JSON.parse(result.stdout) as { analysis: { problems: Array<{ kind: string; resolutionKind?: string }> } };
    // The esm-only profile ignores the CommonJS resolutions (node10, node16 from CJS).
    const problems = report.analysis.problems.filter((p) => p.resolutionKind !== 'node10' && p.resolutionKind !== 'node16-cjs');
    expect(problems).toEqual([]);
    expect(report.analysis.problems.length, 'attw analysed nothing?').toBeGreaterThan(0);
    expect('code' in result ? result.code : 0).toBe(0);
  });

  test('every entry runs the same under plain Node 20, Node 22, Deno 2 and Bun', async () => {
    const expected = {
      core: USERS.map((u) => [u, bucket('ai_rollout', u), evaluate(FLAG, u).value]),
      serverReady: 'READY',
      server: USERS.map((u) => u === 'qa-1' || evaluate(FLAG, u).value),
      browser: true,
      supabaseBadInput: 'INVALID_OPTION',
      react: '<b>classic</b>',
      openfeature: true,
      sentry: ['flag.ai_beta_users=true'],
      edge: true,
    };
    const node22 = join(REPO_ROOT, 'node_modules/node/bin/node');
    const bun = join(REPO_ROOT, 'node_modules/@oven/bun-linux-x64/bin/bun');
    for (const [cmd, args] of [[await node20(), []], [node22, []], [join(BIN, 'deno'), ['run', '-A', '--node-modules-dir=manual']], [bun, []]] as const) {
      expect(await smoke(cmd, [...args]), cmd).toMatchObject(expected);
    }
  }, 120_000);

  test('Deno 2 imports it through an npm: specifier and type-checks against the shipped declarations', async () => {
    writeFileSync(join(app.dir, 'deno-npm.ts'), [
      "import { createServerClient } from 'npm:@rollback-guardian/sdk';",
      "import type { FlagRecord } from 'npm:@rollback-guardian/sdk';",
      "const flag: FlagRecord = { name: 'f', enabled: true, rolloutPercentage: 100, bucketGroup: null, version: 1, guardState: 'watching', rollbackMessage: null };",
      'const flags = createServerClient({ transport: { loadAll: () => Promise.resolve([flag]) } });',
      'const status: string = await flags.ready();',
      "console.log(JSON.stringify({ status, on: flags.isEnabled('f', 'u-1') }));",
      'await flags.close();',
      '',
    ].join('\n'));
    const env = { ...process.env, NO_COLOR: '1', DENO_NO_UPDATE_CHECK: '1', DENO_DIR: join(app.dir, '.deno') };
    await run(join(BIN, 'deno'), ['check', '--node-modules-dir=manual', 'deno-npm.ts'], { cwd: app.dir, env });
    const { stdout } = await run(join(BIN, 'deno'), ['run', '-A', '--node-modules-dir=manual', 'deno-npm.ts'], { cwd: app.dir, env });
    expect(JSON.parse(stdout)).toEqual({ status: 'READY', on: true });
    // The check is real: a wrong type in the same program is refused.
    writeFileSync(join(app.dir, 'deno-bad.ts'), "import { createServerClient } from 'npm:@rollback-guardian/sdk';\ncreateServerClient({ transport: 42 });\n");
    await expect(run(join(BIN, 'deno'), ['check', '--node-modules-dir=manual', 'deno-bad.ts'], { cwd: app.dir, env })).rejects.toThrow(/TS2559 .*FlagTransport/);
  }, 120_000);
});
