// The migration runner (guardian/src/store/migrations.ts) and `npm run db:migrate`: ordering,
// re-runs, concurrent runners, edited and failing migrations, clear errors.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';

import { isGuardianError } from '../../guardian/src/errors.ts';
import { applyMigrations, readMigrations } from '../../guardian/src/store/migrations.ts';
import { createTestDatabase, createTestPglite, type TestDatabase } from '../../test/helpers/db.ts';
import { num } from './support.ts';

const run = promisify(execFile);
const REPO = new URL('../../', import.meta.url).pathname;

describe('readMigrations', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'rg-migrations-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('the repository migrations are sorted by timestamp and well named', async () => {
    const all = await readMigrations();
    expect(all.length).toBeGreaterThanOrEqual(10);
    expect(all.map((m) => m.file)).toEqual([...all.map((m) => m.file)].sort());
    expect(all[0]!.file).toBe('20251125000100_feature_flags.sql');
    for (const m of all) expect(m.checksum).toMatch(/^[0-9a-f]{64}$/);
  });

  test('a badly named file is refused with its name', async () => {
    await writeFile(join(dir, '2025_oops.sql'), 'select 1;');
    await expect(readMigrations(dir)).rejects.toThrow(/2025_oops\.sql: name must be <14-digit timestamp>_<lowercase_name>\.sql/);
    await rm(join(dir, '2025_oops.sql'));
  });

  test('a missing folder is a MIGRATION_FAILED error naming it', async () => {
    const err = await readMigrations(join(dir, 'nope')).catch((e: unknown) => e);
    expect(isGuardianError(err, 'MIGRATION_FAILED')).toBe(true);
    expect((err as Error).message).toContain(join(dir, 'nope'));
  });
});

describe('applyMigrations on PostgreSQL', () => {
  let db: TestDatabase | undefined;
  let dir: string | undefined;
  afterEach(async () => {
    await db?.drop();
    db = undefined;
    if (dir) await rm(dir, { recursive: true, force: true });
    dir = undefined;
  });

  test('a second run applies nothing and changes nothing (seed included)', async () => {
    db = await createTestDatabase();
    const count = async (table: string): Promise<number> => num((await db!.sql.query<{ n: string }>(`select count(*) as n from public.${table}`)).rows[0]!.n);
    const before = { flags: await count('feature_flags'), changes: await count('flag_changes'), targets: await count('flag_targets') };
    const again = await applyMigrations(db.sql, { shim: true, seed: true });
    expect(again.applied).toEqual([]);
    expect(again.skipped).toHaveLength((await readMigrations()).length);
    expect(again.changed).toEqual([]);
    expect({ flags: await count('feature_flags'), changes: await count('flag_changes'), targets: await count('flag_targets') }).toEqual(before);
  });

  test('plain PostgreSQL without the shim: refused before anything is applied, naming --shim', async () => {
    db = await createTestDatabase({ migrate: false });
    const err = await applyMigrations(db.sql).catch((e: unknown) => e);
    expect(isGuardianError(err, 'MIGRATION_FAILED')).toBe(true);
    expect((err as Error).message).toMatch(/lacks what Supabase provides \(.*auth\.uid\(\).*\): it is plain PostgreSQL\. Run with --shim \(npm run db:migrate -- --shim\).*Nothing was applied\.$/);
    const { rows } = await db.sql.query<{ t: string | null }>("select to_regclass('public.schema_migrations')::text as t");
    expect(rows[0]?.t).toBeNull();
  });

  test('concurrent runners apply each migration exactly once', async () => {
    db = await createTestDatabase({ migrate: false });
    const reports = await Promise.all([applyMigrations(db.sql, { shim: true }), applyMigrations(db.sql, { shim: true }), applyMigrations(db.sql, { shim: true })]);
    const all = await readMigrations();
    const applied = reports.flatMap((r) => r.applied);
    expect(applied.sort()).toEqual(all.map((m) => m.file).sort());
    const { rows } = await db.sql.query<{ n: string }>('select count(*) as n from public.schema_migrations');
    expect(num(rows[0]!.n)).toBe(all.length);
  });

  test('a failing migration names its file, rolls back, and is not recorded; an edited one is reported', async () => {
    db = await createTestDatabase({ migrate: false });
    dir = await mkdtemp(join(tmpdir(), 'rg-migrations-'));
    await writeFile(join(dir, '20990101000100_first.sql'), 'create table t_first (id int);');
    await writeFile(join(dir, '20990101000200_broken.sql'), 'create table t_broken (id int);\nselect * from no_such_table;');
    const err = await applyMigrations(db.sql, { dir, shim: true }).catch((e: unknown) => e);
    expect(isGuardianError(err, 'MIGRATION_FAILED')).toBe(true);
    expect((err as Error).message).toMatch(/migration 20990101000200_broken\.sql failed: relation "no_such_table" does not exist/);
    const tables = await db.sql.query<{ t: string | null; b: string | null }>("select to_regclass('public.t_first')::text as t, to_regclass('public.t_broken')::text as b");
    expect(tables.rows[0]).toEqual({ t: 't_first', b: null });
    await writeFile(join(dir, '20990101000200_broken.sql'), 'create table t_broken (id int);');
    await writeFile(join(dir, '20990101000100_first.sql'), 'create table t_first (id int); -- edited');
    const report = await applyMigrations(db.sql, { dir, shim: true });
    expect(report.applied).toEqual(['20990101000200_broken.sql']);
    expect(report.changed).toEqual(['20990101000100_first.sql']);
  });
});

