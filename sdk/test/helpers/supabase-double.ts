/**
 * A local double of the two Supabase services the SDK talks to, backed by the REAL PostgreSQL
 * test database:
 *
 * - a PostgREST double: `GET /rest/v1/<table>?select=…&order=…&offset=…&limit=…` and
 *   `POST /rest/v1/rpc/<fn>`, run under the JWT's role (`anon` / `authenticated` /
 *   `service_role`) with `request.jwt.claims` set, as PostgREST does (the JWT signature is not
 *   checked here); plus `GET /auth/v1/user` and `POST /auth/v1/logout` for supabase-js auth;
 * - a PROTOCOL DOUBLE of Supabase Realtime speaking Phoenix vsn 2.0.0 as PROVIDERS.md records it:
 *   `phx_join` with `postgres_changes` bindings answered by `phx_reply` with server ids, the
 *   `system` "Subscribed to PostgreSQL" message, `postgres_changes` events routed by binding id,
 *   heartbeats, join rejection, forced disconnects. Changes come from the database through a
 *   test-only trigger + LISTEN/NOTIFY (standing in for Realtime's WAL decoding). Like the real
 *   server it buffers nothing: changes while a client is away are lost to it. The subscription
 *   becomes live `liveDelayMs` after the join; with `postgres_changes_options.wait` the join reply
 *   is held until then, without it the reply comes first and changes in the gap are lost.
 */
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { WebSocketServer } from 'ws';
import type { WebSocket } from 'ws';

type Frame = [string | null, string | null, string, string, Record<string, unknown>];

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

export interface DoubleOptions {
  /** Gap between the join and the subscription being live (real Realtime: 1–3 s). */
  liveDelayMs?: number;
}

