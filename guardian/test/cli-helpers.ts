/**
 * Shared by the `cli-*.db.test.ts` files: run the CLI in-process through its `CliIo`, or as a
 * real child process, and read what it left in the database.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import type { TestDatabase } from '../../test/helpers/db.ts';
import { main } from '../src/cli/main.ts';

/** What one CLI run gave back. */
export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** A database that is certainly not there (port 1 refuses at once). */
export const UNREACHABLE_URL = 'postgres://guardian:s3cret-pw@127.0.0.1:1/nowhere';

/** The repository root (the CLI resolves the default rules file from the working directory). */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/**
 * Runs `guardian <args>` in this process with only `env` as its environment.
 *
 * @example
 * const r = await cli(['flags', 'list', '--database-url', db.url]);
 */
export async function cli(args: readonly string[], env: Record<string, string> = {}): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const code = await main(args, { stdout: (t) => void (stdout += t), stderr: (t) => void (stderr += t), env: { USER: 'tester', ...env } });
  return { code, stdout, stderr };
}

/**
 * Runs `node guardian/bin/guardian.js <args>` (or another `script`) as a child process (the Node
 * that runs vitest, which is the project's Node 22), with `env` on top of a minimal environment.
 *
 * @example
 * const r = await cliProcess(['events', '--database-url', db.url]);
 */
export function cliProcess(args: readonly string[], env: Record<string, string> = {}, timeoutMs = 20_000, script = join(REPO_ROOT, 'guardian/bin/guardian.js')): Promise<CliResult & { readonly ms: number }> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, ...args], {
      cwd: REPO_ROOT,
      env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '/tmp', USER: 'proc-tester', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => void (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => void (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`guardian ${args.join(' ')} did not exit within ${timeoutMs} ms; stdout: ${stdout}; stderr: ${stderr}`));
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : -1), stdout, stderr, ms: Date.now() - started });
    });
  });
}

/** A long-running `guardian` child process (start, …): its output so far, and its exit. */
export interface RunningProcess {
  readonly child: ChildProcess;
  stdout(): string;
  stderr(): string;
  readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Starts `node guardian/bin/guardian.js <args>` in a clean environment (nothing from the test
 * runner's: no DATABASE_URL, no SUPABASE_URL) plus `env`, and returns at once.
 *
 * @example
 * const run = startProcess(['start'], { GUARDIAN_DATA_DIR: dir, PORT: '0' });
 */
export function startProcess(args: readonly string[], env: Record<string, string>, command: readonly string[] = [process.execPath, join(REPO_ROOT, 'guardian/bin/guardian.js')]): RunningProcess {
  const [file, ...pre] = command as [string, ...string[]];
  const child = spawn(file, [...pre, ...args], { cwd: REPO_ROOT, env: { PATH: process.env['PATH'] ?? '', HOME: tmpdir(), ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (b: Buffer) => (out += b.toString('utf8')));
  child.stderr!.on('data', (b: Buffer) => (err += b.toString('utf8')));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.once('exit', (code, signal) => r({ code, signal })));
  return { child, stdout: () => out, stderr: () => err, exit };
}

/**
 * Polls `fn` until it returns something other than undefined (a condition, never a fixed sleep).
 *
 * @example
 * const url = await until('the banner', () => /http:\s+(\S+)\/healthz/.exec(run.stderr())?.[1], 60_000);
 */
export async function until<T>(what: string, fn: () => T | undefined | Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A temporary folder with files in it; `cleanup()` removes it. */
export async function tempFiles(files: Record<string, string>): Promise<{ dir: string; path: (name: string) => string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'guardian-cli-'));
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
  return { dir, path: (name) => join(dir, name), cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** A feature_flags row as the tests compare it. */
export interface FlagRow {
  readonly enabled: boolean;
  readonly rollout_percentage: number;
  readonly guard_state: string;
  readonly updated_by: string | null;
  readonly rollback_message: string | null;
  readonly version: number;
}

/** The flag's row and its targets, straight from the tables. */
export async function flagRow(db: TestDatabase, name: string): Promise<FlagRow & { readonly targets: string[] }> {
  const { rows } = await db.sql.query<FlagRow>(
    'select enabled, rollout_percentage, guard_state, updated_by, rollback_message, version::int as version from feature_flags where name = $1',
    [name],
  );
  const row = rows[0];
  if (!row) throw new Error(`flag ${name} is not in the database`);
  const targets = await db.sql.query<{ user_id: string }>('select user_id from flag_targets where flag_name = $1 order by user_id', [name]);
  return { ...row, targets: targets.rows.map((t) => t.user_id) };
}

/** A rollback_events row as the tests compare it. */
export interface EventRow {
  readonly id: string;
  readonly flag_name: string;
  readonly kind: string;
  readonly action: string | null;
  readonly actor: string;
  readonly reason: string | null;
  readonly rule_id: string | null;
  readonly previous_state: Record<string, unknown>;
  readonly new_state: Record<string, unknown>;
  readonly idempotency_key: string;
  readonly restores_event_id: string | null;
}

/** Every rollback event of a flag, oldest first. */
export async function eventRows(db: TestDatabase, flag: string): Promise<EventRow[]> {
  const { rows } = await db.sql.query<EventRow>(
    `select id::text as id, flag_name, kind, action, actor, reason, rule_id, previous_state, new_state, idempotency_key, restores_event_id::text as restores_event_id
       from rollback_events where flag_name = $1 order by id`,
    [flag],
  );
  return rows;
}

/** The outbox rows of an event: channel, status and dedupe key, by channel. */
export async function outboxRows(db: TestDatabase, eventId: string): Promise<{ channel: string; status: string; dedupe_key: string }[]> {
  const { rows } = await db.sql.query<{ channel: string; status: string; dedupe_key: string }>(
    'select channel, status, dedupe_key from notification_outbox where event_id = $1::bigint order by channel',
    [eventId],
  );
  return rows;
}

/** flag_changes rows of a flag after a given id (op, actor, and the changed columns). */
export async function auditRows(db: TestDatabase, flag: string, afterId = 0): Promise<{ id: number; op: string; actor: string; old_row: Record<string, unknown> | null; new_row: Record<string, unknown> | null }[]> {
  const { rows } = await db.sql.query<{ id: number; op: string; actor: string; old_row: Record<string, unknown> | null; new_row: Record<string, unknown> | null }>(
    'select id::int as id, op, actor, old_row, new_row from flag_changes where flag_name = $1 and id > $2 order by id',
    [flag, afterId],
  );
  return rows;
}

/** The highest flag_changes id so far (to read only what a command adds). */
export async function lastAuditId(db: TestDatabase): Promise<number> {
  const { rows } = await db.sql.query<{ id: number }>('select coalesce(max(id), 0)::int as id from flag_changes');
  return rows[0]?.id ?? 0;
}
