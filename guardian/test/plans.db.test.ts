// Release plans end to end at the cycle level, on real PostgreSQL: a good flag is promoted
// 10 → 50 → 100 (one promote event and one alert per step per channel), a flag that turns bad
// at 50% is stepped back to 10% and its plan stops, a person's change pauses the plan, a stage
// without evidence either way pauses at its max_time, and three racing replicas promote each
// stage exactly once.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.ts';
import { runCycle } from '../src/cycle/run.ts';
import type { CycleDeps, CycleReport } from '../src/cycle/types.ts';
import type { FlagQuery, MetricSource, SourceReport } from '../src/sources/types.ts';
import { SqlStore } from '../src/store/sql-store.ts';
import { pgSqlClient } from '../src/store/sql.ts';
import { MemoryLogger, rulesFrom } from './cycle-helpers.ts';

const MINUTE = 60_000;

/**
 * A PostHog-like source whose counts follow the clock: `perMinute` users a minute in all, the
 * flag-on share at the flag's current percentage, cumulative since each query's `since`, with
 * error rates that may depend on the stage.
 */
class TrafficSource implements MetricSource {
  readonly id = 'posthog';
  readonly clock: { now: Date };
  readonly percentage: (flag: string) => Promise<number>;
  readonly onRate: (pct: number) => number;
  readonly perMinute: number;
  readonly offRate = 0.01;

  constructor(clock: { now: Date }, percentage: (flag: string) => Promise<number>, onRate: (pct: number) => number, perMinute = 1000) {
    this.clock = clock;
    this.percentage = percentage;
    this.onRate = onRate;
    this.perMinute = perMinute;
  }

  async query(flags: readonly FlagQuery[]): Promise<SourceReport> {
    const observations = await Promise.all(
      flags.map(async (q) => {
        const pct = await this.percentage(q.flag);
        const minutes = Math.max(0, (this.clock.now.getTime() - q.since.getTime()) / MINUTE);
        const on = Math.round((this.perMinute * minutes * pct) / 100);
        const off = Math.round(this.perMinute * minutes) - on;
        return {
          flag: q.flag,
          status: 'ok' as const,
          unit: 'users' as const,
          treatment: { total: on, errors: Math.round(on * this.onRate(pct)) },
          control: { total: off, errors: Math.round(off * this.offRate) },
        };
      }),
    );
    return { source: this.id, at: this.clock.now, observations, requests: 1 };
  }
}

function planRules(flag: string, extra = ''): string {
  return `
interval: 1m
notify:
  slack: { webhook_url: "https://hooks.slack.com/services/T000/B000/XXXX" }
  email: { to: [oncall@example.com] }
rules:
  - id: release-guard
    flags: [${flag}]
    source: posthog
    condition: { relative: { max_increase: 0.01, alpha: 0.02 } }
    action: notify_only
    consecutive: 1
    min_users: 100
plans:
  - flag: ${flag}
    stages: [10, 50, 100]
    min_time: 10m
    max_time: 2h
    min_users: 500
    guard: [release-guard]
    on_breach: step_back
    margin: 0.005
${extra}`;
}

