/**
 * `npm start` as process managers run it: SIGTERM (systemd, Docker, Kubernetes) or SIGINT sent to
 * the npm process itself — not to the node child — stops the guardian cleanly (it drains and
 * says so), npm exits 0, and no process of the group is left behind (the start script `exec`s
 * node, so there is no shell in between to die and orphan it).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { readLock } from '../src/store/lock.ts';
import { REPO_ROOT, until } from './cli-helpers.ts';

const dirs: string[] = [];
const groups: number[] = [];
afterAll(() => {
  for (const g of groups) {
    try {
      process.kill(-g, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('npm start and signals', () => {
  it('the start script execs node (no shell left between npm and the guardian)', () => {
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    expect(pkg.scripts['start']).toMatch(/^exec node guardian\/bin\/guardian\.js start$/);
  });

  it.each(['SIGTERM', 'SIGINT'] as const)('%s to the npm process: the guardian drains, npm exits 0, every process is gone', async (signal) => {
    const data = mkdtempSync(join(tmpdir(), 'guardian-npm-'));
    dirs.push(data);
    // Its own process group, as a service manager would start it, so we can see every process of it.
    const npm = spawn('npm', ['start'], {
      cwd: REPO_ROOT,
      detached: true,
      env: { PATH: process.env['PATH'] ?? '', HOME: data, GUARDIAN_DATA_DIR: data, PORT: '0', HOST: '127.0.0.1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const pgid = npm.pid!;
    groups.push(pgid);
    let out = '';
    let err = '';
    npm.stdout.on('data', (b: Buffer) => (out += b.toString('utf8')));
    npm.stderr.on('data', (b: Buffer) => (err += b.toString('utf8')));
    const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => npm.once('exit', (code, sig) => r({ code, signal: sig })));

    const owner = await until('the guardian to serve', async () => {
      if (npm.exitCode !== null) throw new Error(`npm start exited ${npm.exitCode}: ${err}`);
      const lock = await readLock(data);
      return lock?.socket ? lock : undefined;
    }, 240_000);
    expect(owner.pid).not.toBe(npm.pid);

    npm.kill(signal);
    expect(await exit).toEqual({ code: 0, signal: null });
    await until('every process of the group to be gone', () => (groupAlive(pgid) ? undefined : true), 20_000);
    expect(out).toContain(`"signal":"${signal}"`);
    expect(out).toContain('guardian: stopped');
  }, 400_000);
});
