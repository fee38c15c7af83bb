/**
 * Opening the embedded database (PGlite in `<GUARDIAN_DATA_DIR>/pglite`) so that only one
 * process ever has its files open:
 *
 * - a daemon (`serve: true`) takes the folder's lock, opens PGlite and serves it on a local socket
 *   it writes into the lock; a second daemon finds the live owner and stops with `STORE_LOCKED`;
 * - any other process (CLI, `db:migrate`) connects to the daemon's socket with node-postgres when
 *   a daemon owns the folder, and otherwise takes the lock itself for as long as it runs.
 *
 * Why a command without a daemon takes a second or more: PGlite is PostgreSQL compiled to
 * WebAssembly; every open compiles and starts it and replays its files (the first open also runs
 * initdb and every migration). With a daemon running, commands skip all of that.
 */
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';

import { GuardianError } from '../errors.ts';
import { acquireLock, describeOwner, type HeldLock, type LockInfo } from './lock.ts';
import { applyMigrations, migrationsUpToDate } from './migrations.ts';
import { SessionTurns, servePglite, turnTakingSqlClient } from './pglite-server.ts';
import { pgliteSqlClient, pgSqlClient, type SqlClient } from './sql.ts';

/** The folder of the embedded database for a data folder. */
export function pgliteDir(dataDir: string): string {
  return resolve(join(dataDir, 'pglite'));
}

/** Options of {@link openEmbedded}. */
export interface OpenEmbeddedOptions {
  /** Own the folder and serve it to other local processes (the daemon). Default false. */
  readonly serve?: boolean;
  /** How long to wait for another short command (or a starting daemon) to let go. Default 30 s. */
  readonly waitMs?: number;
}

/** An open embedded database. */
export interface EmbeddedDatabase {
  readonly sql: SqlClient;
  /** For messages: the folder, and the daemon it is reached through when it is. */
  readonly location: string;
  /** The daemon this process reaches the database through, when it does. */
  readonly via?: LockInfo;
}

async function connectToDaemon(dir: string, owner: LockInfo): Promise<EmbeddedDatabase | undefined> {
  const socket = owner.socket;
  if (socket === undefined) return undefined;
  const pg = (await import('pg')).default;
  const pool = new pg.Pool({ host: socket.dir, port: socket.port, user: 'postgres', database: 'postgres', max: 2, connectionTimeoutMillis: 5_000 });
  pool.on('error', () => {});
  const sql = pgSqlClient(pool);
  try {
    await sql.query('select 1');
  } catch {
    await pool.end().catch(() => {});
    return undefined;
  }
  return { sql, location: `${dir} (through the guardian daemon, pid ${owner.pid})`, via: owner };
}

/**
 * Opens the embedded database of `dataDir` (see the file header for who opens what).
 *
 * @example
 * const { sql } = await openEmbedded('.data');            // a command: through the daemon when one runs
 * const daemonDb = await openEmbedded('.data', { serve: true }); // the daemon: owns and serves it
 */
export async function openEmbedded(dataDir: string, opts: OpenEmbeddedOptions = {}): Promise<EmbeddedDatabase> {
  const root = resolve(dataDir);
  const dir = pgliteDir(root);
  try {
    await mkdir(dir, { recursive: true });
  } catch (err) {
    throw new GuardianError('STORE_UNREACHABLE', `GUARDIAN_DATA_DIR: cannot create the embedded database folder ${dir}: ${(err as Error).message}`, { cause: err });
  }
  let held: HeldLock | undefined;
  for (let attempt = 0; held === undefined; attempt++) {
    const got = await acquireLock(root, { role: opts.serve ? 'daemon' : 'cli', ...(opts.waitMs !== undefined ? { waitForCliMs: opts.waitMs } : {}) });
    if ('held' in got) {
      held = got.held;
      break;
    }
    if (opts.serve) {
      throw new GuardianError(
        'STORE_LOCKED',
        `the embedded database in ${dir} is already owned by ${describeOwner(got.daemon)}; stop that guardian first, or give this one its own GUARDIAN_DATA_DIR (or a DATABASE_URL)`,
        { details: { owner: got.daemon } },
      );
    }
    const through = await connectToDaemon(dir, got.daemon);
    if (through) return through;
    // The daemon is stopping (or just died): its lock goes away or is recovered on the next try.
    if (attempt >= 50) throw new GuardianError('STORE_LOCKED', `the embedded database in ${dir} is owned by ${describeOwner(got.daemon)}, whose socket does not answer; try again when it has stopped`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const lock = held;
  let db: import('@electric-sql/pglite').PGlite;
  try {
    const { PGlite } = await import('@electric-sql/pglite');
    db = await PGlite.create(dir);
  } catch (err) {
    await lock.release();
    throw new GuardianError('STORE_UNREACHABLE', `embedded database in ${dir} cannot be opened: ${(err as Error).message}`, { cause: err });
  }
  const direct = pgliteSqlClient(db);
  try {
    if (!(await migrationsUpToDate(direct))) {
      const { rows } = await direct.query<{ fresh: boolean }>("select to_regclass('public.feature_flags') is null as fresh");
      await applyMigrations(direct, { shim: true, seed: rows[0]?.fresh === true });
    }
  } catch (err) {
    await direct.close().catch(() => {});
    await lock.release();
    throw err;
  }
  if (!opts.serve) {
    return { sql: { ...direct, close: () => direct.close().finally(() => lock.release()) }, location: dir };
  }
  const turns = new SessionTurns();
  let served;
  try {
    served = await servePglite(db, turns, root);
    await lock.advertise(served.socket);
  } catch (err) {
    await served?.stop().catch(() => {});
    await direct.close().catch(() => {});
    await lock.release();
    throw new GuardianError('STORE_UNREACHABLE', `cannot serve the embedded database in ${dir} on a local socket: ${(err as Error).message}`, { cause: err });
  }
  const sql = turnTakingSqlClient(direct, turns);
  let closing: Promise<void> | undefined;
  return {
    sql: {
      ...sql,
      close() {
        closing ??= (async () => {
          await served.stop().catch(() => {});
          await direct.close().catch(() => {});
          await lock.release();
        })();
        return closing;
      },
    },
    location: dir,
  };
}
