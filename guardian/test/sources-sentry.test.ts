import { readFileSync } from 'node:fs';
import nock from 'nock';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createSentrySource, parseSentryGroups, type SentrySourceOptions } from '../src/sources/sentry.ts';
import type { FlagObservation, SourceDeps } from '../src/sources/types.ts';
import { sentryGroupedBody, type SentryRow } from './sentry-answer.ts';

const fixture = (name: string): nock.Body => JSON.parse(readFileSync(new URL(`fixtures/sentry/${name}`, import.meta.url), 'utf8')) as nock.Body;
const BASE = 'https://us.sentry.io';
const NOW = new Date('2026-01-01T12:00:00Z');
const since = new Date('2026-01-01T11:50:00Z');
const reasons = (obs: readonly FlagObservation[]) => obs.map((o) => (o.status === 'no_data' ? o.reason : 'ok'));
const signal = () => new AbortController().signal;

function setup(options: Partial<SentrySourceOptions> = {}) {
  const clock = { now: NOW };
  // sleep advances the clock: the source's rate limiter waits on the injected clock.
  const deps: SourceDeps = {
    fetch,
    now: () => clock.now,
    sleep: async (ms) => {
      clock.now = new Date(clock.now.getTime() + ms);
    },
    logger: { debug() {}, info() {}, warn() {}, error() {} },
  };
  const source = createSentrySource(
    { base_url: BASE, org: 'acme', project: [42], environment: 'production', token: 'sntrys_test', max_requests_per_cycle: 40, concurrency: 2, retry: { retries: 1, backoffMs: 10, timeoutMs: 5_000 }, ...options },
    deps,
  );
  return { source, clock };
}

/** Intercepts exactly the documented grouped request for one flag and dataset. */
function expectEvents(dataset: 'errors' | 'transactions', flag: string, from = since) {
  return nock(BASE, { reqheaders: { authorization: 'Bearer sntrys_test' } })
    .get('/api/0/organizations/acme/events/')
    .query(
      (q) =>
        q.dataset === dataset &&
        JSON.stringify(q.field) === JSON.stringify([`tags[flag.${flag}]`, 'count_unique(user)', 'count()']) &&
        q.query === `has:flag.${flag}` &&
        q.start === from.toISOString() &&
        typeof q.end === 'string' &&
        Date.parse(q.end) > Date.parse(q.start) &&
        q.statsPeriod === undefined &&
        q.project === '42' &&
        q.environment === 'production',
    );
}
/** [errors on, errors off, traffic on, traffic off] as { count, users } (undefined: no row). */
function expectFlag(flag: string, rows: { errors: SentryRow[]; traffic: SentryRow[] }, headers: Record<string, string> = {}) {
  expectEvents('errors', flag).reply(200, sentryGroupedBody(flag, rows.errors, 'errors'), headers);
  expectEvents('transactions', flag).reply(200, sentryGroupedBody(flag, rows.traffic, 'transactions'), headers);
}
const row = (value: 'true' | 'false', count: number | null, users: number | null): SentryRow => ({ value, count, users });

beforeAll(() => {
  nock.disableNetConnect();
});
afterEach(() => {
  expect(nock.pendingMocks()).toEqual([]);
  nock.cleanAll();
});

describe('parseSentryGroups', () => {
  it('reads one row per cohort by the requested field names; a cohort without a row is zero', () => {
    expect(parseSentryGroups(sentryGroupedBody('f_a', [row('true', 9, 3)], 'errors'), 'f_a')).toEqual({ on: { count: 9, users: 3 }, off: { count: 0, users: 0 } });
    expect(parseSentryGroups(fixture('mcp-events-errors-empty.json'), 'f_a')).toEqual({ on: { count: 0, users: 0 }, off: { count: 0, users: 0 } });
  });
  it('refuses what cannot be counted: null is not 0, duplicates are no data, wrong shapes are bad responses', () => {
    const reason = (body: unknown) => {
      try {
        parseSentryGroups(body, 'f_a');
        return 'ok';
      } catch (err) {
        return (err as { reason: string }).reason;
      }
    };
    expect(reason(sentryGroupedBody('f_a', [row('true', null, 3)], 'errors'))).toBe('bad_count');
    expect(reason(sentryGroupedBody('f_a', [row('true', 5, null)], 'errors'))).toBe('bad_count');
    expect(reason(sentryGroupedBody('f_a', [row('true', 1.5, 1)], 'errors'))).toBe('bad_count');
    expect(reason(sentryGroupedBody('f_a', [row('true', 5, 2), row('true', 1, 1)], 'errors'))).toBe('duplicate_rows');
    expect(reason({ data: [{ 'count()': 2 }], meta: {} })).toBe('bad_response');
    expect(reason({ rows: [] })).toBe('bad_response');
    expect(reason(fixture('sentry-test-events-no-projects.reconstructed.json'))).toBe('bad_query');
  });
});

