import { readFileSync } from 'node:fs';
import nock from 'nock';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildPosthogQuery, chunkFlags, createPosthogSource, hogqlString, indexRows, MAX_EXCLUDED_USERS, MAX_QUERY_BYTES } from '../src/sources/posthog.ts';
import type { FlagObservation, SourceDeps, SourceLogger } from '../src/sources/types.ts';
import { posthogQueryAnswer } from './posthog-answer.ts';

const fixture = (name: string): unknown => JSON.parse(readFileSync(new URL(`fixtures/posthog/${name}`, import.meta.url), 'utf8')) as unknown;
const HOST = 'https://us.posthog.com';
const NOW = new Date('2026-01-01T12:00:00Z');
const FLAGS = [
  { flag: 'booking_agent_enabled', since: new Date('2026-01-01T11:30:00Z') },
  { flag: 'ai_beta_users', since: new Date('2026-01-01T11:50:00Z') },
];

function setup(now = NOW, fetchImpl: typeof fetch = globalThis.fetch) {
  const logs: { level: string; msg: string | undefined }[] = [];
  const sleeps: number[] = [];
  const clock = { now };
  const logger: SourceLogger = {
    debug: (_o, msg) => logs.push({ level: 'debug', msg }),
    info: (_o, msg) => logs.push({ level: 'info', msg }),
    warn: (_o, msg) => logs.push({ level: 'warn', msg }),
    error: (_o, msg) => logs.push({ level: 'error', msg }),
  };
  const deps: SourceDeps = { fetch: fetchImpl, now: () => clock.now, sleep: async (ms) => void sleeps.push(ms), logger };
  const source = createPosthogSource({ host: HOST, project_id: '12345', api_key: 'phx_test_key', retry: { retries: 2, backoffMs: 500, timeoutMs: 5_000 } }, deps);
  return { source, logs, sleeps, clock };
}

const expectedBody = () => ({ query: { kind: 'HogQLQuery', query: buildPosthogQuery(FLAGS) }, name: 'guardian-flag-errors', refresh: 'force_blocking' });
const scope = () =>
  nock(HOST, { reqheaders: { authorization: 'Bearer phx_test_key', 'content-type': 'application/json' } }).post('/api/projects/12345/query/', (body: unknown) => {
    expect(body).toEqual(expectedBody());
    return true;
  });

const reasons = (obs: readonly FlagObservation[]) => obs.map((o) => (o.status === 'no_data' ? o.reason : 'ok'));

beforeAll(() => {
  nock.disableNetConnect();
});
afterEach(() => {
  expect(nock.pendingMocks()).toEqual([]);
  nock.cleanAll();
});

describe('PostHog HogQL query', () => {
  it('one query for all flags: arrayJoin over quoted keys, multiIf per flag property and per-flag start', () => {
    const q = buildPosthogQuery(FLAGS);
    expect(q).toContain("arrayJoin(['booking_agent_enabled', 'ai_beta_users']) AS flag");
    expect(q).toContain("flag = 'booking_agent_enabled', properties['$feature/booking_agent_enabled']");
    expect(q).toContain("uniqIf(distinct_id, event = '$exception') AS error_users");
    expect(q).toContain("WHERE timestamp >= toDateTime('2026-01-01 11:30:00', 'UTC')");
    expect(q).toContain("flag = 'ai_beta_users', timestamp >= toDateTime('2026-01-01 11:50:00', 'UTC')");
    expect(q).toContain('GROUP BY flag, variant');
  });

  it('refuses anything that is not a flag name (no injection) and escapes string literals', () => {
    expect(() => buildPosthogQuery([{ flag: "x') OR 1=1 --", since: NOW }])).toThrow(/not a valid flag name/);
    expect(hogqlString("it's \\ fine")).toBe("'it\\'s \\\\ fine'");
  });
});

