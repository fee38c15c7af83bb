import { readFileSync } from 'node:fs';
import nock from 'nock';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createSentrySource, parseSentryEvents, type SentrySourceOptions } from '../src/sources/sentry.ts';
import type { FlagObservation, SourceDeps } from '../src/sources/types.ts';

const fixture = (name: string): nock.Body => JSON.parse(readFileSync(new URL(`fixtures/sentry/${name}`, import.meta.url), 'utf8')) as nock.Body;
const BASE = 'https://us.sentry.io';
const NOW = new Date('2026-01-01T12:00:00Z');
const since = new Date('2026-01-01T11:50:00Z');
const reasons = (obs: readonly FlagObservation[]) => obs.map((o) => (o.status === 'no_data' ? o.reason : 'ok'));
const body = (count: number, users: number) => ({
  data: [{ 'count_unique(user)': users, 'count()': count }],
  meta: {
    fields: { 'count_unique(user)': 'integer', 'count()': 'integer' },
    units: { 'count_unique(user)': null, 'count()': null },
    isMetricsData: false,
    isMetricsExtractedData: false,
    tips: { query: null, columns: null },
    datasetReason: 'unchanged',
    dataset: 'errors',
  },
});

function setup(options: Partial<SentrySourceOptions> = {}) {
  const clock = { now: NOW };
  const deps: SourceDeps = { fetch, now: () => clock.now, sleep: async () => {}, logger: { debug() {}, info() {}, warn() {}, error() {} } };
  const source = createSentrySource(
    { base_url: BASE, org: 'acme', project: [42], environment: 'production', token: 'sntrys_test', max_requests_per_cycle: 40, concurrency: 2, retry: { retries: 1, backoffMs: 10, timeoutMs: 5_000 }, ...options },
    deps,
  );
  return { source, clock };
}

/** Intercepts exactly the documented request for one flag/value/dataset. */
function expectEvents(dataset: 'errors' | 'transactions', query: string, statsPeriod = '10m') {
  return nock(BASE, { reqheaders: { authorization: 'Bearer sntrys_test' } })
    .get('/api/0/organizations/acme/events/')
    .query((q) => {
      return (
        q.dataset === dataset &&
        JSON.stringify(q.field) === JSON.stringify(['count_unique(user)', 'count()']) &&
        q.statsPeriod === statsPeriod &&
        q.query === query &&
        q.project === '42' &&
        q.environment === 'production'
      );
    });
}
function expectFlag(flag: string, counts: [number, number, number, number, number, number, number, number], headers: Record<string, string> = {}) {
  const [eonC, eonU, eoffC, eoffU, tonC, tonU, toffC, toffU] = counts;
  expectEvents('errors', `flags["${flag}"]:true`).reply(200, body(eonC, eonU), headers);
  expectEvents('errors', `flags["${flag}"]:false`).reply(200, body(eoffC, eoffU), headers);
  expectEvents('transactions', `flag.${flag}:true`).reply(200, body(tonC, tonU), headers);
  expectEvents('transactions', `flag.${flag}:false`).reply(200, body(toffC, toffU), headers);
}

beforeAll(() => {
  nock.disableNetConnect();
});
afterEach(() => {
  expect(nock.pendingMocks()).toEqual([]);
  nock.cleanAll();
});

describe('parseSentryEvents', () => {
  it('reads count() and count_unique(user) from documented bodies', () => {
    expect(parseSentryEvents(fixture('mcp-events-errors.json'))).toEqual({ count: 2, users: 0 });
    expect(parseSentryEvents(fixture('mcp-events-errors-empty.json'))).toEqual({ count: 0, users: 0 });
    expect(parseSentryEvents(fixture('sentry-spec-events-empty-count-unique-user.json'))).toEqual({ count: 0, users: 0 });
    expect(() => parseSentryEvents(fixture('sentry-test-events-no-projects.reconstructed.json'))).toThrow(/Need at least one valid project/);
    expect(() => parseSentryEvents({ data: [{ 'count()': '2' }], meta: {} })).toThrow(/expected a whole number/);
    expect(() => parseSentryEvents({ rows: [] })).toThrow(/"data" is not a list/);
  });
});

