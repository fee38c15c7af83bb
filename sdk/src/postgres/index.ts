/**
 * `@rollback-guardian/sdk/postgres`: a {@link FlagTransport} straight over PostgreSQL (a `pg`
 * Pool, an optional peer dependency, or anything with the same `query`/`connect`). For Node
 * servers that reach the database directly, and for tests against a real database.
 * Changes arrive by `LISTEN guardian_changes` (the trigger of
 * `supabase/migrations/20251203000100_change_notify.sql`, the same channel the admin API's
 * stream follows) on one dedicated connection of the pool, so a rollback reaches the client as
 * soon as it commits. Version-checked polling (`fingerprint`) is only the fallback: while the
 * listening connection is down the client polls, and it reconnects with backoff (1, 2, 5, 10 s),
 * re-fetching after every reconnect (notifications sent while it was away are lost).
 *
 * @example
 * import pg from 'pg';
 * import { createServerClient } from '@rollback-guardian/sdk';
 * import { postgresTransport } from '@rollback-guardian/sdk/postgres';
 * const flags = createServerClient({ transport: postgresTransport(new pg.Pool({ connectionString })), pollIntervalMs: 5000 });
 */
import { SdkError } from '../client/errors.ts';
import type { ChangeListener, EvaluatedFlagRecord, FlagChange, FlagRecord, FlagTransport } from '../client/types.ts';
import { FLAG_COLUMNS, parseEvaluatedRow, parseFlagRow, parseGuardState } from '../internal/rows.ts';

/**
 * The part of a `pg` Pool this transport uses.
 *
 * @example
 * const pool: PgPoolLike = new pg.Pool({ connectionString: process.env.DATABASE_URL });
 */
export interface PgPoolLike {
  query(text: string, params?: unknown[]): Promise<{ rows: Record<string, unknown>[] }>;
  connect(): Promise<PgClientLike>;
}

/**
 * The part of a pooled `pg` client this transport uses. `on`/`removeListener` (a `pg` client has
 * both) let it LISTEN; a client without them means polling only.
 *
 * @example
 * const client: PgClientLike = await pool.connect();
 */
export interface PgClientLike {
  query(text: string, params?: unknown[]): Promise<{ rows: Record<string, unknown>[] }>;
  /** `release(error)` destroys the connection instead of returning it to the pool. */
  release(error?: Error | boolean): void;
  on?(event: 'notification', listener: (message: { channel: string; payload?: string }) => void): unknown;
  on?(event: 'error', listener: (error: Error) => void): unknown;
  on?(event: 'end', listener: () => void): unknown;
  removeListener?(event: 'notification', listener: (message: { channel: string; payload?: string }) => void): unknown;
  removeListener?(event: 'error', listener: (error: Error) => void): unknown;
  removeListener?(event: 'end', listener: () => void): unknown;
}

/**
 * Options of {@link postgresTransport}.
 *
 * @example
 * postgresTransport(pool, { user: { id: '6f1c…' } }); // client mode as that user, via get_my_flags()
 */
export interface PostgresTransportOptions {
  /**
   * Client mode: whose flags `loadMine` returns. It runs `get_my_flags()` as PostgREST would
   * (role `authenticated`, `request.jwt.claims` = `{ sub: id }`); `id: null` is the anonymous
   * user (role `anon`). Omit for server mode.
   */
  readonly user?: { readonly id: string | null };
  /**
   * Follow changes by `LISTEN guardian_changes` on one dedicated pool connection (default
   * true). `false`: version-checked polling only (`pollIntervalMs` of the client).
   */
  readonly listen?: boolean;
  /** Waits before each reconnect of the listening connection, in ms (default [1000, 2000, 5000, 10000]; the last repeats). */
  readonly reconnectDelaysMs?: readonly number[];
  /** How often the listening connection is checked with `select 1`, in ms (default 30 000): a connection that died silently is noticed and replaced. */
  readonly heartbeatMs?: number;
}

/** The channel of `guardian_notify_change()` (migration 20251203000100_change_notify.sql). */
export const CHANGE_CHANNEL = 'guardian_changes';
const DEFAULT_RECONNECT_DELAYS_MS: readonly number[] = [1000, 2000, 5000, 10_000];
const DEFAULT_HEARTBEAT_MS = 30_000;

