/**
 * PROTOCOL DOUBLE of Supabase Realtime (`/realtime/v1/websocket`) for tests, speaking Phoenix vsn
 * 2.0.0 as shared/PROVIDERS.md records it: text frames `[join_ref, ref, topic, event, payload]`;
 * `phx_join` with `postgres_changes` bindings answered by `phx_reply` with server ids (or a
 * rejection); the `system` "Subscribed to PostgreSQL" message; `postgres_changes` events
 * `{ids, data:{schema, table, commit_timestamp, type, columns, record, old_record, errors}}` routed
 * by binding id and event type; heartbeats answered; forced disconnects and server-side `phx_close`.
 *
 * It attaches to an HTTP server's `upgrade` event, so it can share a port (and so the project URL
 * supabase-js is given) with a REST double. Changes come from the REAL database: a test-only
 * trigger + LISTEN/NOTIFY on every table of the `supabase_realtime` publication when the double
 * starts (standing in for Realtime's WAL decoding of that publication): a table outside the
 * publication is never heard, as on Supabase. `record` and `old_record` are `row_to_json` of the
 * row (old_record: the whole old row, as with `replica identity full`), `columns` the table's
 * columns with their `udt_name` types. Like the real server it buffers nothing: changes while a
 * client is away are lost to it. The subscription becomes live `liveDelayMs` after the join; with
 * `postgres_changes_options.wait` the join reply is held until then, without it the reply comes
 * first and changes in the gap are lost.
 *
 * Not modelled: the per-subscriber SELECT check (every subscriber hears every published change),
 * JWT signature checks, filters, broadcast and presence.
 *
 * @example
 * const rest = await PostgrestDouble.start({ databaseUrl: db.url });
 * const realtime = await RealtimeDouble.start({ databaseUrl: db.url, server: rest.httpServer });
 * // supabase-js at rest.url now reaches both; on teardown:
 * await realtime.stop();
 * await rest.stop();
 */
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';

import pg from 'pg';
import { WebSocketServer } from 'ws';
import type { WebSocket } from 'ws';

/** One Phoenix vsn 2.0.0 frame. */
export type RealtimeFrame = [string | null, string | null, string, string, Record<string, unknown>];

interface Binding {
  id: number;
  event: string;
  schema: string;
  table: string;
  filter?: string;
}

interface JoinedChannel {
  topic: string;
  joinRef: string | null;
  bindings: Binding[];
  live: boolean;
}

interface Conn {
  ws: WebSocket;
  channels: Map<string, JoinedChannel>;
}

/**
 * Options of {@link RealtimeDouble.start}.
 *
 * @example
 * await RealtimeDouble.start({ databaseUrl: db.url, server, liveDelayMs: 20 });
 */
export interface RealtimeDoubleOptions {
  /** The database whose published tables are followed (a superuser connection). */
  readonly databaseUrl: string;
  /** The HTTP server whose `upgrade` requests for `/realtime/v1/websocket` this double answers. */
  readonly server: Server;
  /** Gap between the join and the subscription being live (real Realtime: 1–3 s). Default 50 ms. */
  readonly liveDelayMs?: number;
}

/** The trigger function's channel (test-only). */
const NOTIFY_CHANNEL = 'rg_double_realtime';

/**
 * The Realtime double.
 *
 * @example
 * const realtime = await RealtimeDouble.start({ databaseUrl: db.url, server: rest.httpServer });
 * realtime.disconnectAll(); // a network cut: supabase-js reconnects and rejoins
 */
export class RealtimeDouble {
  /** Join rejection reason: while set, every `phx_join` is answered `{status:'error', response:{reason}}`. */
  rejectJoins: string | null = null;
  /** Frames received from clients (for assertions on the wire). */
  readonly received: RealtimeFrame[] = [];
  /** `phx_join` frames received. */
  joins = 0;
  /** `postgres_changes` frames sent. */
  changesSent = 0;
  readonly #server: Server;
  readonly #wss: WebSocketServer;
  readonly #listener: pg.Client;
  readonly #conns = new Set<Conn>();
  readonly #liveDelayMs: number;
  readonly #columns = new Map<string, { name: string; type: string }[]>();
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();
  readonly #onUpgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) => void;
  #nextId = 1000;

