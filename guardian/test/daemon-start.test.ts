/**
 * README's run command, as a real process: `node guardian/bin/guardian.js start` (what `npm start`
 * runs) with no database configured starts the guardian on the embedded PGlite database, prints
 * what it watches and where, serves /healthz and /readyz, and on SIGTERM finishes and exits 0.
 * Bad configuration exits 1 with every problem named.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { startProcess as start, until } from './cli-helpers.ts';

const dirs: string[] = [];

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'guardian-start-'));
  dirs.push(d);
  return d;
}

afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('guardian start (README run command) on the embedded database', () => {
  it('starts on PGlite, says what it watches and where, serves health, exits 0 on SIGTERM; a restart reuses the data', async () => {
    const data = tempDir();
    const env = { GUARDIAN_DATA_DIR: data, PORT: '0', HOST: '127.0.0.1' };
    const run = start(['start'], env);
    const base = await until('the banner', () => /http:\s+(http:\/\/127\.0\.0\.1:\d+)\/healthz/.exec(run.stderr())?.[1], 240_000);
    const banner = run.stderr();
    expect(banner).toMatch(/^Rollback Guardian — 3 rule\(s\), polling every 30s/);
    expect(banner).toContain(`state:   embedded database in ${join(data, 'pglite')}`);
    expect(banner).toContain('rules:   rules/guardian.yaml');
    expect(banner).toMatch(/rule ai-stage-regression: .* flags ai_alpha_users \(on 10%, watching\), ai_beta_users \(on 50%, watching\)/);
    expect(banner).toContain('sentry not configured');
    expect(banner).toContain('npm run guardian -- demo');

    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    const ready = await until('ready', async () => ((await fetch(`${base}/readyz`)).status === 200 ? true : undefined), 20_000);
    expect(ready).toBe(true);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/guardian_cycles_total\{result="ok"\} 1/);
    expect(existsSync(join(data, 'pglite'))).toBe(true);

    run.child.kill('SIGTERM');
    expect(await run.exit).toEqual({ code: 0, signal: null });
    expect(run.stdout()).toContain('guardian: stopped');
    // stdout is the JSON log only (the banner went to stderr), one object per line.
    for (const line of run.stdout().trimEnd().split('\n')) expect(() => JSON.parse(line) as unknown).not.toThrow();
    expect(run.stderr()).toMatch(/^Rollback Guardian — /);
    expect(run.stderr()).not.toContain('"level"');

    // Second start on the same folder: migrations and seed are not applied again, flags kept.
    const again = start(['start'], env);
    await until('the second banner', () => (again.stderr().includes('http:') ? true : undefined), 240_000);
    expect(again.stderr()).toContain('booking_agent_enabled (on 25%, watching)');
    again.child.kill('SIGINT');
    expect((await again.exit).code).toBe(0);
  }, 600_000);

  it('exits 1 naming every bad setting, before opening anything', async () => {
    const run = start(['start'], { PORT: 'eighty', LOG_LEVEL: 'loud', GUARDIAN_DATA_DIR: tempDir() });
    const { code } = await run.exit;
    expect(code).toBe(1);
    expect(run.stderr()).toContain('PORT: must be an integer port');
    expect(run.stderr()).toContain('LOG_LEVEL: must be one of');
  }, 30_000);

  it('exits 1 listing every problem of a bad rules file', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'bad.yaml'), 'interval: soon\nrules:\n  - id: x\n    flags: [Bad-Name]\n    sourc: sentry\n');
    const run = start(['start', '--rules', join(dir, 'bad.yaml')], { GUARDIAN_DATA_DIR: dir, PORT: '0' });
    const { code } = await run.exit;
    expect(code).toBe(1);
    const err = run.stderr();
    expect(err).toContain('interval');
    expect(err).toContain('rules[0].flags[0]');
    expect(err).toContain('sourc');
  }, 30_000);

  it('exits 2 on a bad argument', async () => {
    const run = start(['start', '--bogus'], { GUARDIAN_DATA_DIR: tempDir() });
    expect((await run.exit).code).toBe(2);
    expect(run.stderr()).toContain('--bogus');
  }, 30_000);
});
