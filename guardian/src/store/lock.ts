/**
 * One owner for the embedded database: a lock file next to the PGlite folder
 * (`<GUARDIAN_DATA_DIR>/pglite.lock`), created atomically (written to a private file, then
 * `link`ed into place, which fails if the lock exists), holding who owns the folder (pid, host,
 * kernel boot, process start time, since when) and, for a daemon, the local socket where it
 * serves the database over the PostgreSQL wire protocol.
 *
 * A lock whose owner is gone (killed, crashed, machine rebooted) is recovered by the next
 * process; a live owner's lock is never broken. "Alive" means: its socket accepts a connection,
 * or (same kernel) its pid still runs with the start time the lock recorded, so a recycled pid
 * (PID 1 in a restarted container) is not mistaken for the owner.
 */
import { randomBytes } from 'node:crypto';
import { link, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { hostname } from 'node:os';
import { join } from 'node:path';

import { GuardianError } from '../errors.ts';

/** Where a daemon serves the embedded database: pg's `host` (the socket's folder) and `port`. */
export interface LockSocket {
  /** The folder holding the Unix socket `.s.PGSQL.<port>` (node-postgres' `host` for sockets). */
  readonly dir: string;
  readonly port: number;
}

/** What the lock file says. */
export interface LockInfo {
  /** `daemon` serves the database to others; `cli` is a short command that holds it for a moment. */
  readonly role: 'daemon' | 'cli';
  readonly pid: number;
  readonly host: string;
  /** `/proc/sys/kernel/random/boot_id` (Linux), '' elsewhere. */
  readonly bootId: string;
  /** Field 22 of `/proc/<pid>/stat` (clock ticks after boot), '' elsewhere. */
  readonly procStart: string;
  /** ISO time the lock was taken. */
  readonly since: string;
  /** The daemon's socket once it serves (absent while it starts, and for `cli`). */
  readonly socket?: LockSocket;
  /** The command line, for people reading the file. */
  readonly command: string;
}

/** A lock this process holds. */
export interface HeldLock {
  readonly path: string;
  readonly info: LockInfo;
  /** Rewrites the lock (atomically) to say where the database is served. */
  advertise(socket: LockSocket): Promise<void>;
  /** Removes the lock if it is still ours. Idempotent. */
  release(): Promise<void>;
}

/** The lock file of a data folder. */
export function lockPath(dataDir: string): string {
  return join(dataDir, 'pglite.lock');
}

function readQuiet(path: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return '';
  }
}

/** Start time of a process in clock ticks after boot (Linux), '' when unknown. */
function procStart(pid: number): string {
  const stat = readQuiet(`/proc/${pid}/stat`);
  // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return rest[19] ?? '';
}

const BOOT_ID = readQuiet('/proc/sys/kernel/random/boot_id');

function describe(info: LockInfo): string {
  return `pid ${info.pid} on ${info.host}, ${info.role === 'daemon' ? 'a guardian daemon' : 'a guardian command'} since ${info.since}`;
}

/** "owned by pid 123 on host, a guardian daemon since 2026-…" — for messages. */
export function describeOwner(info: LockInfo): string {
  return describe(info);
}

function parse(text: string): LockInfo | undefined {
  try {
    const v = JSON.parse(text) as Partial<LockInfo>;
    if (typeof v.pid !== 'number' || typeof v.host !== 'string' || (v.role !== 'daemon' && v.role !== 'cli')) return undefined;
    return { bootId: '', procStart: '', since: '', command: '', ...v } as LockInfo;
  } catch {
    return undefined;
  }
}

/** Reads the lock of a data folder (undefined: no lock, or not a lock we can read). */
export async function readLock(dataDir: string): Promise<LockInfo | undefined> {
  try {
    return parse(await readFile(lockPath(dataDir), 'utf8'));
  } catch {
    return undefined;
  }
}

/** Whether something accepts connections on the socket (a live daemon always does). */
export function socketAnswers(socket: LockSocket, timeoutMs = 1_000): Promise<boolean> {
  return new Promise((resolve) => {
    const conn = createConnection({ path: join(socket.dir, `.s.PGSQL.${socket.port}`) });
    const done = (ok: boolean) => {
      conn.destroy();
      resolve(ok);
    };
    conn.setTimeout(timeoutMs, () => done(false));
    conn.once('connect', () => done(true));
    conn.once('error', () => done(false));
  });
}

/**
 * Whether the lock's owner still runs. Never says "dead" for a live owner it can see: a socket
 * that answers, or the same pid with the same start time on the same kernel, is alive; a
 * different kernel boot on the same host (a reboot) is dead; another machine whose socket does
 * not answer is assumed alive (we cannot look at its processes).
 */
