/**
 * `@rollback-guardian/sdk/supabase`: a {@link FlagTransport} over supabase-js (a peer
 * dependency). Server mode (service key) reads `feature_flags` and `flag_targets`; client mode
 * (anon key, signed-in user) calls `get_my_flags()`. Changes come from Realtime
 * `postgres_changes` on `feature_flags`; polling (while Realtime is down) first compares a
 * `name:version` fingerprint and loads only when it changed.
 *
 * @example
 * import { createClient } from '@supabase/supabase-js';
 * import { createServerClient } from '@rollback-guardian/sdk';
 * import { supabaseTransport } from '@rollback-guardian/sdk/supabase';
 * const flags = createServerClient({ transport: supabaseTransport(createClient(url, serviceKey)) });
 */
import type { RealtimeChannel, SupabaseClient } from '@supabase/supabase-js';
import { SdkError } from '../client/errors.ts';
import type { ChangeListener, EvaluatedFlagRecord, FlagChange, FlagRecord, FlagTransport } from '../client/types.ts';
import { attachTargets, FLAG_COLUMNS, parseEvaluatedRow, parseFlagRow } from '../internal/rows.ts';

/**
 * Options of {@link supabaseTransport}.
 *
 * @example
 * supabaseTransport(supabase, { liveWhen: 'system-message' }); // for Realtime servers without `wait`
 */
export interface SupabaseTransportOptions {
  /** Realtime channel topic (default `rollback-guardian-flags`). */
  readonly channel?: string;
  /**
   * When the subscription counts as live: `'subscribed'` (default) asks the server to hold the
   * join reply until the postgres_changes subscription is live (`postgres_changes_options.wait`,
   * supabase-js ≥ 2.119) and trusts SUBSCRIBED; `'system-message'` waits for Realtime's `system`
   * message "Subscribed to PostgreSQL" after SUBSCRIBED (servers that ignore `wait`).
   */
  readonly liveWhen?: 'subscribed' | 'system-message';
  /** Page size for table reads (PostgREST caps rows per request; default 1000). */
  readonly pageSize?: number;
  /** Stop reading pages after this many (default 1000): a bound, not a limit you should hit. */
  readonly maxPages?: number;
}

interface PgError {
  message: string;
  code?: string;
}

function fail(what: string, error: PgError): never {
  throw new SdkError('TRANSPORT_FAILED', `${what} failed: ${error.message}${error.code ? ` (${error.code})` : ''}`, { cause: error });
}

/** Converts a supabase-js `postgres_changes` payload to a {@link FlagChange}; `null` if it is not one. */
export function toFlagChange(payload: { eventType?: string; new?: unknown; old?: unknown }): FlagChange | null {
  const type = payload.eventType;
  if (type !== 'INSERT' && type !== 'UPDATE' && type !== 'DELETE') return null;
  if (type === 'DELETE') {
    const old = payload.old as { name?: unknown; version?: unknown } | null | undefined;
    if (typeof old?.name !== 'string') return null;
    return { type, name: old.name, version: null, record: null };
  }
  try {
    const record = parseFlagRow(payload.new, 'realtime postgres_changes');
    return { type, name: record.name, version: record.version, record };
  } catch {
    const name = (payload.new as { name?: unknown } | null)?.name;
    return typeof name === 'string' ? { type, name, version: null, record: null } : null;
  }
}

/**
 * Creates the supabase-js transport. Pass a client made with the service-role key for server
 * mode, or the app's anon-key client (with its signed-in session) for client mode.
 *
 * @example
 * const transport = supabaseTransport(createClient(SUPABASE_URL, SUPABASE_ANON_KEY));
 * const flags = createBrowserClient({ transport, storage: localStorage });
 */
