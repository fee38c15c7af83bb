/**
 * The embedded database served to other local processes: PGlite over the PostgreSQL wire
 * protocol on a Unix socket (`@electric-sql/pglite-socket` frames the protocol), so the CLI,
 * `db:migrate` and any PostgreSQL client reach the one database the daemon owns.
 *
 * PGlite is ONE backend session. pglite-socket's own queue keeps a client's turn only inside an
 * explicit `BEGIN` block, so two clients' extended-protocol messages (Parse … Sync, which
 * node-postgres sends for every parameterised query) could interleave and clobber each other's
 * unnamed statement, and the daemon's own queries could land inside a client's transaction.
 * Here every user of the session, socket client or the daemon's own code, takes a turn
 * ({@link SessionTurns}) and keeps it until its query cycle is over (ReadyForQuery outside a
 * transaction block); the others wait their turn in order.
 */
import { chmod, mkdir, unlink } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketHandler, type PGLiteSocketHandlerOptions } from '@electric-sql/pglite-socket';

import type { LockSocket } from './lock.ts';
import type { SqlClient } from './sql.ts';

/**
 * Turns on the one PGlite session: one holder at a time, the others in arrival order. A holder
 * that asks again while it holds its turn goes on at once.
 *
 * @example
 * const turns = new SessionTurns();
 * await turns.acquire(me); try { … } finally { turns.release(me); }
 */
export class SessionTurns {
  #owner: unknown = undefined;
  #waiting: { who: unknown; resolve: () => void; reject: (err: Error) => void }[] = [];

  /** The current holder (undefined when free). */
  get holder(): unknown {
    return this.#owner;
  }

  /** How many wait for a turn. */
  get waiting(): number {
    return this.#waiting.length;
  }

  acquire(who: unknown): Promise<void> {
    if (this.#owner === undefined || this.#owner === who) {
      this.#owner = who;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => this.#waiting.push({ who, resolve, reject }));
  }

  release(who: unknown): void {
    if (this.#owner !== who) return;
    const next = this.#waiting.shift();
    this.#owner = next?.who;
    next?.resolve();
  }

  /** Drops the waits of a holder that went away. */
  drop(who: unknown, err: Error): void {
    const gone = this.#waiting.filter((w) => w.who === who);
    this.#waiting = this.#waiting.filter((w) => w.who !== who);
    for (const w of gone) w.reject(err);
  }
}

/**
 * A SqlClient whose every query, exec and transaction takes a turn on the session first, so the
 * daemon's own work never runs inside a socket client's transaction (nor the reverse).
 *
 * @example
 * const sql = turnTakingSqlClient(pgliteSqlClient(db), turns);
 */
export function turnTakingSqlClient(inner: SqlClient, turns: SessionTurns): SqlClient {
  const inTurn = async <T>(fn: () => Promise<T>): Promise<T> => {
    const me = Symbol('guardian');
    await turns.acquire(me);
    try {
      return await fn();
    } finally {
      turns.release(me);
    }
  };
  return {
    query: (text, params) => inTurn(() => inner.query(text, params)),
    exec: (text) => inTurn(() => inner.exec(text)),
    transaction: (fn) => inTurn(() => inner.transaction(fn)),
    close: () => inner.close(),
    // The change stream's in-process LISTEN (api/feed.ts) takes its turn like any statement.
    ...(inner.listen
      ? {
          listen: async (channel: string, cb: (payload: string) => void) => {
            const stop = await inTurn(() => inner.listen!(channel, cb));
            return () => inTurn(stop);
          },
        }
      : {}),
  };
}

/** Sync ('S', length 4): ends an extended-protocol cycle and clears an error state. */
const SYNC = new Uint8Array([0x53, 0, 0, 0, 4]);

/**
 * Messages after which the backend sends ReadyForQuery: the startup message (no type byte, so
 * its first byte is the length's high byte, 0), Query ('Q'), Sync ('S'); and Terminate ('X').
 */
function endsCycle(message: Uint8Array): boolean {
  const t = message[0];
  return t === 0 || t === 0x51 || t === 0x53 || t === 0x58;
}

/** pglite-socket's per-connection handler calls these three methods of its queue; this one schedules by turns. */
class TurnQueue {
  readonly #db: PGlite;
  readonly #turns: SessionTurns;

  constructor(db: PGlite, turns: SessionTurns) {
    this.#db = db;
    this.#turns = turns;
  }

  async enqueue(handlerId: number, message: Uint8Array, onData: (data: Uint8Array) => void): Promise<number> {
    await this.#turns.acquire(handlerId);
    let size = 0;
    try {
      await this.#db.runExclusive(() =>
        this.#db.execProtocolRawStream(message, {
          onRawData: (data) => {
            size += data.length;
            onData(data);
          },
        }),
      );
    } catch (err) {
      await this.#reset(handlerId);
      throw err;
    }
    if (endsCycle(message) && !this.#db.isInTransaction()) this.#turns.release(handlerId);
    return size;
  }