describe('release plans (real PostgreSQL)', () => {
  let db: TestDatabase;
  let store: SqlStore;

  beforeAll(async () => {
    db = await createTestDatabase();
    store = new SqlStore({ sql: db.sql, kind: 'pg', location: 'test' });
  });
  afterAll(async () => {
    await db?.drop();
  });

  async function newFlag(name: string, pct = 10): Promise<void> {
    await db.sql.query('insert into feature_flags (name, enabled, rollout_percentage) values ($1, true, $2)', [name, pct]);
  }
  const percentageOf = async (flag: string): Promise<number> =>
    Number((await db.sql.query<{ p: number }>('select rollout_percentage as p from feature_flags where name = $1', [flag])).rows[0]?.p ?? 0);
  async function events(flag: string): Promise<Array<{ kind: string; from: number | null; to: number | null; outbox: number }>> {
    const { rows } = await db.sql.query<{ kind: string; from: number | null; to: number | null; outbox: number }>(
      `select e.kind, (e.previous_state ->> 'rollout_percentage')::int as from, (e.new_state ->> 'rollout_percentage')::int as to,
              (select count(*)::int from notification_outbox o where o.event_id = e.id) as outbox
         from rollback_events e where e.flag_name = $1 order by e.id`,
      [flag],
    );
    return rows;
  }

  /**
   * Moves a flag's stage start to the test clock's time without counting as a change (the
   * bookkeeping trigger is off for that one statement): the database stamps stages with its own
   * clock, while the cycles run on a clock a minute ahead per cycle.
   */
  async function stageStartsAt(flag: string, at: Date): Promise<void> {
    await db.sql.transaction(async (tx) => {
      await tx.query('alter table feature_flags disable trigger feature_flags_before_write');
      await tx.query('update feature_flags set stage_started_at = $2 where name = $1', [flag, at]);
      await tx.query('alter table feature_flags enable trigger feature_flags_before_write');
    });
  }

  /** Runs cycles a minute apart on a test clock, keeping the flag's stage start on that clock. */
  async function cycles(flag: string, rules: string, onRate: (pct: number) => number, n: number, until?: (r: CycleReport) => boolean, perMinute = 1000): Promise<CycleReport[]> {
    const clock = { now: new Date() };
    await stageStartsAt(flag, clock.now);
    const deps: CycleDeps = {
      now: () => clock.now,
      store,
      sources: new Map([['posthog', new TrafficSource(clock, percentageOf, onRate, perMinute)]]),
      rules: rulesFrom(rules),
      logger: new MemoryLogger(),
      signal: new AbortController().signal,
    };
    const out: CycleReport[] = [];
    let pct = await percentageOf(flag);
    for (let i = 0; i < n; i++) {
      clock.now = new Date(clock.now.getTime() + MINUTE);
      const r = await runCycle(deps);
      out.push(r);
      const now = await percentageOf(flag);
      if (now !== pct) await stageStartsAt(flag, clock.now);
      pct = now;
      if (until?.(r)) break;
    }
    return out;
  }

  it('promotes a good flag 10 → 50 → 100 with one promote event and one alert per channel per step', async () => {
    await newFlag('plan_good');
    const reports = await cycles('plan_good', planRules('plan_good'), () => 0.01, 200, (r) => r.plans?.[0]?.status === 'completed');
    expect(await percentageOf('plan_good')).toBe(100);
    const ev = await events('plan_good');
    expect(ev).toEqual([
      { kind: 'promote', from: 10, to: 50, outbox: 2 },
      { kind: 'promote', from: 50, to: 100, outbox: 2 },
    ]);
    const waits = reports.filter((r) => r.plans?.[0]?.action === 'waiting');
    expect(waits.length).toBeGreaterThan(0);
    expect(waits[0]!.plans![0]!.reason).toMatch(/waiting at 10%: .*min_time 10m/);
    const [state] = (await store.listPlanStates()).filter((s) => s.flag === 'plan_good');
    expect(state).toMatchObject({ status: 'completed', running: true });
    // Never before its minimum time: the first promotion came at or after 10 minutes in stage.
    const firstPromote = reports.findIndex((r) => r.plans?.[0]?.action === 'promoted');
    expect(firstPromote).toBeGreaterThanOrEqual(9);
    const { rows } = await db.sql.query<{ payload: { kind: string; evidence: { log_e_value: number; alpha: number } } }>(
      "select o.payload from notification_outbox o join rollback_events e on e.id = o.event_id where e.flag_name = 'plan_good' and o.channel = 'slack' order by o.id limit 1",
    );
    expect(rows[0]!.payload.kind).toBe('promote');
    expect(rows[0]!.payload.evidence.log_e_value).toBeGreaterThanOrEqual(Math.log(1 / rows[0]!.payload.evidence.alpha));
  });

  it('steps a flag that turns bad at 50% back to 10% and stops its plan', async () => {
    await newFlag('plan_bad50');
    await cycles('plan_bad50', planRules('plan_bad50'), (pct) => (pct >= 50 ? 0.04 : 0.01), 200, (r) => r.plans?.[0]?.action === 'stopped');
    expect(await percentageOf('plan_bad50')).toBe(10);
    const ev = await events('plan_bad50');
    expect(ev.map((e) => [e.kind, e.from, e.to])).toEqual([
      ['promote', 10, 50],
      ['auto_rollback', 50, 10],
    ]);
    const [state] = (await store.listPlanStates()).filter((s) => s.flag === 'plan_bad50');
    expect(state?.status).toBe('stopped');
    expect(state?.reason).toMatch(/rolled back by rule release-guard/);
  });

  it('pauses when a person changes the flag, and never fights them', async () => {
    await newFlag('plan_manual');
    await cycles('plan_manual', planRules('plan_manual'), () => 0.01, 3);
    await store.setFlag('plan_manual', { rolloutPercentage: 30 }, 'alice');
    const reports = await cycles('plan_manual', planRules('plan_manual'), () => 0.01, 30);
    expect(reports[0]!.plans![0]).toMatchObject({ action: 'paused', status: 'paused' });
    expect(reports[0]!.plans![0]!.reason).toMatch(/changed by alice .*paused and never fights a person/);
    expect(reports.slice(1).every((r) => r.plans![0]!.action === 'inactive')).toBe(true);
    expect(await percentageOf('plan_manual')).toBe(30);
    expect((await events('plan_manual')).map((e) => [e.kind, e.outbox])).toEqual([['plan_paused', 2]]);
  });

  it('pauses at max_time when neither safety nor harm is shown, and tells the team once', async () => {
    await newFlag('plan_slow');
    // 20 users a minute: at 10%, two flag-on users a minute never reach min_users 500 by max_time 2h.
    const reports = await cycles('plan_slow', planRules('plan_slow'), () => 0.01, 130, undefined, 20);
    const paused = reports.findIndex((r) => r.plans?.[0]?.action === 'paused');
    expect(paused).toBe(119);
    expect(reports[paused]!.plans![0]!.reason).toMatch(/without evidence either way .* flag-on users of min_users 500/);
    expect(reports.slice(paused + 1).every((r) => r.plans![0]!.action === 'inactive')).toBe(true);
    expect((await events('plan_slow')).map((e) => [e.kind, e.outbox])).toEqual([['plan_paused', 2]]);
    expect(await percentageOf('plan_slow')).toBe(10);
  });
});