describe('Sentry source', () => {
  it('asks errors and traffic grouped by the flag tag over the segment (start..end), and counts users on both sides', async () => {
    const { source } = setup();
    expectFlag('booking_agent_enabled', { errors: [row('true', 30, 12), row('false', 8, 5)], traffic: [row('true', 2000, 400), row('false', 2100, 410)] });
    const r = await source.query([{ flag: 'booking_agent_enabled', since }], signal());
    expect(r.requests).toBe(2);
    expect(r.observations).toEqual([{ flag: 'booking_agent_enabled', status: 'ok', unit: 'users', treatment: { total: 400, errors: 12 }, control: { total: 410, errors: 5 } }]);
  });

  it('errors above traffic is no data (errors_above_total), never total = max(traffic, errors)', async () => {
    const { source } = setup();
    expectFlag('booking_agent_enabled', { errors: [row('true', 211_863, 211_863)], traffic: [row('true', 400_000, 2000)] });
    const r = await source.query([{ flag: 'booking_agent_enabled', since }], signal());
    expect(reasons(r.observations)).toEqual(['errors_above_total']);
  });

  it('an empty traffic answer is no data, never a switch to counting events', async () => {
    const { source } = setup();
    expectFlag('booking_agent_enabled', { errors: [row('true', 3531, 40)], traffic: [] });
    const r = await source.query([{ flag: 'booking_agent_enabled', since }], signal());
    expect(reasons(r.observations)).toEqual(['errors_above_total']);
  });

  it('a null count is no data (bad_count), never read as 0', async () => {
    const { source } = setup();
    expectFlag('booking_agent_enabled', { errors: [row('true', 30, 12)], traffic: [row('true', 2000, null)] });
    const r = await source.query([{ flag: 'booking_agent_enabled', since }], signal());
    expect(reasons(r.observations)).toEqual(['bad_count']);
  });

  it('two rows for one cohort are no data (duplicate_rows), never "first row wins"', async () => {
    const { source } = setup();
    expectFlag('booking_agent_enabled', { errors: [row('true', 30, 12)], traffic: [row('true', 20, 10), row('true', 2000, 400)] });
    const r = await source.query([{ flag: 'booking_agent_enabled', since }], signal());
    expect(reasons(r.observations)).toEqual(['duplicate_rows']);
  });

  it('one user flooding errors while transactions carry no user: users mode has no data; events mode caps each user', async () => {
    // Issue 10 #4: 5,020 error events from 21 users, 10,000 transactions without a user.
    const flood = { errors: [row('true', 5020, 21)], traffic: [row('true', 10_000, 0)] };
    const users = setup();
    expectFlag('booking_agent_enabled', flood);
    const u = await users.source.query([{ flag: 'booking_agent_enabled', since }], signal());
    expect(reasons(u.observations)).toEqual(['no_user_traffic']);
    const events = setup({ unit: 'events', max_errors_per_user: 10 });
    expectFlag('booking_agent_enabled', flood);
    const e = await events.source.query([{ flag: 'booking_agent_enabled', since }], signal());
    expect(e.observations).toEqual([{ flag: 'booking_agent_enabled', status: 'ok', unit: 'events', treatment: { total: 10_000, errors: 210 } }]);
  });

  it('errors without a user are no data in users mode (no_user_errors)', async () => {
    const { source } = setup();
    expectFlag('booking_agent_enabled', { errors: [row('true', 50, 0)], traffic: [row('true', 2000, 400)] });
    expect(reasons((await source.query([{ flag: 'booking_agent_enabled', since }], signal())).observations)).toEqual(['no_user_errors']);
  });

  it('bounds requests per cycle; the flags polled longest ago go first', async () => {
    const { source } = setup({ max_requests_per_cycle: 4 });
    const flags = ['booking_agent_enabled', 'session_agent_enabled', 'insights_agent_enabled'].map((flag) => ({ flag, since }));
    const ok = { errors: [row('true', 1, 1)], traffic: [row('true', 200, 200)] };
    expectFlag('booking_agent_enabled', ok);
    expectFlag('session_agent_enabled', ok);
    const first = await source.query(flags, signal());
    expect(first.requests).toBe(4);
    expect(reasons(first.observations)).toEqual(['ok', 'ok', 'deferred']);
    expectFlag('insights_agent_enabled', ok);
    expectFlag('booking_agent_enabled', ok);
    const second = await source.query(flags, signal());
    expect(reasons(second.observations)).toEqual(['ok', 'deferred', 'ok']);
  });

  it('more than a short wait: polls go on in the background and are reported at the next cycle, once', async () => {
    const { source } = setup({ wait_ms: 0 });
    const ok = { errors: [row('true', 1, 1)], traffic: [row('true', 200, 200)] };
    expectFlag('booking_agent_enabled', ok);
    const first = await source.query([{ flag: 'booking_agent_enabled', since }], signal());
    expect(reasons(first.observations)).toEqual(['deferred']);
    await expect.poll(() => nock.pendingMocks().length).toBe(0);
    expectFlag('booking_agent_enabled', ok);
    const second = await source.query([{ flag: 'booking_agent_enabled', since }], signal());
    expect(reasons(second.observations)).toEqual(['ok']);
    expect(second.requests).toBe(2);
    // the answer is reported once: the next cycle's is the poll started at the second cycle
    await expect.poll(() => nock.pendingMocks().length).toBe(0);
  });

  it('a background answer for an earlier segment is never reported for the new one', async () => {
    const { source } = setup({ wait_ms: 0 });
    const ok = { errors: [row('true', 1, 1)], traffic: [row('true', 200, 200)] };
    expectFlag('booking_agent_enabled', ok);
    await source.query([{ flag: 'booking_agent_enabled', since }], signal());
    await expect.poll(() => nock.pendingMocks().length).toBe(0);
    const next = new Date(since.getTime() + 600_000);
    expectEvents('errors', 'booking_agent_enabled', next).reply(200, sentryGroupedBody('booking_agent_enabled', ok.errors, 'errors'));
    expectEvents('transactions', 'booking_agent_enabled', next).reply(200, sentryGroupedBody('booking_agent_enabled', ok.traffic, 'transactions'));
    const r = await source.query([{ flag: 'booking_agent_enabled', since: next }], signal());
    expect(reasons(r.observations)).toEqual(['deferred']);
    await expect.poll(() => nock.pendingMocks().length).toBe(0);
  });

  it('429 (no Retry-After): waits until X-Sentry-Rate-Limit-Reset, no request meanwhile', async () => {
    const { source, clock } = setup({ concurrency: 1 });
    const reset = String(NOW.getTime() / 1000 + 100);
    expectEvents('errors', 'booking_agent_enabled').reply(429, fixture('sentry-test-429-ratelimit.json'), {
      'X-Sentry-Rate-Limit-Remaining': '0',
      'X-Sentry-Rate-Limit-Limit': '2',
      'X-Sentry-Rate-Limit-Reset': reset,
    });
    const flags = [{ flag: 'booking_agent_enabled', since }, { flag: 'session_agent_enabled', since }];
    const r = await source.query(flags, signal());
    expect(r.requests).toBe(1);
    expect(reasons(r.observations)).toEqual(['rate_limited', 'rate_limited']);
    clock.now = new Date(NOW.getTime() + 50_000);
    const waiting = await source.query(flags, signal());
    expect(waiting.requests).toBe(0);
    expect(reasons(waiting.observations)).toEqual(['rate_limited', 'rate_limited']);
  });

  it('Remaining 0 on a 200 → no request until Reset (the flag is rate_limited, not guessed)', async () => {
    const { source } = setup({ concurrency: 1 });
    const headers = { 'X-Sentry-Rate-Limit-Remaining': '0', 'X-Sentry-Rate-Limit-Limit': '40', 'X-Sentry-Rate-Limit-Reset': String(NOW.getTime() / 1000 + 30) };
    expectEvents('errors', 'booking_agent_enabled').reply(200, sentryGroupedBody('booking_agent_enabled', [row('true', 1, 1)], 'errors'), headers);
    const r = await source.query([{ flag: 'booking_agent_enabled', since }], signal());
    expect(r.requests).toBe(1);
    expect(reasons(r.observations)).toEqual(['rate_limited']);
  });

  it('leaves half of the provider window to the organization: Remaining at half of Limit → wait for Reset', async () => {
    const { source } = setup({ concurrency: 1 });
    const headers = { 'X-Sentry-Rate-Limit-Remaining': '500', 'X-Sentry-Rate-Limit-Limit': '1000', 'X-Sentry-Rate-Limit-Reset': String(NOW.getTime() / 1000 + 300) };
    expectEvents('errors', 'booking_agent_enabled').reply(200, sentryGroupedBody('booking_agent_enabled', [row('true', 1, 1)], 'errors'), headers);
    const r = await source.query([{ flag: 'booking_agent_enabled', since }, { flag: 'session_agent_enabled', since }], signal());
    expect(r.requests).toBe(1);
    expect(reasons(r.observations)).toEqual(['rate_limited', 'rate_limited']);
  });

  it('a poll asking a few flags (a confirmation) keeps the background answers of the others for the next cycle', async () => {
    const { source } = setup({ wait_ms: 0 });
    const ok = { errors: [row('true', 1, 1)], traffic: [row('true', 200, 200)] };
    expectFlag('booking_agent_enabled', ok);
    expectFlag('session_agent_enabled', ok);
    const both = [{ flag: 'booking_agent_enabled', since }, { flag: 'session_agent_enabled', since }];
    expect(reasons((await source.query(both, signal())).observations)).toEqual(['deferred', 'deferred']);
    await expect.poll(() => nock.pendingMocks().length).toBe(0);
    expectFlag('booking_agent_enabled', ok);
    expect(reasons((await source.query([both[0]!], signal())).observations)).toEqual(['ok']);
    await expect.poll(() => nock.pendingMocks().length).toBe(0);
    expectFlag('booking_agent_enabled', ok);
    expectFlag('session_agent_enabled', ok);
    expect(reasons((await source.query(both, signal())).observations)).toEqual(['ok', 'ok']);
    await expect.poll(() => nock.pendingMocks().length).toBe(0);
  });

  it('keeps to max_requests_per_second on the injected clock', async () => {
    const { source, clock } = setup({ max_requests_per_second: 2, concurrency: 1, wait_ms: 60_000 });
    const flags = ['booking_agent_enabled', 'session_agent_enabled', 'insights_agent_enabled'].map((flag) => ({ flag, since }));
    const ok = { errors: [row('true', 1, 1)], traffic: [row('true', 200, 200)] };
    for (const f of flags) expectFlag(f.flag, ok);
    const r = await source.query(flags, signal());
    expect(reasons(r.observations)).toEqual(['ok', 'ok', 'ok']);
    // 6 requests at 2/s (bursts of 4 in a second): the last could not start before 1 s had passed
    expect(clock.now.getTime() - NOW.getTime()).toBeGreaterThanOrEqual(1_000);
  });

  it('400 {"detail"} → bad_query; no-project answer → no data with the tip as reason', async () => {
    const { source } = setup();
    expectEvents('errors', 'booking_agent_enabled').reply(400, fixture('sentry-test-events-400-parse-error.reconstructed.json'));
    const bad = await source.query([{ flag: 'booking_agent_enabled', since }], signal());
    expect(reasons(bad.observations)).toEqual(['bad_query']);
    expect(bad.observations[0]?.status === 'no_data' && bad.observations[0].detail).toContain('Parse error');
    expectEvents('errors', 'booking_agent_enabled').reply(200, fixture('sentry-test-events-no-projects.reconstructed.json'));
    const none = await source.query([{ flag: 'booking_agent_enabled', since }], signal());
    expect(none.observations[0]?.status === 'no_data' && none.observations[0].detail).toContain('Need at least one valid project to query.');
  });

  it('401 → auth: stops the source and says why', async () => {
    const { source } = setup();
    expectEvents('errors', 'booking_agent_enabled').reply(401, { detail: 'Invalid token' });
    const r = await source.query([{ flag: 'booking_agent_enabled', since }], signal());
    expect(reasons(r.observations)).toEqual(['auth']);
    expect(r.error?.code).toBe('SOURCE_AUTH');
    const again = await source.query([{ flag: 'booking_agent_enabled', since }], signal());
    expect(again.requests).toBe(0);
    expect(reasons(again.observations)).toEqual(['auth']);
  });

  it('5xx retried then no data; malformed JSON and wrong types → bad_response; empty → empty', async () => {
    const { source } = setup();
    const once = async () => reasons((await source.query([{ flag: 'booking_agent_enabled', since }], signal())).observations);
    expectEvents('errors', 'booking_agent_enabled').times(2).reply(503, 'unavailable');
    expect(await once()).toEqual(['unavailable']);
    expectEvents('errors', 'booking_agent_enabled').reply(200, '{"data": [', { 'Content-Type': 'application/json' });
    expect(await once()).toEqual(['bad_response']);
    expectEvents('errors', 'booking_agent_enabled').reply(200, { data: [{ 'tags[flag.booking_agent_enabled]': 'true', 'count()': -1, 'count_unique(user)': 1 }], meta: {} });
    expect(await once()).toEqual(['bad_count']);
    expectEvents('errors', 'booking_agent_enabled').reply(200, fixture('mcp-events-errors-empty.json'));
    expectEvents('transactions', 'booking_agent_enabled').reply(200, fixture('mcp-events-errors-empty.json'));
    expect(await once()).toEqual(['empty']);
  });

  it('not configured → no_data, no request', async () => {
    const { source } = setup({ token: '' });
    const r = await source.query([{ flag: 'booking_agent_enabled', since }], signal());
    expect(r.requests).toBe(0);
    expect(reasons(r.observations)).toEqual(['not_configured']);
  });
});
