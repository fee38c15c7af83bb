import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { GuardianError } from '../errors.ts';
import type { SqlClient } from './sql.ts';

/** The repository's `supabase/` folder, resolved from this file (works from any working directory). */
const SUPABASE_DIR = fileURLToPath(new URL('../../../supabase/', import.meta.url));

/**
 * The default folder of migration files: `<repository>/supabase/migrations`.
 *
 * @example
 * const all = await readMigrations(DEFAULT_MIGRATIONS_DIR);
 */
export const DEFAULT_MIGRATIONS_DIR = join(SUPABASE_DIR, 'migrations');

/**
 * The test shim (roles, `auth.uid()`/`auth.jwt()`, the `supabase_realtime` publication) for plain
 * PostgreSQL and PGlite. Never needed on Supabase.
 *
 * @example
 * await applyMigrations(sql, { shim: true, shimFile: DEFAULT_SHIM_FILE });
 */
export const DEFAULT_SHIM_FILE = join(SUPABASE_DIR, 'test-shim.sql');

/**
 * The seed: the core flags of DESIGN.md §3 (idempotent, `on conflict do nothing`).
 *
 * @example
 * await applyMigrations(sql, { seed: true, seedFile: DEFAULT_SEED_FILE });
 */
export const DEFAULT_SEED_FILE = join(SUPABASE_DIR, 'seed.sql');

/** Migration file names: `<14-digit timestamp>_<name>.sql`, the Supabase CLI convention. */
const MIGRATION_FILE = /^(\d{14})_([a-z0-9_]+)\.sql$/;

/** Arbitrary constant for the advisory lock that serialises concurrent migration runs. */
const MIGRATION_LOCK_KEY = 720_251_125;

/**
 * One migration file.
 *
 * @example
 * const m: Migration = { version: '20251125000100', name: 'feature_flags', file: '20251125000100_feature_flags.sql', path: '/…', sql: '…', checksum: 'ab12…' };
 */
export interface Migration {
  /** The 14-digit timestamp prefix; migrations run in this order. */
  readonly version: string;
  /** The part after the timestamp, without `.sql`. */
  readonly name: string;
  /** The file name. */
  readonly file: string;
  /** The absolute path. */
  readonly path: string;
  /** The file's SQL text. */
  readonly sql: string;
  /** SHA-256 of the text (hex), recorded in `schema_migrations` to notice edited migrations. */
  readonly checksum: string;
}

/**
 * What {@link applyMigrations} did.
 *
 * @example
 * const { applied } = await applyMigrations(sql);
 * console.log(applied.length ? `applied ${applied.join(', ')}` : 'up to date');
 */
export interface MigrationReport {
  /** Files applied by this call, in order. */
  readonly applied: readonly string[];
  /** Files that had run before and were skipped. */
  readonly skipped: readonly string[];
  /** Skipped files whose text differs from what was recorded when they ran (edited after the fact). */
  readonly changed: readonly string[];
  /** Whether the test shim ran. */
  readonly shim: boolean;
  /** Whether the seed ran. */
  readonly seeded: boolean;
}

/**
 * Options of {@link applyMigrations}.
 *
 * @example
 * await applyMigrations(sql, { shim: true, seed: true });
 */
export interface ApplyMigrationsOptions {
  /** Run `supabase/test-shim.sql` first (plain PostgreSQL, PGlite). Default false. */
  readonly shim?: boolean;
  /** Run `supabase/seed.sql` after the migrations. Default false. */
  readonly seed?: boolean;
  /** Folder of migration files. Default {@link DEFAULT_MIGRATIONS_DIR}. */
  readonly dir?: string;
  /** Shim file. Default {@link DEFAULT_SHIM_FILE}. */
  readonly shimFile?: string;
  /** Seed file. Default {@link DEFAULT_SEED_FILE}. */
  readonly seedFile?: string;
}

/**
 * Reads the migration files of `dir`, sorted by file name (= by timestamp). Files that do not
 * look like `<14 digits>_<name>.sql` are refused, so a typo cannot silently skip a migration.
 *
 * @example
 * for (const m of await readMigrations()) console.log(m.file);
 */
export async function readMigrations(dir: string = DEFAULT_MIGRATIONS_DIR): Promise<Migration[]> {
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch (err) {
    throw new GuardianError('MIGRATION_FAILED', `migrations folder ${dir} cannot be read: ${(err as Error).message}. Run from a checkout that has supabase/migrations.`, { cause: err });
  }
  const files = entries.filter((f) => f.endsWith('.sql')).sort();
  const seen = new Map<string, string>();
  const out: Migration[] = [];
  for (const file of files) {
    const m = MIGRATION_FILE.exec(file);
    if (!m) {
      throw new GuardianError('MIGRATION_FAILED', `migration file ${join(dir, file)}: name must be <14-digit timestamp>_<lowercase_name>.sql`);
    }
    const version = m[1]!;
    const other = seen.get(version);
    if (other !== undefined) {
      throw new GuardianError('MIGRATION_FAILED', `migration files ${other} and ${file} share the timestamp ${version}; give each its own`);
    }
    seen.set(version, file);
    const path = join(dir, file);
    const sql = await readFile(path, 'utf8');
    out.push({ version, name: m[2]!, file, path, sql, checksum: createHash('sha256').update(sql).digest('hex') });
  }
  return out;
}