describe('applyMigrations on PGlite', () => {
  test('re-runs cleanly', async () => {
    const db = await createTestPglite();
    try {
      const again = await applyMigrations(db.sql, { shim: true, seed: true });
      expect(again.applied).toEqual([]);
      expect(again.skipped.length).toBeGreaterThanOrEqual(10);
    } finally {
      await db.drop();
    }
  }, 120_000); // PGlite applies every migration twice: about 10 s alone, far more on a loaded machine
});

describe('npm run db:migrate (scripts/migrate.ts)', () => {
  const node = join(REPO, 'node_modules/.bin/node');
  const script = join(REPO, 'scripts/migrate.ts');

  test('applies, then reports everything already applied', async () => {
    const db = await createTestDatabase({ migrate: false });
    try {
      const env = { ...process.env, DATABASE_URL: db.url };
      const first = await run(node, [script, '--shim', '--seed'], { env });
      expect(first.stdout).toContain('applied 20251125000100_feature_flags.sql');
      expect(first.stdout).toMatch(/\d+ applied, 0 already applied, seed applied/);
      const second = await run(node, [script, '--shim', '--json'], { env });
      const report = JSON.parse(second.stdout) as { applied: string[]; skipped: string[] };
      expect(report.applied).toEqual([]);
      expect(report.skipped.length).toBeGreaterThanOrEqual(10);
    } finally {
      await db.drop();
    }
  });

  test('without DATABASE_URL it brings the embedded database of GUARDIAN_DATA_DIR up to date (taking its lock)', async () => {
    const data = await mkdtemp(join(tmpdir(), 'rg-migrate-embedded-'));
    try {
      const env: NodeJS.ProcessEnv = { ...process.env, GUARDIAN_DATA_DIR: data };
      delete env['DATABASE_URL'];
      const first = await run(node, [script, '--json'], { env });
      expect(first.stderr).toBe(`db:migrate: no DATABASE_URL, so the embedded database in ${join(data, 'pglite')}\n`);
      const report = JSON.parse(first.stdout) as { applied: string[]; skipped: string[] };
      expect(report.applied).toEqual([]); // opening it applied them; the run confirms every one is there
      expect(report.skipped).toHaveLength((await readMigrations()).length);
      expect(existsSync(join(data, 'pglite.lock'))).toBe(false);
    } finally {
      await rm(data, { recursive: true, force: true });
    }
  }, 120_000);

  test('an unreachable database is a clear error and exit 1', async () => {
    const env = { ...process.env, DATABASE_URL: 'postgres://postgres@127.0.0.1:1/none' };
    const err = (await run(node, [script], { env }).catch((e: unknown) => e)) as { code: number; stderr: string };
    expect(err.code).toBe(1);
    expect(err.stderr).toMatch(/cannot reach the database at postgres:\/\/postgres@127\.0\.0\.1:1\/none/);
  });
});
