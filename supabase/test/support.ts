// Shared pieces of the database tests: the two backends (real PostgreSQL and PGlite), running
// a block as a Supabase API role inside a transaction that is always rolled back, and number
// normalisation (pg returns bigint as string, PGlite as number).
import type { SqlClient } from '../../guardian/src/store/sql.ts';
import { createTestDatabase, createTestPglite, type TestDatabase, type TestDatabaseOptions } from '../../test/helpers/db.ts';

/**
 * The backends every database test file runs against.
 *
 * @example
 * describe.each(BACKENDS)('$name', ({ create }) => { … });
 */
export const BACKENDS: ReadonlyArray<{ readonly name: 'postgres' | 'pglite'; readonly create: (opts?: TestDatabaseOptions) => Promise<TestDatabase> }> = [
  { name: 'postgres', create: createTestDatabase },
  { name: 'pglite', create: createTestPglite },
];

const ROLLBACK = Symbol('rollback');

/**
 * Runs `fn` in a transaction that is rolled back afterwards, whatever happens; returns its value.
 *
 * @example
 * const n = await withRollback(db.sql, async (tx) => (await tx.query('delete from feature_flags')).rows.length);
 */
export async function withRollback<T>(sql: SqlClient, fn: (tx: SqlClient) => Promise<T>): Promise<T> {
  let out: { value: T } | undefined;
  try {
    await sql.transaction(async (tx) => {
      out = { value: await fn(tx) };
      throw ROLLBACK;
    });
  } catch (err) {
    if (err !== ROLLBACK) throw err;
  }
  return out!.value;
}

/** The API roles of Supabase. */
export type ApiRole = 'anon' | 'authenticated' | 'service_role';

/**
 * Runs `fn` as `role` (SET LOCAL ROLE) with the JWT claims PostgREST would set, inside a
 * transaction that is rolled back.
 *
 * @example
 * await asRole(db.sql, 'authenticated', { sub: userId, role: 'authenticated' }, (tx) => tx.query('select * from get_my_flags()'));
 */
export function asRole<T>(sql: SqlClient, role: ApiRole, claims: Record<string, unknown> | null, fn: (tx: SqlClient) => Promise<T>): Promise<T> {
  return withRollback(sql, async (tx) => {
    await tx.query(`select set_config('request.jwt.claims', $1, true), set_config('role', $2, true)`, [JSON.stringify(claims ?? { role }), role]);
    return fn(tx);
  });
}

/**
 * A bigint column as a number (pg gives strings, PGlite numbers).
 *
 * @example
 * expect(num(row.version)).toBe(2);
 */
export function num(v: unknown): number {
  const n = typeof v === 'string' ? Number(v) : typeof v === 'bigint' ? Number(v) : v;
  if (typeof n !== 'number' || Number.isNaN(n)) throw new Error(`expected a number, got ${JSON.stringify(v)}`);
  return n;
}
