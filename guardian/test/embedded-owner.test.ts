/**
 * The embedded database has one owner, as real processes: `guardian start` on a data folder
 * owns it and serves it; CLI commands in other processes (rollback, flags set, restore, events)
 * reach the same database through the daemon, so its OFREP answers change at once and nothing
 * is lost after a restart; a second daemon exits 1 naming the owner; a killed (SIGKILL) owner's
 * stale lock is recovered by the next start.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { lockPath, readLock } from '../src/store/lock.ts';
import { cliProcess, startProcess, until, type RunningProcess } from './cli-helpers.ts';

const KEY = 'owner-test-ofrep-key-0123456789';
const dirs: string[] = [];
const running: RunningProcess[] = [];
afterAll(() => {
  for (const r of running) if (r.child.exitCode === null) r.child.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function dataDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'guardian-owner-'));
  dirs.push(d);
  return d;
}

/** Starts the daemon and waits for its HTTP address and for the lock to name its socket. */
async function daemon(data: string): Promise<{ run: RunningProcess; base: string }> {
  const run = startProcess(['start'], { GUARDIAN_DATA_DIR: data, PORT: '0', HOST: '127.0.0.1', GUARDIAN_OFREP_KEY: KEY });
  running.push(run);
  const base = await until('the banner', () => {
    if (run.child.exitCode !== null) throw new Error(`guardian start exited ${run.child.exitCode}: ${run.stderr()}`);
    return /http:\s+(http:\/\/127\.0\.0\.1:\d+)\/healthz/.exec(run.stderr())?.[1];
  }, 90_000);
  await until('the socket in the lock', async () => ((await readLock(data))?.socket ? true : undefined), 10_000);
  return { run, base };
}

interface OfrepFlag {
  readonly key: string;
  readonly value: boolean;
  readonly reason: string;
  readonly metadata: { readonly version: number; readonly guardState: string };
}

async function ofrep(base: string): Promise<Map<string, OfrepFlag>> {
  const res = await fetch(`${base}/ofrep/v1/evaluate/flags`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': KEY },
    body: JSON.stringify({ context: { targetingKey: 'user-owner-1' } }),
  });
  const body = (await res.json()) as { flags: OfrepFlag[] };
  return new Map(body.flags.map((f) => [f.key, f]));
}

/** Waits until the daemon's OFREP answer for `flag` satisfies `ok` (the answers are cached at most 1 s). */
async function seen(base: string, flag: string, ok: (f: OfrepFlag) => boolean): Promise<OfrepFlag> {
  return until(`OFREP to show the change of ${flag}`, async () => {
    const f = (await ofrep(base)).get(flag);
    return f && ok(f) ? f : undefined;
  }, 15_000);
}

describe('one owner for the embedded database', () => {
  it('CLI commands in other processes go through the running daemon; a second daemon exits 1 naming the owner; nothing is lost after a restart', async () => {
    const data = dataDir();
    const env = { GUARDIAN_DATA_DIR: data };
    const { run, base } = await daemon(data);
    const owner = await readLock(data);
    expect(owner).toMatchObject({ role: 'daemon', pid: run.child.pid, socket: { dir: data, port: 5432 } });
    expect((await ofrep(base)).get('ai_beta_users')).toMatchObject({ reason: expect.stringMatching(/SPLIT|TARGETING_MATCH/), metadata: { guardState: 'watching' } });

    const rollback = await cliProcess(['rollback', 'ai_beta_users', '--reason', 'checkout errors', '--no-notify'], env);
    expect(rollback.stderr).toBe('');
    expect(rollback.stdout).toMatch(/^Rolled back ai_beta_users \(event 1\)/);
    await seen(base, 'ai_beta_users', (f) => f.value === false && f.reason === 'DISABLED' && f.metadata.guardState === 'rolled_back');

    const set = await cliProcess(['flags', 'set', 'ai_ga_enabled', '--percentage', '0'], env);
    expect(set).toMatchObject({ code: 0, stderr: '' });
    await seen(base, 'ai_ga_enabled', (f) => f.value === false);

    const restore = await cliProcess(['restore', 'ai_beta_users'], env);
    expect(restore).toMatchObject({ code: 0, stderr: '' });
    await seen(base, 'ai_beta_users', (f) => f.reason !== 'DISABLED' && f.metadata.guardState === 'watching');

    const events = await cliProcess(['events', '--json'], env);
    expect(events.code).toBe(0);
    expect((JSON.parse(events.stdout) as { events: { kind: string }[] }).events.map((e) => e.kind)).toEqual(['restore', 'manual_rollback']);

    const second = startProcess(['start'], { GUARDIAN_DATA_DIR: data, PORT: '0', HOST: '127.0.0.1' });
    running.push(second);
    expect((await second.exit).code).toBe(1);
    expect(second.stderr()).toContain(`already owned by pid ${run.child.pid} on `);
    expect(second.stderr()).toContain(`a guardian daemon since ${owner?.since}`);
    expect((await ofrep(base)).size).toBeGreaterThan(0); // the first one still serves

    run.child.kill('SIGTERM');
    expect(await run.exit).toEqual({ code: 0, signal: null });
    expect(existsSync(lockPath(data))).toBe(false);
    expect(existsSync(join(data, '.s.PGSQL.5432'))).toBe(false);

    // No daemon now: the CLI takes the lock itself and sees everything that was done.
    const list = await cliProcess(['flags', 'list', '--json'], env, 90_000);
    expect(list.code).toBe(0);
    const flags = new Map((JSON.parse(list.stdout) as { flags: { name: string; enabled: boolean; rolloutPercentage: number; guardState: string }[] }).flags.map((f) => [f.name, f]));
    expect(flags.get('ai_beta_users')).toMatchObject({ enabled: true, rolloutPercentage: 50, guardState: 'watching' });
    expect(flags.get('ai_ga_enabled')).toMatchObject({ rolloutPercentage: 0 });
    const after = await cliProcess(['events', '--json'], env, 90_000);
    expect((JSON.parse(after.stdout) as { events: unknown[] }).events).toHaveLength(2);
    expect(existsSync(lockPath(data))).toBe(false);
  }, 300_000);

  it('a killed owner leaves a stale lock that the next start recovers', async () => {
    const data = dataDir();
    const first = await daemon(data);
    const stale = await readLock(data);
    first.run.child.kill('SIGKILL');
    await first.run.exit;
    expect(await readLock(data)).toEqual(stale);

    const next = await daemon(data);
    const now = await readLock(data);
    expect(now?.pid).toBe(next.run.child.pid);
    expect(now?.pid).not.toBe(stale?.pid);
    expect((await ofrep(next.base)).get('booking_agent_enabled')).toBeDefined();
    next.run.child.kill('SIGTERM');
    expect((await next.run.exit).code).toBe(0);
  }, 300_000);
});