export function jwt(claims: Record<string, unknown>): string {
  const b64 = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ exp: Math.floor(Date.now() / 1000) + 3600, iat: Math.floor(Date.now() / 1000), ...claims })}.c2lnbmF0dXJl`;
}

function claimsOf(auth: string | undefined): Record<string, unknown> {
  const token = auth?.startsWith('Bearer ') ? auth.slice(7) : undefined;
  const part = token?.split('.')[1];
  if (!part) return { role: 'anon' };
  try {
    return JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as Record<string, unknown>;
  } catch {
    return { role: 'anon' };
  }
}

const IDENT = /^[a-z_][a-z0-9_]*$/;
const ROLES = new Set(['anon', 'authenticated', 'service_role']);

export class SupabaseDouble {
  readonly url: string;
  rejectJoins: string | null = null;
  /** Frames received from clients (for assertions on the wire). */
  readonly received: Frame[] = [];
  joins = 0;
  restRequests: string[] = [];
  private readonly server: Server;
  private readonly wss: WebSocketServer;
  private readonly pool: pg.Pool;
  private readonly listener: pg.Client;
  private readonly conns = new Set<Conn>();
  private readonly liveDelayMs: number;
  private columns: { name: string; type: string }[] = [];
  private nextId = 1000;

  private constructor(server: Server, pool: pg.Pool, listener: pg.Client, opts: DoubleOptions) {
    this.server = server;
    this.pool = pool;
    this.listener = listener;
    this.liveDelayMs = opts.liveDelayMs ?? 50;
    this.wss = new WebSocketServer({ noServer: true });
    const addr = server.address() as AddressInfo;
    this.url = `http://127.0.0.1:${addr.port}`;
  }

  static async start(databaseUrl: string, opts: DoubleOptions = {}): Promise<SupabaseDouble> {
    const pool = new pg.Pool({ connectionString: databaseUrl, max: 4 });
    // The WAL stand-in: a trigger that NOTIFYs each committed row change.
    await pool.query(`
      create or replace function public.rg_double_realtime() returns trigger language plpgsql as $$
      begin
        perform pg_notify('rg_double_realtime', json_build_object(
          'type', tg_op, 'schema', tg_table_schema, 'table', tg_table_name,
          'commit_timestamp', to_char(now() at time zone 'utc', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
          'record', case when tg_op = 'DELETE' then null else row_to_json(new) end,
          'old_record', case when tg_op = 'INSERT' then null else row_to_json(old) end)::text);
        return null;
      end $$;
      drop trigger if exists rg_double_realtime on public.feature_flags;
      create trigger rg_double_realtime after insert or update or delete on public.feature_flags
        for each row execute function public.rg_double_realtime();`);
    const listener = new pg.Client({ connectionString: databaseUrl });
    await listener.connect();
    await listener.query('listen rg_double_realtime');
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const d = new SupabaseDouble(server, pool, listener, opts);
    const { rows } = await pool.query<{ name: string; type: string }>(
      `select column_name as name, udt_name as type from information_schema.columns
       where table_schema = 'public' and table_name = 'feature_flags' order by ordinal_position`,
    );
    d.columns = rows;
    listener.on('notification', (n) => d.broadcast(JSON.parse(n.payload ?? '{}') as Record<string, unknown>));
    server.on('request', (req, res) => {
      d.http(req, res).catch((error: unknown) => {
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ message: String(error) }));
      });
    });
    server.on('upgrade', (req, socket, head) => {
      const u = new URL(req.url ?? '/', 'http://x');
      if (u.pathname !== '/realtime/v1/websocket' || u.searchParams.get('vsn') !== '2.0.0' || !u.searchParams.get('apikey')) {
        socket.end('HTTP/1.1 400 Bad Request\r\n\r\n');
        return;
      }
      d.wss.handleUpgrade(req, socket, head, (ws) => d.accept(ws));
    });
    return d;
  }

  /** Number of open Realtime sockets. */
  get sockets(): number {
    return this.conns.size;
  }

  /** Drops every Realtime socket without a close handshake (a network cut / server restart). */
  disconnectAll(): void {
    for (const c of this.conns) c.ws.terminate();
    this.conns.clear();
  }

  async stop(): Promise<void> {
    this.disconnectAll();
    this.wss.close();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await this.listener.end();
    await this.pool.end();
  }

  private send(conn: Conn, frame: Frame): void {
    if (conn.ws.readyState === conn.ws.OPEN) conn.ws.send(JSON.stringify(frame));
  }

  private accept(ws: WebSocket): void {
    const conn: Conn = { ws, channels: new Map() };
    this.conns.add(conn);
    ws.on('close', () => this.conns.delete(conn));
    ws.on('message', (data) => {
      let frame: Frame;
      try {
        frame = JSON.parse(String(data)) as Frame;
      } catch {
        return;
      }
      this.received.push(frame);
      this.onFrame(conn, frame);
    });
  }

  private onFrame(conn: Conn, [joinRef, ref, topic, event, payload]: Frame): void {
    if (topic === 'phoenix' && event === 'heartbeat') {
      this.send(conn, [null, ref, 'phoenix', 'phx_reply', { status: 'ok', response: {} }]);
      return;
    }
    if (event === 'phx_join') {
      this.joins++;
      const config = (payload['config'] ?? {}) as { postgres_changes?: Omit<Binding, 'id'>[]; postgres_changes_options?: { wait?: boolean } };
      if (this.rejectJoins !== null) {
        this.send(conn, [joinRef, ref, topic, 'phx_reply', { status: 'error', response: { reason: this.rejectJoins } }]);
        return;
      }
      const bindings = (config.postgres_changes ?? []).map((b) => ({ ...b, id: this.nextId++ }));
      const channel: JoinedChannel = { topic, joinRef, bindings, live: false };
      conn.channels.set(topic, channel);
      const reply = (): void =>
        this.send(conn, [joinRef, ref, topic, 'phx_reply', {
          status: 'ok',
          response: { postgres_changes: bindings.map((b) => ({ id: b.id, event: b.event, schema: b.schema, table: b.table, ...(b.filter ? { filter: b.filter } : {}) })) },
        }]);
      const goLive = (): void => {
        channel.live = true;
        this.send(conn, [joinRef, null, topic, 'system', { extension: 'postgres_changes', channel: topic.replace(/^realtime:/, ''), status: 'ok', message: 'Subscribed to PostgreSQL' }]);
      };
      if (config.postgres_changes_options?.wait && bindings.length > 0) {
        setTimeout(() => {
          if (conn.channels.get(topic) !== channel) return;
          goLive();
          reply();
        }, this.liveDelayMs);
      } else {
        reply();
        setTimeout(() => {
          if (conn.channels.get(topic) === channel) goLive();
        }, this.liveDelayMs);
      }
      return;
    }
    if (event === 'phx_leave') {
      conn.channels.delete(topic);
      this.send(conn, [joinRef, ref, topic, 'phx_reply', { status: 'ok', response: {} }]);
      return;
    }
    if (event === 'access_token') return;
    this.send(conn, [joinRef, ref, topic, 'phx_reply', { status: 'ok', response: {} }]);
  }

  private broadcast(change: Record<string, unknown>): void {
    const type = String(change['type']);
    for (const conn of this.conns) {
      for (const ch of conn.channels.values()) {
        if (!ch.live) continue;
        const ids = ch.bindings.filter((b) => (b.event === '*' || b.event === type) && b.schema === change['schema'] && b.table === change['table']).map((b) => b.id);
        if (ids.length === 0) continue;
        this.send(conn, [null, null, ch.topic, 'postgres_changes', {
          ids,
          data: {
            schema: change['schema'], table: change['table'], commit_timestamp: change['commit_timestamp'], type,
            columns: this.columns, record: change['record'] ?? {}, old_record: change['old_record'] ?? {}, errors: null,
          },
        }]);
      }
    }
  }

  private async http(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const u = new URL(req.url ?? '/', 'http://x');
    this.restRequests.push(`${req.method} ${u.pathname}${u.search}`);
    const claims = claimsOf(req.headers.authorization);
    // CORS as Supabase answers it, so a page on another origin (examples/web in Chromium) can call it.
    const cors = { 'access-control-allow-origin': '*', 'access-control-allow-headers': 'authorization, x-client-info, apikey, content-type, content-profile, accept-profile, prefer, x-supabase-api-version', 'access-control-allow-methods': 'GET, POST, OPTIONS' };
    if (req.method === 'OPTIONS') {
      res.writeHead(204, cors).end();
      return;
    }
    const json = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...cors });
      res.end(JSON.stringify(body));
    };
    if (u.pathname === '/auth/v1/user') {
      if (typeof claims['sub'] !== 'string') return json(401, { code: 401, error_code: 'no_authorization', msg: 'This endpoint requires a valid Bearer token' });
      return json(200, { id: claims['sub'], aud: 'authenticated', role: 'authenticated', email: `${String(claims['sub'])}@example.test`, app_metadata: {}, user_metadata: {}, created_at: new Date(0).toISOString() });
    }
    if (u.pathname === '/auth/v1/logout') {
      res.writeHead(204, cors).end();
      return;
    }
    const role = typeof claims['role'] === 'string' && ROLES.has(claims['role']) ? claims['role'] : 'anon';
    const rpc = /^\/rest\/v1\/rpc\/([a-z_]+)$/.exec(u.pathname);
    const table = /^\/rest\/v1\/([a-z_]+)$/.exec(u.pathname);
    let text: string;
    const params: unknown[] = [];
    if (rpc && req.method === 'POST') {
      text = `select * from public.${rpc[1]}()`;
    } else if (table && req.method === 'GET') {
      const cols = (u.searchParams.get('select') ?? '*').split(',');
      if (!cols.every((c) => c === '*' || IDENT.test(c))) return json(400, { code: 'PGRST100', message: 'bad select' });
      const order = (u.searchParams.get('order') ?? '').split(',').filter(Boolean).map((o) => {
        const [col, dir] = o.split('.');
        if (!col || !IDENT.test(col)) throw new Error('bad order');
        return `${col} ${dir === 'desc' ? 'desc' : 'asc'}`;
      });
      params.push(Number(u.searchParams.get('limit') ?? 1000), Number(u.searchParams.get('offset') ?? 0));
      text = `select ${cols.join(',')} from public.${table[1]}${order.length ? ` order by ${order.join(',')}` : ''} limit $1 offset $2`;
    } else {
      return json(404, { code: 'PGRST125', message: `Invalid path specified in request URL` });
    }
    const client = await this.pool.connect();
    try {
      await client.query('begin');
      await client.query(`select set_config('role', $1, true), set_config('request.jwt.claims', $2, true)`, [role, JSON.stringify(claims)]);
      const { rows } = await client.query(text, params);
      await client.query('commit');
      return json(200, rows.map((r: Record<string, unknown>) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, typeof v === 'string' && k === 'version' ? Number(v) : v]))));
    } catch (error) {
      await client.query('rollback').catch(() => undefined);
      const e = error as { code?: string; message?: string };
      return json(e.code === '42501' ? 401 : 400, { code: e.code, details: null, hint: null, message: e.message });
    } finally {
      client.release();
    }
  }
}
