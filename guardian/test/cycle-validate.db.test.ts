/**
 * Provider answers are checked as data at the cycle boundary (sources/validate.ts), for every
 * source: impossible counts and cumulative counts going backwards within a segment are no data
 * with the reason (logged, counted in the summary), never a breach, even when the same lie comes
 * back poll after poll.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { createTestPglite, type TestDatabase } from '../../test/helpers/db.ts';
import { runCycle } from '../src/cycle/run.ts';
import type { CycleDeps } from '../src/cycle/types.ts';
import { SqlStore } from '../src/store/sql-store.ts';
import { MemoryLogger, rulesFrom, ScriptedSource, steppingClock, type Scripted } from './cycle-helpers.ts';

const RULES = `
interval: 1m
defaults: { min_users: 100, consecutive: 2 }
rules:
  - id: booking-agent-errors
    flags: [booking_agent_enabled]
    source: sentry
    condition: { absolute: { error_rate_above: 0.05 } }
    action: disable
    window: 1h
`;

describe('runCycle: answers checked as data', () => {
  let db: TestDatabase;
  let store: SqlStore;
  let sentry: ScriptedSource;
  let logger: MemoryLogger;
  let deps: CycleDeps;
  let script: Scripted[];

  beforeEach(async () => {
    db = await createTestPglite();
    store = new SqlStore({ sql: db.sql, kind: 'pglite', location: 'memory' });
    script = [];
    sentry = new ScriptedSource('sentry', (_flag, call) => script[Math.min(call, script.length) - 1]!);
    logger = new MemoryLogger();
    deps = {
      now: steppingClock(new Date(Date.now() + 1000), 60_000),
      store,
      sources: new Map([['sentry', sentry]]),
      rules: rulesFrom(RULES),
      logger,
      signal: new AbortController().signal,
    };
  });
  afterEach(async () => {
    await db.drop();
  });

  const run = async () => {
    const report = await runCycle(deps);
    const r = report.results.find((x) => x.ruleId === 'booking-agent-errors')!;
    return { kind: r.verdict?.kind, action: r.action, reason: report.sources[0]?.noDataReasons['booking_agent_enabled'], why: r.verdict?.reason };
  };

  it('counts going backwards within a segment are no data, poll after poll, and never roll back', async () => {
    // Honest 2,000 users / 20 with errors, then a provider that "loses" 1,800 users: 20/200 = 10%,
    // above the 5% ceiling, twice in a row (consecutive 2). Before: two breaching polls, a rollback.
    script = [{ treatment: { total: 2000, errors: 20 } }, { treatment: { total: 200, errors: 20 } }, { treatment: { total: 200, errors: 20 } }, { treatment: { total: 2100, errors: 21 } }];
    expect(await run()).toMatchObject({ kind: 'healthy', action: 'none' });
    const second = await run();
    expect(second).toMatchObject({ kind: 'no_data', action: 'none', reason: 'counts_backwards' });
    expect(second.why).toContain('went from 20/2000 to 20/200');
    // the lie repeated: still compared with the last STORED poll (2,000), not with the lie
    expect(await run()).toMatchObject({ kind: 'no_data', reason: 'counts_backwards' });
    expect(await run()).toMatchObject({ kind: 'healthy', action: 'none' });
    expect(await store.getFlag('booking_agent_enabled')).toMatchObject({ enabled: true, guardState: 'watching' });
    expect(logger.lines.some((l) => l.level === 'warn' && l.obj['reason'] === 'counts_backwards')).toBe(true);
    const stored = await db.sql.query<{ n: number }>("select count(*)::int as n from guardian_observations where flag_name = 'booking_agent_enabled'");
    expect(stored.rows[0]?.n).toBe(2);
  });

  it('errors above the total and counts that are not whole numbers are no data from any source', async () => {
    script = [{ treatment: { total: 2000, errors: 2001 } }, { treatment: { total: 2000, errors: 2000.5 } }, { treatment: { total: Number.POSITIVE_INFINITY, errors: 3 } }, { treatment: { total: -5, errors: 0 } }];
    expect(await run()).toMatchObject({ kind: 'no_data', reason: 'errors_above_total' });
    expect(await run()).toMatchObject({ kind: 'no_data', reason: 'bad_count' });
    expect(await run()).toMatchObject({ kind: 'no_data', reason: 'bad_count' });
    expect(await run()).toMatchObject({ kind: 'no_data', reason: 'bad_count' });
    expect(await store.getFlag('booking_agent_enabled')).toMatchObject({ enabled: true, guardState: 'watching' });
  });

  it('a source that switches unit within a segment is no data (unit_changed), never judged on the mix', async () => {
    script = [{ treatment: { total: 2000, errors: 20 } }, { treatment: { total: 9000, errors: 5020 }, unit: 'events' }, { treatment: { total: 9100, errors: 5040 }, unit: 'events' }];
    expect(await run()).toMatchObject({ kind: 'healthy' });
    expect(await run()).toMatchObject({ kind: 'no_data', reason: 'unit_changed' });
    expect(await run()).toMatchObject({ kind: 'no_data', reason: 'unit_changed' });
    expect(await store.getFlag('booking_agent_enabled')).toMatchObject({ enabled: true, guardState: 'watching' });
  });
});

describe('estimateSlack', () => {
  it('exact counts may never dip; ClickHouse uniq estimates above 65,536 may dip by 1%', async () => {
    const { estimateSlack, checkAgainstPrevious } = await import('../src/sources/validate.ts');
    expect(estimateSlack(65_536)).toBe(0);
    expect(estimateSlack(200_000)).toBe(2_000);
    const obs = (total: number) => ({ flag: 'f_a', status: 'ok' as const, unit: 'users' as const, treatment: { total, errors: 10 } });
    expect(checkAgainstPrevious(obs(199_000), { treatment: { total: 200_000, errors: 10 } }).status).toBe('ok');
    expect(checkAgainstPrevious(obs(190_000), { treatment: { total: 200_000, errors: 10 } })).toMatchObject({ status: 'no_data', reason: 'counts_backwards' });
    expect(checkAgainstPrevious(obs(999), { treatment: { total: 1_000, errors: 10 } })).toMatchObject({ status: 'no_data', reason: 'counts_backwards' });
  });
});
