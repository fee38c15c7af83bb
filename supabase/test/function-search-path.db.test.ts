/**
 * Every function our migrations create pins `search_path` (Supabase's linter rule
 * "function_search_path_mutable"): a caller's search_path can never swap the tables or operators
 * a function uses. flag_bucket, is_feature_enabled and evaluate_flags did not, until
 * 20251203000200_empty_user_and_search_path.sql.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.ts';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db.drop();
});

describe('functions of the public schema', () => {
  test('every one sets search_path', async () => {
    const { rows } = await db.sql.query<{ name: string; config: string[] | null }>(
      `select p.oid::regprocedure::text as name, p.proconfig as config
         from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace
        where n.nspname = 'public' and p.prokind = 'f'
        order by 1`,
    );
    expect(rows.map((r) => r.name)).toEqual(expect.arrayContaining(['flag_bucket(text,text)', 'is_feature_enabled(text,text)', 'evaluate_flags(text)']));
    const unpinned = rows.filter((r) => !(r.config ?? []).some((c) => c.startsWith('search_path='))).map((r) => r.name);
    expect(unpinned).toEqual([]);
  });
});
