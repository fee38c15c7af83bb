/**
 * `@rollback-guardian/sdk/postgres`: a {@link FlagTransport} straight over PostgreSQL (a `pg`
 * Pool, an optional peer dependency, or anything with the same `query`/`connect`). For Node
 * servers that reach the database directly, and for tests against a real database.
 * Changes are followed by version-checked polling (`fingerprint`): the schema has no NOTIFY
 * trigger, so there is no LISTEN stream to follow.
 *
 * @example
 * import pg from 'pg';
 * import { createServerClient } from '@rollback-guardian/sdk';
 * import { postgresTransport } from '@rollback-guardian/sdk/postgres';
 * const flags = createServerClient({ transport: postgresTransport(new pg.Pool({ connectionString })), pollIntervalMs: 5000 });
 */
import { SdkError } from '../client/errors.ts';
import type { EvaluatedFlagRecord, FlagRecord, FlagTransport } from '../client/types.ts';
import { FLAG_COLUMNS, parseEvaluatedRow, parseFlagRow } from '../internal/rows.ts';

/**
 * The part of a `pg` Pool this transport uses.
 *
 * @example
 * const pool: PgPoolLike = new pg.Pool({ connectionString: process.env.DATABASE_URL });
 */
export interface PgPoolLike {
  query(text: string, params?: unknown[]): Promise<{ rows: Record<string, unknown>[] }>;
  connect(): Promise<{ query(text: string, params?: unknown[]): Promise<{ rows: Record<string, unknown>[] }>; release(): void }>;
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
}

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
  };
}
