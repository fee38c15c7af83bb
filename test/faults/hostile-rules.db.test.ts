/**
 * Fault suite: hostile rules files (test/faults/hostile-rules.ts, ≥ 70: alias bombs, deep
 * nesting, huge files, duplicate keys, bad durations, secrets in URLs, wrong types, unicode,
 * control characters, broken YAML). Each is
 *
 * 1. given to `guardian validate` (in process): exit 1, its problem named, no throw, bounded time;
 * 2. written over the rules file of a running `guardian start` (a real child process on the real
 *    PostgreSQL): the reload is refused (guardian_rules_reloads_total{result="error"} grows), the
 *    process stays up, /readyz stays 200 and the last good rules keep running.
 *
 * The ordinary DRY file (one anchor used by 120 rules) must be accepted by both.
 * Bounded form: every file through validate, 16 of them (the 120-alias file and the alias bomb
 * first) through the daemon. Full form (FAULTS_FULL=1): every file through both.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { main } from '../../guardian/src/cli/main.ts';
import { waitFor } from '../../guardian/test/notify-helpers.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { figure, FULL } from './figures.ts';
import { aliasBomb, dryAliasRules, hostileRulesFiles } from './hostile-rules.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const GOOD = `interval: 2s
rules:
  - { id: good, flags: [booking_agent_enabled], source: builtin, action: disable, condition: { absolute: {} } }
`;
const files = hostileRulesFiles();

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'guardian-hostile-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

async function validate(path: string, env: Record<string, string>): Promise<{ code: number; out: string; ms: number }> {
  let out = '';
  const started = performance.now();
  const code = await main(['validate', path, '--json'], { stdout: (t) => (out += t), stderr: (t) => (out += t), env });
  return { code, out, ms: performance.now() - started };
}

describe('fault suite: hostile rules files', () => {
  it(`guardian validate refuses each of the ${files.length} hostile files, naming its problem, and never crashes`, async () => {
    expect(files.length).toBeGreaterThanOrEqual(70);
    let refused = 0;
    let slowest = 0;
    const wrong: string[] = [];
    for (const [i, f] of files.entries()) {
      const path = join(dir, `hostile-${i}.yaml`);
      writeFileSync(path, f.text);
      const r = await validate(path, { ...f.env });
      slowest = Math.max(slowest, r.ms);
      const parsed = JSON.parse(r.out) as { valid: boolean; problems?: { path: string; message: string }[] };
      const lines = (parsed.problems ?? []).map((p) => `${p.path}: ${p.message}`);
      if (r.code === 1 && !parsed.valid && lines.some((l) => f.expect.test(l))) refused++;
      else wrong.push(`${f.name}: exit ${r.code}, ${lines.join(' | ').slice(0, 300) || r.out.slice(0, 300)}`);
      for (const l of lines) expect(l.length).toBeLessThan(700);
    }
    figure('hostile-rules', 'refused by validate with the problem named', `${refused}/${files.length}`);
    figure('hostile-rules', 'slowest validate (ms)', Math.round(slowest));
    expect(wrong).toEqual([]);

    const dry = join(dir, 'dry.yaml');
    writeFileSync(dry, dryAliasRules(120));
    expect((await validate(dry, {})).code).toBe(0);
  }, 300_000);

  describe('against a running guardian (real process, real PostgreSQL)', () => {
    let db: TestDatabase;
    let child: ChildProcess | undefined;
    beforeAll(async () => {
      db = await createTestDatabase();
    });
    afterAll(async () => {
      if (child && child.exitCode === null) child.kill('SIGKILL');
      await db?.drop();
    });

    it('a hostile hot reload is refused; the daemon stays up on the last good rules', async () => {
      const rulesFile = join(dir, 'live.yaml');
      writeFileSync(rulesFile, GOOD);
      let stdout = '';
      let stderr = '';
      child = spawn(process.execPath, [join(ROOT, 'guardian/bin/guardian.js'), 'start'], {
        cwd: ROOT,
        env: { PATH: process.env['PATH'] ?? '', DATABASE_URL: db.url, RULES_FILE: rulesFile, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'error' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const c = child;
      c.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
      c.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      // The banner goes to stdout or stderr, depending on the version: either will do.
      await waitFor(() => /http:\s+http:\/\/127\.0\.0\.1:\d+/.test(stdout + stderr) || c.exitCode !== null, 60_000, 'the guardian to start');
      const base = /http:\s+(http:\/\/127\.0\.0\.1:\d+)/.exec(stdout + stderr)![1]!;
      const reloads = async (result: 'ok' | 'error'): Promise<number> => {
        const text = await (await fetch(`${base}/metrics`)).text();
        return Number(new RegExp(`guardian_rules_reloads_total\\{result="${result}"\\} (\\d+)`).exec(text)?.[1] ?? 0);
      };

      // The ordinary DRY file applies; then hostile files, starting with the alias bomb.
      writeFileSync(rulesFile, dryAliasRules(120));
      await waitFor(async () => (await reloads('ok')) === 1, 60_000, 'the 120-alias file to apply').catch(async (err: Error) => {
        // Say why: a refused reload logs its problems (LOG_LEVEL=error), a missed watch event logs nothing.
        throw new Error(`${err.message}; reload errors so far: ${await reloads('error')}; output: ${(stdout + stderr).slice(-2000)}`);
      });
      const sample = FULL ? files : [{ name: 'alias bomb 9x9', text: aliasBomb(9, 9) }, ...files.filter((_, i) => i % Math.ceil(files.length / 15) === 0)];
      let survived = 0;
      for (const f of sample) {
        const before = await reloads('error');
        writeFileSync(rulesFile, f.text);
        await waitFor(async () => c.exitCode !== null || (await reloads('error')) > before, 30_000, `the reload of "${f.name}" to be refused`);
        expect(c.exitCode, `the guardian exited after "${f.name}": ${stderr.slice(-2000)}`).toBeNull();
        const ready = await fetch(`${base}/readyz`);
        expect(ready.status).toBe(200);
        survived++;
      }
      figure('hostile-rules', 'hot reloads refused with the daemon still up', `${survived}/${sample.length}`);
      expect(await reloads('ok')).toBe(1);

      // A good edit still applies afterwards.
      writeFileSync(rulesFile, GOOD.replace('id: good', 'id: good-again'));
      await waitFor(async () => (await reloads('ok')) === 2, 60_000, 'the good edit to apply');
      c.kill('SIGTERM');
      const code = await new Promise<number | null>((r) => c.once('exit', (x) => r(x)));
      expect(code).toBe(0);
    }, 600_000);
  });
});
