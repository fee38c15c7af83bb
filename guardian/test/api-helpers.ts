/**
 * Test helpers of the admin API: the real app served by @hono/node-server on a free port, over
 * a throwaway PostgreSQL database or an in-memory PGlite (both migrated and seeded), with the
 * change stream fed by the real LISTEN / PGlite listen; Supabase-shaped access tokens signed
 * with jose; and an SSE reader over fetch.
 */
import type { AddressInfo } from 'node:net';

import { PGlite } from '@electric-sql/pglite';
import { serve, type ServerType } from '@hono/node-server';
import { Hono } from 'hono';
import { SignJWT } from 'jose';

import { createTestDatabase } from '../../test/helpers/db.ts';
import { createAdminApi, createOfrepStream, type AdminApiDeps } from '../src/api/app.ts';
import { FailureLimiter } from '../src/api/auth.ts';
import { pgChangeFeed, pgliteChangeFeed, pipeFeed } from '../src/api/feed.ts';
import { ChangeHub } from '../src/api/hub.ts';
import type { GuardianStatusSnapshot } from '../src/api/status.ts';
import { applyMigrations } from '../src/store/migrations.ts';
import { SqlStore } from '../src/store/sql-store.ts';
import { pgliteSqlClient, type SqlClient } from '../src/store/sql.ts';

export const ADMIN_TOKEN = 'admin-token-0123456789abcdef0123';
export const OFREP_KEY = 'ofrep-key-0123456789abcdef';
export const JWT_SECRET = 'super-secret-jwt-token-with-at-least-32-characters-long';
export const SUPABASE_URL = 'http://127.0.0.1:54321';

/** A running API. */
export interface ApiHarness {
  readonly base: string;
  readonly store: SqlStore;
  readonly sql: SqlClient;
  readonly hub: ChangeHub;
  /** Status the API reads (tests change it). */
  status: GuardianStatusSnapshot;
  close(): Promise<void>;
}

export const BASE_STATUS: GuardianStatusSnapshot = {
  lastCycle: null,
  intervalMs: 60_000,
  dryRun: false,
  sources: [{ id: 'builtin', configured: true, detail: 'SDK exposures' }],
  rulesFile: 'rules/guardian.yaml',
  rules: [],
  rulesLoadedAt: null,
  lastReloadError: null,
  channels: ['slack'],
};

/**
 * Starts the API on `backend` (`pg`: a throwaway database with LISTEN; `pglite`: in memory with its listen).
 *
 * @example
 * const api = await startApi('pglite');
 * afterAll(() => api.close());
 */
export async function startApi(backend: 'pg' | 'pglite', extra: Partial<AdminApiDeps> & { hubOptions?: ConstructorParameters<typeof ChangeHub>[0] } = {}): Promise<ApiHarness> {
  let sql: SqlClient;
  let drop: () => Promise<void>;
  let feed;
  if (backend === 'pg') {
    const db = await createTestDatabase();
    sql = db.sql;
    drop = db.drop;
    feed = pgChangeFeed({ connectionString: db.url });
  } else {
    const pglite = await PGlite.create();
    sql = pgliteSqlClient(pglite);
    await applyMigrations(sql, { shim: true, seed: true });
    drop = () => pglite.close();
    feed = pgliteChangeFeed((channel, cb) => pglite.listen(channel, cb));
  }
  const store = new SqlStore({ sql, kind: backend, location: backend });
  const hub = new ChangeHub({ heartbeatMs: 0, ...extra.hubOptions });
  const stopFeed = await pipeFeed(feed, hub, store);
  const harness: { status: GuardianStatusSnapshot } = { status: BASE_STATUS };
  const app = new Hono();
  app.route(
    '/api/v1',
    createAdminApi({
      store,
      auth: { adminToken: ADMIN_TOKEN, jwtSecret: JWT_SECRET, supabaseUrl: SUPABASE_URL },
      hub,
      status: () => harness.status,
      limiter: new FailureLimiter({ perWindow: 1000 }),
      allowedOrigins: ['https://admin.example.com'],
      ...extra,
    }),
  );
  app.route('/ofrep/v1', createOfrepStream({ hub, apiKey: OFREP_KEY }));
  const server: ServerType = await new Promise((resolve) => {
    const s = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(s));
  });
  const port = (server.address() as AddressInfo).port;
  return Object.assign(harness, {
    base: `http://127.0.0.1:${port}/api/v1`,
    store,
    sql,
    hub,
    async close() {
      hub.close();
      await new Promise<void>((r) => server.close(() => r()));
      await stopFeed();
      await drop();
    },
  });
}

