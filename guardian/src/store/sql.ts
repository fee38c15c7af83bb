import type { PGlite } from '@electric-sql/pglite';
import type { Pool, PoolClient } from 'pg';

/**
 * The one way guardian code talks SQL, whatever the backend: node-postgres (`DATABASE_URL`) or
 * PGlite (embedded default). Parameters are `$1..$n`, never spliced into the text.
 *
 * @example
 * const { rows } = await sql.query<{ name: string }>('select name from feature_flags where enabled = $1', [true]);
 */
export interface SqlClient {
  query<Row extends object = Record<string, unknown>>(text: string, params?: readonly unknown[]): Promise<{ rows: Row[] }>;
  /** Runs several statements separated by `;` (migrations). No parameters. */
  exec(text: string): Promise<void>;
  /** Runs `fn` inside one transaction on one connection; rolls back when it throws. */
  transaction<T>(fn: (tx: SqlClient) => Promise<T>): Promise<T>;
  close(): Promise<void>;
  /**
   * PGlite only: hears NOTIFY on `channel` in process (the change stream's feed on the embedded
   * database). Resolves to a function that stops listening.
   */
  listen?(channel: string, cb: (payload: string) => void): Promise<() => Promise<void>>;
}

function fromPgConnection(conn: Pool | PoolClient, onClose: () => Promise<void>): SqlClient {
  return {
    async query<Row extends object>(text: string, params: readonly unknown[] = []) {
      const res = await conn.query(text, params as unknown[]);
      return { rows: res.rows as Row[] };
    },
    async exec(text: string) {
      await conn.query(text);
    },
    async transaction<T>(fn: (tx: SqlClient) => Promise<T>): Promise<T> {
      const client = 'connect' in conn && typeof (conn as Pool).totalCount === 'number' ? await (conn as Pool).connect() : (conn as PoolClient);
      const owned = client !== conn;
      try {
        await client.query('begin');
        const tx = fromPgConnection(client, async () => {});
        const out = await fn(tx);
        await client.query('commit');
        return out;
      } catch (err) {
        await client.query('rollback').catch(() => {});
        throw err;
      } finally {
        if (owned) (client as PoolClient).release();
      }
    },
    close: onClose,
  };
}

/**
 * Wraps a node-postgres Pool.
 *
 * @example
 * const sql = pgSqlClient(new pg.Pool({ connectionString: process.env.DATABASE_URL }));
 */
export function pgSqlClient(pool: Pool): SqlClient {
  return fromPgConnection(pool, () => pool.end());
}

/**
 * Wraps a PGlite instance (one connection; transactions use PGlite's own).
 *
 * @example
 * const sql = pgliteSqlClient(await PGlite.create('./.data/pglite'));
 */
export function pgliteSqlClient(db: PGlite): SqlClient {
  const wrap = (conn: Pick<PGlite, 'query' | 'exec'>, close: () => Promise<void>): SqlClient => ({
    async query<Row extends object>(text: string, params: readonly unknown[] = []) {
      const res = await conn.query<Row>(text, params as unknown[]);
      return { rows: res.rows };
    },
    async exec(text: string) {
      await conn.exec(text);
    },
    transaction<T>(fn: (tx: SqlClient) => Promise<T>): Promise<T> {
      return db.transaction((tx) => fn(wrap(tx, async () => {})));
    },
    close,
  });
  return { ...wrap(db, () => db.close()), listen: (channel, cb) => db.listen(channel, cb) };
}
