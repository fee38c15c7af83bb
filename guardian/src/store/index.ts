/**
 * The store folder: one {@link Store} interface, one file per backend, and the factory that
 * picks the backend from validated configuration (`loadConfig`): `DATABASE_URL` → PostgreSQL,
 * `SUPABASE_URL` + `SUPABASE_SERVICE_ROLE_KEY` → Supabase, neither → embedded PGlite in
 * `<GUARDIAN_DATA_DIR>/pglite` (migrations, shim and seed applied on first start), owned by one
 * process at a time and reached through the daemon when one runs (embedded.ts).
 */
import type { GuardianConfig } from '../config.ts';
import { openEmbedded } from './embedded.ts';
import { applyMigrations } from './migrations.ts';
import { SqlStore } from './sql-store.ts';
import { pgSqlClient } from './sql.ts';
import type { Store } from './types.ts';

export * from './types.ts';
export { pgliteDir } from './embedded.ts';
export { SqlStore, type SqlStoreOptions } from './sql-store.ts';
// Type-only: the Supabase client is loaded only when a Supabase store is opened (CLI start-up time).
export type { SupabaseStore, SupabaseStoreOptions } from './supabase-store.ts';

/**
 * Options of {@link createStore}.
 *
 * @example
 * await createStore(config, { migrate: true });
 */
export interface CreateStoreOptions {
  /** PostgreSQL only: apply pending migrations at start (PGlite always does). Default false. */
  readonly migrate?: boolean;
  /** Supabase only: the fetch to use (tests, proxies). Default global fetch. */
  readonly fetch?: typeof fetch;
  /** pg pool size. Default 5. */
  readonly poolSize?: number;
  /**
   * Embedded only: own the data folder and serve it to other local processes on a socket (the
   * daemon). Default false: reach a running daemon's database through its socket, else take the
   * folder's lock for as long as the store is open.
   */
  readonly serve?: boolean;
}

/**
 * A connection string without its password, for messages and logs.
 *
 * @example
 * safeUrl('postgres://app:s3cret@db:5432/app'); // 'postgres://app:***@db:5432/app'
 */
export function safeUrl(raw: string): string {
  try {
    const u = new URL(raw);
    if (u.password !== '') u.password = '***';
    return u.toString();
  } catch {
    return '(unparseable URL)';
  }
}

/**
 * Opens the store the configuration names and checks that it answers (`ping`), so an
 * unreachable database fails here with `STORE_UNREACHABLE` and a message that says what to do.
 *
 * @example
 * const store = await createStore(loadConfig(process.env));
 * console.log(`state in ${store.kind} at ${store.location}`);
 */
export async function createStore(config: GuardianConfig, opts: CreateStoreOptions = {}): Promise<Store> {
  if (config.store === 'pg' && config.databaseUrl !== undefined) {
    const pg = (await import('pg')).default;
    const pool = new pg.Pool({ connectionString: config.databaseUrl, max: opts.poolSize ?? 5, connectionTimeoutMillis: 10_000 });
    // An idle client that loses its connection must not crash the process; the next query reports it.
    pool.on('error', () => {});
    const sql = pgSqlClient(pool);
    const store = new SqlStore({ sql, kind: 'pg', location: safeUrl(config.databaseUrl) });
    try {
      await store.ping();
      if (opts.migrate) await applyMigrations(sql);
    } catch (err) {
      await store.close().catch(() => {});
      throw err;
    }
    return store;
  }
  if (config.store === 'supabase' && config.supabase) {
    const { SupabaseStore } = await import('./supabase-store.ts');
    const store = new SupabaseStore({ url: config.supabase.url, serviceRoleKey: config.supabase.serviceRoleKey, ...(opts.fetch ? { fetch: opts.fetch } : {}) });
    await store.ping();
    return store;
  }
  const embedded = await openEmbedded(config.dataDir, { serve: opts.serve === true });
  return new SqlStore({ sql: embedded.sql, kind: 'pglite', location: embedded.location });
}