export function supabaseTransport(client: SupabaseClient, options: SupabaseTransportOptions = {}): FlagTransport {
  if (client === null || typeof client !== 'object' || typeof client.from !== 'function' || typeof client.rpc !== 'function') {
    throw new SdkError('INVALID_OPTION', 'supabaseTransport: the first argument must be a supabase-js client (createClient(url, key))');
  }
  const topic = options.channel ?? 'rollback-guardian-flags';
  const liveWhen = options.liveWhen ?? 'subscribed';
  if (liveWhen !== 'subscribed' && liveWhen !== 'system-message') {
    throw new SdkError('INVALID_OPTION', `supabaseTransport: options.liveWhen must be 'subscribed' or 'system-message'; got ${JSON.stringify(liveWhen)}`);
  }
  const pageSize = options.pageSize ?? 1000;
  const maxPages = options.maxPages ?? 1000;
  if (!Number.isInteger(pageSize) || pageSize < 1) throw new SdkError('INVALID_OPTION', 'supabaseTransport: options.pageSize must be a positive integer');
  if (!Number.isInteger(maxPages) || maxPages < 1) throw new SdkError('INVALID_OPTION', 'supabaseTransport: options.maxPages must be a positive integer');

  async function readAll<T>(table: string, columns: string, order: string[], signal?: AbortSignal): Promise<T[]> {
    const out: T[] = [];
    for (let page = 0; page < maxPages; page++) {
      let q = client.from(table).select(columns);
      for (const col of order) q = q.order(col, { ascending: true });
      let ranged = q.range(page * pageSize, (page + 1) * pageSize - 1);
      if (signal) ranged = ranged.abortSignal(signal);
      const { data, error } = await ranged;
      if (error) fail(`reading ${table}`, error);
      if (!Array.isArray(data)) throw new SdkError('TRANSPORT_FAILED', `reading ${table}: expected an array of rows`);
      out.push(...(data as T[]));
      if (data.length < pageSize) return out;
    }
    throw new SdkError('TRANSPORT_FAILED', `reading ${table}: more than ${maxPages} pages of ${pageSize} rows; raise options.maxPages`);
  }

  return {
    async loadAll(signal?: AbortSignal): Promise<readonly FlagRecord[]> {
      const rows = await readAll<unknown>('feature_flags', FLAG_COLUMNS, ['name'], signal);
      const targets = await readAll<{ flag_name: string; user_id: string }>('flag_targets', 'flag_name,user_id', ['flag_name', 'user_id'], signal);
      return attachTargets(
        rows.map((r) => parseFlagRow(r, 'feature_flags')),
        targets,
      );
    },

    /**
     * Version-checked polling: `name:version` of every flag (the version is bumped on every change,
     * targets included), so a poll reads two small columns instead of every definition and target.
     */
    async fingerprint(signal?: AbortSignal): Promise<string> {
      const rows = await readAll<{ name: unknown; version: unknown }>('feature_flags', 'name,version', ['name'], signal);
      return rows.map((r) => `${String(r.name)}:${String(r.version)}`).join(',');
    },

    async loadMine(signal?: AbortSignal): Promise<readonly EvaluatedFlagRecord[]> {
      let call = client.rpc('get_my_flags');
      if (signal) call = call.abortSignal(signal);
      const { data, error } = await call;
      if (error) fail('get_my_flags()', error);
      if (!Array.isArray(data)) throw new SdkError('TRANSPORT_FAILED', 'get_my_flags(): expected an array of rows');
      return data.map((r: unknown) => parseEvaluatedRow(r, 'get_my_flags()'));
    },

    subscribe(listener: ChangeListener): () => void {
      let live = false;
      const setLive = (next: boolean, detail?: string): void => {
        if (next === live && next) return;
        live = next;
        listener.status(next ? 'live' : 'down', detail);
      };
      const channel: RealtimeChannel = client.channel(topic, {
        config: liveWhen === 'subscribed' ? { postgres_changes_options: { wait: true } } : {},
      });
      channel.on('postgres_changes', { event: '*', schema: 'public', table: 'feature_flags' }, (payload) => {
        const change = toFlagChange(payload);
        if (change) listener.change(change);
      });
      if (liveWhen === 'system-message') {
        channel.on('system', {}, (msg: { extension?: string; status?: string; message?: string }) => {
          if (msg.extension === 'postgres_changes' && msg.status === 'ok') setLive(true);
          else if (msg.extension === 'postgres_changes' && msg.status === 'error') setLive(false, msg.message);
        });
      }
      channel.subscribe((status, err) => {
        if (status === 'SUBSCRIBED') {
          // Every SUBSCRIBED (first join and every rejoin) makes the client re-fetch.
          live = false;
          if (liveWhen === 'subscribed') setLive(true);
        } else {
          setLive(false, `${status}${err ? `: ${err.message}` : ''}`);
        }
      });
      return () => {
        void client.removeChannel(channel);
      };
    },

    onAuthChange(callback: (userId: string | null) => void): () => void {
      const { data } = client.auth.onAuthStateChange((_event, session) => {
        // Called synchronously inside supabase-js' auth lock: defer the work.
        setTimeout(() => callback(session?.user?.id ?? null), 0);
      });
      return () => data.subscription.unsubscribe();
    },

    async currentUserId(): Promise<string | null> {
      const { data } = await client.auth.getSession();
      return data.session?.user?.id ?? null;
    },
  };
}
