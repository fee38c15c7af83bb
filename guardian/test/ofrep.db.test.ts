/**
 * OFREP (`/ofrep/v1/...`) through a real HTTP server on a random port with the real store (PGlite,
 * seeded flags): auth, the 404 when it is off, single evaluation equal to the SDK core's
 * `evaluate` (and to SQL `evaluate_flags`) for 1,000 users across the seeded flags, every request
 * error, bulk with ETag/304, the configuration endpoint, the definitions cache (one read per TTL,
 * a rollback visible once the TTL has passed), a failing store (500, never a crash), the
 * OpenFeature OFREP provider end to end, and the daemon serving it when GUARDIAN_OFREP_KEY is set.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { OFREPProvider } from '@openfeature/ofrep-provider';
import { OpenFeature } from '@openfeature/server-sdk';
import { evaluate, type FlagDefinition } from '@rollback-guardian/sdk';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createTestDatabase, createTestPglite, type TestDatabase } from '../../test/helpers/db.ts';
import { startDaemon, type Daemon } from '../src/daemon.ts';
import { createGuardianMetrics, type GuardianMetrics } from '../src/http/metrics.ts';
import { createOfrepRoute, MAX_OFREP_BODY_BYTES, OFREP_CONFIGURATION } from '../src/http/ofrep.ts';
import type { RunningHttpServer } from '../src/http/server.ts';
import { SqlStore } from '../src/store/sql-store.ts';
import { pgSqlClient } from '../src/store/sql.ts';
import type { Flag, Store } from '../src/store/types.ts';
import { linesSink, MemoryLogger as Logs, serveRoute } from './cycle-helpers.ts';

const KEY = 'ofrep-key-0123456789abcdef';
const TARGET = '00000000-0000-4000-8000-00000000a001';

/** The store, counting its `listFlags` reads. */
class CountingStore implements Pick<Store, 'listFlags'> {
  reads = 0;
  readonly #inner: Pick<Store, 'listFlags'>;
  constructor(inner: Pick<Store, 'listFlags'>) {
    this.#inner = inner;
  }
  listFlags(): Promise<Flag[]> {
    this.reads += 1;
    return this.#inner.listFlags();
  }
}

type Auth = { bearer: string } | { apiKey: string } | null;

interface CallInit {
  readonly method?: string;
  readonly body?: unknown;
  /** Raw body text (wins over `body`). */
  readonly raw?: string;
  /** Content-Type; '' sends none. Default application/json. */
  readonly type?: string;
  readonly auth?: Auth;
  readonly headers?: Record<string, string>;
}

interface Answer {
  readonly status: number;
  readonly text: string;
  readonly json: Record<string, unknown>;
  readonly headers: Headers;
}

interface Served {
  readonly http: RunningHttpServer;
  readonly metrics: GuardianMetrics;
  readonly logs: Logs;
  readonly store: CountingStore;
  call(path: string, init?: CallInit): Promise<Answer>;
  /** Single evaluation of `flag` for `user`. */
  evaluateFlag(flag: string, user: unknown, auth?: Auth): Promise<Answer>;
}

async function serve(store: Pick<Store, 'listFlags'>, opts: { apiKey?: string | undefined; cacheTtlMs?: number; now?: () => Date } = {}): Promise<Served> {
  const metrics = createGuardianMetrics();
  const logs = new Logs();
  const counting = new CountingStore(store);
  const apiKey = 'apiKey' in opts ? opts.apiKey : KEY;
  const route = createOfrepRoute({
    store: counting,
    apiKey,
    logger: logs,
    metrics,
    ...(opts.cacheTtlMs !== undefined ? { cacheTtlMs: opts.cacheTtlMs } : {}),
    ...(opts.now ? { now: opts.now } : {}),
  });
  const http = await serveRoute(route, { metrics, logger: logs });
  const call: Served['call'] = async (path, init = {}) => {
    const method = init.method ?? 'POST';
    const headers: Record<string, string> = { ...init.headers };
    const hasBody = method !== 'GET' && method !== 'HEAD';
    if (hasBody && init.type !== '') headers['content-type'] = init.type ?? 'application/json';
    const auth = init.auth === undefined ? { bearer: KEY } : init.auth;
    if (auth && 'bearer' in auth) headers['authorization'] = `Bearer ${auth.bearer}`;
    if (auth && 'apiKey' in auth) headers['x-api-key'] = auth.apiKey;
    const res = await fetch(`${http.url}${path}`, { method, headers, ...(hasBody ? { body: init.raw ?? JSON.stringify(init.body ?? {}) } : {}) });
    const text = await res.text();
    let json: Record<string, unknown> = {};
    if (text !== '' && (res.headers.get('content-type') ?? '').startsWith('application/json')) json = JSON.parse(text) as Record<string, unknown>;
    return { status: res.status, text, json, headers: res.headers };
  };
  const evaluateFlag: Served['evaluateFlag'] = (flag, user, auth) =>
    call(`/ofrep/v1/evaluate/flags/${encodeURIComponent(flag)}`, { body: { context: { targetingKey: user, plan: 'pro' } }, ...(auth !== undefined ? { auth } : {}) });
  return { http, metrics, logs, store: counting, call, evaluateFlag };
}

