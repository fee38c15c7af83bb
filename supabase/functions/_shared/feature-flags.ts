// Feature flags for Supabase Edge Functions (Deno): server-side evaluation of Rollback Guardian
// flags with a per-isolate cache.
//
//   import { checkFeatureFlag } from '../_shared/feature-flags.ts';
//
//   Deno.serve(async (req) => {
//     const { data } = await supabase.auth.getUser(req.headers.get('Authorization')!.replace('Bearer ', ''));
//     if (await checkFeatureFlag(data.user!.id, 'booking_agent_enabled')) return runBookingAgent(req);
//     return new Response('Booking agent is not available', { status: 404 });
//   });
//
// One flag client is created per isolate, on the first call, and reused by every request the
// isolate serves: all definitions (and targets) are loaded once and each evaluation is local (a
// lookup and one hash, well under a microsecond). The first call after the TTL (30 s) re-fetches;
// when the database cannot be reached the last-known definitions keep being served. It reads
// SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY, which Supabase sets for every function. Evaluation
// never throws: an unknown flag, a missing variable or an unreachable database give `false`
// (`evaluateFeatureFlag` says why).
//
// Imports: supabase-js through an `npm:` specifier (no import map needed to run), the SDK from
// this repository by relative path. Deploy with `supabase functions deploy --use-api` (CLI ≥ 2.13),
// which bundles files outside supabase/; with an older CLI, copy sdk/src next to this file. The SDK
// imports supabase-js TYPES only, under its bare name: `deno check` (not the runtime) needs the
// function's deno.json to map it: { "imports": { "@supabase/supabase-js": "npm:@supabase/supabase-js@2" } }.
// Under Node (tsc, vitest), npm-specifiers.d.ts beside this file maps the `npm:` specifier to the
// installed package. Checked in Deno 2.9: runs, type-checks (with that mapping) and answers exactly
// as the SDK does under Node.
import { createClient } from 'npm:@supabase/supabase-js@2';
import { createEdgeFlags } from '../../../sdk/src/edge/index.ts';
import type { EdgeCacheInfo, EdgeFlags } from '../../../sdk/src/edge/index.ts';
import type { FlagEvaluation, SdkLogger, Timers } from '../../../sdk/src/index.ts';
import { supabaseTransport } from '../../../sdk/src/supabase/index.ts';

/**
 * Settings of this module's flag client; every one is optional (see {@link configureFeatureFlags}).
 *
 * @example
 * configureFeatureFlags({ ttlMs: 10_000 });
 */
export interface FeatureFlagsConfig {
  /** Reads an environment variable (default: `Deno.env.get`, or `process.env` under Node). */
  readonly env?: (name: string) => string | undefined;
  /** Makes the supabase-js client (default: supabase-js `createClient`). */
  readonly createClient?: typeof createClient;
  /** How long loaded definitions are served before the next call re-fetches them (default 30 000 ms). */
  readonly ttlMs?: number;
  /** How long a call waits for a load before answering with what it has (default 2 000 ms). */
  readonly loadTimeoutMs?: number;
  /** After a failed load, how long calls answer from the cache before trying again (default 5 000 ms). */
  readonly retryAfterMs?: number;
  /** Also keep a Realtime subscription open in the isolate (default `false`). */
  readonly realtime?: boolean;
  /** Where problems are reported (default `console`, i.e. the function's logs). */
  readonly logger?: SdkLogger;
  /** Clock and timers (tests). */
  readonly now?: () => number;
  readonly timers?: Timers;
}

interface DenoLike {
  env: { get(name: string): string | undefined };
}
interface ProcessLike {
  env: Record<string, string | undefined>;
}

function runtimeEnv(name: string): string | undefined {
  const g = globalThis as { Deno?: DenoLike; process?: ProcessLike };
  try {
    if (g.Deno !== undefined) return g.Deno.env.get(name);
    return g.process?.env[name];
  } catch {
    return undefined; // no permission to read the environment
  }
}

