/**
 * `POST /v1/exposures` through a real HTTP server on a random port, with the real store (PGlite;
 * PostgreSQL for the replica case): auth, every validation error with its path, the limits, the
 * 404 when it is off, 503 when the database fails; then the builtin source's counts from what was
 * accepted, and two guardian replicas on one database seeing the same counts.
 */
import { connect } from 'node:net';

import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

import { createTestDatabase, createTestPglite, type TestDatabase } from '../../test/helpers/db.ts';
import { createExposureIngestRoute } from '../src/http/ingest.ts';
import { exposureUserKey } from '../src/sources/builtin.ts';
import { createGuardianMetrics, type GuardianMetrics } from '../src/http/metrics.ts';
import type { RunningHttpServer } from '../src/http/server.ts';
import { createBuiltinSource } from '../src/sources/builtin.ts';
import { SqlStore } from '../src/store/sql-store.ts';
import { pgSqlClient } from '../src/store/sql.ts';
import type { Store } from '../src/store/types.ts';
import { MemoryLogger as Logs, serveRoute } from './cycle-helpers.ts';

const KEY = 'ingest-key-0123456789abcdef';
const FLAG = 'ai_beta_users';

interface Served {
  readonly http: RunningHttpServer;
  readonly metrics: GuardianMetrics;
  readonly logs: Logs;
  post(body: unknown, init?: { key?: string | null; type?: string; method?: string; raw?: string }): Promise<{ status: number; json: Record<string, unknown>; headers: Headers }>;
}

async function serve(
  store: Pick<Store, 'recordExposures' | 'listFlags'>,
  opts: { ingestKey?: string | undefined; now?: () => Date; maxConcurrent?: number; memoryBudgetBytes?: number } = {},
): Promise<Served> {
  const metrics = createGuardianMetrics();
  const logs = new Logs();
  const ingestKey = 'ingestKey' in opts ? opts.ingestKey : KEY;
  const { ingestKey: _k, ...rest } = opts;
  const http = await serveRoute(createExposureIngestRoute({ store, ingestKey, logger: logs, metrics, ...rest }), { metrics, logger: logs });
  const post: Served['post'] = async (body, init = {}) => {
    const headers: Record<string, string> = {};
    if (init.type !== '') headers['content-type'] = init.type ?? 'application/json';
    if (init.key !== null) headers['authorization'] = `Bearer ${init.key ?? KEY}`;
    const method = init.method ?? 'POST';
    const res = await fetch(`${http.url}/v1/exposures`, { method, headers, ...(method === 'GET' || method === 'HEAD' ? {} : { body: init.raw ?? JSON.stringify(body) }) });
    const text = await res.text();
    return { status: res.status, json: text ? (JSON.parse(text) as Record<string, unknown>) : {}, headers: res.headers };
  };
  return { http, metrics, logs, post };
}

const exposure = (user: string, value: boolean, error = false, flag = FLAG) => ({ flag, user, value, error });

/** The `error` member of the one error shape. */
function errorOf(r: { json: Record<string, unknown> }): { code: string; message: string; field?: string; issues?: { path: string; message: string }[] } {
  return r.json['error'] as { code: string; message: string; field?: string; issues?: { path: string; message: string }[] };
}

