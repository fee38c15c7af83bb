import { randomBytes } from 'node:crypto';

import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';

import { applyMigrations } from '../../guardian/src/store/migrations.ts';
import { pgliteSqlClient, pgSqlClient, type SqlClient } from '../../guardian/src/store/sql.ts';

/**
 * The admin connection test databases are created from: `TEST_DATABASE_ADMIN_URL`, else the
 * local PostgreSQL with trust auth.
 *
 * @example
 * const admin = new pg.Client({ connectionString: ADMIN_URL });
 */
export const ADMIN_URL = process.env['TEST_DATABASE_ADMIN_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/**
 * Options of {@link createTestDatabase} and {@link createTestPglite}.
 *
 * @example
 * await createTestDatabase({ seed: false }); // schema only, no flags
 */
export interface TestDatabaseOptions {
  /** Apply the test shim and every migration. Default true. */
  readonly migrate?: boolean;
  /** Apply `supabase/seed.sql` (the seven core flags). Default true; ignored when `migrate` is false. */
  readonly seed?: boolean;
}

/**
 * A throwaway database for one test file.
 *
 * @example
 * const db = await createTestDatabase();
 * afterAll(() => db.drop());
 */
export interface TestDatabase {
  /** Connection string of the database (PGlite: `pglite://memory`). */
  readonly url: string;
  /** Database name (random, `rg_test_…`). */
  readonly name: string;
  /** A SqlClient over a pg Pool (or over PGlite) connected as the superuser `postgres`. */
  readonly sql: SqlClient;
  /** Closes the connections and drops the database (terminating any connection left open). */
  drop(): Promise<void>;
}

function databaseUrl(adminUrl: string, name: string): string {
  const u = new URL(adminUrl);
  u.pathname = `/${name}`;
  return u.toString();
}

/**
 * Creates a randomly named database on the local PostgreSQL (see {@link ADMIN_URL}), applies the
 * shim and the migrations and the seed (unless told not to), and returns a SqlClient over a pg
 * Pool. Fails (never skips) when PostgreSQL is unreachable.
 *
 * @example
 * const db = await createTestDatabase();
 * const { rows } = await db.sql.query<{ name: string }>('select name from feature_flags');
 * await db.drop();
 */
export async function createTestDatabase(opts: TestDatabaseOptions = {}): Promise<TestDatabase> {
  const name = `rg_test_${Date.now().toString(36)}_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  try {
    await admin.connect();
  } catch (err) {
    throw new Error(`test database: PostgreSQL at ${ADMIN_URL} is unreachable (${(err as Error).message}). Start it or set TEST_DATABASE_ADMIN_URL.`, { cause: err });
  }
  try {
    await admin.query(`create database "${name}"`);
  } finally {
    await admin.end();
  }
  const url = databaseUrl(ADMIN_URL, name);
  const pool = new pg.Pool({ connectionString: url, max: 4 });
  // An idle client cut off by drop() (FATAL 57P01) must not become an unhandled 'error' event.
  pool.on('error', () => {});
  const sql = pgSqlClient(pool);
  let dropped = false;
  const drop = async (): Promise<void> => {
    if (dropped) return;
    dropped = true;
    await pool.end().catch(() => {});
    const c = new pg.Client({ connectionString: ADMIN_URL });
    await c.connect();
    try {
      await c.query(`drop database if exists "${name}" with (force)`);
    } finally {
      await c.end();
    }
  };
  try {
    if (opts.migrate !== false) await applyMigrations(sql, { shim: true, seed: opts.seed !== false });
  } catch (err) {
    await drop();
    throw err;
  }
  return { url, name, sql, drop };
}

/**
 * The same over an in-memory PGlite (no server needed): shim, migrations and seed applied by
 * default; `drop()` closes it.
 *
 * @example
 * const db = await createTestPglite({ seed: false });
 * await db.sql.query('insert into feature_flags (name) values ($1)', ['my_flag']);
 * await db.drop();
 */
export async function createTestPglite(opts: TestDatabaseOptions = {}): Promise<TestDatabase> {
  const image = opts.migrate === false ? undefined : await migratedImage(opts.seed !== false);
  const pglite = await PGlite.create(image ? { loadDataDir: image } : {});
  const sql = pgliteSqlClient(pglite);
  let closed = false;
  const drop = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    await pglite.close();
  };
  return { url: 'pglite://memory', name: `pglite_${randomBytes(5).toString('hex')}`, sql, drop };
}

/**
 * A PGlite data folder with the shim, every migration and (optionally) the seed applied, made once
 * per test process by really applying them, then copied for each database that asks: applying 40
 * migrations to a new PGlite costs seconds of CPU, loading the copy well under one.
 */
const migratedImages = new Map<boolean, Promise<Blob>>();
function migratedImage(seed: boolean): Promise<Blob> {
  let image = migratedImages.get(seed);
  if (!image) {
    image = (async () => {
      const pglite = await PGlite.create();
      try {
        await applyMigrations(pgliteSqlClient(pglite), { shim: true, seed });
        return await pglite.dumpDataDir('none');
      } finally {
        await pglite.close();
      }
    })();
    migratedImages.set(seed, image);
    image.catch(() => migratedImages.delete(seed)); // a failed build is not remembered
  }
  return image;
}
