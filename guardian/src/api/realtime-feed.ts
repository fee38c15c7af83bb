/**
 * The change stream's feed on Supabase when the guardian has no database connection (client mode:
 * SUPABASE_URL + the service role key): Realtime `postgres_changes` on `public.feature_flags` (every
 * event) and `public.rollback_events` (INSERT), both in the `supabase_realtime` publication
 * (20251125000700_realtime_publication.sql, 20251203213000_realtime_rollback_events.sql), heard with
 * supabase-js and the service role key (the only role that may read rollback_events).
 *
 * Each change becomes the very payload the `guardian_changes` trigger sends for it
 * (20251203010400_change_notify_fields.sql), so {@link pipeFeed} turns it into the same stream
 * message as on PostgreSQL: same fields, same public projection, never targets. An UPDATE that kept
 * its version is dropped (the trigger says nothing then), as is anything that is not a flag or a new
 * rollback event.
 *
 * Realtime buffers nothing: changes made while the socket is down are lost, so every SUBSCRIBED
 * that follows a failure or a drop (supabase-js rejoins after a socket drop, a channel error or a
 * join timeout, with the backoff below) is reported as a gap, and the hub publishes `reset`. A channel the server
 * closed is not rejoined by supabase-js: this feed subscribes a new one after 1 s, 2 s, … 30 s.
 */
import { createClient, type RealtimeChannel, type SupabaseClient } from '@supabase/supabase-js';

import type { Logger } from '../logger.ts';
import type { ChangeFeed } from './feed.ts';

/** What supabase-js hands a `postgres_changes` callback. */
export interface RealtimeChange {
  readonly schema?: string;
  readonly table?: string;
  readonly eventType?: string;
  readonly new?: Record<string, unknown> | null;
  readonly old?: Record<string, unknown> | null;
  /** Realtime's per-change errors (e.g. a row too large to send whole); null when none. */
  readonly errors?: unknown;
}

/** `left(text, n)` of PostgreSQL: the first `n` characters (code points, not UTF-16 units). */
function left(value: unknown, n: number): string | null {
  if (value === null || value === undefined) return null;
  const s = String(value);
  if (s.length <= n) return s;
  return Array.from(s).slice(0, n).join('');
}

/** The feature_flags columns the trigger's `row` carries (public fields; never targets). */
const FLAG_ROW_COLUMNS = ['name', 'enabled', 'rollout_percentage', 'bucket_group', 'guard_state', 'rollback_message', 'rollback_urgent', 'description', 'updated_at', 'updated_by'] as const;

/**
 * The `guardian_changes` payload (JSON text) the trigger sends for a Realtime change, or undefined
 * when the trigger would send nothing (an UPDATE that kept its version, a table or event it does
 * not announce). A change Realtime could not send whole (`errors` set, or a column missing) is
 * marked `partial`, so the row is re-read, as for a trigger payload too long to carry its text.
 *
 * @example
 * realtimeChangePayload({ table: 'rollback_events', eventType: 'INSERT', new: { id: 7, flag_name: 'f', kind: 'restore', actor: 'ana', rule_id: null, created_at: '…' } });
 * // '{"table":"rollback_events","op":"INSERT","id":"7","flag":"f","kind":"restore","actor":"ana","rule_id":null,"created_at":"…"}'
 */
