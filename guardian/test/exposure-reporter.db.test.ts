/**
 * The SDK's exposure reporter (`@rollback-guardian/sdk/server`) against the guardian's real
 * ingestion endpoint, in process: a real HTTP server on a random port, the real route and a real
 * PGlite store, read back through the builtin source. Timers are injected (nothing waits on a
 * real clock); `fetch` is the real one, wrapped only to count and inspect what goes out.
 */
import { createServerClient, type Timers } from '@rollback-guardian/sdk';
import { createExposureReporter, type ExposureReporterOptions } from '@rollback-guardian/sdk/server';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { createTestPglite, type TestDatabase } from '../../test/helpers/db.ts';
import { GuardianError } from '../src/errors.ts';
import { createExposureIngestRoute } from '../src/http/ingest.ts';
import { createGuardianMetrics } from '../src/http/metrics.ts';
import { startHttpServer, type HttpLogger, type RunningHttpServer } from '../src/http/server.ts';
import { createBuiltinSource } from '../src/sources/builtin.ts';
import { SqlStore } from '../src/store/sql-store.ts';
import type { ExposureRecord } from '../src/store/types.ts';

const KEY = 'reporter-test-key-0123456789';
const INTERVAL = 3_600_000;
const TIMEOUT = 10_000;

/** Timers driven by the test: `fire(ms)` runs the callbacks scheduled with that delay. */
class ManualTimers implements Timers {
  #next = 1;
  readonly scheduled = new Map<number, { fn: () => void; ms: number }>();
  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.#next++;
    this.scheduled.set(id, { fn, ms });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.scheduled.delete(handle as number);
  }
  delays(): number[] {
    return [...this.scheduled.values()].map((t) => t.ms).filter((ms) => ms !== TIMEOUT);
  }
  fire(ms: number): void {
    for (const [id, t] of [...this.scheduled]) {
      if (t.ms !== ms) continue;
      this.scheduled.delete(id);
      t.fn();
    }
  }
}

interface Sent {
  readonly status: number;
  readonly items: number;
}

const quiet: HttpLogger = { info: () => {}, warn: () => {}, error: () => {} };