// The function's logs: message first, then the details (the error under `err`).
const consoleLogger: SdkLogger = {
  warn: (obj, msg) => console.warn(msg ?? '', obj),
  error: (obj, msg) => console.error(msg ?? '', obj),
};

function build(config: FeatureFlagsConfig): EdgeFlags {
  const env = config.env ?? runtimeEnv;
  const makeClient = config.createClient ?? createClient;
  return createEdgeFlags({
    transport: () => {
      const url = env('SUPABASE_URL');
      const key = env('SUPABASE_SERVICE_ROLE_KEY');
      if (!url || !key) {
        throw new Error(`feature flags: ${!url ? 'SUPABASE_URL' : 'SUPABASE_SERVICE_ROLE_KEY'} is not set; every flag evaluates to false`);
      }
      return supabaseTransport(makeClient(url, key, { auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false } }));
    },
    logger: config.logger ?? consoleLogger,
    ...(config.ttlMs !== undefined ? { ttlMs: config.ttlMs } : {}),
    ...(config.loadTimeoutMs !== undefined ? { loadTimeoutMs: config.loadTimeoutMs } : {}),
    ...(config.retryAfterMs !== undefined ? { retryAfterMs: config.retryAfterMs } : {}),
    ...(config.realtime !== undefined ? { realtime: config.realtime } : {}),
    ...(config.now !== undefined ? { now: config.now } : {}),
    ...(config.timers !== undefined ? { timers: config.timers } : {}),
  });
}

// The per-isolate client: module state, created with the defaults when the module loads (nothing
// is fetched until the first call).
let flags: EdgeFlags = build({});

/**
 * Replaces this isolate's flag client with one built from `config` (the previous one is closed).
 * Not needed in a deployed function; tests use it to inject the environment and the clock.
 *
 * @example
 * configureFeatureFlags({ env: (name) => ({ SUPABASE_URL: url, SUPABASE_SERVICE_ROLE_KEY: key })[name] });
 */
export async function configureFeatureFlags(config: FeatureFlagsConfig = {}): Promise<void> {
  const previous = flags;
  flags = build(config);
  await previous.close();
}

/**
 * `true` when `flagName` is on for `userId`; `false` when it is off, unknown, or the flags could
 * not be loaded. Never rejects.
 *
 * @example
 * if (await checkFeatureFlag(user.id, 'booking_agent_enabled')) return runBookingAgent(req);
 */
export function checkFeatureFlag(userId: string, flagName: string): Promise<boolean> {
  return flags.checkFeatureFlag(userId, flagName);
}

/**
 * The value and the reason for it (`TARGETING_MATCH`, `SPLIT`, `DISABLED`, or `ERROR` with an
 * `errorCode` such as `FLAG_NOT_FOUND` or `PROVIDER_NOT_READY`, and `defaultValue`). Never rejects.
 *
 * @example
 * const { value, reason, errorCode } = await evaluateFeatureFlag(user.id, 'ai_beta_users');
 */
export function evaluateFeatureFlag(userId: string, flagName: string, defaultValue = false): Promise<FlagEvaluation> {
  return flags.evaluateFeatureFlag(userId, flagName, defaultValue);
}

/**
 * Every flag's value for one user, e.g. to return a client its flags in one response.
 * Empty when nothing could be loaded. Never rejects.
 *
 * @example
 * return Response.json(await getFeatureFlags(user.id));
 */
export function getFeatureFlags(userId: string): Promise<Record<string, boolean>> {
  return flags.allFeatureFlags(userId);
}

/**
 * What this isolate's cache holds (loads made, when the last one started, status).
 *
 * @example
 * console.log(featureFlagsCacheInfo()); // { loads: 1, loadedAt: 1718000000000, status: 'READY', realtime: false }
 */
export function featureFlagsCacheInfo(): EdgeCacheInfo {
  return flags.cacheInfo();
}