  clearQueueForHandler(handlerId: number): void {
    this.#turns.drop(handlerId, new Error('connection closed'));
  }

  async clearTransactionIfNeeded(handlerId: number): Promise<void> {
    if (this.#turns.holder === handlerId) await this.#reset(handlerId);
  }

  getQueueLength(): number {
    return this.#turns.waiting;
  }

  /** A client gone mid-turn: end its protocol cycle, roll back its transaction, pass the turn on. */
  async #reset(handlerId: number): Promise<void> {
    try {
      await this.#db.runExclusive(() => this.#db.execProtocolRaw(SYNC));
      if (this.#db.isInTransaction()) await this.#db.exec('rollback');
    } catch {
      // The session is reset as far as it can be; the next holder's queries report what is left.
    } finally {
      this.#turns.release(handlerId);
    }
  }
}

/** Unix socket paths are limited to about 104 bytes; longer data folders get a socket folder under the temp dir. */
const MAX_SOCKET_PATH = 100;

/** The folder of the socket for a data folder (the data folder itself when the path is short enough). */
export function socketDirFor(dataDir: string, port: number): string {
  if (join(dataDir, `.s.PGSQL.${port}`).length <= MAX_SOCKET_PATH) return dataDir;
  return join(tmpdir(), `guardian-${createHash('sha256').update(dataDir).digest('hex').slice(0, 16)}`);
}

/** The embedded database being served. */
export interface ServedDatabase {
  /** Where clients connect (node-postgres: `{ host: socket.dir, port: socket.port }`). */
  readonly socket: LockSocket;
  /** Open client connections. */
  connections(): number;
  /** Stops accepting, closes every client connection (rolling back what they left open), removes the socket. */
  stop(): Promise<void>;
}

/** The port number in the socket's name (`.s.PGSQL.5432`, as PostgreSQL names its own). */
export const SOCKET_PORT = 5432;

/**
 * Serves `db` on a Unix socket (`<dataDir>/.s.PGSQL.5432`, readable by this user only). Call it
 * only while holding the data folder's lock: a socket file left by a dead owner is replaced.
 *
 * @example
 * const served = await servePglite(db, turns, '/app/.data');
 * // psql -h /app/.data -U postgres   (or pg: { host: served.socket.dir, port: served.socket.port })
 */
export async function servePglite(db: PGlite, turns: SessionTurns, dataDir: string): Promise<ServedDatabase> {
  const dir = socketDirFor(dataDir, SOCKET_PORT);
  if (dir !== dataDir) await mkdir(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, `.s.PGSQL.${SOCKET_PORT}`);
  await unlink(path).catch(() => {});
  // pglite-socket types its queue as its own class; ours has the same three methods (see TurnQueue).
  const queryQueue = new TurnQueue(db, turns) as unknown as PGLiteSocketHandlerOptions['queryQueue'];
  const handlers = new Set<PGLiteSocketHandler>();
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    const handler = new PGLiteSocketHandler({ queryQueue, closeOnDetach: true });
    handlers.add(handler);
    handler.addEventListener('close', () => handlers.delete(handler));
    handler.addEventListener('error', () => handlers.delete(handler));
    void handler.attach(socket).catch(() => {
      handlers.delete(handler);
      socket.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  });
  await chmod(path, 0o600).catch(() => {});
  let stopping: Promise<void> | undefined;
  return {
    socket: { dir, port: SOCKET_PORT },
    connections: () => sockets.size,
    stop() {
      stopping ??= (async () => {
        const closed = new Promise<void>((r) => server.close(() => r()));
        for (const h of [...handlers]) await h.detach(true).catch(() => {});
        for (const s of sockets) s.destroy();
        await closed;
        await unlink(path).catch(() => {});
      })();
      return stopping;
    },
  };
}