const LOAD_ALL = `
  select ${FLAG_COLUMNS.split(',').map((c) => `f.${c}`).join(', ')},
         coalesce(array_agg(t.user_id order by t.user_id) filter (where t.user_id is not null), '{}') as targets
    from public.feature_flags f
    left join public.flag_targets t on t.flag_name = f.name
   group by f.name
   order by f.name`;

const FINGERPRINT = `select md5(coalesce(string_agg(name || ':' || version, ',' order by name), '')) as fp from public.feature_flags`;

/**
 * Creates the PostgreSQL transport. Server mode needs a role that reads `feature_flags` and
 * `flag_targets` (the service role or the owner).
 *
 * @example
 * const transport = postgresTransport(pool);
 */
export function postgresTransport(pool: PgPoolLike, options: PostgresTransportOptions = {}): FlagTransport {
  if (pool === null || typeof pool !== 'object' || typeof pool.query !== 'function' || typeof pool.connect !== 'function') {
    throw new SdkError('INVALID_OPTION', 'postgresTransport: the first argument must be a pg Pool (new pg.Pool({ connectionString }))');
  }
  const user = options.user;
  if (user !== undefined && (user === null || (user.id !== null && (typeof user.id !== 'string' || user.id === '')))) {
    throw new SdkError('INVALID_OPTION', 'postgresTransport: options.user.id must be a non-empty string (the auth user id) or null (anonymous)');
  }
  const wrap = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (error) {
      if (error instanceof SdkError) throw error;
      throw new SdkError('TRANSPORT_FAILED', `${what} failed: ${(error as Error)?.message ?? String(error)}`, { cause: error });
    }
  };
  return {
    loadAll: () =>
      wrap('loading feature_flags', async (): Promise<readonly FlagRecord[]> => {
        const { rows } = await pool.query(LOAD_ALL);
        return rows.map((r) => ({ ...parseFlagRow(r, 'feature_flags'), targets: Array.isArray(r['targets']) ? (r['targets'] as string[]) : [] }));
      }),

    loadMine: () =>
      wrap('get_my_flags()', async (): Promise<readonly EvaluatedFlagRecord[]> => {
        if (user === undefined) throw new SdkError('UNSUPPORTED', 'postgresTransport: client mode needs options.user ({ id } or { id: null })');
        const client = await pool.connect();
        try {
          await client.query('begin');
          const claims = user.id === null ? { role: 'anon' } : { sub: user.id, role: 'authenticated' };
          await client.query(`select set_config('role', $1, true), set_config('request.jwt.claims', $2, true)`, [claims.role, JSON.stringify(claims)]);
          const { rows } = await client.query('select * from public.get_my_flags()');
          await client.query('commit');
          return rows.map((r) => parseEvaluatedRow(r, 'get_my_flags()'));
        } catch (error) {
          await client.query('rollback').catch(() => undefined);
          throw error;
        } finally {
          client.release();
        }
      }),

    fingerprint: () =>
      wrap('version check', async (): Promise<string> => {
        const { rows } = await pool.query(FINGERPRINT);
        return String(rows[0]?.['fp'] ?? '');
      }),

    async currentUserId(): Promise<string | null> {
      return user?.id ?? null;
    },

    ...(options.listen === false ? {} : { subscribe: (listener: ChangeListener) => listenForChanges(pool, listener, options) }),
  };
}

/**
 * A `guardian_changes` payload as a {@link FlagChange}; `undefined` for anything else (rollback
 * events, which also arrive on the channel, and malformed payloads).
 *
 * @example
 * parseChange('{"table":"feature_flags","op":"UPDATE","name":"booking_agent_enabled","version":4}');
 * // { type: 'UPDATE', name: 'booking_agent_enabled', version: 4, record: null }
 */
export function parseChange(payload: string | undefined): FlagChange | undefined {
  if (payload === undefined) return undefined;
  let body: unknown;
  try {
    body = JSON.parse(payload);
  } catch {
    return undefined;
  }
  if (body === null || typeof body !== 'object') return undefined;
  const { table, op, name, version, row } = body as Record<string, unknown>;
  if (table !== 'feature_flags' || typeof name !== 'string' || (op !== 'INSERT' && op !== 'UPDATE' && op !== 'DELETE')) return undefined;
  // No record: the client re-fetches what it needs (targets are never in a notification), and
  // applies nothing from the payload, so a fetch already in flight can never undo a newer change.
  // The guard state only says how soon: a rollback is re-fetched within ROLLBACK_JITTER_MS.
  const guardState = parseGuardState(row !== null && typeof row === 'object' ? (row as Record<string, unknown>)['guard_state'] : undefined);
  return { type: op, name, version: typeof version === 'number' && Number.isFinite(version) ? version : null, record: null, ...(guardState ? { guardState } : {}) };
}

