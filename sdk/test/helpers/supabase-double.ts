/**
 * A local double of the two Supabase services the SDK talks to, on one port, backed by the REAL
 * PostgreSQL test database:
 *
 * - a PostgREST double: `GET /rest/v1/<table>?select=…&order=…&offset=…&limit=…` and
 *   `POST /rest/v1/rpc/<fn>`, run under the JWT's role (`anon` / `authenticated` /
 *   `service_role`) with `request.jwt.claims` set, as PostgREST does (the JWT signature is not
 *   checked here); plus `GET /auth/v1/user` and `POST /auth/v1/logout` for supabase-js auth;
 * - the PROTOCOL DOUBLE of Supabase Realtime in test/helpers/realtime-double.ts (Phoenix vsn
 *   2.0.0 as PROVIDERS.md records it; changes of the `supabase_realtime` publication's tables).
 */
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import pg from 'pg';

import { RealtimeDouble, type RealtimeFrame } from '../../../test/helpers/realtime-double.ts';

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
  restRequests: string[] = [];
  private readonly server: Server;
  private readonly pool: pg.Pool;
  private readonly realtime: RealtimeDouble;

  private constructor(server: Server, pool: pg.Pool, realtime: RealtimeDouble) {
    this.server = server;
    this.pool = pool;
    this.realtime = realtime;
    const addr = server.address() as AddressInfo;
    this.url = `http://127.0.0.1:${addr.port}`;
  }

  static async start(databaseUrl: string, opts: DoubleOptions = {}): Promise<SupabaseDouble> {
    const pool = new pg.Pool({ connectionString: databaseUrl, max: 4 });
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const realtime = await RealtimeDouble.start({ databaseUrl, server, ...(opts.liveDelayMs !== undefined ? { liveDelayMs: opts.liveDelayMs } : {}) });
    const d = new SupabaseDouble(server, pool, realtime);
    server.on('request', (req, res) => {
      d.http(req, res).catch((error: unknown) => {
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ message: String(error) }));
      });
    });
    return d;
  }

  /** Join rejection reason (see {@link RealtimeDouble.rejectJoins}). */
  get rejectJoins(): string | null {
    return this.realtime.rejectJoins;
  }

  set rejectJoins(reason: string | null) {
    this.realtime.rejectJoins = reason;
  }

  /** Frames received from Realtime clients (for assertions on the wire). */
  get received(): RealtimeFrame[] {
    return this.realtime.received;
  }

  /** `phx_join` frames received. */
  get joins(): number {
    return this.realtime.joins;
  }

  /** Number of open Realtime sockets. */
  get sockets(): number {
    return this.realtime.sockets;
  }

  /** Drops every Realtime socket without a close handshake (a network cut / server restart). */
  disconnectAll(): void {
    this.realtime.disconnectAll();
  }

  async stop(): Promise<void> {
    await this.realtime.stop();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await this.pool.end();
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
