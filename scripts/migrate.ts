// `npm run db:migrate [-- --shim] [-- --seed]`: applies supabase/migrations to DATABASE_URL and
// prints what it applied. `--shim` first creates what plain PostgreSQL lacks (Supabase roles,
// auth.uid()/auth.jwt(), the supabase_realtime publication); `--seed` inserts the core flags.
// Exit codes: 0 done, 1 the database refused or is unreachable, 2 bad usage.
import pg from 'pg';

import { isGuardianError } from '../guardian/src/errors.ts';
import { applyMigrations } from '../guardian/src/store/migrations.ts';
import { pgSqlClient } from '../guardian/src/store/sql.ts';

const USAGE = `usage: DATABASE_URL=postgres://… npm run db:migrate -- [--shim] [--seed] [--json]
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
  if (!url) {
    process.stderr.write(`db:migrate: DATABASE_URL is not set. Set it to the database to migrate, e.g. DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres\n`);
    return 2;
  }
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
    const report = await applyMigrations(sql, { shim: flags.has('--shim'), seed: flags.has('--seed') });
    if (flags.has('--json')) {
      process.stdout.write(`${JSON.stringify(report)}\n`);
      return 0;
    }
    if (report.shim) process.stdout.write('applied test shim (supabase/test-shim.sql)\n');
    for (const f of report.applied) process.stdout.write(`applied ${f}\n`);
    for (const f of report.changed) process.stdout.write(`warning: ${f} was edited after it ran; its new text was not applied (write a new migration instead)\n`);
    process.stdout.write(`${report.applied.length} applied, ${report.skipped.length} already applied${report.seeded ? ', seed applied' : ''}\n`);
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