  private constructor(server: Server, listener: pg.Client, opts: RealtimeDoubleOptions) {
    this.#server = server;
    this.#listener = listener;
    this.#liveDelayMs = opts.liveDelayMs ?? 50;
    this.#wss = new WebSocketServer({ noServer: true });
    this.#onUpgrade = (req, socket, head) => {
      const u = new URL(req.url ?? '/', 'http://x');
      if (u.pathname !== '/realtime/v1/websocket' || u.searchParams.get('vsn') !== '2.0.0' || !u.searchParams.get('apikey')) {
        socket.end('HTTP/1.1 400 Bad Request\r\n\r\n');
        return;
      }
      this.#wss.handleUpgrade(req, socket, head, (ws) => this.#accept(ws));
    };
    server.on('upgrade', this.#onUpgrade);
  }

  /**
   * Installs the change trigger on the publication's tables, starts listening and attaches to `server`.
   *
   * @example
   * const realtime = await RealtimeDouble.start({ databaseUrl: db.url, server: rest.httpServer });
   */
  static async start(opts: RealtimeDoubleOptions): Promise<RealtimeDouble> {
    const listener = new pg.Client({ connectionString: opts.databaseUrl });
    await listener.connect();
    listener.on('error', () => {});
    // The WAL stand-in: a trigger that NOTIFYs each committed row change of a published table.
    await listener.query(`
      create or replace function public.rg_double_realtime() returns trigger language plpgsql as $$
      begin
        perform pg_notify('${NOTIFY_CHANNEL}', json_build_object(
          'type', tg_op, 'schema', tg_table_schema, 'table', tg_table_name,
          'commit_timestamp', to_char(now() at time zone 'utc', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
          'record', case when tg_op = 'DELETE' then null else row_to_json(new) end,
          'old_record', case when tg_op = 'INSERT' then null else row_to_json(old) end)::text);
        return null;
      end $$`);
    const { rows: tables } = await listener.query<{ schema: string; table: string }>(
      `select schemaname as schema, tablename as table from pg_catalog.pg_publication_tables where pubname = 'supabase_realtime' order by 1, 2`,
    );
    const double = new RealtimeDouble(opts.server, listener, opts);
    for (const t of tables) {
      const qualified = `"${t.schema}"."${t.table}"`;
      await listener.query(`drop trigger if exists rg_double_realtime on ${qualified};
        create trigger rg_double_realtime after insert or update or delete on ${qualified} for each row execute function public.rg_double_realtime()`);
      const { rows } = await listener.query<{ name: string; type: string }>(
        `select column_name as name, udt_name as type from information_schema.columns where table_schema = $1 and table_name = $2 order by ordinal_position`,
        [t.schema, t.table],
      );
      double.#columns.set(`${t.schema}.${t.table}`, rows);
    }
    listener.on('notification', (n) => {
      if (n.channel === NOTIFY_CHANNEL) double.#broadcast(JSON.parse(n.payload ?? '{}') as Record<string, unknown>);
    });
    await listener.query(`listen ${NOTIFY_CHANNEL}`);
    return double;
  }

  /** Tables whose changes are sent (`schema.table`): the publication's when the double started. */
  get tables(): string[] {
    return [...this.#columns.keys()];
  }

  /** Number of open Realtime sockets. */
  get sockets(): number {
    return this.#conns.size;
  }

  /** Drops every Realtime socket without a close handshake (a network cut / server restart). */
  disconnectAll(): void {
    for (const c of this.#conns) c.ws.terminate();
    this.#conns.clear();
  }

  /**
   * Closes every joined channel from the server side (`phx_close`, as Realtime does when it shuts a
   * channel down); the sockets stay open. supabase-js reports CLOSED and does not rejoin by itself.
   */
  closeChannels(): void {
    for (const conn of this.#conns) {
      for (const ch of conn.channels.values()) this.#send(conn, [ch.joinRef, null, ch.topic, 'phx_close', {}]);
      conn.channels.clear();
    }
  }

  /**
   * Ends every live postgres_changes subscription with a `system` error message (the channel
   * stays joined but hears nothing more). (unverified) The shape mirrors the documented "ok"
   * message with `status: 'error'`, as the SDK's transport already expects; not confirmed
   * against a live Realtime.
   */
  failSubscriptions(message: string): void {
    for (const conn of this.#conns) {
      for (const ch of conn.channels.values()) {
        if (!ch.live) continue;
        ch.live = false;
        this.#send(conn, [ch.joinRef, null, ch.topic, 'system', { extension: 'postgres_changes', channel: ch.topic.replace(/^realtime:/, ''), status: 'error', message }]);
      }
    }
  }

  /** Detaches from the server, drops every socket and stops listening (the trigger stays). */
  async stop(): Promise<void> {
    this.#server.off('upgrade', this.#onUpgrade);
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    this.disconnectAll();
    this.#wss.close();
    await this.#listener.end().catch(() => {});
  }

  #later(fn: () => void, ms: number): void {
    const t = setTimeout(() => {
      this.#timers.delete(t);
      fn();
    }, ms);
    this.#timers.add(t);
  }

  #send(conn: Conn, frame: RealtimeFrame): void {
    if (conn.ws.readyState === conn.ws.OPEN) conn.ws.send(JSON.stringify(frame));
  }

