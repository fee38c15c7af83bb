/**
 * The builtin source's own logic over a typed in-memory store: one store call per cycle for all
 * flags, observations as the cycle expects them, `unavailable` (never a throw) when the store
 * fails, pruning at most once per hour with a 7-day retention (or the rules' longest window).
 * The same source over the real store and endpoint: ingest.db.test.ts.
 */
import { describe, expect, it } from 'vitest';

import { createBuiltinSource, DEFAULT_EXPOSURE_RETENTION_MS, exposureUserKey } from '../src/sources/builtin.ts';
import type { ExposureCounts, ExposureQuery, Store } from '../src/store/types.ts';

class MemoryExposures implements Pick<Store, 'exposureCounts' | 'pruneExposures'> {
  readonly asked: ExposureQuery[][] = [];
  readonly prunedBefore: Date[] = [];
  fail: Error | undefined;
  pruneFails = false;
  counts = new Map<string, ExposureCounts>();

  async exposureCounts(queries: readonly ExposureQuery[]): Promise<Map<string, ExposureCounts>> {
    this.asked.push([...queries]);
    if (this.fail) throw this.fail;
    return new Map(queries.flatMap((q) => (this.counts.has(q.flag) ? [[q.flag, this.counts.get(q.flag)!] as const] : [])));
  }

  async pruneExposures(before: Date): Promise<number> {
    this.prunedBefore.push(before);
    if (this.pruneFails) throw new Error('prune failed');
    return 0;
  }
}

const signal = new AbortController().signal;

describe('builtin source', () => {
  it("passes a flag's target list to the store as user keys (SHA-256), to be left out of both cohorts", async () => {
    const store = new MemoryExposures();
    const since = new Date('2026-01-01T11:00:00Z');
    await createBuiltinSource({ store, now: () => new Date('2026-01-01T12:00:00Z') }).query(
      [
        { flag: 'a_flag', since, excludeUsers: ['staff-1'] },
        { flag: 'b_flag', since },
      ],
      signal,
    );
    expect(store.asked[0]).toEqual([
      { flag: 'a_flag', since, excludeUserKeys: [exposureUserKey('staff-1')] },
      { flag: 'b_flag', since },
    ]);
    expect(exposureUserKey('staff-1')).toMatch(/^[0-9a-f]{64}$/);
  });

  it('asks the store once for every flag and maps counts to observations (flag on = treatment)', async () => {
    const store = new MemoryExposures();
    store.counts.set('a_flag', { treatment: { total: 10, errors: 3 }, control: { total: 5, errors: 1 } });
    store.counts.set('b_flag', { treatment: { total: 4, errors: 0 }, control: { total: 0, errors: 0 } });
    store.counts.set('c_flag', { treatment: { total: 0, errors: 0 }, control: { total: 9, errors: 2 } });
    const now = new Date('2026-01-01T12:00:00Z');
    const since = new Date('2026-01-01T11:00:00Z');
    const source = createBuiltinSource({ store, now: () => now });
    const r = await source.query(['a_flag', 'b_flag', 'c_flag', 'd_flag'].map((flag) => ({ flag, since })), signal);
    expect(store.asked).toEqual([['a_flag', 'b_flag', 'c_flag', 'd_flag'].map((flag) => ({ flag, since }))]);
    expect(r).toEqual({
      source: 'builtin',
      at: now,
      requests: 0,
      observations: [
        { flag: 'a_flag', status: 'ok', unit: 'users', treatment: { total: 10, errors: 3 }, control: { total: 5, errors: 1 } },
        { flag: 'b_flag', status: 'ok', unit: 'users', treatment: { total: 4, errors: 0 } },
        { flag: 'c_flag', status: 'no_data', reason: 'empty', detail: expect.stringMatching(/^no flag-on users reported since \d{4}-\d\d-\d\dT/) },
        { flag: 'd_flag', status: 'no_data', reason: 'empty', detail: expect.stringMatching(/^no flag-on users reported since \d{4}-\d\d-\d\dT/) },
      ],
    });
  });

  it('a store failure makes every flag no_data "unavailable" and never throws', async () => {
    const store = new MemoryExposures();
    store.fail = new Error('connection refused');
    const r = await createBuiltinSource({ store, now: () => new Date() }).query([{ flag: 'a_flag', since: new Date(0) }, { flag: 'b_flag', since: new Date(0) }], signal);
    expect(r.observations.map((o) => (o.status === 'no_data' ? [o.reason, o.detail] : o.status))).toEqual([
      ['unavailable', "the guardian's database did not answer: connection refused"],
      ['unavailable', "the guardian's database did not answer: connection refused"],
    ]);
    expect(r.error).toEqual({ code: 'unavailable', message: "the guardian's database did not answer: connection refused" });
  });

  it('prunes at most once per hour, keeping 7 days (or the longest window); a failed prune changes nothing', async () => {
    const store = new MemoryExposures();
    let now = new Date('2026-01-10T00:00:00Z');
    const source = createBuiltinSource({ store, now: () => now });
    await source.query([{ flag: 'a_flag', since: new Date(0) }], signal);
    expect(store.prunedBefore).toEqual([new Date(now.getTime() - DEFAULT_EXPOSURE_RETENTION_MS)]);
    now = new Date(now.getTime() + 59 * 60_000);
    await source.query([{ flag: 'a_flag', since: new Date(0) }], signal);
    expect(store.prunedBefore).toHaveLength(1);
    now = new Date(now.getTime() + 60_000);
    store.pruneFails = true;
    const r = await source.query([{ flag: 'a_flag', since: new Date(0) }], signal);
    expect(store.prunedBefore).toHaveLength(2);
    expect(r.error).toBeUndefined();

    const long = new MemoryExposures();
    await createBuiltinSource({ store: long, now: () => now, lookbackMs: 10 * 86_400_000 }).query([{ flag: 'a_flag', since: new Date(0) }], signal);
    expect(long.prunedBefore).toEqual([new Date(now.getTime() - 10 * 86_400_000)]);
  });
});
