/**
 * The admin API as the daemon serves it: `/api/v1` (with its change stream) and the read-only
 * `/ofrep/v1/stream` (when GUARDIAN_OFREP_KEY is set), the hub fed by the database's change
 * notifications: LISTEN on a dedicated connection for PostgreSQL, PGlite's in-process listen for
 * the embedded database, and Supabase Realtime `postgres_changes` (with the service role key) on
 * Supabase in client mode (PostgREST only, no direct connection): see realtime-feed.ts.
 */
import type { GuardianConfig } from '../config.ts';
import { mountApp, type HttpMount } from '../http/server.ts';
import type { Logger } from '../logger.ts';
import { SqlStore } from '../store/sql-store.ts';
import type { Store } from '../store/types.ts';
import { createAdminApi, createOfrepStream } from './app.ts';
import { FailureLimiter } from './auth.ts';
import { pgChangeFeed, pgliteChangeFeed, pipeFeed, type ChangeFeed } from './feed.ts';
import { ChangeHub } from './hub.ts';
import type { StatusProvider } from './status.ts';

/**
 * The mounts and their lifetime.
 *
 * @example
 * const admin = await startAdminApi({ config, store, logger, status });
 * await startHttpServer({ …, mounts: [...others, ...admin.mounts] });
 * // on stop: await admin.close();
 */
export interface AdminApiRunning {
  readonly mounts: readonly HttpMount[];
  readonly hub: ChangeHub;
  /** Stops the feed and ends every stream. */
  close(): Promise<void>;
}

/** The change feed of a store, if it has one. */
async function feedFor(config: GuardianConfig, store: Store, logger: Logger): Promise<ChangeFeed | undefined> {
  if (store.kind === 'pg' && config.databaseUrl !== undefined) return pgChangeFeed({ connectionString: config.databaseUrl, logger });
  if (store instanceof SqlStore && store.sql.listen) {
    const listen = store.sql.listen.bind(store.sql);
    return pgliteChangeFeed((channel, cb) => listen(channel, cb));
  }
  if (store.kind === 'supabase' && config.supabase) {
    // Loaded only here: supabase-js is not needed on the other stores.
    const { realtimeChangeFeed } = await import('./realtime-feed.ts');
    return realtimeChangeFeed({ url: config.supabase.url, serviceRoleKey: config.supabase.serviceRoleKey, logger });
  }
  return undefined;
}

/**
 * Builds the admin API mounts and starts the change feed.
 *
 * @example
 * const admin = await startAdminApi({ config, store, logger: logger.child({ part: 'api' }), status: () => snapshot });
 */
export async function startAdminApi(opts: { config: GuardianConfig; store: Store; logger: Logger; status: StatusProvider }): Promise<AdminApiRunning> {
  const { config, store, logger } = opts;
  const hub = new ChangeHub();
  const feed = await feedFor(config, store, logger);
  let stopFeed: () => Promise<void> = async () => {};
  if (feed) stopFeed = await pipeFeed(feed, hub, store, logger);
  // (The banner says what feeds the stream on Supabase, and when nobody can sign in.)
  const limiter = new FailureLimiter();
  const api = createAdminApi({
    store,
    auth: { adminToken: config.adminToken, jwtSecret: config.jwtSecret, supabaseUrl: config.supabase?.url },
    allowedOrigins: config.allowedOrigins ?? [],
    hub,
    status: opts.status,
    limiter,
    logger,
  });
  // The API bounds its own bodies (8 MiB: two lists of 10,000 ids) with its own words.
  const mounts: HttpMount[] = [mountApp('/api/v1', api, { maxBodyBytes: null })];
  if (config.ofrepKey !== undefined) mounts.push(mountApp('/ofrep/v1', createOfrepStream({ hub, apiKey: config.ofrepKey, limiter })));
  return {
    mounts,
    hub,
    async close() {
      hub.close();
      await stopFeed();
    },
  };
}