describe('PostHog query: target-list users are left out (picked, not randomised)', () => {
  it("adds distinct_id NOT IN (…) to that flag's condition only, quoted, deduplicated and sorted", () => {
    const q = buildPosthogQuery([
      { flag: 'ai_alpha_users', since: new Date('2026-01-01T11:30:00Z'), excludeUsers: ['staff-2', "o'brien", 'staff-2', "x') OR 1=1 --"] },
      { flag: 'ai_beta_users', since: new Date('2026-01-01T11:50:00Z'), excludeUsers: [] },
    ]);
    expect(q).toContain(
      "flag = 'ai_alpha_users', timestamp >= toDateTime('2026-01-01 11:30:00', 'UTC') AND distinct_id NOT IN ('o\\'brien', 'staff-2', 'x\\') OR 1=1 --'), flag = 'ai_beta_users', timestamp >= toDateTime('2026-01-01 11:50:00', 'UTC'), false)",
    );
  });

  it(`leaves out at most ${MAX_EXCLUDED_USERS} per flag and says so in the log`, async () => {
    const many = Array.from({ length: MAX_EXCLUDED_USERS + 5 }, (_, i) => `u-${String(i).padStart(5, '0')}`);
    const q = buildPosthogQuery([{ flag: 'ai_alpha_users', since: NOW, excludeUsers: many }]);
    expect(q.match(/'u-\d{5}'/g)).toHaveLength(MAX_EXCLUDED_USERS);
    const { source, logs } = setup();
    nock(HOST)
      .post('/api/projects/12345/query/', (body: { query: { query: string } }) => body.query.query.includes("'u-00999'") && !body.query.query.includes("'u-01000'"))
      .reply(200, { results: [], columns: ['flag', 'variant', 'users', 'error_users'], types: [], hasMore: false });
    await source.query([{ flag: 'ai_alpha_users', since: NOW, excludeUsers: many }], new AbortController().signal);
    expect(logs.some((l) => l.level === 'warn' && /more than 1000 target-list users/.test(l.msg ?? ''))).toBe(true);
  });
});