function definitionOf(flag: Flag): FlagDefinition {
  return { name: flag.name, enabled: flag.enabled, rolloutPercentage: flag.rolloutPercentage, bucketGroup: flag.bucketGroup, targets: flag.targets, version: flag.version };
}

/** 1,000 user ids: the seeded target, UUID-like, plain, and non-ASCII ones. */
const USERS: readonly string[] = [
  TARGET,
  'user-42',
  'Zoë',
  'ユーザー-7',
  '🙂-user',
  ...Array.from({ length: 995 }, (_, i) => (i % 3 === 0 ? `00000000-0000-4000-8000-${String(i).padStart(12, '0')}` : i % 3 === 1 ? `user-${i}` : `ü-${i}-€`)),
];

async function inBatches<T, R>(items: readonly T[], size: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += size) out.push(...(await Promise.all(items.slice(i, i + size).map(fn))));
  return out;
}

describe('OFREP on the guardian (PGlite store, seeded flags)', () => {
  let db: TestDatabase;
  let store: SqlStore;
  let served: Served;
  let flags: Flag[];

  beforeAll(async () => {
    db = await createTestPglite();
    store = new SqlStore({ sql: db.sql, kind: 'pglite', location: 'memory' });
    // A disabled flag next to the seeded 10/50/100/25/10/50/0 % ones (targets on three of them).
    await store.setFlag('session_agent_enabled', { enabled: false }, 'test');
    flags = await store.listFlags();
    served = await serve(store);
  });
  afterAll(async () => {
    await served?.http.close();
    await db?.drop();
  });

  it('answers 404 on every OFREP path, saying how to enable it, when GUARDIAN_OFREP_KEY is not set', async () => {
    const off = await serve(store, { apiKey: undefined });
    try {
      for (const [path, method] of [
        ['/ofrep/v1/evaluate/flags/ai_beta_users', 'POST'],
        ['/ofrep/v1/evaluate/flags', 'POST'],
        ['/ofrep/v1/configuration', 'GET'],
        ['/ofrep', 'GET'],
      ] as const) {
        const r = await off.call(path, { method, body: { context: { targetingKey: 'u' } } });
        expect(r.status, path).toBe(404);
        expect(r.json).toEqual({ error: { code: 'not_found', message: expect.stringContaining('set GUARDIAN_OFREP_KEY') } });
      }
      expect(off.store.reads).toBe(0);
      // Other paths are left to the server (its own 404).
      expect((await off.call('/ofrepx', { method: 'GET' })).json).toEqual({ error: { code: 'not_found', message: expect.stringContaining('no route for GET /ofrepx') } });
    } finally {
      await off.http.close();
    }
  });

  it('refuses no key (401) and a wrong key (403); accepts the key as Bearer and as X-API-Key', async () => {
    const none = await served.evaluateFlag('ai_beta_users', 'u-1', null);
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toMatch(/^Bearer/);
    // Outside what OFREP specifies (401/403 have no body there): the guardian's one error shape, connection closed.
    expect(none.json).toEqual({ error: { code: 'unauthorized', message: expect.stringMatching(/missing credentials/) } });
    expect(none.headers.get('connection')).toBe('close');
    const wrongBearer = await served.evaluateFlag('ai_beta_users', 'u-1', { bearer: `${KEY}x` });
    expect(wrongBearer.status).toBe(403);
    expect(wrongBearer.json).toEqual({ error: { code: 'forbidden', message: expect.stringMatching(/wrong OFREP key/) } });
    expect((await served.evaluateFlag('ai_beta_users', 'u-1', { apiKey: 'short' })).status).toBe(403);
    expect((await served.call('/ofrep/v1/configuration', { method: 'GET', auth: null })).status).toBe(401);
    expect((await served.call('/ofrep/v1/evaluate/flags', { auth: { apiKey: 'nope-nope-nope-nope' } })).status).toBe(403);
    // Nothing was read for a refused request, and the key never appears in an answer.
    expect(served.store.reads).toBe(0);
    expect(none.text + wrongBearer.text).not.toContain(KEY);

    const bearer = await served.evaluateFlag('ai_beta_users', 'u-1', { bearer: KEY });
    expect(bearer.status).toBe(200);
    const apiKey = await served.evaluateFlag('ai_beta_users', 'u-1', { apiKey: KEY });
    expect(apiKey.status).toBe(200);
    expect(apiKey.json).toEqual(bearer.json);
    const text = await served.metrics.registry.metrics();
    expect(text).toMatch(/guardian_ofrep_requests_total\{endpoint="evaluate",status="401"\} 1/);
    expect(text).toMatch(/guardian_ofrep_requests_total\{endpoint="evaluate",status="403"\} 2/);
  });

  it('gives exactly the SDK core\'s answer (and SQL evaluate_flags\') for 1,000 users across the seeded flags', async () => {
    expect(flags.map((f) => `${f.name}:${f.enabled ? f.rolloutPercentage : 'off'}`).sort()).toEqual([
      'ai_alpha_users:10',
      'ai_beta_users:50',
      'ai_ga_enabled:100',
      'booking_agent_enabled:25',
      'followup_agent_enabled:0',
      'insights_agent_enabled:50',
      'session_agent_enabled:off',
    ]);
    const reasons = new Map<string, number>();
    for (const flag of flags) {
      const def = definitionOf(flag);
      const answers = await inBatches(USERS, 25, async (user) => ({ user, r: await served.evaluateFlag(flag.name, user) }));
      let on = 0;
      for (const { user, r } of answers) {
        const expected = evaluate(def, user);
        expect(r.status, `${flag.name} ${user}`).toBe(200);
        expect(r.json, `${flag.name} ${user}`).toEqual({
          key: flag.name,
          value: expected.value,
          reason: expected.reason,
          variant: expected.value ? 'on' : 'off',
          metadata: { version: flag.version, guardState: 'watching' },
          cacheable: false,
        });
        reasons.set(`${expected.reason}:${expected.value}`, (reasons.get(`${expected.reason}:${expected.value}`) ?? 0) + 1);
        if (expected.value) on += 1;
      }
      if (!flag.enabled) expect(on, flag.name).toBe(0);
      if (flag.enabled && flag.rolloutPercentage === 100) expect(on, flag.name).toBe(USERS.length);
      if (flag.name === 'followup_agent_enabled') expect(on, 'only its target').toBe(1);
      if (flag.rolloutPercentage > 0 && flag.rolloutPercentage < 100 && flag.enabled) {
        // Roughly the percentage of 1,000 users (the exact cohort is the core's, checked above).
        expect(Math.abs(on / USERS.length - flag.rolloutPercentage / 100), flag.name).toBeLessThan(0.06);
      }
    }
    expect([...reasons.keys()].sort()).toEqual(['DISABLED:false', 'SPLIT:false', 'SPLIT:true', 'TARGETING_MATCH:true']);

    // And the database's own function agrees with the bulk answer for a sample of users.
    for (const user of USERS.slice(0, 60)) {
      const bulk = await served.call('/ofrep/v1/evaluate/flags', { body: { context: { targetingKey: user } } });
      const { rows } = await db.sql.query<{ name: string; value: boolean; reason: string }>('select name, value, reason from public.evaluate_flags($1)', [user]);
      expect((bulk.json['flags'] as Array<{ key: string; value: boolean; reason: string }>).map((f) => [f.key, f.value, f.reason]), user).toEqual(rows.map((r) => [r.name, r.value, r.reason]));
    }
  }, 120_000);

  it('answers 404 FLAG_NOT_FOUND for an unknown flag, echoing the key safely JSON-encoded', async () => {
    const reads = served.store.reads;
    const unknown = await served.evaluateFlag('no_such_flag', 'u-1');
    expect(unknown.status).toBe(404);
    expect(unknown.json).toEqual({ key: 'no_such_flag', errorCode: 'FLAG_NOT_FOUND', errorDetails: 'flag "no_such_flag" does not exist' });
    const weird = '"><script>alert(1)</script>';
    const bad = await served.evaluateFlag(weird, 'u-1');
    expect(bad.status).toBe(404);
    expect(bad.headers.get('content-type')).toMatch(/^application\/json/);
    expect(bad.headers.get('x-content-type-options')).toBe('nosniff');
    expect(bad.json).toMatchObject({ key: weird, errorCode: 'FLAG_NOT_FOUND' });
    expect(bad.text).toContain(JSON.stringify(weird));
    // An undecodable escape is echoed as sent.
    const undecodable = await served.call('/ofrep/v1/evaluate/flags/%E0%A4%A', { body: { context: { targetingKey: 'u' } } });
    expect(undecodable.json).toMatchObject({ key: '%E0%A4%A', errorCode: 'FLAG_NOT_FOUND' });
    expect((await served.evaluateFlag('Ai_Beta_Users', 'u-1')).json['errorCode']).toBe('FLAG_NOT_FOUND');
    // Keys that cannot be flag names need no database read.
    expect(served.store.reads - reads).toBeLessThanOrEqual(1);
  });

  it('refuses a missing or invalid targetingKey, bad JSON, a bad context, a wrong content type, a too large body and a wrong method', async () => {
    const path = '/ofrep/v1/evaluate/flags/ai_beta_users';
    for (const [body, what] of [
      [{}, 'no context'],
      [{ context: {} }, 'no targetingKey'],
      [{ context: { targetingKey: 42 } }, 'a number'],
      [{ context: { targetingKey: '' } }, 'empty'],
      [{ context: { targetingKey: null } }, 'null'],
      [{ context: { targetingKey: ['u'] } }, 'an array'],
    ] as const) {
      const r = await served.call(path, { body });
      expect(r.status, what).toBe(400);
      expect(r.json, what).toMatchObject({ key: 'ai_beta_users', errorCode: 'TARGETING_KEY_MISSING', errorDetails: expect.stringContaining('targetingKey') });
    }
    const noBody = await served.call(path, { raw: '', type: '' });
    expect(noBody.json['errorCode']).toBe('TARGETING_KEY_MISSING');

    const badJson = await served.call(path, { raw: '{"context": {"targetingKey": "u"' });
    expect(badJson.status).toBe(400);
    expect(badJson.json).toMatchObject({ key: 'ai_beta_users', errorCode: 'PARSE_ERROR', errorDetails: expect.stringContaining('not valid JSON') });
    expect((await served.call(path, { raw: '[1,2]' })).json).toMatchObject({ errorCode: 'PARSE_ERROR', errorDetails: expect.stringContaining('got array') });
    for (const context of ['user-1', [1], null, 7]) {
      const r = await served.call(path, { body: { context } });
      expect(r.status).toBe(400);
      expect(r.json['errorCode']).toBe('INVALID_CONTEXT');
    }

    const text = await served.call(path, { raw: 'targetingKey=u', type: 'text/plain' });
    expect(text.status).toBe(415);
    expect(text.json).toEqual({ error: { code: 'unsupported_media_type', message: expect.stringMatching(/Content-Type: application\/json/) } });
    expect((await served.call(path, { raw: '{"context":{"targetingKey":"u"}}', type: '' })).status).toBe(415);
    // A charset parameter is fine.
    expect((await served.call(path, { body: { context: { targetingKey: 'u' } }, type: 'application/json; charset=utf-8' })).status).toBe(200);

    const big = await served.call(path, { body: { context: { targetingKey: 'u', padding: 'x'.repeat(MAX_OFREP_BODY_BYTES) } } });
    expect(big.status).toBe(413);
    expect(big.json).toEqual({ error: { code: 'payload_too_large', message: expect.stringContaining('64 KB') } });
    const bulkBig = await served.call('/ofrep/v1/evaluate/flags', { body: { context: { targetingKey: 'u', padding: 'x'.repeat(MAX_OFREP_BODY_BYTES) } } });
    expect(bulkBig.status).toBe(413);
    // Just under the limit is accepted.
    const fits = await served.call(path, { body: { context: { targetingKey: 'u', padding: 'x'.repeat(MAX_OFREP_BODY_BYTES - 100) } } });
    expect(fits.status).toBe(200);

    const get = await served.call(path, { method: 'GET' });
    expect(get.status).toBe(405);
    expect(get.headers.get('allow')).toBe('POST');
    expect((await served.call('/ofrep/v1/configuration', { method: 'POST' })).headers.get('allow')).toBe('GET, HEAD');
    expect((await served.call('/ofrep/v2/whatever', { method: 'GET' })).status).toBe(404);

    const text2 = await served.metrics.registry.metrics();
    expect(text2).toMatch(/guardian_ofrep_requests_total\{endpoint="evaluate",status="400"\} \d+/);
    expect(text2).toMatch(/guardian_ofrep_requests_total\{endpoint="evaluate",status="415"\} 2/);
    expect(text2).toMatch(/guardian_ofrep_requests_total\{endpoint="evaluate",status="413"\} 1/);
    expect(text2).toMatch(/guardian_ofrep_requests_total\{endpoint="bulk",status="413"\} 1/);
  });

  it('bulk: every flag for the user with an ETag of the body; If-None-Match with it answers 304 without a body', async () => {
    const user = TARGET;
    const r = await served.call('/ofrep/v1/evaluate/flags', { body: { context: { targetingKey: user } } });
    expect(r.status).toBe(200);
    const items = r.json['flags'] as Array<Record<string, unknown>>;
    expect(items.map((f) => f['key'])).toEqual(flags.map((f) => f.name).sort());
    for (const item of items) {
      const single = await served.evaluateFlag(item['key'] as string, user);
      expect({ ...item, cacheable: false }).toEqual(single.json);
    }
    expect(items.find((f) => f['key'] === 'followup_agent_enabled')).toMatchObject({ value: true, reason: 'TARGETING_MATCH' });
    expect(items.find((f) => f['key'] === 'session_agent_enabled')).toMatchObject({ value: false, reason: 'DISABLED', variant: 'off' });
    const etag = r.headers.get('etag');
    expect(etag).toMatch(/^"[A-Za-z0-9_-]{43}"$/);

    const same = await served.call('/ofrep/v1/evaluate/flags', { body: { context: { targetingKey: user } }, headers: { 'if-none-match': etag! } });
    expect(same.status).toBe(304);
    expect(same.text).toBe('');
    expect(same.headers.get('etag')).toBe(etag);
    // Weak form and lists match too; another tag does not.
    expect((await served.call('/ofrep/v1/evaluate/flags', { body: { context: { targetingKey: user } }, headers: { 'if-none-match': `"other", W/${etag!}` } })).status).toBe(304);
    expect((await served.call('/ofrep/v1/evaluate/flags', { body: { context: { targetingKey: user } }, headers: { 'if-none-match': '"other"' } })).status).toBe(200);
    // Another user gets other values, so another tag.
    const other = await served.call('/ofrep/v1/evaluate/flags', { body: { context: { targetingKey: 'user-42' } }, headers: { 'if-none-match': etag! } });
    expect(other.status).toBe(200);
    expect(other.headers.get('etag')).not.toBe(etag);

    const missing = await served.call('/ofrep/v1/evaluate/flags', { body: { context: { plan: 'pro' } } });
    expect(missing.status).toBe(400);
    expect(missing.json).toEqual({ errorCode: 'TARGETING_KEY_MISSING', errorDetails: expect.any(String) });
    const parse = await served.call('/ofrep/v1/evaluate/flags', { raw: 'nope' });
    expect(parse.status).toBe(400);
    expect(parse.json['errorCode']).toBe('PARSE_ERROR');
    expect(parse.json['key']).toBeUndefined();
  });

  it('configuration: the capabilities, with an ETag and 304', async () => {
    const r = await served.call('/ofrep/v1/configuration', { method: 'GET' });
    expect(r.status).toBe(200);
    expect(r.json).toEqual({
      name: 'rollback-guardian',
      capabilities: { cacheInvalidation: { polling: { enabled: true, minPollingIntervalMs: 1000 } }, flagEvaluation: { supportedTypes: ['boolean'] } },
    });
    expect(r.json).toEqual(OFREP_CONFIGURATION);
    const etag = r.headers.get('etag')!;
    expect(etag).toMatch(/^".+"$/);
    const again = await served.call('/ofrep/v1/configuration', { method: 'GET', headers: { 'if-none-match': etag } });
    expect(again.status).toBe(304);
    expect(again.text).toBe('');
    const head = await served.call('/ofrep/v1/configuration', { method: 'HEAD', auth: { apiKey: KEY } });
    expect(head.status).toBe(200);
    expect(head.headers.get('etag')).toBe(etag);
  });

  it('reads the flags once per TTL for a burst, and shows a rollback once the TTL has passed', async () => {
    let clock = Date.parse('2026-03-01T12:00:00Z');
    const cached = await serve(store, { cacheTtlMs: 1000, now: () => new Date(clock) });
    try {
      const flag = 'ai_beta_users';
      const before = (await store.getFlag(flag))!;
      const users = USERS.slice(0, 100);
      const first = await Promise.all(users.map((u) => cached.evaluateFlag(flag, u)));
      expect(first.every((r) => r.status === 200)).toBe(true);
      expect(cached.store.reads).toBe(1);
      expect(first.filter((r) => r.json['value'] === true).length).toBeGreaterThan(0);

      await store.rollback({ flag, action: 'disable', actor: 'test', idempotencyKey: 'ofrep-test-rollback', channels: [], kind: 'manual_rollback', reason: 'ofrep cache test' });
      // Within the TTL: the cached definitions (no read).
      clock += 999;
      const stale = await cached.evaluateFlag(flag, users.find((_, i) => first[i]!.json['value'] === true)!);
      expect(stale.json).toMatchObject({ value: true, metadata: { version: before.version } });
      expect(cached.store.reads).toBe(1);
      // TTL passed: one fresh read, everyone is off, and the metadata says why.
      clock += 1;
      const after = await Promise.all(users.map((u) => cached.evaluateFlag(flag, u)));
      expect(cached.store.reads).toBe(2);
      const now = (await store.getFlag(flag))!;
      expect(now.version).toBeGreaterThan(before.version);
      for (const r of after) expect(r.json).toMatchObject({ value: false, reason: 'DISABLED', variant: 'off', metadata: { version: now.version, guardState: 'rolled_back' } });
      // The bulk answer (and so its ETag) changes with the rollback.
      const bulk = await cached.call('/ofrep/v1/evaluate/flags', { body: { context: { targetingKey: users[0] } } });
      expect((bulk.json['flags'] as Array<Record<string, unknown>>).find((f) => f['key'] === flag)).toMatchObject({ value: false, reason: 'DISABLED' });
    } finally {
      await cached.http.close();
      await store.restore({ target: 'ai_beta_users', actor: 'test', idempotencyKey: 'ofrep-test-restore' });
    }
    expect(() => createOfrepRoute({ store, apiKey: KEY, logger: new Logs(), cacheTtlMs: 5_000 })).toThrow(/cacheTtlMs must be between 0 and 1000/);
  });

  it('answers 500 { errorDetails } when the store fails, logs it once per read, and keeps serving', async () => {
    const pool = new pg.Pool({ connectionString: 'postgres://postgres@127.0.0.1:1/none', connectionTimeoutMillis: 2000 });
    pool.on('error', () => {});
    const broken = new SqlStore({ sql: pgSqlClient(pool), kind: 'pg', location: '127.0.0.1:1' });
    let clock = 0;
    const failing = await serve(broken, { now: () => new Date(clock) });
    try {
      const single = await failing.evaluateFlag('ai_beta_users', 'u-1');
      expect(single.status).toBe(500);
      expect(single.json).toEqual({ errorDetails: expect.stringContaining('could not read the flag definitions') });
      expect(single.text).not.toContain('127.0.0.1');
      const bulk = await failing.call('/ofrep/v1/evaluate/flags', { body: { context: { targetingKey: 'u-1' } } });
      expect(bulk.status).toBe(500);
      expect(bulk.json).toEqual({ errorDetails: expect.any(String) });
      // The failed read is reused for the TTL: the database is not hammered.
      expect(failing.store.reads).toBe(1);
      clock += 1000;
      expect((await failing.evaluateFlag('ai_beta_users', 'u-1')).status).toBe(500);
      expect(failing.store.reads).toBe(2);
      expect(failing.logs.lines.filter((l) => l.level === 'error' && /reading the flags failed/.test(l.msg))).toHaveLength(2);
      // Still up.
      expect((await failing.call('/healthz', { method: 'GET' })).status).toBe(200);
      expect((await failing.call('/ofrep/v1/configuration', { method: 'GET' })).status).toBe(200);
      expect(await failing.metrics.registry.metrics()).toMatch(/guardian_ofrep_requests_total\{endpoint="evaluate",status="500"\} 2/);
    } finally {
      await failing.http.close();
      await broken.close();
    }
  });

  it('the OpenFeature OFREP provider (@openfeature/ofrep-provider) evaluates the flags end to end', async () => {
    const provider = new OFREPProvider({ baseUrl: served.http.url, headers: [['X-API-Key', KEY]] });
    await OpenFeature.setProviderAndWait('ofrep-test', provider);
    try {
      const client = OpenFeature.getClient('ofrep-test');
      const byName = new Map(flags.map((f) => [f.name, f]));
      for (const user of USERS.slice(0, 40)) {
        for (const name of ['ai_alpha_users', 'ai_ga_enabled', 'followup_agent_enabled', 'session_agent_enabled']) {
          const expected = evaluate(definitionOf(byName.get(name)!), user);
          const details = await client.getBooleanDetails(name, !expected.value, { targetingKey: user });
          expect(details, `${name} ${user}`).toMatchObject({ value: expected.value, reason: expected.reason, variant: expected.value ? 'on' : 'off' });
          expect(details.errorCode).toBeUndefined();
          expect(details.flagMetadata).toMatchObject({ version: byName.get(name)!.version });
        }
      }
      const unknown = await client.getBooleanDetails('no_such_flag', true, { targetingKey: 'u-1' });
      expect(unknown).toMatchObject({ value: true, reason: 'ERROR', errorCode: 'FLAG_NOT_FOUND' });
      const noKey = await client.getBooleanDetails('ai_beta_users', true, {});
      expect(noKey).toMatchObject({ value: true, reason: 'ERROR', errorCode: 'TARGETING_KEY_MISSING' });
    } finally {
      await OpenFeature.clearProviders();
    }
  });
});