describe('release plans: three racing replicas (real PostgreSQL)', () => {
  const RUNS = Number(process.env['PLAN_RACE_RUNS'] ?? 100);
  let db: TestDatabase;
  let stores: SqlStore[];

  beforeAll(async () => {
    db = await createTestDatabase();
    stores = [0, 1, 2].map((i) => {
      const pool = new pg.Pool({ connectionString: db.url, max: 3 });
      pool.on('error', () => {});
      return new SqlStore({ sql: pgSqlClient(pool), kind: 'pg', location: `replica-${i}` });
    });
  });
  afterAll(async () => {
    await Promise.all((stores ?? []).map((s) => s.close()));
    await db?.drop();
  });

  it(`promote each stage exactly once in ${RUNS} of ${RUNS} runs`, async () => {
    const failures: string[] = [];
    for (let run = 0; run < RUNS; run++) {
      const flag = `race_flag_${run}`;
      await db.sql.query('insert into feature_flags (name, enabled, rollout_percentage) values ($1, true, 10)', [flag]);
      const rules = rulesFrom(planRules(flag));
      // Thirty minutes into the stage at 5,000 users a minute: its min_time has passed, and
      // 15,000 flag-on users show it safe. (The stage start is moved back without counting as a
      // change; the cycles run on the real clock, so the next stage starts now.)
      await db.sql.transaction(async (tx) => {
        await tx.query('alter table feature_flags disable trigger feature_flags_before_write');
        await tx.query("update feature_flags set stage_started_at = now() - interval '30 minutes' where name = $1", [flag]);
        await tx.query('alter table feature_flags enable trigger feature_flags_before_write');
      });
      const clock = { now: new Date() };
      const percentageOf = async (): Promise<number> => 10;
      const reports = await Promise.all(
        stores.map((store) =>
          runCycle({
            now: () => new Date(),
            store,
            sources: new Map([['posthog', new TrafficSource(clock, percentageOf, () => 0.01, 5000)]]),
            rules,
            logger: new MemoryLogger(),
            signal: new AbortController().signal,
          }),
        ),
      );
      const { rows } = await db.sql.query<{ promotes: number; outbox: number; pct: number; changes: number }>(
        `select (select count(*)::int from rollback_events where flag_name = $1 and kind = 'promote') as promotes,
                (select count(*)::int from notification_outbox o join rollback_events e on e.id = o.event_id where e.flag_name = $1) as outbox,
                (select rollout_percentage from feature_flags where name = $1) as pct,
                (select count(*)::int from flag_changes where flag_name = $1 and (new_row ->> 'rollout_percentage')::int = 50) as changes`,
        [flag],
      );
      const r = rows[0]!;
      if (r.promotes !== 1 || r.outbox !== 2 || r.pct !== 50 || r.changes !== 1) failures.push(`${flag}: ${JSON.stringify(r)} ${JSON.stringify(reports.map((x) => x.plans))}`);
    }
    expect(failures).toEqual([]);
  }, 600_000);
});