describe('PostHog source', () => {
  it('posts the documented request and parses the response by column names', async () => {
    const { source } = setup();
    scope().reply(200, fixture('guardian-flag-errors-200.json') as nock.Body);
    const report = await source.query(FLAGS, new AbortController().signal);
    expect(report.requests).toBe(1);
    expect(report.error).toBeUndefined();
    expect(report.observations).toEqual([
      { flag: 'booking_agent_enabled', status: 'ok', unit: 'users', treatment: { total: 812, errors: 9 }, control: { total: 790, errors: 7 } },
      { flag: 'ai_beta_users', status: 'ok', unit: 'users', treatment: { total: 430, errors: 41 } },
    ]);
  });

  it('bounds each flag by the lookback window', async () => {
    const logs: string[] = [];
    const logger: SourceLogger = { debug: () => {}, info: () => {}, warn: (_o, m) => void logs.push(m ?? ''), error: (_o, m) => void logs.push(m ?? '') };
    const source = createPosthogSource({ host: HOST, project_id: '12345', api_key: 'k', lookbackMs: 15 * 60_000 }, { fetch, now: () => NOW, sleep: async () => {}, logger });
    nock(HOST)
      .post('/api/projects/12345/query/', (body: { query: { query: string } }) => body.query.query.includes("flag = 'booking_agent_enabled', timestamp >= toDateTime('2026-01-01 11:45:00', 'UTC')"))
      .reply(200, { columns: ['flag', 'variant', 'users', 'error_users'], types: [], results: [], hasMore: false });
    const report = await source.query(FLAGS, new AbortController().signal);
    expect(reasons(report.observations)).toEqual(['empty', 'empty']);
  });

  it('empty results → no_data "empty" (the minimal mock body too)', async () => {
    const { source } = setup();
    scope().reply(200, fixture('posthog-test-hogql-200-empty.mockbody.json') as nock.Body);
    expect(reasons((await source.query(FLAGS, new AbortController().signal)).observations)).toEqual(['empty', 'empty']);
  });

  it('429 with Retry-After: no data, and no query until the wait is over', async () => {
    const { source, clock } = setup();
    scope().reply(429, fixture('posthog-exceptionshog-429-throttled.json') as nock.Body, { 'Retry-After': '100' });
    const first = await source.query(FLAGS, new AbortController().signal);
    expect(reasons(first.observations)).toEqual(['rate_limited', 'rate_limited']);
    expect(first.error?.code).toBe('SOURCE_RATE_LIMITED');
    clock.now = new Date(NOW.getTime() + 99_000);
    const second = await source.query(FLAGS, new AbortController().signal); // nock would fail on an unexpected request
    expect(second.requests).toBe(0);
    expect(reasons(second.observations)).toEqual(['rate_limited', 'rate_limited']);
    clock.now = new Date(NOW.getTime() + 101_000);
    scope().reply(200, fixture('guardian-flag-errors-200.json') as nock.Body);
    expect(reasons((await source.query(FLAGS, new AbortController().signal)).observations)).toEqual(['ok', 'ok']);
  });

  it('429 without Retry-After (concurrency limit): no data this cycle, asks again next cycle', async () => {
    const { source, clock } = setup();
    scope().reply(429, fixture('posthog-test-query-429-concurrency.reconstructed.json') as nock.Body);
    const first = await source.query(FLAGS, new AbortController().signal);
    expect(reasons(first.observations)).toEqual(['rate_limited', 'rate_limited']);
    clock.now = new Date(NOW.getTime() + 60_000);
    scope().reply(429, fixture('posthog-exceptionshog-429-throttled-nowait.json') as nock.Body);
    expect(reasons((await source.query(FLAGS, new AbortController().signal)).observations)).toEqual(['rate_limited', 'rate_limited']);
  });

  it('keeps a client-side budget of 240 queries per minute', async () => {
    let calls = 0;
    const fake: typeof fetch = async () => {
      calls++;
      return new Response(JSON.stringify({ columns: ['flag', 'variant', 'users', 'error_users'], results: [], hasMore: false }), { status: 200 });
    };
    const { source } = setup(NOW, fake);
    for (let i = 0; i < 240; i++) await source.query(FLAGS, new AbortController().signal);
    const over = await source.query(FLAGS, new AbortController().signal);
    expect(calls).toBe(240);
    expect(over.requests).toBe(0);
    expect(reasons(over.observations)).toEqual(['rate_limited', 'rate_limited']);
  });

  it('400 (ClickHouse error or validation error) → bad_query with the provider detail', async () => {
    const { source } = setup();
    scope().reply(400, fixture('posthog-test-query-400-clickhouse-error.reconstructed.json') as nock.Body);
    const r = await source.query(FLAGS, new AbortController().signal);
    expect(reasons(r.observations)).toEqual(['bad_query', 'bad_query']);
    expect(r.observations[0]?.status === 'no_data' && r.observations[0].detail).toContain('illegal_type_of_argument');
    scope().reply(400, fixture('posthog-exceptionshog-400-validation.json') as nock.Body);
    expect(reasons((await source.query(FLAGS, new AbortController().signal)).observations)).toEqual(['bad_query', 'bad_query']);
  });

  it('401/403 → auth: the source stops and says why, without asking again', async () => {
    const { source, logs } = setup();
    scope().reply(403, { type: 'authentication_error', code: 'permission_denied', detail: 'API key missing required scope query:read', attr: null });
    const r = await source.query(FLAGS, new AbortController().signal);
    expect(reasons(r.observations)).toEqual(['auth', 'auth']);
    expect(r.error?.code).toBe('SOURCE_AUTH');
    expect(r.error?.message).toContain('query:read');
    expect(logs.some((l) => l.level === 'error')).toBe(true);
    const again = await source.query(FLAGS, new AbortController().signal);
    expect(again.requests).toBe(0);
    expect(reasons(again.observations)).toEqual(['auth', 'auth']);
  });

  it('202 async query_status → no data this cycle', async () => {
    const { source } = setup();
    scope().reply(202, fixture('posthog-test-query-202-async.reconstructed.json') as nock.Body);
    expect(reasons((await source.query(FLAGS, new AbortController().signal)).observations)).toEqual(['unavailable', 'unavailable']);
  });

  it('5xx is retried with backoff through the injected sleep, then no data', async () => {
    const { source, sleeps } = setup();
    scope().times(3).reply(500, 'Internal Server Error');
    const r = await source.query(FLAGS, new AbortController().signal);
    expect(reasons(r.observations)).toEqual(['unavailable', 'unavailable']);
    expect(sleeps).toEqual([500, 1000]);
  });

  it('5xx then success: the retry recovers the data', async () => {
    const { source } = setup();
    scope().reply(502, 'Bad Gateway');
    scope().reply(200, fixture('guardian-flag-errors-200.json') as nock.Body);
    expect(reasons((await source.query(FLAGS, new AbortController().signal)).observations)).toEqual(['ok', 'ok']);
  });

  it('network errors are retried, then no data', async () => {
    const { source } = setup();
    scope().times(3).replyWithError('connect ECONNREFUSED');
    expect(reasons((await source.query(FLAGS, new AbortController().signal)).observations)).toEqual(['unavailable', 'unavailable']);
  });

  it("the cycle's deadline ends a hanging request: timeout, no data", async () => {
    const hanging: typeof fetch = (_url, init) =>
      new Promise((_resolve, reject) => {
        init?.signal?.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError')));
      });
    const { source } = setup(NOW, hanging);
    const deadline = new AbortController();
    const pending = source.query(FLAGS, deadline.signal);
    deadline.abort();
    expect(reasons((await pending).observations)).toEqual(['timeout', 'timeout']);
  });

  it('malformed JSON and wrong types → bad_response, never numbers made up', async () => {
    const { source } = setup();
    scope().reply(200, '{"columns": ["flag", ', { 'Content-Type': 'application/json' });
    expect(reasons((await source.query(FLAGS, new AbortController().signal)).observations)).toEqual(['bad_response', 'bad_response']);
    scope().reply(200, fixture('posthog-test-hogql-200-breakdown.json') as nock.Body); // someone else's columns
    expect(reasons((await source.query(FLAGS, new AbortController().signal)).observations)).toEqual(['bad_response', 'bad_response']);
    // A bad row is that flag's problem only: the other flag keeps its data.
    scope().reply(200, posthogQueryAnswer([['booking_agent_enabled', 'true', '812' as unknown as number, 9], ['ai_beta_users', 'true', 400, 4]]));
    expect(reasons((await source.query(FLAGS, new AbortController().signal)).observations)).toEqual(['bad_count', 'ok']);
    scope().reply(200, posthogQueryAnswer([['booking_agent_enabled', 'true', 5, 9], ['ai_beta_users', 'true', 400, 4]]));
    expect(reasons((await source.query(FLAGS, new AbortController().signal)).observations)).toEqual(['errors_above_total', 'ok']);
  });

  it('a null count is no data (bad_count), never read as 0', async () => {
    const { source } = setup();
    scope().reply(200, posthogQueryAnswer([['booking_agent_enabled', 'true', 812, null as unknown as number], ['ai_beta_users', 'true', 400, 4]]));
    expect(reasons((await source.query(FLAGS, new AbortController().signal)).observations)).toEqual(['bad_count', 'ok']);
  });

  it('duplicate (flag, variant) rows are no data for that flag (duplicate_rows), never "first row wins"', async () => {
    const { source } = setup();
    scope().reply(
      200,
      posthogQueryAnswer([
        ['booking_agent_enabled', 'true', 812, 9],
        ['booking_agent_enabled', 'true', 20, 19],
        ['booking_agent_enabled', 'false', 800, 8],
        ['ai_beta_users', 'true', 400, 4],
      ]),
    );
    const r = await source.query(FLAGS, new AbortController().signal);
    expect(reasons(r.observations)).toEqual(['duplicate_rows', 'ok']);
  });

  it('not configured (empty key) → no_data "not_configured", no request, no crash', async () => {
    const source = createPosthogSource({ host: HOST, project_id: '1', api_key: '' }, { fetch, now: () => NOW, sleep: async () => {}, logger: { debug() {}, info() {}, warn() {}, error() {} } });
    const r = await source.query(FLAGS, new AbortController().signal);
    expect(r.requests).toBe(0);
    expect(reasons(r.observations)).toEqual(['not_configured', 'not_configured']);
  });

  it('an invalid flag name is reported as bad_query and left out of the query', async () => {
    const { source } = setup();
    nock(HOST)
      .post('/api/projects/12345/query/', (body: { query: { query: string } }) => !body.query.query.includes('DROP'))
      .reply(200, fixture('guardian-flag-errors-200.json') as nock.Body);
    const r = await source.query([FLAGS[0]!, { flag: "x'; DROP", since: NOW }], new AbortController().signal);
    expect(reasons(r.observations)).toEqual(['ok', 'bad_query']);
  });
});

