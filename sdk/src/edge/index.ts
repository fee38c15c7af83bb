/**
 * `@rollback-guardian/sdk/edge`: server-mode evaluation for short-lived isolates (Supabase Edge
 * Functions, Deno Deploy, Cloudflare/Vercel edge), with a per-isolate cache.
 *
 * Create ONE {@link EdgeFlags} at module level: every request the isolate serves then reuses the
 * same client and the same loaded definitions (one load of `feature_flags` + `flag_targets` per
 * isolate, not per request). The cache has a TTL: the first call after it re-fetches before
 * answering (bounded by `loadTimeoutMs`; on failure or timeout it answers from the last-known
 * definitions and retries at most every `retryAfterMs`). Timers are not relied upon, since an
 * isolate may be paused between requests. With `realtime: true` the isolate also keeps a Realtime
 * subscription, so a change (a rollback) arrives without waiting for the TTL.
 *
 * Evaluation never throws and never rejects: an unknown flag, a client that cannot load, a
 * missing environment variable or a bad argument give the default (`false`) with a reason.
 *
 * @example
 * import { createClient } from 'npm:@supabase/supabase-js@2';
 * import { createEdgeFlags } from '@rollback-guardian/sdk/edge';
 * import { supabaseTransport } from '@rollback-guardian/sdk/supabase';
 * const flags = createEdgeFlags({
 *   transport: () => supabaseTransport(createClient(Deno.env.get('SUPABASE_URL')!, Deno.env.get('SUPABASE_SERVICE_ROLE_KEY')!)),
 * });
 * Deno.serve(async (req) => {
 *   const userId = req.headers.get('x-user-id') ?? '';
 *   return Response.json({ agent: await flags.checkFeatureFlag(userId, 'booking_agent_enabled') });
 * });
 */
import { checkMs, SdkError } from '../client/errors.ts';
import { safeString } from '../client/internal/base.ts';
import { defaultTimers, silentLogger } from '../client/internal/sync.ts';
import { createServerClient } from '../client/server.ts';
import type { ServerFlagClient } from '../client/server.ts';
import type { FlagEvaluation, FlagRecord, FlagTransport, SdkLogger, Timers } from '../client/types.ts';

/**
 * Options of {@link createEdgeFlags}.
 *
 * @example
 * const options: EdgeFlagsOptions = { transport: () => supabaseTransport(admin), ttlMs: 30_000 };
 */
export interface EdgeFlagsOptions {
  /**
   * Makes the transport (a service-role one: server mode reads every definition and its targets).
   * Called once, lazily, on the first evaluation, so environment variables are read then and a
   * missing one is logged and answered with defaults instead of crashing the module at import.
   * If it throws, the next call after `retryAfterMs` tries again.
   */
  readonly transport: () => FlagTransport;
  /** How long loaded definitions are served before the next call re-fetches them (default 30 000 ms). */
  readonly ttlMs?: number;
  /** How long a call waits for a load (the first one or a TTL refresh) before answering with what it has (default 2 000 ms). */
  readonly loadTimeoutMs?: number;
  /** After a failed load (or setup), how long calls answer from the cache before trying again (default 5 000 ms). */
  readonly retryAfterMs?: number;
  /** Keep a change subscription (Supabase Realtime) open in the isolate (default `false`: TTL only). */
  readonly realtime?: boolean;
  /** The clock (default `Date.now`), injectable for tests. */
  readonly now?: () => number;
  /** Timers for the load timeout and, with `realtime`, the client's own schedule (default: the global ones). */
  readonly timers?: Timers;
  readonly logger?: SdkLogger;
}

/**
 * What {@link createEdgeFlags} returns: evaluation for one user at a time, cached per isolate.
 *
 * @example
 * if (await flags.checkFeatureFlag(user.id, 'insights_agent_enabled')) await runInsights();
 */