describe('exposure reporter → POST /v1/exposures → builtin source (PGlite)', () => {
  let db: TestDatabase;
  let store: SqlStore;
  let http: RunningHttpServer;
  let failNext = 0;
  let sent: Sent[] = [];
  let rewrite: ((body: Record<string, unknown>) => Record<string, unknown>) | undefined;
  const warnings: string[] = [];
  const errors: string[] = [];
  const logger = { warn: (_o: unknown, m?: string) => void warnings.push(m ?? ''), error: (_o: unknown, m?: string) => void errors.push(m ?? '') };

  // The real fetch, counting what goes out (and, for one case, corrupting the body).
  const countingFetch: typeof fetch = async (input, init) => {
    let body = init?.body;
    if (rewrite && typeof body === 'string') body = JSON.stringify(rewrite(JSON.parse(body) as Record<string, unknown>));
    const res = await fetch(input, { ...init, body: body ?? null });
    const items = typeof body === 'string' ? ((JSON.parse(body) as { exposures?: unknown[] }).exposures?.length ?? 0) : 0;
    sent.push({ status: res.status, items });
    return res;
  };

  const make = (timers: ManualTimers, extra: Partial<ExposureReporterOptions> = {}) =>
    createExposureReporter({ url: http.url, ingestKey: KEY, fetch: countingFetch, timers, flushIntervalMs: INTERVAL, requestTimeoutMs: TIMEOUT, logger, ...extra });

  const counts = async (flag: string) => {
    const r = await createBuiltinSource({ store, now: () => new Date() }).query([{ flag, since: new Date(Date.now() - 60_000) }], new AbortController().signal);
    const o = r.observations[0]!;
    return o.status === 'ok' ? { treatment: o.treatment, control: o.control ?? { total: 0, errors: 0 } } : { noData: o.reason };
  };

  beforeAll(async () => {
    db = await createTestPglite();
    store = new SqlStore({ sql: db.sql, kind: 'pglite', location: 'memory' });
    // The real store; a test can make its next calls fail the way a database outage does.
    const flaky = {
      listFlags: () => store.listFlags(),
      recordExposures: async (batch: readonly ExposureRecord[]) => {
        if (failNext > 0) {
          failNext--;
          throw new GuardianError('STORE_UNREACHABLE', 'record exposures: connection refused');
        }
        return store.recordExposures(batch);
      },
    };
    http = await startHttpServer({
      port: 0,
      host: '127.0.0.1',
      health: async () => ({ database: { ok: true }, rules: { loaded: true }, lastCycleAt: new Date(), cycleIntervalMs: 60_000 }),
      metrics: createGuardianMetrics(),
      logger: quiet,
      mounts: [createExposureIngestRoute({ store: flaky, ingestKey: KEY, logger: quiet })],
    });
  });
  afterAll(async () => {
    await http?.close();
    await db?.drop();
  });
  beforeEach(async () => {
    sent = [];
    failNext = 0;
    rewrite = undefined;
    warnings.length = 0;
    errors.length = 0;
    await db.sql.query('delete from guardian_exposures');
  });

  it('batches (≤ maxBatch per request), dedupes per flag, user and value, and the builtin source counts them', async () => {
    const timers = new ManualTimers();
    const reporter = make(timers, { maxBatch: 3, maxBuffer: 100 });
    expect(timers.delays()).toEqual([INTERVAL]);
    for (let k = 0; k < 10; k++) reporter.record('ai_beta_users', 'u-0', true); // the same exposure: one
    reporter.record('ai_beta_users', 'u-0', false); // another value: another exposure
    reporter.record('Not-A-Flag', 'u-0', true); // ignored: the guardian would refuse the batch
    reporter.record('ai_beta_users', '', true); // ignored
    for (let i = 1; i < 5; i++) reporter.record('ai_beta_users', `u-${i}`, i % 2 === 0);
    // A full batch goes out on its own (the rest follows in the same flush).
    await reporter.flush();
    expect(sent.map((s) => s.items)).toEqual([3, 3]);
    expect(sent.every((s) => s.status === 202)).toBe(true);
    expect(reporter).toMatchObject({ pending: 0, sent: 6, dropped: 0 });
    expect(await counts('ai_beta_users')).toEqual({ treatment: { total: 3, errors: 0 }, control: { total: 3, errors: 0 } });
    // The interval timer drives flushes too.
    reporter.record('ai_alpha_users', 'u-9', true);
    expect(timers.delays()).toEqual([INTERVAL]);
    timers.fire(INTERVAL);
    await reporter.close();
    expect(sent.at(-1)).toEqual({ status: 202, items: 1 });
    expect(await counts('ai_alpha_users')).toEqual({ treatment: { total: 1, errors: 0 }, control: { total: 0, errors: 0 } });
    expect(timers.delays()).toEqual([]);
  });

  it("attributes an error to every flag the user saw in the window, and just after a send to the last window's", async () => {
    const timers = new ManualTimers();
    const reporter = make(timers);
    const flags = createServerClient({
      transport: {
        loadAll: async () => [
          { name: 'ai_beta_users', enabled: true, rolloutPercentage: 100, bucketGroup: null, version: 1, guardState: 'watching', rollbackMessage: null, targets: ['vip'] },
          { name: 'booking_agent_enabled', enabled: true, rolloutPercentage: 0, bucketGroup: null, version: 1, guardState: 'watching', rollbackMessage: null, targets: [] },
          { name: 'insights_agent_enabled', enabled: false, rolloutPercentage: 100, bucketGroup: null, version: 1, guardState: 'watching', rollbackMessage: null, targets: [] },
        ],
      },
      timers,
    });
    expect(await flags.ready()).toBe('READY');
    const detach = reporter.attach(flags);
    for (const user of ['u-1', 'u-2', 'u-3']) {
      flags.isEnabled('ai_beta_users', user);
      flags.evaluate('booking_agent_enabled', user);
      flags.isEnabled('insights_agent_enabled', user); // disabled: no exposure
    }
    // A user on the target list is a real exposure (through either evaluation path; the guardian
    // leaves targets out of relative rules itself); an unknown flag (the caller's default) is none.
    flags.isEnabled('ai_beta_users', 'vip');
    flags.evaluate('ai_beta_users', 'vip');
    flags.isEnabled('no_such_flag', 'u-1');
    expect(reporter.pending).toBe(7);
    reporter.error('vip');
    reporter.error('u-1');
    reporter.error('nobody'); // never exposed: nothing to mark
    await reporter.flush();
    expect(await counts('ai_beta_users')).toEqual({ treatment: { total: 4, errors: 2 }, control: { total: 0, errors: 0 } });
    const randomised = await createBuiltinSource({ store, now: () => new Date() }).query(
      [{ flag: 'ai_beta_users', since: new Date(Date.now() - 60_000), excludeUsers: ['vip'] }],
      new AbortController().signal,
    );
    expect(randomised.observations[0]).toMatchObject({ status: 'ok', treatment: { total: 3, errors: 1 } });
    expect((await store.exposureCounts([{ flag: 'booking_agent_enabled', since: new Date(Date.now() - 60_000) }])).get('booking_agent_enabled')).toEqual({
      treatment: { total: 0, errors: 0 },
      control: { total: 3, errors: 1 },
    });
    expect(await counts('insights_agent_enabled')).toEqual({ noData: 'empty' });
    // u-2 fails right after the send: its exposures of that window are sent again with the error.
    reporter.error('u-2');
    expect(reporter.pending).toBe(2);
    await reporter.flush();
    expect(await counts('ai_beta_users')).toEqual({ treatment: { total: 4, errors: 3 }, control: { total: 0, errors: 0 } });
    detach();
    flags.isEnabled('ai_beta_users', 'u-4');
    expect(reporter.pending).toBe(0);
    await reporter.close();
    await flags.close();
  });

  it('retries a 503 with backoff on the injected timers, then succeeds; the buffer stays bounded meanwhile', async () => {
    const timers = new ManualTimers();
    const reporter = make(timers, { maxBatch: 2, maxBuffer: 4 });
    failNext = 2;
    reporter.record('ai_beta_users', 'a', true);
    reporter.record('ai_beta_users', 'b', false); // full batch: sent at once, the store fails → 503
    await reporter.flush();
    expect(sent.map((s) => s.status)).toEqual([503]);
    expect(reporter).toMatchObject({ pending: 2, sent: 0, dropped: 0 });
    expect(warnings.at(-1)).toMatch(/sending failed \(HTTP 503\); retrying in 5 s/); // the server's Retry-After: 5
    expect(timers.delays()).toEqual([5_000]);
    // Meanwhile more traffic: the buffer holds 4 at most, the oldest go first, with one warning.
    for (const u of ['c', 'd', 'e', 'f']) reporter.record('ai_beta_users', u, true);
    expect(reporter).toMatchObject({ pending: 4, dropped: 2 });
    expect(warnings.filter((w) => /buffer full/.test(w))).toHaveLength(1);
    // The retry fails once more (backoff grows), then succeeds.
    timers.fire(5_000);
    await reporter.flush();
    expect(sent.map((s) => s.status)).toEqual([503, 503]);
    expect(timers.delays()).toEqual([5_000]);
    timers.fire(5_000);
    await reporter.flush();
    expect(sent.map((s) => s.status)).toEqual([503, 503, 202, 202]);
    expect(reporter).toMatchObject({ pending: 0, sent: 4, dropped: 2 });
    expect(timers.delays()).toEqual([INTERVAL]); // back to the normal schedule
    expect(await counts('ai_beta_users')).toEqual({ treatment: { total: 4, errors: 0 }, control: { total: 0, errors: 0 } });
    await reporter.close();
  });

  it("drops a batch the guardian refuses (400, 401) and logs the server's message; never throws", async () => {
    const timers = new ManualTimers();
    rewrite = (body) => ({ ...body, exposures: (body['exposures'] as object[]).map((e) => ({ ...e, value: 'yes' })) });
    const reporter = make(timers);
    reporter.record('ai_beta_users', 'u-1', true);
    await reporter.flush();
    expect(sent).toEqual([{ status: 400, items: 1 }]);
    expect(reporter).toMatchObject({ pending: 0, sent: 0, dropped: 1 });
    expect(errors.at(-1)).toMatch(/refused 1 exposure\(s\) \(HTTP 400\): 1 problem\(s\), nothing was recorded: body\.exposures\[0\]\.value: must be the flag's value/);
    expect(timers.delays()).toEqual([INTERVAL]); // no retry
    await reporter.close();

    rewrite = undefined;
    const wrongKey = createExposureReporter({ url: http.url, ingestKey: 'not-the-right-key-000', fetch: countingFetch, timers, logger });
    wrongKey.record('ai_beta_users', 'u-1', true);
    await wrongKey.close();
    expect(wrongKey.dropped).toBe(1);
    expect(errors.at(-1)).toMatch(/HTTP 401\): wrong ingest key/);
    expect(await counts('ai_beta_users')).toEqual({ noData: 'empty' });
    // After close, record and error are no-ops and do not throw.
    wrongKey.record('ai_beta_users', 'u-2', true);
    wrongKey.error('u-2');
    expect(wrongKey.pending).toBe(0);
  });

  it('a network failure is retried; close gives up once and counts what it could not send', async () => {
    const timers = new ManualTimers();
    const down = createExposureReporter({ url: 'http://127.0.0.1:1', ingestKey: KEY, timers, logger, flushIntervalMs: INTERVAL });
    down.record('ai_beta_users', 'u-1', true);
    await down.flush();
    expect(down.pending).toBe(1);
    expect(timers.delays()).toEqual([1_000]);
    await down.close();
    expect(down).toMatchObject({ pending: 0, dropped: 1 });
    expect(warnings.at(-1)).toMatch(/closing; 1 exposure\(s\) could not be sent/);
  });
});