export function realtimeChangePayload(change: RealtimeChange): string | undefined {
  if (change.schema !== undefined && change.schema !== 'public') return undefined;
  const op = change.eventType;
  const rec = change.new ?? {};
  const old = change.old ?? {};
  if (change.table === 'feature_flags') {
    if (op === 'DELETE') {
      // Replica identity full (20251125000700): the whole old row, its version included.
      if (typeof old['name'] !== 'string') return undefined;
      return JSON.stringify({ table: 'feature_flags', op, name: old['name'], version: old['version'] ?? null });
    }
    if (op !== 'INSERT' && op !== 'UPDATE') return undefined;
    if (typeof rec['name'] !== 'string') return undefined;
    // An UPDATE that changed nothing kept its version (feature_flags_before_write): the trigger says nothing.
    if (op === 'UPDATE' && old['version'] !== undefined && String(old['version']) === String(rec['version'])) return undefined;
    const whole = (change.errors === null || change.errors === undefined || (Array.isArray(change.errors) && change.errors.length === 0)) && FLAG_ROW_COLUMNS.every((c) => c in rec);
    const row = Object.fromEntries(FLAG_ROW_COLUMNS.filter((c) => c in rec).map((c) => [c, rec[c]]));
    return JSON.stringify({ table: 'feature_flags', op, name: rec['name'], version: rec['version'], row, ...(whole ? {} : { partial: true }) });
  }
  if (change.table === 'rollback_events' && op === 'INSERT') {
    if (rec['id'] === undefined || rec['id'] === null) return undefined;
    // A row sent without its actor (a Realtime error) carries none: pipeFeed re-reads the event then.
    const actor = typeof rec['actor'] === 'string' ? { actor: left(rec['actor'], 500) } : {};
    return JSON.stringify({
      table: 'rollback_events',
      op,
      id: String(rec['id']),
      flag: rec['flag_name'],
      kind: rec['kind'],
      ...actor,
      rule_id: left(rec['rule_id'], 500),
      created_at: rec['created_at'],
    });
  }
  return undefined;
}

/**
 * `client.realtime.disconnect()` without its stray timer: supabase-js 2.119.1 (realtime-js
 * phoenix/socketAdapter.js) races the close against a 10 s `setTimeout` it never clears, which
 * would hold a stopping guardian's process open for 10 s. The timer is made while `disconnect()`
 * runs synchronously, so it is created unref'd here; everything else is supabase-js' own close.
 */
async function disconnect(client: SupabaseClient): Promise<void> {
  const original = globalThis.setTimeout;
  const unrefd = ((fn: (...args: unknown[]) => void, ms?: number, ...args: unknown[]) => {
    const t = original(fn, ms, ...args);
    t.unref();
    return t;
  }) as typeof setTimeout;
  let closing: Promise<unknown>;
  globalThis.setTimeout = unrefd;
  try {
    closing = client.realtime.disconnect();
  } finally {
    globalThis.setTimeout = original;
  }
  await closing.catch(() => {});
}

/**
 * Options of {@link realtimeChangeFeed}.
 *
 * @example
 * realtimeChangeFeed({ url: process.env.SUPABASE_URL!, serviceRoleKey: process.env.SUPABASE_SERVICE_ROLE_KEY!, logger });
 */
export interface RealtimeFeedOptions {
  /** The project URL (`https://<ref>.supabase.co`); Realtime is at `/realtime/v1`. */
  readonly url: string;
  /** The service role key: the only role Realtime lets hear rollback_events. */
  readonly serviceRoleKey: string;
  readonly logger?: Logger;
  /** Longest wait between reconnects (socket and closed channel), in ms. Default 30000. */
  readonly maxBackoffMs?: number;
  /** Time limit of a join, a leave and a heartbeat reply, in ms. Default 10000. */
  readonly timeoutMs?: number;
  /** How long `start` waits for the first subscription before going on without it (it keeps trying). Default 10000. */
  readonly startWaitMs?: number;
  /** Channel topic prefix. Default `guardian-changes`. */
  readonly channel?: string;
}

/** What {@link realtimeChangeFeed} returns: a {@link ChangeFeed} that also says whether it is live. */
export interface RealtimeChangeFeed extends ChangeFeed {
  /** True while subscribed (changes are being heard). */
  readonly live: boolean;
  /** The supabase-js client underneath (tests look at its sockets and channels). */
  readonly client: SupabaseClient;
}

/**
 * Realtime `postgres_changes` as a {@link ChangeFeed}.
 *
 * @example
 * const feed = realtimeChangeFeed({ url, serviceRoleKey, logger });
 * const stop = await pipeFeed(feed, hub, store, logger);
 */