export interface EdgeFlags {
  /**
   * `true` when `flagName` is on for `userId`; `false` when it is off, unknown, or the flags could
   * not be loaded. Never rejects.
   *
   * @example
   * const on = await flags.checkFeatureFlag(user.id, 'booking_agent_enabled');
   */
  checkFeatureFlag(userId: string, flagName: string): Promise<boolean>;
  /**
   * The value and why (`TARGETING_MATCH`, `SPLIT`, `DISABLED`, or `ERROR` with `errorCode`
   * `FLAG_NOT_FOUND` / `PROVIDER_NOT_READY` / `INVALID_USER_ID` / …, and `defaultValue`).
   * Never rejects.
   *
   * @example
   * const { value, reason, errorCode } = await flags.evaluateFeatureFlag(user.id, 'ai_beta_users');
   */
  evaluateFeatureFlag(userId: string, flagName: string, defaultValue?: boolean): Promise<FlagEvaluation>;
  /**
   * Every known flag's value for one user (e.g. to hand a client its flags in one response).
   * Empty when nothing could be loaded. Never rejects.
   *
   * @example
   * return Response.json(await flags.allFeatureFlags(user.id));
   */
  allFeatureFlags(userId: string): Promise<Record<string, boolean>>;
  /**
   * What the cache holds: how many loads this isolate made, when the last successful one
   * started (`null`: none yet), and the client's status.
   *
   * @example
   * console.log(flags.cacheInfo()); // { loads: 1, loadedAt: 1718000000000, status: 'READY', realtime: false }
   */
  cacheInfo(): EdgeCacheInfo;
  /**
   * Drops the client (closing its subscription); the next call creates a new one and loads again.
   *
   * @example
   * await flags.close();
   */
  close(): Promise<void>;
}

/**
 * See {@link EdgeFlags.cacheInfo}.
 *
 * @example
 * const info: EdgeCacheInfo = flags.cacheInfo();
 */
export interface EdgeCacheInfo {
  readonly loads: number;
  readonly loadedAt: number | null;
  readonly status: ServerFlagClient['status'] | 'NOT_CREATED';
  readonly realtime: boolean;
}

// Timers that never fire: without `realtime`, refreshes are driven by calls (the TTL check), not
// by a schedule that a paused isolate would not keep anyway.
const idleTimers: Timers = { setTimeout: () => null, clearTimeout: () => undefined };

/**
 * Creates the per-isolate flag cache for edge functions (see the module docs). Throws an
 * `SdkError` (`INVALID_OPTION`) only for malformed options; nothing is loaded until the first call.
 *
 * @example
 * export const flags = createEdgeFlags({ transport: () => supabaseTransport(createClient(url, serviceKey)) });
 */