export async function ownerAlive(info: LockInfo): Promise<boolean> {
  if (info.socket && (await socketAnswers(info.socket))) return true;
  if (info.bootId !== '' && BOOT_ID !== '') {
    if (info.bootId !== BOOT_ID) return info.host !== hostname();
    if (info.pid === process.pid && info.procStart === procStart(process.pid)) return true;
    const now = procStart(info.pid);
    return now !== '' && now === info.procStart;
  }
  if (info.host !== hostname()) return true;
  if (info.pid === process.pid) return false;
  try {
    process.kill(info.pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function writePrivate(dir: string, info: LockInfo): Promise<string> {
  const tmp = join(dir, `.pglite.lock.${process.pid}.${randomBytes(4).toString('hex')}`);
  await writeFile(tmp, `${JSON.stringify(info, null, 2)}\n`, { mode: 0o644 });
  return tmp;
}

/**
 * Breaks a dead owner's lock. A second lock (`pglite.lock.break`, taken the same atomic way)
 * makes sure two processes that both found the same dead owner do not both remove a lock, the
 * second one removing the first one's fresh lock.
 */
async function breakStale(path: string, stale: LockInfo, dir: string, me: LockInfo): Promise<void> {
  const guard = `${path}.break`;
  const tmp = await writePrivate(dir, me);
  try {
    try {
      await link(tmp, guard);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      // A breaker that died mid-way leaves its guard: it is stale after a few seconds.
      const age = Date.now() - (await stat(guard)).mtimeMs;
      if (age > 10_000) await unlink(guard).catch(() => {});
      return;
    }
    try {
      const again = parse(await readFile(path, 'utf8').catch(() => ''));
      if (again && again.pid === stale.pid && again.since === stale.since && again.host === stale.host) await unlink(path).catch(() => {});
    } finally {
      await unlink(guard).catch(() => {});
    }
  } finally {
    await unlink(tmp).catch(() => {});
  }
}

/** Options of {@link acquireLock}. */
export interface AcquireLockOptions {
  readonly role: 'daemon' | 'cli';
  /** How long to wait for a live owner that is a short command (role `cli`) to finish. Default 30 s (a daemon that is still opening the database counts as one). */
  readonly waitForCliMs?: number;
  /** Called when the folder is owned by a live daemon: return a value to stop trying (the caller connects to it instead). */
  readonly onDaemon?: (owner: LockInfo) => boolean;
}

/** The outcome of {@link acquireLock}: the lock, or the live daemon that owns the folder. */
export type AcquireResult = { readonly held: HeldLock } | { readonly daemon: LockInfo };

/**
 * Takes the lock of `dataDir` (which must exist). A dead owner's lock is recovered; a live
 * command's lock is waited for (up to `waitForCliMs`); a live daemon's is returned (the caller
 * connects to it, or refuses to start a second daemon).
 *
 * @example
 * const r = await acquireLock('.data', { role: 'daemon' });
 * if ('daemon' in r) throw new Error(`owned by pid ${r.daemon.pid}`);
 */
export async function acquireLock(dataDir: string, opts: AcquireLockOptions): Promise<AcquireResult> {
  const path = lockPath(dataDir);
  const info: LockInfo = {
    role: opts.role,
    pid: process.pid,
    host: hostname(),
    bootId: BOOT_ID,
    procStart: procStart(process.pid),
    since: new Date().toISOString(),
    command: process.argv.slice(1).join(' ').slice(0, 300),
  };
  const deadline = Date.now() + (opts.waitForCliMs ?? 30_000);
  for (let attempt = 0; ; attempt++) {
    const tmp = await writePrivate(dataDir, info);
    try {
      await link(tmp, path);
      return { held: heldLock(path, info, dataDir) };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new GuardianError('STORE_UNREACHABLE', `GUARDIAN_DATA_DIR: cannot create the lock file ${path}: ${(err as Error).message}`, { cause: err });
      }
    } finally {
      await unlink(tmp).catch(() => {});
    }
    const text = await readFile(path, 'utf8').catch(() => undefined);
    if (text === undefined) continue; // released in between: try again at once
    const owner = parse(text);
    if (owner === undefined) {
      // Written by link in one step, so never half-written: an unreadable file is not ours to judge.
      throw new GuardianError('STORE_LOCKED', `the embedded database in ${dataDir} is locked by ${path}, which is not a guardian lock file; remove it if no guardian uses this folder`);
    }
    if (!(await ownerAlive(owner))) {
      await breakStale(path, owner, dataDir, info);
      continue;
    }
    if (owner.role === 'daemon' && (owner.socket !== undefined || opts.role === 'daemon')) return { daemon: owner };
    if (Date.now() > deadline) {
      throw new GuardianError(
        'STORE_LOCKED',
        `the embedded database in ${dataDir} is in use by ${describe(owner)} (${path}); wait for it to finish, or stop it`,
      );
    }
    // A short command (or a daemon that is still opening the database): wait for it.
    await new Promise((r) => setTimeout(r, Math.min(20 * 2 ** Math.min(attempt, 4), 200)));
  }
}

function heldLock(path: string, first: LockInfo, dir: string): HeldLock {
  let info = first;
  let released = false;
  const ours = async (): Promise<boolean> => {
    const now = parse(await readFile(path, 'utf8').catch(() => ''));
    return now !== undefined && now.pid === info.pid && now.since === info.since && now.host === info.host;
  };
  return {
    path,
    get info() {
      return info;
    },
    async advertise(socket: LockSocket) {
      info = { ...info, socket };
      const tmp = await writePrivate(dir, info);
      await rename(tmp, path);
    },
    async release() {
      if (released) return;
      released = true;
      if (await ours()) await unlink(path).catch(() => {});
    },
  };
}
