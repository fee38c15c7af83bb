/**
 * The bounded history read (migration 20251203001300_observation_finals.sql) gives `decide` the
 * same inputs as the previous `guardian_observation_history`, which ranked every row of the
 * stage: same rows, same order, same verdicts, on PostgreSQL and PGlite, through a long
 * simulated stage in segments with rules reloads (the window changes), rows without `since`
 * (written before segments), ties on `at`, late writes, several stages and sources, and pruning.
 * The tail read the cycle uses (`guardian_observation_tail`, migration 20251203220000) leaves
 * out the older polls of the current segment and still gives the same verdicts and evidence.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createTestDatabase, createTestPglite, type TestDatabase } from '../../test/helpers/db.ts';
import { segmentIndex, segmentStart } from '../src/cycle/run.ts';
import { decide, type DecisionRule } from '../src/decide/decide.ts';
import type { HistoryPoint } from '../src/decide/types.ts';
import { rng } from '../src/random.ts';
import { historyArgs, SqlStore, toHistoryPoint } from '../src/store/sql-store.ts';
import type { HistoryQuery, Observation } from '../src/store/types.ts';

/** The previous guardian_observation_history (migration 20251125050000), verbatim, as the reference. */
const PREVIOUS_HISTORY = `
  with q as (
    select x.flag, x.stage, x.segment_since
      from jsonb_to_recordset(coalesce($2::jsonb, '[]'::jsonb)) as x(flag text, stage timestamptz, segment_since timestamptz)
  ), stage_rows as (
    select o.id, o.flag_name, o.since, o.at, o.unit, o.treatment_total, o.treatment_errors, o.control_total, o.control_errors,
           q.segment_since,
           row_number() over (partition by o.flag_name, o.since order by o.at desc, o.id desc) as newest
      from public.guardian_observations o
      join q on o.flag_name = q.flag and o.stage_started_at = q.stage
     where o.source = $1
  )
  select r.flag_name, r.since, r.at, r.unit, r.treatment_total, r.treatment_errors, r.control_total, r.control_errors
    from stage_rows r
   where r.at >= r.segment_since or r.newest = 1
   order by r.flag_name, r.at, r.id`;

const MIN = 60_000;
const relative: DecisionRule = { id: 'rel', flags: ['f'], window: 0, min_users: 50, min_samples: 50, consecutive: 2, condition: { kind: 'relative', max_increase: 0.005, alpha: 0.05 } };
const absolute: DecisionRule = { id: 'abs', flags: ['f'], window: 0, min_users: 50, min_samples: 50, consecutive: 2, condition: { kind: 'absolute', error_rate_above: 0.05, confidence: 0.95 } };

/** What the cycle hands to decide: the rows as points, each tagged with its segment under the window. */
function points(rows: readonly Record<string, unknown>[], flag: string, stage: Date, window: number): HistoryPoint[] {
  return rows.filter((r) => r['flag_name'] === flag).map((r) => {
    const p = toHistoryPoint(r);
    return { ...p, segment: segmentIndex(stage, window, p.since) };
  });
}

