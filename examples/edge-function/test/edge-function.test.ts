// examples/edge-function under Deno 2 (the `deno` npm package), from the PACKED SDK: the function
// is copied into a fresh project where the tarball is installed, type-checked with `deno check`
// and served with `deno run`, reaching the real PostgreSQL through the Supabase doubles (REST for
// the definitions, Realtime for changes). A target gets the AI flow, a user outside the rollout the
// classic one, and a rollback in the database reaches the running isolate without a restart.
import { execFile, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import type { ChildProcess } from 'node:child_process';
import { cpSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import { createTestDatabase } from '../../../test/helpers/db.ts';
import type { TestDatabase } from '../../../test/helpers/db.ts';
import { installedApp, REPO_ROOT } from '../../../test/helpers/sdk-tarball.ts';
import { jwt, SupabaseDouble } from '../../../sdk/test/helpers/supabase-double.ts';
import { bucket } from '../../../sdk/src/index.ts';

const run = promisify(execFile);
const EXAMPLE = fileURLToPath(new URL('..', import.meta.url));
// The Deno executable itself, not node_modules/.bin/deno: that is a Node wrapper which runs Deno with
// spawnSync, so a signal to it would leave the server running (holding the test run's stderr open).
const DENO = (createRequire(join(REPO_ROOT, 'package.json'))('deno/install_api.cjs') as { runInstall(): string }).runInstall();
const FUNCTION = 'supabase/functions/booking-agent/index.ts';
const QA = '00000000-0000-4000-8000-00000000a001'; // a target of booking_agent_enabled (seed: 25%)
const OUTSIDE = Array.from({ length: 100 }, (_, i) => `user-${i}`).find((u) => bucket('booking_agent_enabled', u) > 25)!;

let db: TestDatabase;
let double: SupabaseDouble;
let app: { dir: string; remove(): void };
let deno: ChildProcess;
let url: string;

beforeAll(async () => {
  db = await createTestDatabase();
  double = await SupabaseDouble.start(db.url, { liveDelayMs: 50 });
  app = await installedApp({ links: ['@supabase'] });
  cpSync(join(EXAMPLE, 'supabase'), join(app.dir, 'supabase'), { recursive: true });
}, 240_000);
afterAll(async () => {
  if (deno && deno.exitCode === null) {
    const exited = new Promise((resolve) => deno.once('exit', resolve));
    deno.kill('SIGTERM');
    // A server that does not stop on SIGTERM is killed: it must never outlive the test run.
    const timer = setTimeout(() => deno.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  }
  app?.remove();
  await double?.stop();
  await db?.drop();
});

const denoEnv = (): NodeJS.ProcessEnv => ({ PATH: process.env['PATH'] ?? '', HOME: app.dir, NO_COLOR: '1', DENO_NO_UPDATE_CHECK: '1', DENO_DIR: join(app.dir, '.deno') });

async function ask(userId: string): Promise<{ flow: string; userId: string }> {
  const res = await fetch(url, { headers: { Authorization: `Bearer ${jwt({ sub: userId, role: 'authenticated' })}` } });
  return (await res.json()) as { flow: string; userId: string };
}

describe('examples/edge-function under Deno (from the tarball)', () => {
  test('deno check accepts the function against the shipped declarations', async () => {
    await run(DENO, ['check', '--node-modules-dir=manual', FUNCTION], { cwd: app.dir, env: denoEnv() });
  }, 120_000);

  test('serves checkFeatureFlag answers from the real database, and a rollback reaches the isolate live', async () => {
    deno = spawn(DENO, ['run', '-A', '--node-modules-dir=manual', FUNCTION], {
      cwd: app.dir,
      env: { ...denoEnv(), PORT: '0', SUPABASE_URL: double.url, SUPABASE_SERVICE_ROLE_KEY: jwt({ role: 'service_role' }) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    deno.stderr!.on('data', (d: Buffer) => void (stderr = (stderr + d.toString()).slice(-4000)));
    url = await new Promise<string>((resolve, reject) => {
      deno.stdout!.on('data', (d: Buffer) => {
        const m = /listening on (\S+)/.exec(d.toString());
        if (m) {
          deno.stdout!.destroy();
          resolve(m[1]!);
        }
      });
      deno.once('exit', (code) => reject(new Error(`deno exited with ${code}: ${stderr}`)));
    });
    expect(await ask(QA)).toEqual({ flow: 'ai-agent', userId: QA });
    expect(await ask(OUTSIDE)).toEqual({ flow: 'classic', userId: OUTSIDE });
    expect(await ask('')).toEqual({ flow: 'classic', userId: '' });
    await vi.waitFor(() => expect(double.joins).toBeGreaterThan(0), { timeout: 10_000 });
    await db.sql.query(`update feature_flags set enabled = false, guard_state = 'rolled_back' where name = 'booking_agent_enabled'`);
    await vi.waitFor(async () => expect((await ask(QA)).flow).toBe('classic'), { timeout: 15_000, interval: 100 });
  }, 120_000);
});