async function readSqlFile(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new GuardianError('MIGRATION_FAILED', `${what} ${path} cannot be read: ${(err as Error).message}`, { cause: err });
  }
}

function failure(what: string, err: unknown): GuardianError {
  const e = err as { message?: string; code?: string; detail?: string; hint?: string; position?: string };
  const parts = [`${what} failed: ${e.message ?? String(err)}`];
  if (e.detail) parts.push(`detail: ${e.detail}`);
  if (e.hint) parts.push(`hint: ${e.hint}`);
  if (e.position) parts.push(`at character ${e.position}`);
  return new GuardianError('MIGRATION_FAILED', parts.join('; '), { cause: err, details: { sqlstate: e.code } });
}

/**
 * Whether every migration file has run on this database (one query; false when the bookkeeping
 * table does not exist yet). Lets an embedded database that is up to date skip
 * {@link applyMigrations}' per-file transactions on every open.
 *
 * @example
 * if (!(await migrationsUpToDate(sql))) await applyMigrations(sql, { shim: true });
 */
export async function migrationsUpToDate(sql: SqlClient, dir: string = DEFAULT_MIGRATIONS_DIR): Promise<boolean> {
  const migrations = await readMigrations(dir);
  const { rows: has } = await sql.query<{ present: boolean }>("select to_regclass('public.schema_migrations') is not null as present");
  if (has[0]?.present !== true) return false;
  const { rows } = await sql.query<{ version: string }>('select version from public.schema_migrations');
  const done = new Set(rows.map((r) => r.version));
  return migrations.every((m) => done.has(m.version));
}

/**
 * Brings a database up to date: optionally the test shim, then every migration not yet recorded
 * in `public.schema_migrations` (each file in its own transaction, recorded in the same one),
 * then optionally the seed. Safe to run again and from several processes at once (an advisory
 * lock serialises them). Works over node-postgres and PGlite alike.
 *
 * @example
 * const report = await applyMigrations(pgSqlClient(pool), { shim: true, seed: true });
 * // report.applied: ['20251125000100_feature_flags.sql', …]
 */
export async function applyMigrations(sql: SqlClient, opts: ApplyMigrationsOptions = {}): Promise<MigrationReport> {
  const migrations = await readMigrations(opts.dir);

  const lock = async (tx: SqlClient): Promise<void> => {
    await tx.query('select pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
  };

  // The bookkeeping table (RLS on, no policy: only its owner and BYPASSRLS roles see it).
  await sql.transaction(async (tx) => {
    await lock(tx);
    await tx.exec(`
      create table if not exists public.schema_migrations (
        version text primary key,
        name text not null,
        checksum text not null,
        applied_at timestamptz not null default now()
      );
      alter table public.schema_migrations enable row level security;
      revoke all on table public.schema_migrations from public;
    `);
  });

  if (opts.shim) {
    const shim = await readSqlFile(opts.shimFile ?? DEFAULT_SHIM_FILE, 'test shim');
    await sql
      .transaction(async (tx) => {
        await lock(tx);
        await tx.exec(shim);
      })
      .catch((err: unknown) => {
        throw failure('test shim', err);
      });
  }

  const applied: string[] = [];
  const skipped: string[] = [];
  const changed: string[] = [];
  for (const m of migrations) {
    const status = await sql
      .transaction(async (tx): Promise<'applied' | 'skipped' | 'changed'> => {
        await lock(tx);
        const { rows } = await tx.query<{ checksum: string }>('select checksum from public.schema_migrations where version = $1', [m.version]);
        const done = rows[0];
        if (done) return done.checksum === m.checksum ? 'skipped' : 'changed';
        await tx.exec(m.sql);
        await tx.query('insert into public.schema_migrations (version, name, checksum) values ($1, $2, $3)', [m.version, m.name, m.checksum]);
        return 'applied';
      })
      .catch((err: unknown) => {
        throw failure(`migration ${m.file}`, err);
      });
    if (status === 'applied') applied.push(m.file);
    else skipped.push(m.file);
    if (status === 'changed') changed.push(m.file);
  }

  // The API roles (when they exist) get nothing on the bookkeeping table, whatever default
  // privileges say (Supabase grants new public tables to them).
  await sql.transaction(async (tx) => {
    await lock(tx);
    await tx.exec(`
    do $$
    begin
      if exists (select 1 from pg_catalog.pg_roles where rolname = 'anon') then
        revoke all on table public.schema_migrations from anon;
      end if;
      if exists (select 1 from pg_catalog.pg_roles where rolname = 'authenticated') then
        revoke all on table public.schema_migrations from authenticated;
      end if;
    end
    $$;
  `);
  });

  if (opts.seed) {
    const seed = await readSqlFile(opts.seedFile ?? DEFAULT_SEED_FILE, 'seed');
    await sql
      .transaction(async (tx) => {
        await lock(tx);
        await tx.exec(seed);
      })
      .catch((err: unknown) => {
        throw failure('seed', err);
      });
  }

  return { applied, skipped, changed, shim: opts.shim === true, seeded: opts.seed === true };
}