describe('guardian start with GUARDIAN_OFREP_KEY (real PostgreSQL)', () => {
  let db: TestDatabase;
  let dir: string;
  let daemon: Daemon | undefined;
  const logLines: string[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
    dir = mkdtempSync(join(tmpdir(), 'guardian-ofrep-'));
    writeFileSync(
      join(dir, 'rules.yaml'),
      'interval: 1m\nrules:\n  - id: beta-builtin\n    flags: [ai_beta_users]\n    source: builtin\n    condition: { absolute: { error_rate_above: 0.05 } }\n    action: notify_only\n',
    );
  });
  afterAll(async () => {
    await daemon?.stop();
    await db?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves OFREP next to the other routes, says so in the banner, counts requests and never logs the key', async () => {
    const banner: string[] = [];
    daemon = await startDaemon({
      env: { DATABASE_URL: db.url, RULES_FILE: join(dir, 'rules.yaml'), PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'debug', GUARDIAN_OFREP_KEY: KEY },
      stdout: (t) => void banner.push(t),
      logDestination: linesSink(logLines),
      watchRules: false,
    });
    const url = daemon.http.url;
    expect(banner.join('')).toContain(`ofrep:   OpenFeature remote evaluation at POST ${url}/ofrep/v1/evaluate/flags/{key}`);
    const flag = (await daemon.parts.store.getFlag('ai_beta_users'))!;
    const res = await fetch(`${url}/ofrep/v1/evaluate/flags/ai_beta_users`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': KEY },
      body: JSON.stringify({ context: { targetingKey: 'user-42' } }),
    });
    expect(res.status).toBe(200);
    const expected = evaluate(definitionOf(flag), 'user-42');
    expect(await res.json()).toMatchObject({ key: 'ai_beta_users', value: expected.value, reason: 'SPLIT', metadata: { version: flag.version } });
    expect((await fetch(`${url}/ofrep/v1/configuration`, { headers: { authorization: 'Bearer wrong-key-0123456789' } })).status).toBe(403);
    expect((await fetch(`${url}/v1/exposures`, { method: 'POST' })).status).toBe(404); // ingestion stays off
    expect(await (await fetch(`${url}/metrics`)).text()).toMatch(/guardian_ofrep_requests_total\{endpoint="evaluate",status="200"\} 1/);
    await daemon.stop();
    daemon = undefined;
    expect(logLines.length).toBeGreaterThan(0);
    expect(logLines.join('')).not.toContain(KEY);
  });
});
