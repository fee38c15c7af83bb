/**
 * A database the migrations were never applied to (a new user's first `guardian start` on their
 * own PostgreSQL): every store read fails with STORE_FAILED that says what to run, including the
 * shim plain PostgreSQL needs, and nothing is created behind the user's back.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.ts';
import { isGuardianError } from '../src/errors.ts';
import { SqlStore } from '../src/store/sql-store.ts';
import { errorOf } from './rejection.ts';

describe('SqlStore on a database without the schema', () => {
  let db: TestDatabase;
  let store: SqlStore;
  beforeAll(async () => {
    db = await createTestDatabase({ migrate: false });
    store = new SqlStore({ sql: db.sql, kind: 'pg', location: db.url });
  });
  afterAll(async () => {
    await db.drop();
  });

  it('says the schema is missing and how to apply it (db:migrate, with --shim on plain PostgreSQL)', async () => {
    for (const read of [() => store.listFlags(), () => store.loadRuleState(), () => store.listEvents({})]) {
      const err = await errorOf(read());
      expect(isGuardianError(err, 'STORE_FAILED')).toBe(true);
      expect(err.message).toMatch(/does not exist\. The database schema is missing or old: apply the migrations \(DATABASE_URL=… npm run db:migrate; add -- --shim on plain PostgreSQL, never on Supabase\)\.$/);
    }
    const tables = await db.sql.query<{ n: number }>("select count(*)::int as n from information_schema.tables where table_schema = 'public'");
    expect(tables.rows[0]!.n).toBe(0);
  });
});