describe.each([
  { name: 'PostgreSQL', make: () => createTestDatabase() },
  { name: 'PGlite', make: () => createTestPglite() },
])('bounded observation history on $name', ({ make }) => {
  let db: TestDatabase;
  let store: SqlStore;
  beforeAll(async () => {
    db = await make();
    store = new SqlStore({ sql: db.sql, kind: 'pg', location: db.url });
  });
  afterAll(async () => {
    await db?.drop();
  });

  const compare = async (source: string, queries: readonly HistoryQuery[]): Promise<{ before: Record<string, unknown>[]; after: Record<string, unknown>[] }> => {
    const args = JSON.stringify(historyArgs(queries));
    const before = (await db.sql.query(PREVIOUS_HISTORY, [source, args])).rows;
    const after = (await db.sql.query('select * from public.guardian_observation_history($1, $2::jsonb)', [source, args])).rows;
    expect(after).toEqual(before);
    return { before, after };
  };

  it('returns the same rows, in the same order, and decide reaches the same verdicts, poll after poll of a long stage', async () => {
    const random = rng(1303);
    const stage = new Date('2026-04-01T00:00:00.000Z');
    const oldStage = new Date('2026-03-31T00:00:00.000Z');
    const flags = ['hist_a', 'hist_b', 'hist_c'];
    // A stage of the old version (other stage_started_at) and rows without since (before segments).
    const legacy: Observation[] = flags.flatMap((flag) => [
      { source: 'posthog', flag, stageStartedAt: oldStage, since: oldStage, at: new Date(oldStage.getTime() + 5 * MIN), unit: 'users', treatment: { total: 90, errors: 9 }, control: { total: 90, errors: 1 } },
      { source: 'posthog', flag, stageStartedAt: stage, at: new Date(stage.getTime() + 30_000), unit: 'users', treatment: { total: 20, errors: 1 }, control: { total: 20, errors: 1 } },
    ]);
    await store.appendObservations(legacy);
    const totals = new Map<string, { t: number; te: number; c: number; ce: number; since: number }>();
    let verdicts = 0;
    let checked = 0;
    let segmentsSeen = 0;
    let tailed = 0;
    // 150 polls, 4 minutes apart (10 h): a 1h window, reloaded to 2h after 6 h (segments change length mid-stage).
    for (let poll = 1; poll <= 150; poll++) {
      const at = new Date(stage.getTime() + poll * 4 * MIN);
      const window = poll <= 90 ? 60 * MIN : 120 * MIN;
      const since = segmentStart(stage, window, at);
      const batch: Observation[] = [];
      for (const [i, flag] of flags.entries()) {
        const prev = totals.get(flag);
        const fresh = prev === undefined || prev.since !== since.getTime();
        const base = fresh ? { t: 0, te: 0, c: 0, ce: 0, since: since.getTime() } : prev;
        const n = 40 + Math.floor(random() * 40);
        const pOn = i === 2 && poll > 100 ? 0.2 : 0.03; // hist_c regresses late in the stage
        let te = 0;
        let ce = 0;
        for (let u = 0; u < n; u++) {
          if (random() < pOn) te++;
          if (random() < 0.03) ce++;
        }
        const next = { t: base.t + n, te: base.te + te, c: base.c + n, ce: base.ce + ce, since: base.since };
        totals.set(flag, next);
        batch.push({ source: 'posthog', flag, stageStartedAt: stage, since, at, unit: 'users', treatment: { total: next.t, errors: next.te }, control: { total: next.c, errors: next.ce } });
        // The same flag on the other source, absolute counts only.
        batch.push({ source: 'sentry', flag, stageStartedAt: stage, since, at, unit: 'events', treatment: { total: next.t * 3, errors: next.te * 2 } });
      }
      // A tie on `at` now and then (a retried write), and a late write of an older poll (a slow replica).
      if (poll % 17 === 0) batch.push({ ...batch[0]!, treatment: { total: batch[0]!.treatment.total + 1, errors: batch[0]!.treatment.errors } });
      await store.appendObservations(batch);
      if (poll % 23 === 0) {
        const late = new Date(at.getTime() - 2 * MIN);
        await store.appendObservations([{ source: 'posthog', flag: 'hist_b', stageStartedAt: stage, since: segmentStart(stage, window, late), at: late, unit: 'users', treatment: { total: 1, errors: 0 }, control: { total: 1, errors: 0 } }]);
      }
      const queries = flags.map((flag) => ({ flag, stageStartedAt: stage, segmentSince: since }));
      // Each source's guardian_observation_history rows: the reference the tail read is checked against below.
      const history = new Map<string, Record<string, unknown>[]>();
      for (const source of ['posthog', 'sentry']) {
        const { before, after } = await compare(source, queries);
        history.set(source, after);
        for (const flag of flags) {
          const old = points(before, flag, stage, window);
          const now = points(after, flag, stage, window);
          const rule = source === 'posthog' ? relative : absolute;
          expect(decide({ ...rule, window }, now, flag)).toEqual(decide({ ...rule, window }, old, flag));
          if (decide({ ...rule, window }, now, flag).kind === 'breach') verdicts++;
          segmentsSeen = Math.max(segmentsSeen, new Set(now.map((p) => p.segment)).size);
          checked++;
        }
      }
      // The tail read (what the cycle reads): the last `consecutive` polls of the current segment,
      // the finals, and how many were left out; decide reaches the same verdict, evidence's polls included.
      for (const source of ['posthog', 'sentry']) {
        const full = history.get(source)!;
        for (const tail of [1, 2, 3]) {
          const bounded = await store.observationTail(source, queries, tail);
          for (const flag of flags) {
            const all = points(full, flag, stage, window);
            const t = bounded.get(flag)!;
            const part = t.points.map((p) => ({ ...p, segment: segmentIndex(stage, window, p.since) }));
            expect(part.length + t.omitted).toBe(all.length);
            expect(part.slice(-tail)).toEqual(all.slice(-tail));
            const rule = { ...(source === 'posthog' ? relative : absolute), window, consecutive: Math.max(1, tail) };
            expect(decide(rule, part, flag, { polls: part.length + t.omitted })).toEqual(decide(rule, all, flag));
            if (t.omitted > 0) tailed++;
          }
        }
      }
      // The read is bounded: the current segment's polls plus one row per earlier segment (and the legacy rows).
      const current = points(history.get('posthog')!, 'hist_a', stage, window);
      expect(current.length).toBeLessThanOrEqual(30 + 1 + Math.floor(poll / 15) + 2 + 1);
    }
    expect(checked).toBe(150 * 2 * 3);
    expect(verdicts).toBeGreaterThan(0); // the late regression of hist_c is caught: the comparison covered breaches too
    expect(segmentsSeen).toBeGreaterThan(4);
    expect(tailed).toBeGreaterThan(100); // polls were left out, often
    // An older stage, and the stage start as the segment: the same as before too.
    await compare('posthog', flags.map((flag) => ({ flag, stageStartedAt: oldStage, segmentSince: oldStage })));
    await compare('posthog', flags.map((flag) => ({ flag, stageStartedAt: stage, segmentSince: stage })));
    // Pruning drops the finals with their rows: still the same rows as ranking what is left.
    for (const cut of [3, 5.5, 8]) {
      await store.pruneObservations(new Date(stage.getTime() + cut * 60 * MIN));
      for (const source of ['posthog', 'sentry']) {
        await compare(source, flags.map((flag) => ({ flag, stageStartedAt: stage, segmentSince: new Date(stage.getTime() + 8 * 60 * MIN) })));
      }
    }
    const { rows } = await db.sql.query<{ n: number }>(
      `select count(*)::int as n from public.guardian_observation_finals f where not exists (select 1 from public.guardian_observations o where o.id = f.observation_id)`,
    );
    expect(rows[0]!.n).toBe(0);
  }, 240_000);
});