describe('Sentry source', () => {
  it('asks errors and transactions per flag value with the documented query and returns users', async () => {
    const { source } = setup();
    expectFlag('booking_agent_enabled', [30, 12, 8, 5, 2000, 400, 2100, 410]);
    const r = await source.query([{ flag: 'booking_agent_enabled', since }], new AbortController().signal);
    expect(r.requests).toBe(4);
    expect(r.observations).toEqual([
      { flag: 'booking_agent_enabled', status: 'ok', unit: 'users', treatment: { total: 400, errors: 12 }, control: { total: 410, errors: 5 } },
    ]);
  });

  it('falls back to events when the traffic has no users', async () => {
    const { source } = setup();
    expectFlag('session_agent_enabled', [30, 0, 8, 0, 2000, 0, 2100, 0]);
    const r = await source.query([{ flag: 'session_agent_enabled', since }], new AbortController().signal);
    expect(r.observations[0]).toEqual({ flag: 'session_agent_enabled', status: 'ok', unit: 'events', treatment: { total: 2000, errors: 30 }, control: { total: 2100, errors: 8 } });
  });

  it('bounds requests per cycle and rotates the flags beyond it to the next cycle', async () => {
    const { source } = setup({ max_requests_per_cycle: 8 });
    const flags = ['booking_agent_enabled', 'session_agent_enabled', 'insights_agent_enabled'].map((flag) => ({ flag, since }));
    expectFlag('booking_agent_enabled', [1, 1, 1, 1, 200, 200, 200, 200]);
    expectFlag('session_agent_enabled', [1, 1, 1, 1, 200, 200, 200, 200]);
    const first = await source.query(flags, new AbortController().signal);
    expect(first.requests).toBe(8);
    expect(reasons(first.observations)).toEqual(['ok', 'ok', 'deferred']);
    expectFlag('insights_agent_enabled', [1, 1, 1, 1, 200, 200, 200, 200]);
    expectFlag('booking_agent_enabled', [1, 1, 1, 1, 200, 200, 200, 200]);
    const second = await source.query(flags, new AbortController().signal);
    expect(reasons(second.observations)).toEqual(['ok', 'deferred', 'ok']);
  });

  it('429 (no Retry-After): waits until X-Sentry-Rate-Limit-Reset, skipping flags instead of exceeding', async () => {
    const { source, clock } = setup({ concurrency: 1 });
    const reset = String(NOW.getTime() / 1000 + 100);
    expectEvents('errors', 'flags["booking_agent_enabled"]:true').reply(429, fixture('sentry-test-429-ratelimit.json'), {
      'X-Sentry-Rate-Limit-Remaining': '0',
      'X-Sentry-Rate-Limit-Limit': '2',
      'X-Sentry-Rate-Limit-Reset': reset,
    });
    const flags = [{ flag: 'booking_agent_enabled', since }, { flag: 'session_agent_enabled', since }];
    const r = await source.query(flags, new AbortController().signal);
    expect(r.requests).toBe(1);
    expect(reasons(r.observations)).toEqual(['rate_limited', 'rate_limited']);
    clock.now = new Date(NOW.getTime() + 50_000);
    const waiting = await source.query(flags, new AbortController().signal);
    expect(waiting.requests).toBe(0);
    expect(reasons(waiting.observations)).toEqual(['rate_limited', 'rate_limited']);
  });

  it('Remaining 0 on a 200 → the next flag is skipped until Reset', async () => {
    const { source } = setup({ concurrency: 1 });
    const headers = { 'X-Sentry-Rate-Limit-Remaining': '0', 'X-Sentry-Rate-Limit-Limit': '40', 'X-Sentry-Rate-Limit-Reset': String(NOW.getTime() / 1000 + 30) };
    expectEvents('errors', 'flags["booking_agent_enabled"]:true').reply(200, body(1, 1), headers);
    const r = await source.query([{ flag: 'booking_agent_enabled', since }], new AbortController().signal);
    expect(r.requests).toBe(1);
    expect(reasons(r.observations)).toEqual(['rate_limited']);
  });

  it('400 {"detail"} → bad_query; no-project answer → no data with the tip as reason', async () => {
    const { source } = setup();
    expectEvents('errors', 'flags["booking_agent_enabled"]:true').reply(400, fixture('sentry-test-events-400-parse-error.reconstructed.json'));
    const bad = await source.query([{ flag: 'booking_agent_enabled', since }], new AbortController().signal);
    expect(reasons(bad.observations)).toEqual(['bad_query']);
    expect(bad.observations[0]?.status === 'no_data' && bad.observations[0].detail).toContain('Parse error');
    expectEvents('errors', 'flags["booking_agent_enabled"]:true').reply(200, fixture('sentry-test-events-no-projects.reconstructed.json'));
    const none = await source.query([{ flag: 'booking_agent_enabled', since }], new AbortController().signal);
    expect(none.observations[0]?.status === 'no_data' && none.observations[0].detail).toContain('Need at least one valid project to query.');
  });

  it('401 → auth: stops the source and says why', async () => {
    const { source } = setup();
    expectEvents('errors', 'flags["booking_agent_enabled"]:true').reply(401, { detail: 'Invalid token' });
    const r = await source.query([{ flag: 'booking_agent_enabled', since }], new AbortController().signal);
    expect(reasons(r.observations)).toEqual(['auth']);
    expect(r.error?.code).toBe('SOURCE_AUTH');
    const again = await source.query([{ flag: 'booking_agent_enabled', since }], new AbortController().signal);
    expect(again.requests).toBe(0);
    expect(reasons(again.observations)).toEqual(['auth']);
  });

  it('5xx retried then no data; malformed JSON and wrong types → bad_response; empty → empty', async () => {
    const { source } = setup();
    expectEvents('errors', 'flags["booking_agent_enabled"]:true').times(2).reply(503, 'unavailable');
    expect(reasons((await source.query([{ flag: 'booking_agent_enabled', since }], new AbortController().signal)).observations)).toEqual(['unavailable']);
    expectEvents('errors', 'flags["booking_agent_enabled"]:true').reply(200, '{"data": [', { 'Content-Type': 'application/json' });
    expect(reasons((await source.query([{ flag: 'booking_agent_enabled', since }], new AbortController().signal)).observations)).toEqual(['bad_response']);
    expectEvents('errors', 'flags["booking_agent_enabled"]:true').reply(200, { data: [{ 'count()': -1 }], meta: {} });
    expect(reasons((await source.query([{ flag: 'booking_agent_enabled', since }], new AbortController().signal)).observations)).toEqual(['bad_response']);
    expectEvents('errors', 'flags["booking_agent_enabled"]:true').reply(200, fixture('mcp-events-errors-empty.json'));
    expectEvents('errors', 'flags["booking_agent_enabled"]:false').reply(200, fixture('mcp-events-errors-empty.json'));
    expectEvents('transactions', 'flag.booking_agent_enabled:true').reply(200, fixture('mcp-events-errors-empty.json'));
    expectEvents('transactions', 'flag.booking_agent_enabled:false').reply(200, fixture('mcp-events-errors-empty.json'));
    expect(reasons((await source.query([{ flag: 'booking_agent_enabled', since }], new AbortController().signal)).observations)).toEqual(['empty']);
  });

  it('not configured → no_data, no request', async () => {
    const { source } = setup({ token: '' });
    const r = await source.query([{ flag: 'booking_agent_enabled', since }], new AbortController().signal);
    expect(r.requests).toBe(0);
    expect(reasons(r.observations)).toEqual(['not_configured']);
  });
});