/**
 * A Supabase-shaped access token (HS256 with {@link JWT_SECRET} unless a key is given).
 *
 * @example
 * const t = await supabaseToken({ role: 'editor' });
 */
export async function supabaseToken(opts: {
  role?: string | undefined;
  email?: string;
  sub?: string;
  aud?: string;
  iss?: string;
  expiresIn?: number;
  topRole?: string;
  secret?: string;
}): Promise<string> {
  const nowS = Math.floor(Date.now() / 1000);
  return new SignJWT({
    email: opts.email ?? `${opts.role ?? 'nobody'}@example.com`,
    role: opts.topRole ?? 'authenticated',
    app_metadata: opts.role === undefined ? { provider: 'email' } : { provider: 'email', guardian_role: opts.role },
  })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(opts.sub ?? '11111111-2222-4333-8444-555555555555')
    .setAudience(opts.aud ?? 'authenticated')
    .setIssuer(opts.iss ?? `${SUPABASE_URL}/auth/v1`)
    .setIssuedAt(nowS - 10)
    .setExpirationTime(nowS + (opts.expiresIn ?? 3600))
    .sign(new TextEncoder().encode(opts.secret ?? JWT_SECRET));
}

/** One parsed SSE message. */
export interface SseEvent {
  readonly id: string | undefined;
  readonly event: string;
  readonly data: string;
}

/**
 * An SSE client over fetch (as browsers must do to send Authorization).
 *
 * @example
 * const s = await openStream(`${api.base}/stream`, ADMIN_TOKEN);
 * await vi.waitFor(() => expect(s.events.length).toBe(1));
 */
export async function openStream(url: string, token: string, lastEventId?: string): Promise<{ events: SseEvent[]; comments: string[]; status: number; close(): void; ended: Promise<void> }> {
  const ac = new AbortController();
  const res = await fetch(url, { headers: { authorization: `Bearer ${token}`, ...(lastEventId ? { 'last-event-id': lastEventId } : {}) }, signal: ac.signal });
  const events: SseEvent[] = [];
  const comments: string[] = [];
  const ended = (async () => {
    if (!res.body) return;
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buf += value;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          let id: string | undefined;
          let event = 'message';
          const data: string[] = [];
          let any = false;
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) comments.push(line.slice(1).trim());
            else if (line.startsWith('id: ')) id = line.slice(4);
            else if (line.startsWith('event: ')) {
              event = line.slice(7);
              any = true;
            } else if (line.startsWith('data: ')) {
              data.push(line.slice(6));
              any = true;
            }
          }
          if (any) events.push({ id, event, data: data.join('\n') });
        }
      }
    } catch {
      // aborted
    }
  })();
  return { events, comments, status: res.status, close: () => ac.abort(), ended };
}

/** An HTTP answer, its JSON body parsed. */
export interface Answer {
  status: number;
  body: Record<string, unknown> & { error?: { code: string; field?: string; message: string } };
  text: string;
  headers: Headers;
}

/**
 * A JSON caller of the API at `base()` (admin token unless `token` is given; `null` sends none).
 *
 * @example
 * const call = caller(() => api.base);
 * const { status, body } = await call('GET', '/flags');
 */
export function caller(base: () => string) {
  return async (method: string, path: string, opts: { token?: string | null; body?: unknown; ifMatch?: string | number; headers?: Record<string, string> } = {}): Promise<Answer> => {
    const headers: Record<string, string> = { ...opts.headers };
    if (opts.token !== null) headers['authorization'] = `Bearer ${opts.token ?? ADMIN_TOKEN}`;
    if (opts.body !== undefined) headers['content-type'] = 'application/json';
    if (opts.ifMatch !== undefined) headers['if-match'] = typeof opts.ifMatch === 'number' ? `"${opts.ifMatch}"` : opts.ifMatch;
    const res = await fetch(`${base()}${path}`, { method, headers, ...(opts.body !== undefined ? { body: typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body) } : {}) });
    const text = await res.text();
    let body: Answer['body'];
    try {
      body = text ? (JSON.parse(text) as Answer['body']) : {};
    } catch {
      body = {};
    }
    return { status: res.status, body, text, headers: res.headers };
  };
}