export function createEdgeFlags(options: EdgeFlagsOptions): EdgeFlags {
  if (options === null || typeof options !== 'object' || typeof options.transport !== 'function') {
    throw new SdkError('INVALID_OPTION', 'createEdgeFlags: options.transport must be a function returning a FlagTransport (e.g. () => supabaseTransport(createClient(url, serviceKey)))');
  }
  const ttlMs = checkMs('createEdgeFlags: options.ttlMs', options.ttlMs, 30_000);
  const loadTimeoutMs = checkMs('createEdgeFlags: options.loadTimeoutMs', options.loadTimeoutMs, 2_000, 1);
  const retryAfterMs = checkMs('createEdgeFlags: options.retryAfterMs', options.retryAfterMs, 5_000, 0);
  const realtime = options.realtime === true;
  const now = options.now ?? Date.now;
  const timers = options.timers ?? defaultTimers;
  const logger = options.logger ?? silentLogger;

  let client: ServerFlagClient | null = null;
  let loads = 0;
  let loadedAt: number | null = null; // start time of the last successful load
  let failedAt = -Infinity; // start time of the last failed load (or setup)
  let inFlight: Promise<boolean> | null = null;

  function create(): ServerFlagClient | null {
    if (client !== null) return client;
    if (now() - failedAt < retryAfterMs) return null;
    let base: FlagTransport;
    try {
      base = options.transport();
      if (base === null || typeof base !== 'object' || typeof base.loadAll !== 'function') {
        throw new SdkError('INVALID_OPTION', 'createEdgeFlags: options.transport() must return a FlagTransport with loadAll() (a service-role transport)');
      }
    } catch (error) {
      failedAt = now();
      logger.error({ err: error }, 'feature flags: creating the transport failed; answering with defaults');
      return null;
    }
    const transport: FlagTransport = {
      loadAll: async (signal) => {
        const started = now();
        loads++;
        let records: readonly FlagRecord[];
        try {
          records = await base.loadAll!(signal);
        } catch (error) {
          failedAt = started;
          throw error;
        }
        loadedAt = started;
        failedAt = -Infinity;
        return records;
      },
      ...(realtime && base.subscribe ? { subscribe: base.subscribe.bind(base) } : {}),
      ...(base.close ? { close: base.close.bind(base) } : {}),
    };
    client = createServerClient({
      transport,
      ttlMs,
      logger,
      timers: realtime ? timers : idleTimers,
      // While a realtime subscription is down, poll at the TTL (a refresh per call is the TTL check's job).
      pollIntervalMs: ttlMs,
    });
    inFlight = client.ready().then((s) => s === 'READY');
    return client;
  }

  /** Resolves when `p` settles or after `loadTimeoutMs`, whichever is first; never rejects. */
  function bounded(p: Promise<unknown>): Promise<void> {
    return new Promise<void>((resolve) => {
      const handle = timers.setTimeout(resolve, loadTimeoutMs);
      p.then(
        () => {
          timers.clearTimeout(handle);
          resolve();
        },
        () => {
          timers.clearTimeout(handle);
          resolve();
        },
      );
    });
  }

  /** The client with definitions no older than the TTL, as far as it could within the timeout. */
  async function fresh(): Promise<ServerFlagClient | null> {
    const c = create();
    if (c === null) return null;
    if (inFlight === null) {
      const stale = loadedAt === null || now() - loadedAt >= ttlMs;
      if (stale && now() - failedAt >= retryAfterMs) {
        inFlight = c.refresh();
      }
    }
    if (inFlight !== null) {
      const p = inFlight;
      void p.finally(() => {
        if (inFlight === p) inFlight = null;
      });
      await bounded(p);
    }
    return c;
  }

  async function evaluateFeatureFlag(userId: string, flagName: string, defaultValue = false): Promise<FlagEvaluation> {
    const fallback = typeof defaultValue === 'boolean' ? defaultValue : false;
    try {
      const c = await fresh();
      if (c === null) {
        return { flag: typeof flagName === 'string' ? flagName : safeString(flagName), value: fallback, reason: 'ERROR', errorCode: 'PROVIDER_NOT_READY' };
      }
      return c.evaluate(flagName, userId, fallback);
    } catch (error) {
      // Nothing above should throw; this keeps the promise of "never rejects" if something does.
      logger.error({ err: error, flag: safeString(flagName) }, 'feature flags: evaluation failed; answering with the default');
      return { flag: safeString(flagName), value: fallback, reason: 'ERROR', errorCode: 'PROVIDER_NOT_READY' };
    }
  }

  return {
    evaluateFeatureFlag,
    async checkFeatureFlag(userId: string, flagName: string): Promise<boolean> {
      return (await evaluateFeatureFlag(userId, flagName, false)).value;
    },
    async allFeatureFlags(userId: string): Promise<Record<string, boolean>> {
      try {
        const c = await fresh();
        return c === null ? {} : c.allValues(userId);
      } catch (error) {
        logger.error({ err: error }, 'feature flags: evaluation failed; answering with no flags');
        return {};
      }
    },
    cacheInfo(): EdgeCacheInfo {
      return { loads, loadedAt, status: client === null ? 'NOT_CREATED' : client.status, realtime: client?.realtime ?? false };
    },
    async close(): Promise<void> {
      const c = client;
      client = null;
      inFlight = null;
      loadedAt = null;
      failedAt = -Infinity;
      await c?.close();
    },
  };
}