export function realtimeChangeFeed(opts: RealtimeFeedOptions): RealtimeChangeFeed {
  const maxBackoff = opts.maxBackoffMs ?? 30_000;
  const backoff = (tries: number): number => Math.min(maxBackoff, 1000 * 2 ** Math.max(0, tries - 1));
  const client = createClient(opts.url, opts.serviceRoleKey, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
    realtime: { reconnectAfterMs: backoff, timeout: opts.timeoutMs ?? 10_000 },
  });
  const prefix = opts.channel ?? 'guardian-changes';
  let channel: RealtimeChannel | undefined;
  let serial = 0;
  let closed = false;
  let live = false;
  let everLive = false;
  /** A subscription failed or dropped since the last SUBSCRIBED: changes may have been missed. */
  let gap = false;
  let retry: ReturnType<typeof setTimeout> | undefined;
  let attempt = 0;

  const subscribe = (onPayload: (p: string) => void, onGap: () => void, settled: () => void): void => {
    const ch = client.channel(`${prefix}-${++serial}`, { config: { postgres_changes_options: { wait: true } } });
    channel = ch;
    const mine = (): boolean => !closed && channel === ch;
    const deliver = (payload: RealtimeChange): void => {
      if (!mine()) return;
      const text = realtimeChangePayload(payload);
      if (text !== undefined) onPayload(text);
    };
    ch.on('postgres_changes', { event: '*', schema: 'public', table: 'feature_flags' }, deliver);
    ch.on('postgres_changes', { event: 'INSERT', schema: 'public', table: 'rollback_events' }, deliver);
    ch.on('system', {}, (msg: { extension?: string; status?: string; message?: string }) => {
      // Realtime could not follow the tables (say, one is not in the publication): start over later.
      if (mine() && msg.extension === 'postgres_changes' && msg.status === 'error') {
        opts.logger?.warn({ reason: msg.message }, 'change stream: Realtime refused the postgres_changes subscription; subscribing again');
        down();
        gap = true;
        renew(onPayload, onGap, settled);
      }
    });
    const down = (): void => {
      live = false;
    };
    ch.subscribe((status, err) => {
      if (!mine()) return;
      if (status === 'SUBSCRIBED') {
        attempt = 0;
        // Realtime buffers nothing: whatever changed while we were not subscribed is lost.
        if (gap) {
          opts.logger?.info('change stream: Realtime subscribed again; clients are told to re-fetch (reset)');
          onGap();
        } else if (!everLive) {
          opts.logger?.info('change stream: following feature_flags and rollback_events through Supabase Realtime');
        }
        gap = false;
        live = true;
        everLive = true;
        settled();
        return;
      }
      const was = live;
      down();
      gap = true;
      settled();
      if (status === 'CLOSED') {
        // The server closed the channel: supabase-js does not rejoin it.
        opts.logger?.warn('change stream: Realtime closed the channel; subscribing again');
        renew(onPayload, onGap, settled);
        return;
      }
      // CHANNEL_ERROR, TIMED_OUT: supabase-js rejoins (after reconnecting the socket if it dropped).
      if (was || !everLive) opts.logger?.warn({ err: err?.message, status }, 'change stream: lost Realtime; reconnecting');
    });
  };

  /** Drops the current channel and subscribes a new one after the backoff. */
  const renew = (onPayload: (p: string) => void, onGap: () => void, settled: () => void): void => {
    const old = channel;
    channel = undefined;
    if (old) void client.removeChannel(old).catch(() => {});
    if (closed || retry !== undefined) return;
    retry = setTimeout(() => {
      retry = undefined;
      if (!closed) subscribe(onPayload, onGap, settled);
    }, backoff(++attempt));
    retry.unref();
  };

  return {
    get live() {
      return live;
    },
    client,
    async start(onPayload, onGap) {
      // Waits for the first subscription (or its first failure, or startWaitMs) so changes made
      // right after start are heard; a Realtime that is down does not stop the guardian starting.
      await new Promise<void>((resolve) => {
        const wait = setTimeout(() => {
          opts.logger?.warn('change stream: Realtime has not subscribed yet; the stream starts without it and follows once it does');
          resolve();
        }, opts.startWaitMs ?? 10_000);
        wait.unref();
        subscribe(onPayload, onGap, () => {
          clearTimeout(wait);
          resolve();
        });
      });
    },
    async close() {
      closed = true;
      live = false;
      if (retry) clearTimeout(retry);
      retry = undefined;
      channel = undefined;
      // Leaves every channel (answered at once by a connected server, at once when disconnected),
      // then closes the socket, which stops its heartbeat and reconnect timers.
      await Promise.all(
        client.realtime.getChannels().map(async (ch) => {
          const status = await ch.unsubscribe().catch(() => 'error');
          if (status === 'ok') ch.teardown();
        }),
      );
      await disconnect(client);
    },
  };
}