/**
 * Holds one pool connection in `LISTEN guardian_changes`; reports `live` once listening (after
 * every reconnect: the client re-fetches then) and `down` when the connection fails, then
 * reconnects with backoff. Returns the unsubscribe function.
 */
function listenForChanges(pool: PgPoolLike, listener: ChangeListener, options: PostgresTransportOptions): () => void {
  const delays = options.reconnectDelaysMs && options.reconnectDelaysMs.length > 0 ? options.reconnectDelaysMs : DEFAULT_RECONNECT_DELAYS_MS;
  const heartbeatMs = options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
  let stopped = false;
  let failures = 0;
  let retry: ReturnType<typeof setTimeout> | undefined;
  let heartbeat: ReturnType<typeof setInterval> | undefined;
  let current: { client: PgClientLike; drop: (destroy: Error | boolean) => void } | undefined;

  const scheduleReconnect = (why: string): void => {
    if (stopped || retry !== undefined) return;
    listener.status('down', why);
    const ms = delays[Math.min(failures, delays.length - 1)]!;
    failures++;
    retry = setTimeout(() => {
      retry = undefined;
      void connect();
    }, ms);
    (retry as { unref?: () => void }).unref?.();
  };

  const connect = async (): Promise<void> => {
    if (stopped) return;
    let client: PgClientLike;
    try {
      client = await pool.connect();
    } catch (error) {
      scheduleReconnect(`cannot connect to listen for flag changes: ${(error as Error)?.message ?? String(error)}`);
      return;
    }
    if (typeof client.on !== 'function' || typeof client.removeListener !== 'function') {
      client.release();
      listener.status('down', 'the pool client cannot LISTEN (no on/removeListener): polling only');
      return;
    }
    const onNotification = (message: { channel: string; payload?: string }): void => {
      if (stopped || message.channel !== CHANGE_CHANNEL) return;
      const change = parseChange(message.payload);
      if (change) listener.change(change);
    };
    let dropped = false;
    /** Detaches from the connection: destroyed when `destroy` is an error or true, else back to the pool. */
    const drop = (destroy: Error | boolean): void => {
      if (dropped) return;
      dropped = true;
      if (heartbeat !== undefined) clearInterval(heartbeat);
      heartbeat = undefined;
      client.removeListener!('notification', onNotification);
      client.removeListener!('error', onError);
      client.removeListener!('end', onEnd);
      // A connection that failed is destroyed, never handed back to the pool.
      try {
        if (destroy === false) client.release();
        else client.release(destroy);
      } catch {
        // already released by the pool on its own error
      }
      if (current?.client === client) current = undefined;
    };
    const onError = (error: Error): void => {
      drop(error);
      scheduleReconnect(`the listening connection failed: ${error.message}`);
    };
    const onEnd = (): void => {
      drop(true);
      scheduleReconnect('the listening connection ended');
    };
    client.on('notification', onNotification);
    client.on('error', onError);
    client.on('end', onEnd);
    current = { client, drop };
    try {
      await client.query(`listen ${CHANGE_CHANNEL}`);
    } catch (error) {
      onError(error instanceof Error ? error : new Error(String(error)));
      return;
    }
    if (stopped) {
      drop(true);
      return;
    }
    failures = 0;
    heartbeat = setInterval(() => {
      client.query('select 1').catch((error: unknown) => onError(error instanceof Error ? error : new Error(String(error))));
    }, heartbeatMs);
    (heartbeat as { unref?: () => void }).unref?.();
    listener.status('live');
  };

  void connect();
  return () => {
    stopped = true;
    if (retry !== undefined) clearTimeout(retry);
    retry = undefined;
    const held = current;
    if (held) {
      // Stop listening before the connection goes back to the pool, so no other user of the pool inherits it.
      held.client
        .query(`unlisten ${CHANGE_CHANNEL}`)
        .then(
          () => held.drop(false),
          (error: unknown) => held.drop(error instanceof Error ? error : new Error(String(error))),
        );
    }
  };
}