describe('PostHog at scale: linear row indexing and bounded query size', () => {
  const many = (n: number) => Array.from({ length: n }, (_, i) => ({ flag: `flag_${String(i).padStart(5, '0')}`, since: new Date('2026-01-01T11:50:00Z') }));

  it('indexes every row by flag in one pass, keeping per-flag problems to that flag', () => {
    const index = indexRows([
      { flag: 'a_flag', variant: 'true', users: 10, errorUsers: 1 },
      { flag: 'a_flag', variant: 'false', users: 12, errorUsers: 0 },
      { flag: 'a_flag', variant: 'blue', users: 3, errorUsers: 0 },
      { flag: 'b_flag', variant: 'true', users: 1, errorUsers: 0 },
      { flag: 'b_flag', variant: 'true', users: 2, errorUsers: 0 },
    ]);
    expect(index.get('a_flag')).toEqual({ on: { users: 10, errorUsers: 1 }, off: { users: 12, errorUsers: 0 }, rows: 3 });
    expect(index.get('b_flag')?.problem?.reason).toBe('duplicate_rows');
  });

  it(`splits the flags into queries of at most ${MAX_QUERY_BYTES / 1024} KiB of HogQL`, () => {
    for (const n of [10, 1000, 10_000]) {
      const chunks = chunkFlags(many(n), MAX_QUERY_BYTES);
      expect(chunks.flat()).toHaveLength(n);
      for (const c of chunks) expect(Buffer.byteLength(buildPosthogQuery(c), 'utf8')).toBeLessThanOrEqual(MAX_QUERY_BYTES);
    }
    expect(chunkFlags(many(10), MAX_QUERY_BYTES)).toHaveLength(1);
  });

  it('asks a few queries per cycle, each within the size, and rotates the rest (deferred, never a breach)', async () => {
    const { source } = createSplitSource({ maxQueryBytes: 8_192, maxQueriesPerCycle: 2 });
    const flags = many(120);
    const chunks = chunkFlags(flags, 8_192);
    expect(chunks.length).toBeGreaterThan(2);
    const sizes: number[] = [];
    nock(HOST)
      .post('/api/projects/12345/query/', (body: { query: { query: string } }) => {
        sizes.push(Buffer.byteLength(body.query.query, 'utf8'));
        return true;
      })
      .times(2)
      // every answer holds rows for all 120 flags: each query reads only its own flags' rows
      .reply(200, posthogQueryAnswer(flags.map((f) => [f.flag, 'true', 100, 1] as const)));
    const r = await source.query(flags, new AbortController().signal);
    expect(r.requests).toBe(2);
    expect(sizes.every((s) => s <= 8_192)).toBe(true);
    const ok = r.observations.filter((o) => o.status === 'ok').length;
    expect(ok).toBe(chunks[0]!.length + chunks[1]!.length);
    expect(reasons(r.observations).filter((x) => x !== 'ok').every((x) => x === 'deferred')).toBe(true);
  });
});

function createSplitSource(extra: { maxQueryBytes: number; maxQueriesPerCycle: number }) {
  const deps: SourceDeps = { fetch, now: () => NOW, sleep: async () => {}, logger: { debug() {}, info() {}, warn() {}, error() {} } };
  return { source: createPosthogSource({ host: HOST, project_id: '12345', api_key: 'phx_test_key', retry: { retries: 0, backoffMs: 1, timeoutMs: 5_000 }, ...extra }, deps) };
}