  #accept(ws: WebSocket): void {
    const conn: Conn = { ws, channels: new Map() };
    this.#conns.add(conn);
    ws.on('close', () => this.#conns.delete(conn));
    ws.on('error', () => {});
    ws.on('message', (data) => {
      let frame: RealtimeFrame;
      try {
        frame = JSON.parse(String(data)) as RealtimeFrame;
      } catch {
        return;
      }
      this.received.push(frame);
      this.#onFrame(conn, frame);
    });
  }

  #onFrame(conn: Conn, [joinRef, ref, topic, event, payload]: RealtimeFrame): void {
    if (topic === 'phoenix' && event === 'heartbeat') {
      this.#send(conn, [null, ref, 'phoenix', 'phx_reply', { status: 'ok', response: {} }]);
      return;
    }
    if (event === 'phx_join') {
      this.joins++;
      const config = (payload['config'] ?? {}) as { postgres_changes?: Omit<Binding, 'id'>[]; postgres_changes_options?: { wait?: boolean } };
      if (this.rejectJoins !== null) {
        this.#send(conn, [joinRef, ref, topic, 'phx_reply', { status: 'error', response: { reason: this.rejectJoins } }]);
        return;
      }
      const bindings = (config.postgres_changes ?? []).map((b) => ({ ...b, id: this.#nextId++ }));
      const channel: JoinedChannel = { topic, joinRef, bindings, live: false };
      conn.channels.set(topic, channel);
      const reply = (): void =>
        this.#send(conn, [
          joinRef,
          ref,
          topic,
          'phx_reply',
          {
            status: 'ok',
            response: { postgres_changes: bindings.map((b) => ({ id: b.id, event: b.event, schema: b.schema, table: b.table, ...(b.filter ? { filter: b.filter } : {}) })) },
          },
        ]);
      const goLive = (): void => {
        channel.live = true;
        this.#send(conn, [joinRef, null, topic, 'system', { extension: 'postgres_changes', channel: topic.replace(/^realtime:/, ''), status: 'ok', message: 'Subscribed to PostgreSQL' }]);
      };
      if (config.postgres_changes_options?.wait && bindings.length > 0) {
        this.#later(() => {
          if (conn.channels.get(topic) !== channel) return;
          goLive();
          reply();
        }, this.#liveDelayMs);
      } else {
        reply();
        this.#later(() => {
          if (conn.channels.get(topic) === channel) goLive();
        }, this.#liveDelayMs);
      }
      return;
    }
    if (event === 'phx_leave') {
      conn.channels.delete(topic);
      this.#send(conn, [joinRef, ref, topic, 'phx_reply', { status: 'ok', response: {} }]);
      return;
    }
    if (event === 'access_token') return;
    this.#send(conn, [joinRef, ref, topic, 'phx_reply', { status: 'ok', response: {} }]);
  }

  #broadcast(change: Record<string, unknown>): void {
    const type = String(change['type']);
    const columns = this.#columns.get(`${String(change['schema'])}.${String(change['table'])}`);
    if (!columns) return;
    for (const conn of this.#conns) {
      for (const ch of conn.channels.values()) {
        if (!ch.live) continue;
        const ids = ch.bindings.filter((b) => (b.event === '*' || b.event === type) && b.schema === change['schema'] && b.table === change['table']).map((b) => b.id);
        if (ids.length === 0) continue;
        this.changesSent++;
        this.#send(conn, [
          null,
          null,
          ch.topic,
          'postgres_changes',
          {
            ids,
            data: {
              schema: change['schema'],
              table: change['table'],
              commit_timestamp: change['commit_timestamp'],
              type,
              columns,
              record: change['record'] ?? {},
              old_record: change['old_record'] ?? {},
              errors: null,
            },
          },
        ]);
      }
    }
  }
}
