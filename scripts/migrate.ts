// `npm run db:migrate [-- --shim] [-- --seed]`: applies supabase/migrations to DATABASE_URL and
// prints what it applied. Without DATABASE_URL it brings the embedded database of
// GUARDIAN_DATA_DIR (default .data) up to date: through the running guardian when one owns it
// (found through the folder's lock file), else by taking the folder's lock itself. `--shim` first creates what plain PostgreSQL lacks (Supabase roles,
// auth.uid()/auth.jwt(), the supabase_realtime publication); `--seed` inserts the core flags.
// Exit codes: 0 done, 1 the database refused or is unreachable, 2 bad usage.
import pg from 'pg';

import { isGuardianError } from '../guardian/src/errors.ts';
import { openEmbedded } from '../guardian/src/store/embedded.ts';
import { applyMigrations, type MigrationReport } from '../guardian/src/store/migrations.ts';
import { pgSqlClient } from '../guardian/src/store/sql.ts';

const USAGE = `usage: [DATABASE_URL=postgres://…] npm run db:migrate -- [--shim] [--seed] [--json]
  (without DATABASE_URL: the embedded database in GUARDIAN_DATA_DIR, default .data)
  --shim   apply supabase/test-shim.sql first (plain PostgreSQL; never needed on Supabase)
  --seed   apply supabase/seed.sql after the migrations (idempotent)
  --json   print the report as JSON`;

/** Hides the password of a connection string for messages. */
function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparseable DATABASE_URL)';
  }
}

/** Prints a report the way both paths do. */
function print(report: MigrationReport, json: boolean): void {
  if (json) {
    process.stdout.write(`${JSON.stringify(report)}\n`);
    return;
  }
  if (report.shim) process.stdout.write('applied test shim (supabase/test-shim.sql)\n');
  for (const f of report.applied) process.stdout.write(`applied ${f}\n`);
  for (const f of report.changed) process.stdout.write(`warning: ${f} was edited after it ran; its new text was not applied (write a new migration instead)\n`);
  process.stdout.write(`${report.applied.length} applied, ${report.skipped.length} already applied${report.seeded ? ', seed applied' : ''}\n`);
}

/** The embedded database (PGlite) of a data folder, never opened behind its owner's back. */
async function migrateEmbedded(dataDir: string, flags: ReadonlySet<string>): Promise<number> {
  let db;
  try {
    db = await openEmbedded(dataDir);
  } catch (err) {
    process.stderr.write(`db:migrate: ${(err as Error).message}\n`);
    return 1;
  }
  try {
    process.stderr.write(`db:migrate: no DATABASE_URL, so the embedded database in ${db.location}\n`);
    print(await applyMigrations(db.sql, { shim: true, seed: flags.has('--seed') }), flags.has('--json'));
    return 0;
  } catch (err) {
    process.stderr.write(`db:migrate: ${isGuardianError(err) ? `${err.code}: ${err.message}` : (err as Error).message}\n`);
    return 1;
  } finally {
    await db.sql.close();
  }
}

async function main(argv: readonly string[]): Promise<number> {
  const flags = new Set(argv);
  for (const a of flags) {
    if (a === '--help' || a === '-h') {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    }
    if (!['--shim', '--seed', '--json'].includes(a)) {
      process.stderr.write(`db:migrate: unknown argument "${a}"\n${USAGE}\n`);
      return 2;
    }
  }
  const url = process.env['DATABASE_URL'];
  if (!url) return migrateEmbedded(process.env['GUARDIAN_DATA_DIR'] || '.data', flags);
  try {
    new URL(url);
  } catch {
    process.stderr.write('db:migrate: DATABASE_URL is not a valid URL; expected postgres://user:password@host:port/database\n');
    return 2;
  }

  const pool = new pg.Pool({ connectionString: url, max: 1, connectionTimeoutMillis: 10_000 });
  const sql = pgSqlClient(pool);
  try {
    try {
      await sql.query('select 1');
    } catch (err) {
      process.stderr.write(`db:migrate: cannot reach the database at ${redact(url)}: ${(err as Error).message}. Check DATABASE_URL and that PostgreSQL is running.\n`);
      return 1;
    }
    print(await applyMigrations(sql, { shim: flags.has('--shim'), seed: flags.has('--seed') }), flags.has('--json'));
    return 0;
  } catch (err) {
    const msg = isGuardianError(err) ? `${err.code}: ${err.message}` : (err as Error).message;
    process.stderr.write(`db:migrate: ${msg}\n`);
    return 1;
  } finally {
    await sql.close();
  }
}

process.exitCode = await main(process.argv.slice(2));