describe('POST /v1/exposures (PGlite store)', () => {
  let db: TestDatabase;
  let store: SqlStore;
  let served: Served;

  beforeAll(async () => {
    db = await createTestPglite();
    store = new SqlStore({ sql: db.sql, kind: 'pglite', location: 'memory' });
    served = await serve(store);
  });
  afterAll(async () => {
    await served?.http.close();
    await db?.drop();
  });

  it('refuses a missing or wrong key (401, constant-time compare), a wrong method (405) and a wrong content type (415)', async () => {
    const body = { exposures: [exposure('u-1', true)] };
    const missing = await served.post(body, { key: null });
    expect(missing.status).toBe(401);
    expect(missing.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect(missing.json).toEqual({ error: { code: 'unauthorized', message: expect.stringContaining('missing "Authorization: Bearer') } });
    expect(missing.headers.get('connection')).toBe('close');
    const wrong = await served.post(body, { key: `${KEY}x` });
    expect(wrong.status).toBe(401);
    expect(errorOf(wrong).message).toMatch(/wrong ingest key/);
    expect((await served.post(body, { key: 'short' })).status).toBe(401);
    const get = await served.post(body, { method: 'GET' });
    expect(get.status).toBe(405);
    expect(get.headers.get('allow')).toBe('POST');
    const text = await served.post(body, { type: 'text/plain' });
    expect(text.status).toBe(415);
    expect(errorOf(text)).toMatchObject({ code: 'unsupported_media_type', message: expect.stringMatching(/Content-Type: application\/json/) });
    expect((await served.post(body, { type: '' })).status).toBe(415);
    // Nothing was written by any of them.
    expect((await db.sql.query<{ n: number }>('select count(*)::int as n from guardian_exposures')).rows[0]?.n).toBe(0);
  });

  it('lists every problem by its path (400) and writes nothing', async () => {
    const now = Date.now();
    const bad = await served.post({
      exposures: [
        exposure('u-1', true),
        { flag: 'BadFlag', user: 'u-2', value: true },
        { flag: FLAG, user: '', value: 'yes' },
        { flag: FLAG, user: 'u-4', value: true, at: new Date(now + 10 * 60_000).toISOString() },
        { flag: FLAG, user: 'u-5', value: false, at: new Date(now - 25 * 3_600_000).toISOString() },
        { flag: FLAG, user: 'u-6', value: false, at: 'yesterday' },
        { flag: FLAG, user: 'u-7', value: false, erorr: true },
        { user: 'u-8', value: true, error: 'no' },
        'not an object',
        { flag: FLAG, user: 'x'.repeat(513), value: true },
      ],
    });
    expect(bad.status).toBe(400);
    expect(errorOf(bad)).toMatchObject({ code: 'bad_request', field: 'body.exposures[1].flag' });
    const problems = errorOf(bad).issues!;
    expect(problems).toEqual(
      expect.arrayContaining([
        { path: 'body.exposures[1].flag', message: 'must match ^[a-z][a-z0-9_]{1,63}$' },
        { path: 'body.exposures[2].user', message: 'must not be empty' },
        { path: 'body.exposures[2].value', message: "must be the flag's value for the user (true or false), got string" },
        { path: 'body.exposures[3].at', message: "must not be more than 5 minutes in the future (check the sender's clock)" },
        { path: 'body.exposures[4].at', message: 'must not be older than 24 hours' },
        { path: 'body.exposures[5].at', message: 'must be an ISO 8601 time with a time zone, e.g. 2026-01-01T12:00:00Z' },
        { path: 'body.exposures[6]', message: expect.stringContaining('unknown field(s) "erorr"') },
        { path: 'body.exposures[7].flag', message: 'must be a flag name (a string), got undefined' },
        { path: 'body.exposures[7].error', message: 'must be true or false (whether the user hit an error), got string' },
        { path: 'body.exposures[8]', message: 'must be an object { flag, user, value, error?, at? }, got string' },
        { path: 'body.exposures[9].user', message: 'must be at most 512 characters' },
      ]),
    );
    expect(problems.some((p) => p.path.startsWith('body.exposures[0]'))).toBe(false);
    // An unreadable `at` is one problem, not three contradictory ones (issue 9).
    expect(problems.filter((p) => p.path === 'body.exposures[5].at')).toHaveLength(1);
    expect(errorOf(bad).message).toMatch(/^\d+ problem\(s\), nothing was recorded: body\.exposures\[1\]\.flag: must match/);

    expect(errorOf(await served.post({ exposure: [] })).issues).toEqual([
      { path: 'body.exposures', message: 'must be an array of exposures, got undefined' },
      { path: 'body', message: 'unknown field(s) "exposure": the body is { "exposures": [...] }' },
    ]);
    expect(errorOf(await served.post([1, 2])).issues).toEqual([{ path: 'body', message: 'the body must be a JSON object { "exposures": [...] }, got array' }]);
    const notJson = await served.post(null, { raw: '{"exposures": [' });
    expect(notJson.status).toBe(400);
    expect(errorOf(notJson)).toMatchObject({ code: 'bad_request', field: 'body', message: expect.stringMatching(/not valid JSON/) });
    expect((await db.sql.query<{ n: number }>('select count(*)::int as n from guardian_exposures')).rows[0]?.n).toBe(0);
  });

  it('refuses SQL-injection-shaped flag names by validation, and stores them nowhere', async () => {
    const names = ["ai_beta_users'; drop table guardian_exposures; --", 'ai_beta_users" or 1=1', "x'); delete from feature_flags; --", 'ai_beta_users\u0000', 'Robert_tables'];
    const r = await served.post({ exposures: names.map((flag, i) => ({ flag, user: `u-${i}`, value: true })) });
    expect(r.status).toBe(400);
    expect(errorOf(r).issues!.map((p) => p.path)).toEqual(names.map((_, i) => `body.exposures[${i}].flag`));
    // A user id is data, never SQL: it is hashed, whatever it contains.
    const odd = await served.post({ exposures: [exposure("u'); drop table guardian_exposures; --", true)] });
    expect(odd.status).toBe(202);
    const rows = await db.sql.query<{ user_key: string }>('select user_key from guardian_exposures');
    expect(rows.rows.map((x) => x.user_key)).toEqual([exposureUserKey("u'); drop table guardian_exposures; --")]);
    expect((await db.sql.query<{ n: number }>('select count(*)::int as n from feature_flags')).rows[0]?.n).toBe(7);
    await db.sql.query('delete from guardian_exposures');
  });

  it('a sender that goes away mid-body records nothing and leaves nothing waiting', async () => {
    const { connect } = await import('node:net');
    const url = new URL(served.http.url);
    const partial = JSON.stringify({ exposures: [exposure('gone-1', true)] }).slice(0, 20);
    await new Promise<void>((resolve, reject) => {
      const socket = connect(Number(url.port), url.hostname, () => {
        socket.write(
          `POST /v1/exposures HTTP/1.1\r\nHost: ${url.host}\r\nAuthorization: Bearer ${KEY}\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n${partial}`,
          () => setTimeout(() => socket.destroy(), 50),
        );
      });
      socket.on('close', () => resolve());
      socket.on('error', reject);
    });
    const settled = () => served.logs.lines.some((l) => l.level === 'error' && /request failed/.test(l.msg) && /aborted|closed before its body ended/.test(JSON.stringify(l.obj)));
    for (let i = 0; i < 100 && !settled(); i++) await new Promise((r) => setTimeout(r, 20));
    expect(settled()).toBe(true);
    const { rows } = await db.sql.query<{ n: number }>("select count(*)::int as n from guardian_exposures where user_key = $1", [exposureUserKey('gone-1')]);
    expect(rows[0]!.n).toBe(0);
    expect((await served.post({ exposures: [] })).status).toBe(202);
  });

  it('enforces the limits: at most 1000 exposures and 1 MB (413)', async () => {
    const many = await served.post({ exposures: Array.from({ length: 1001 }, (_, i) => exposure(`u-${i}`, true)) });
    expect(many.status).toBe(413);
    expect(errorOf(many)).toMatchObject({ code: 'payload_too_large', message: expect.stringMatching(/1001 exposures in one request; at most 1000/) });
    const big = await served.post(null, { raw: JSON.stringify({ exposures: [exposure('u-1', true)], pad: 'x'.repeat(1_100_000) }) });
    expect(big.status).toBe(413);
    expect(errorOf(big)).toMatchObject({ code: 'payload_too_large', message: expect.stringMatching(/larger than 1048576 bytes/) });
    // Exactly 1000 is fine.
    const ok = await served.post({ exposures: Array.from({ length: 1000 }, (_, i) => exposure(`limit-${i}`, i % 2 === 0, false, 'ai_alpha_users')) });
    expect(ok).toMatchObject({ status: 202, json: { accepted: 1000 } });
    await db.sql.query('delete from guardian_exposures');
  });

  it('202 { accepted }: hashes the user ids, and the builtin source counts users per cohort and those with errors', async () => {
    const since = new Date(Date.now() - 60_000);
    const batch = [
      ...Array.from({ length: 10 }, (_, i) => exposure(`on-${i}`, true, i < 3)),
      exposure('on-0', true), // the same user again: still one user (and still one with an error)
      ...Array.from({ length: 5 }, (_, i) => exposure(`off-${i}`, false, i === 0)),
      exposure('off-1', true, false, 'booking_agent_enabled'),
      { flag: FLAG, user: 'old-user', value: true, error: true, at: new Date(Date.now() - 3_600_000).toISOString() },
    ];
    const r = await served.post({ exposures: batch });
    expect(r).toMatchObject({ status: 202, json: { accepted: batch.length } });
    // A later error of an already-seen user (error defaults to false when left out).
    expect((await served.post({ exposures: [exposure('on-5', true, true), { flag: FLAG, user: 'on-6', value: true }] })).status).toBe(202);

    const raw = await db.sql.query<{ user_key: string }>('select user_key from guardian_exposures');
    expect(raw.rows.every((x) => /^[0-9a-f]{64}$/.test(x.user_key))).toBe(true);
    expect(JSON.stringify(raw.rows)).not.toContain('on-0');

    const source = createBuiltinSource({ store, now: () => new Date() });
    const report = await source.query(
      [
        { flag: FLAG, since },
        { flag: 'booking_agent_enabled', since },
        { flag: 'session_agent_enabled', since },
      ],
      new AbortController().signal,
    );
    expect(report.observations).toEqual([
      { flag: FLAG, status: 'ok', unit: 'users', treatment: { total: 10, errors: 4 }, control: { total: 5, errors: 1 } },
      { flag: 'booking_agent_enabled', status: 'ok', unit: 'users', treatment: { total: 1, errors: 0 } },
      { flag: 'session_agent_enabled', status: 'no_data', reason: 'empty', detail: expect.stringMatching(/^no flag-on users reported since \d{4}-\d\d-\d\dT/) },
    ]);
    // The user seen two hours ago counts from an earlier since.
    const earlier = await source.query([{ flag: FLAG, since: new Date(Date.now() - 2 * 3_600_000) }], new AbortController().signal);
    expect(earlier.observations[0]).toMatchObject({ treatment: { total: 11, errors: 5 } });

    const metrics = await served.metrics.registry.metrics();
    // Accepted over this file: 1 (odd user id) + 1000 (the limit) + 20 here.
    expect(metrics).toMatch(/guardian_exposures_total\{result="accepted"\} 1021\n/);
    expect(metrics).toMatch(/guardian_exposures_total\{result="rejected"\} \d+/);
    expect(metrics).toMatch(/guardian_exposure_requests_total\{status="202"\} \d+/);
    expect(metrics).toMatch(/guardian_exposure_requests_total\{status="401"\} 3/);
  });
});

describe('POST /v1/exposures when it is off, or when the database fails', () => {
  it('answers 404 with how to enable it when GUARDIAN_INGEST_KEY is not set', async () => {
    const db = await createTestPglite();
    const served = await serve(new SqlStore({ sql: db.sql, kind: 'pglite', location: 'memory' }), { ingestKey: undefined });
    try {
      const r = await served.post({ exposures: [exposure('u-1', true)] });
      expect(r.status).toBe(404);
      expect(r.json).toEqual({ error: { code: 'not_found', message: expect.stringContaining('set GUARDIAN_INGEST_KEY') } });
    } finally {
      await served.http.close();
      await db.drop();
    }
  });

  it('answers 503 (retry later) and logs when the store fails; the builtin source reports unavailable, never throws', async () => {
    const store = new SqlStore({ sql: pgSqlClient(new pg.Pool({ connectionString: 'postgres://postgres@127.0.0.1:1/none', connectionTimeoutMillis: 2000 })), kind: 'pg', location: '127.0.0.1:1' });
    const served = await serve(store);
    try {
      const r = await served.post({ exposures: [exposure('u-1', true)] });
      expect(r.status).toBe(503);
      expect(r.headers.get('retry-after')).toBe('5');
      expect(r.json).toEqual({ error: { code: 'unavailable', message: expect.stringContaining('nothing was recorded') } });
      // The first read that fails is which flags exist (before any write).
      expect(served.logs.lines.some((l) => l.level === 'error' && /reading the flags failed|recording exposures failed/.test(l.msg))).toBe(true);
      expect(await served.metrics.registry.metrics()).toMatch(/guardian_exposures_total\{result="failed"\} 1/);
      const report = await createBuiltinSource({ store, now: () => new Date() }).query([{ flag: FLAG, since: new Date(0) }, { flag: 'ai_alpha_users', since: new Date(0) }], new AbortController().signal);
      expect(report.observations.map((o) => (o.status === 'no_data' ? o.reason : o.status))).toEqual(['unavailable', 'unavailable']);
      expect(report.error?.code).toBe('unavailable');
    } finally {
      await served.http.close();
      await store.close();
    }
  });
});

describe('replicas (two guardians, one PostgreSQL database)', () => {
  let db: TestDatabase;
  const stores: SqlStore[] = [];
  const servers: Served[] = [];
  beforeAll(async () => {
    db = await createTestDatabase();
    for (let i = 0; i < 2; i++) {
      const pool = new pg.Pool({ connectionString: db.url, max: 2 });
      pool.on('error', () => {});
      const store = new SqlStore({ sql: pgSqlClient(pool), kind: 'pg', location: db.url });
      stores.push(store);
      servers.push(await serve(store));
    }
  });
  afterAll(async () => {
    for (const s of servers) await s.http.close();
    for (const s of stores) await s.close();
    await db?.drop();
  });

  it('exposures sent to either replica are counted the same by both (counts live in the database)', async () => {
    const since = new Date(Date.now() - 1000);
    const [a, b] = servers as [Served, Served];
    // The same users reach both replicas (a load balancer), concurrently.
    const results = await Promise.all([
      a.post({ exposures: Array.from({ length: 300 }, (_, i) => exposure(`u-${i}`, i % 2 === 0, i % 10 === 0)) }),
      b.post({ exposures: Array.from({ length: 300 }, (_, i) => exposure(`u-${i + 150}`, (i + 150) % 2 === 0, false)) }),
    ]);
    expect(results.map((r) => r.status)).toEqual([202, 202]);
    const counts = await Promise.all(stores.map((s) => createBuiltinSource({ store: s, now: () => new Date() }).query([{ flag: FLAG, since }], new AbortController().signal)));
    expect(counts[0]!.observations).toEqual(counts[1]!.observations);
    // 450 distinct users, half flag-on; errors: every 10th of the first 300.
    expect(counts[0]!.observations[0]).toEqual({ flag: FLAG, status: 'ok', unit: 'users', treatment: { total: 225, errors: 30 }, control: { total: 225, errors: 0 } });
  });
});

describe('POST /v1/exposures: flags that exist, bounded load, refused senders closed (issues 9 and 10)', () => {
  let db: TestDatabase;
  let store: SqlStore;

  beforeAll(async () => {
    db = await createTestPglite();
    store = new SqlStore({ sql: db.sql, kind: 'pglite', location: 'memory' });
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('refuses exposures of a flag that does not exist (400 naming it, nothing stored), and accepts a flag created a moment ago', async () => {
    const served = await serve(store);
    try {
      const r = await served.post({ exposures: [exposure('u-1', true), exposure('u-2', true, false, 'no_such_flag'), exposure('u-3', false, false, 'no_such_flag')] });
      expect(r.status).toBe(400);
      expect(errorOf(r)).toEqual({
        code: 'bad_request',
        message: 'unknown flag(s) "no_such_flag"; nothing was recorded',
        field: 'body.exposures[1].flag',
        issues: [
          { path: 'body.exposures[1].flag', message: 'flag "no_such_flag" does not exist: create it first, or stop reporting it' },
          { path: 'body.exposures[2].flag', message: 'flag "no_such_flag" does not exist: create it first, or stop reporting it' },
        ],
      });
      expect((await db.sql.query<{ n: number }>('select count(*)::int as n from guardian_exposures')).rows[0]?.n).toBe(0);
      // Created after the names were cached: re-read, accepted.
      await db.sql.query("insert into feature_flags (name) values ('brand_new_flag')");
      expect((await served.post({ exposures: [exposure('u-4', true, false, 'brand_new_flag')] })).status).toBe(202);
    } finally {
      await served.http.close();
      await db.sql.query('delete from guardian_exposures');
    }
  });

  it('answers 429 with Retry-After (never 503) beyond the concurrency limit and the memory budget, without reading the body', async () => {
    const gate: Array<() => void> = [];
    let writes = 0;
    const slow = {
      listFlags: () => store.listFlags(),
      recordExposures: async (batch: Parameters<Store['recordExposures']>[0]) => {
        writes += 1;
        await new Promise<void>((r) => gate.push(r));
        return store.recordExposures(batch);
      },
    };
    const served = await serve(slow, { maxConcurrent: 2, memoryBudgetBytes: 1_000 });
    try {
      const first = served.post({ exposures: [exposure('busy-1', true)] });
      await vi.waitFor(() => expect(writes).toBe(1));
      // Over the memory budget (this body alone is ~1.2 KB, and one request is inside).
      const big = await served.post({ exposures: Array.from({ length: 20 }, (_, i) => exposure(`big-${i}`, true)) });
      expect(big.status).toBe(429);
      const second = served.post({ exposures: [exposure('busy-2', true)] });
      await vi.waitFor(() => expect(gate.length).toBeGreaterThanOrEqual(1));
      // Over the concurrency limit (two inside: one writing, one waiting for its turn).
      await vi.waitFor(async () => {
        const third = await served.post({ exposures: [exposure('busy-3', true)] });
        expect(third.status).toBe(429);
        expect(third.headers.get('retry-after')).toBe('2');
        expect(third.headers.get('connection')).toBe('close');
        expect(errorOf(third)).toMatchObject({ code: 'rate_limited', message: expect.stringContaining('retry in 2 s') });
      });
      while (writes < 2 || gate.length > 0) {
        gate.shift()?.();
        await new Promise((r) => setImmediate(r));
      }
      expect((await first).status).toBe(202);
      expect((await second).status).toBe(202);
      const text = await served.metrics.registry.metrics();
      expect(text).toMatch(/guardian_exposure_requests_total\{status="429"\} \d+/);
      expect(text).not.toMatch(/status="503"/);
    } finally {
      for (const g of gate) g();
      await served.http.close();
      await db.sql.query('delete from guardian_exposures');
    }
  });

  it('closes the connection of a refused (401) sender at once, while it is still trickling its body', async () => {
    const served = await serve(store);
    const url = new URL(served.http.url);
    let closed = false;
    let answer = '';
    const socket = connect(Number(url.port), url.hostname);
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => (answer += d));
    socket.on('close', () => (closed = true));
    socket.on('error', () => {});
    await new Promise<void>((r) => socket.once('connect', () => r()));
    socket.write(`POST /v1/exposures HTTP/1.1\r\nHost: ${url.host}\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{"exposures":[`);
    // One byte every 10 ms: a million bytes would take hours.
    const trickle = setInterval(() => {
      if (!socket.destroyed && socket.writable) socket.write(' ');
    }, 10);
    try {
      await vi.waitFor(() => expect(closed).toBe(true), { timeout: 10_000, interval: 20 });
      expect(answer).toMatch(/^HTTP\/1\.1 401 /);
      expect(answer.toLowerCase()).toContain('connection: close');
    } finally {
      clearInterval(trickle);
      socket.destroy();
      await served.http.close();
    }
  });
});
