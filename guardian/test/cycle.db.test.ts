import pg from 'pg';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import { createTestPglite, type TestDatabase } from '../../test/helpers/db.ts';
import { confirmationFocus } from '../src/cycle/confirm.ts';
import { runLeasedCycle } from '../src/cycle/leased.ts';
import { channelsFromNotify, idempotencyKey, runCycle } from '../src/cycle/run.ts';
import { cronForInterval, Scheduler } from '../src/cycle/scheduler.ts';
import type { CycleDeps } from '../src/cycle/types.ts';
import { SqlStore } from '../src/store/sql-store.ts';
import { pgSqlClient } from '../src/store/sql.ts';
import { MemoryLogger, rulesFrom, ScriptedSource, steppingClock } from './cycle-helpers.ts';

const RULES = `
interval: 1m
defaults: { min_users: 100, consecutive: 2 }
notify:
  slack: { webhook_url: "https://hooks.slack.com/services/T000/B000/XXXX" }
  email: { to: [oncall@example.com] }
rules:
  - id: booking-agent-errors
    flags: [booking_agent_enabled]
    source: sentry
    condition: { absolute: { error_rate_above: 0.05 } }
    action: disable
  - id: insights-errors
    flags: [insights_agent_enabled]
    source: posthog
    condition: { absolute: { error_rate_above: 0.05 } }
    action: disable
  - id: beta-regression
    flags: [ai_beta_users]
    source: posthog
    condition: { relative: { max_increase: 0.01 } }
    action: step_back
`;

const BAD = { treatment: { total: 2000, errors: 400 }, control: { total: 6000, errors: 60 } };
const GOOD = { treatment: { total: 2000, errors: 10 }, control: { total: 6000, errors: 30 } };

describe('runCycle (PGlite store)', () => {
  let db: TestDatabase;
  let store: SqlStore;
  let sentry: ScriptedSource;
  let posthog: ScriptedSource;
  let logger: MemoryLogger;
  let deps: CycleDeps;

  beforeEach(async () => {
    db = await createTestPglite();
    store = new SqlStore({ sql: db.sql, kind: 'pglite', location: 'memory' });
    sentry = new ScriptedSource('sentry', () => BAD);
    posthog = new ScriptedSource('posthog', () => GOOD);
    logger = new MemoryLogger();
    deps = {
      now: steppingClock(new Date(Date.now() + 1000), 60_000),
      store,
      sources: new Map([
        ['sentry', sentry],
        ['posthog', posthog],
      ]),
      rules: rulesFrom(RULES),
      logger,
      signal: new AbortController().signal,
    };
  });
  afterEach(async () => {
    await db.drop();
  });

  it('acts after `consecutive` breaching polls, once, with evidence; never touches the rolled-back flag again', async () => {
    const first = await runCycle(deps);
    const booking1 = first.results.find((r) => r.ruleId === 'booking-agent-errors');
    expect(booking1).toMatchObject({ action: 'none', verdict: { kind: 'healthy', consecutive: 1 } });
    expect(sentry.calls).toBe(1);
    expect(posthog.calls).toBe(1);
    // One query per source with all its flags.
    expect(posthog.asked[0]!.map((q) => q.flag).sort()).toEqual(['ai_beta_users', 'insights_agent_enabled']);

    const flagBefore = await store.getFlag('booking_agent_enabled');
    const second = await runCycle(deps);
    const booking2 = second.results.find((r) => r.ruleId === 'booking-agent-errors');
    expect(booking2).toMatchObject({ action: 'acted', ruleAction: 'disable', verdict: { kind: 'breach', consecutive: 2 } });
    expect(await store.getFlag('booking_agent_enabled')).toMatchObject({ enabled: false, guardState: 'rolled_back' });
    const [event] = await store.listEvents({ flag: 'booking_agent_enabled' });
    expect(event).toMatchObject({ id: booking2?.eventId, kind: 'auto_rollback', ruleId: 'booking-agent-errors', source: 'sentry', actor: 'guardian' });
    expect(event?.idempotencyKey).toBe(idempotencyKey('booking-agent-errors', flagBefore!, false));
    expect(event?.evidence).toMatchObject({ condition: 'absolute', threshold: 0.05, treatment: { total: 2000, errors: 400 }, polls: 2 });
    const outbox = await db.sql.query<{ channel: string }>('select channel from notification_outbox where event_id = $1::bigint order by channel', [event!.id]);
    expect(outbox.rows.map((r) => r.channel)).toEqual(['email', 'slack']);
    // The healthy flags were not touched.
    expect(second.results.find((r) => r.ruleId === 'insights-errors')).toMatchObject({ action: 'none', verdict: { kind: 'healthy' } });
    expect(await store.getFlag('insights_agent_enabled')).toMatchObject({ enabled: true, guardState: 'watching' });

    const third = await runCycle(deps);
    expect(third.results.find((r) => r.ruleId === 'booking-agent-errors')).toMatchObject({ action: 'skipped' });
    expect(sentry.calls).toBe(2);
    expect(await store.listEvents({ flag: 'booking_agent_enabled' })).toHaveLength(1);

    const states = await store.loadRuleState();
    expect(states.find((s) => s.ruleId === 'booking-agent-errors')).toMatchObject({ consecutiveBreaches: 2, lastVerdict: 'breach' });
  });

  it('confirmation: after a first breaching poll, a focused cycle polls only the pending flags and acts on the second breach', async () => {
    posthog.answer = (flag) => (flag === 'ai_beta_users' ? BAD : GOOD);
    const first = await runCycle(deps);
    const focus = confirmationFocus(first);
    // Every pair whose condition held once: booking (sentry, BAD everywhere) and ai_beta_users (posthog).
    expect(focus).toEqual(new Map([['sentry', new Set(['booking_agent_enabled'])], ['posthog', new Set(['ai_beta_users'])]]));
    const confirm = await runCycle({ ...deps, focus: new Map([['posthog', new Set(['ai_beta_users'])]]) });
    // Only the focused flag was polled and judged; the sentry source was not asked at all.
    expect(posthog.asked.at(-1)!.map((q) => q.flag)).toEqual(['ai_beta_users']);
    expect(sentry.calls).toBe(1);
    expect(confirm.results.map((r) => `${r.ruleId}:${r.flag}`)).toEqual(['beta-regression:ai_beta_users']);
    expect(confirm.results[0]).toMatchObject({ action: 'acted', ruleAction: 'step_back', verdict: { kind: 'breach', consecutive: 2 } });
    expect(confirmationFocus(confirm)).toBeUndefined();
    // A healthy report asks for no confirmation.
    posthog.answer = () => GOOD;
    sentry.answer = () => GOOD;
    expect(confirmationFocus(await runCycle(deps))).toBeUndefined();
  });

  it('step_back on a relative breach moves the flag to the previous stage', async () => {
    posthog.answer = (flag) => (flag === 'ai_beta_users' ? BAD : GOOD);
    await runCycle(deps);
    const report = await runCycle(deps);
    expect(report.results.find((r) => r.ruleId === 'beta-regression')).toMatchObject({ action: 'acted', ruleAction: 'step_back' });
    expect(await store.getFlag('ai_beta_users')).toMatchObject({ enabled: true, rolloutPercentage: 10, guardState: 'rolled_back' });
  });

  it('a stage older than its window is asked for in segments and judged across them (never on counts that slide)', async () => {
    const stage = (await store.getFlag('ai_beta_users'))!.stageStartedAt;
    const times: Date[] = [];
    const clock = deps.now;
    const segmented: CycleDeps = {
      ...deps,
      rules: rulesFrom(RULES.replace('condition: { relative: { max_increase: 0.01 } }', 'condition: { relative: { max_increase: 0.01 } }\n    window: 10m')),
      now: () => {
        const t = clock();
        times.push(t);
        return t;
      },
    };
    for (let i = 0; i < 12; i++) await runCycle(segmented);
    const sinceAsked = posthog.asked.map((qs) => qs.find((q) => q.flag === 'ai_beta_users')!.since.getTime());
    // Each poll asks since the start of the 10-minute segment it falls in, never for more.
    sinceAsked.forEach((since, i) => {
      const k = Math.floor((times[i]!.getTime() - stage.getTime()) / 600_000);
      expect(since).toBe(stage.getTime() + k * 600_000);
      expect(times[i]!.getTime() - since).toBeLessThan(600_000);
    });
    expect(new Set(sinceAsked).size).toBe(2);
    const stored = await db.sql.query<{ since: Date }>("select since from guardian_observations where flag_name = 'ai_beta_users' order by at");
    expect(stored.rows.map((r) => new Date(r.since).getTime())).toEqual(sinceAsked);
    // The other flags' rules keep the default window (1h): one segment so far.
    expect(new Set(posthog.asked.map((qs) => qs.find((q) => q.flag === 'insights_agent_enabled')!.since.getTime())).size).toBe(1);

    posthog.answer = (flag) => (flag === 'ai_beta_users' ? BAD : GOOD);
    await runCycle(segmented);
    const report = await runCycle(segmented);
    const beta = report.results.find((r) => r.ruleId === 'beta-regression');
    expect(beta).toMatchObject({ action: 'acted', ruleAction: 'step_back', verdict: { kind: 'breach' } });
    expect(beta?.verdict?.evidence).toMatchObject({ window: 600_000, condition: 'relative' });
    expect(beta?.verdict?.evidence?.since).toBe(new Date(sinceAsked.at(-1)!).toISOString());
  });

  it("asks the source to leave a relative rule's target-list users out of its counts (they were picked, not randomised)", async () => {
    await db.sql.query(
      "insert into flag_targets (flag_name, user_id) values ('ai_beta_users', 'staff-1'), ('ai_beta_users', 'staff-2'), ('insights_agent_enabled', 'staff-1')",
    );
    await runCycle(deps);
    const asked = posthog.asked[0]!;
    expect([...(asked.find((q) => q.flag === 'ai_beta_users')?.excludeUsers ?? [])].sort()).toEqual(['staff-1', 'staff-2']);
    // An absolute ceiling is about every flag-on user: its targets stay in.
    expect(asked.find((q) => q.flag === 'insights_agent_enabled')?.excludeUsers).toBeUndefined();
  });

  it('no data, a throwing source and a failing rule never stop the others and never breach', async () => {
    sentry.throws = new Error('socket hang up');
    posthog.answer = (flag) => (flag === 'insights_agent_enabled' ? { noData: 'rate_limited' } : BAD);
    const calls: string[] = [];
    deps = {
      ...deps,
      decide: (rule, history, flag) => {
        calls.push(rule.id);
        if (rule.id === 'insights-errors') throw new Error('boom');
        return { kind: 'breach', ruleId: rule.id, flag, reason: 'test breach', consecutive: 2 };
      },
    };
    const report = await runCycle(deps);
    expect(report.results.find((r) => r.ruleId === 'booking-agent-errors')).toMatchObject({ action: 'none', verdict: { kind: 'no_data' } });
    expect(report.results.find((r) => r.ruleId === 'insights-errors')).toMatchObject({ action: 'none', verdict: { kind: 'no_data' } });
    expect(report.results.find((r) => r.ruleId === 'beta-regression')).toMatchObject({ action: 'acted' });
    expect(report.sources.find((s) => s.source === 'sentry')).toMatchObject({ ok: 0, noData: 1, error: { code: 'SOURCE_UNAVAILABLE' } });
    expect(report.sources.find((s) => s.source === 'posthog')?.noDataReasons).toEqual({ insights_agent_enabled: 'rate_limited' });
    expect(calls).toEqual(['beta-regression']);
    expect(await store.getFlag('booking_agent_enabled')).toMatchObject({ enabled: true, guardState: 'watching' });
    expect(report.sourceReports.find((r) => r.source === 'sentry')?.error?.code).toBe('SOURCE_UNAVAILABLE');

    // A rule whose decide throws is reported as failed; the others still act.
    posthog.answer = () => BAD;
    sentry.throws = undefined;
    const next = await runCycle(deps);
    expect(next.results.find((r) => r.ruleId === 'insights-errors')).toMatchObject({ action: 'failed', error: { message: 'boom' } });
    expect(next.results.find((r) => r.ruleId === 'booking-agent-errors')).toMatchObject({ action: 'acted' });
  });

  it('a pair its source did not ask this cycle (deferred) keeps its stored verdict, evidence and time; one never judged is stored as no data', async () => {
    // insights: healthy once, then not asked. beta: never asked, so nothing to keep. booking: asked, no data (rate limited).
    posthog.answer = (flag, call) => (flag === 'ai_beta_users' || call > 1 ? { noData: 'deferred' } : GOOD);
    sentry.answer = (_flag, call) => (call > 1 ? { noData: 'rate_limited' } : GOOD);
    await runCycle(deps);
    const before = new Map((await store.loadRuleState()).map((s) => [s.ruleId, s]));
    expect(before.get('insights-errors')).toMatchObject({ lastVerdict: 'healthy', lastEvidence: { treatment: { total: 2000, errors: 10 } } });
    expect(before.get('beta-regression')).toMatchObject({ lastVerdict: 'no_data', consecutiveBreaches: 0 });
    expect(String(before.get('beta-regression')?.lastEvidence?.['reason'])).toContain('(deferred)');

    const second = await runCycle(deps);
    // The report still says what happened this cycle.
    expect(second.results.find((r) => r.ruleId === 'insights-errors')).toMatchObject({ action: 'none', verdict: { kind: 'no_data' } });
    const after = new Map((await store.loadRuleState()).map((s) => [s.ruleId, s]));
    expect(after.get('insights-errors')).toEqual(before.get('insights-errors'));
    expect(after.get('beta-regression')).toEqual(before.get('beta-regression'));
    // A source that was asked and had nothing is news: stored as no data, at this cycle's time.
    expect(after.get('booking-agent-errors')).toMatchObject({ lastVerdict: 'no_data' });
    expect(String(after.get('booking-agent-errors')?.lastEvidence?.['reason'])).toContain('(rate_limited)');
    expect(after.get('booking-agent-errors')!.updatedAt.getTime()).toBeGreaterThan(before.get('booking-agent-errors')!.updatedAt.getTime());
  });

  it('skips missing flags, disabled and locked flags and unconfigured sources, with the reason', async () => {
    await store.lock('insights_agent_enabled', 'alice');
    await store.setFlag('ai_beta_users', { enabled: false }, 'alice');
    const rules = rulesFrom(`${RULES}
  - id: ghost
    flags: [no_such_flag]
    source: sentry
    condition: { absolute: {} }
    action: disable
  - id: builtin-rule
    flags: [session_agent_enabled]
    source: builtin
    condition: { absolute: {} }
    action: disable
`);
    const report = await runCycle({ ...deps, rules });
    const skipped = Object.fromEntries(report.results.filter((r) => r.action === 'skipped').map((r) => [r.ruleId, r.skipped]));
    expect(skipped['ghost']).toMatch(/does not exist/);
    expect(skipped['insights-errors']).toMatch(/locked/);
    expect(skipped['beta-regression']).toMatch(/disabled/);
    expect(skipped['builtin-rule']).toMatch(/source "builtin" is not configured/);
  });

  it('dry run (global or per rule) records one dry_run event and changes nothing', async () => {
    deps = { ...deps, dryRun: true };
    await runCycle(deps);
    const report = await runCycle(deps);
    await runCycle(deps);
    expect(report.dryRun).toBe(true);
    expect(report.results.find((r) => r.ruleId === 'booking-agent-errors')).toMatchObject({ action: 'dry_run' });
    expect(await store.getFlag('booking_agent_enabled')).toMatchObject({ enabled: true, guardState: 'watching' });
    const events = await store.listEvents({ flag: 'booking_agent_enabled' });
    expect(events.map((e) => e.kind)).toEqual(['dry_run']);
  });

  it('a one-off look (record false) judges on what it sees, stores nothing, and never counts towards a real rollback', async () => {
    const look = await runCycle({ ...deps, dryRun: true, record: false });
    expect(look.results.find((r) => r.ruleId === 'booking-agent-errors')).toMatchObject({ verdict: { kind: 'healthy', consecutive: 1 } });
    await runCycle({ ...deps, dryRun: true, record: false });
    expect(await store.loadRuleState()).toEqual([]);
    expect((await db.sql.query<{ n: number }>('select count(*)::int as n from guardian_observations')).rows[0]!.n).toBe(0);
    const real = await runCycle(deps);
    expect(real.results.find((r) => r.ruleId === 'booking-agent-errors')).toMatchObject({ action: 'none', verdict: { consecutive: 1 } });
    expect(await store.getFlag('booking_agent_enabled')).toMatchObject({ enabled: true, guardState: 'watching' });
  });

  it('a store that cannot be read is a cycle-wide error, not a crash', async () => {
    const unreachable = new SqlStore({ sql: pgSqlClient(new pg.Pool({ connectionString: 'postgres://postgres@127.0.0.1:1/none' })), kind: 'pg', location: '127.0.0.1:1' });
    try {
      const report = await runCycle({ ...deps, store: unreachable });
      expect(report.errors[0]?.code).toBe('STORE_UNREACHABLE');
      expect(report.results).toEqual([]);
      expect(sentry.calls).toBe(0);
    } finally {
      await unreachable.close();
    }
  });

  it('the cycle lease lets one holder run; the other skips', async () => {
    const a = await runLeasedCycle({ ...deps, holder: 'a', leaseTtlMs: 60_000 });
    const b = await runLeasedCycle({ ...deps, holder: 'b', leaseTtlMs: 60_000 });
    expect(a.ran).toBe(true);
    expect(b).toMatchObject({ ran: false, notRunReason: 'another replica holds the cycle lease' });
    expect(sentry.calls).toBe(1);
  });

  it('derives channels from the notify section', () => {
    expect(channelsFromNotify({ slack: { webhook_url: '' }, email: { to: ['a@example.com'] } })).toEqual(['email']);
    expect(channelsFromNotify({})).toEqual([]);
  });
});

describe('Scheduler', () => {
  it('maps intervals to cron expressions', () => {
    expect(cronForInterval(30_000)).toEqual({ expression: '*/30 * * * * *', gated: false });
    expect(cronForInterval(60_000)).toEqual({ expression: '0 * * * * *', gated: false });
    expect(cronForInterval(300_000)).toEqual({ expression: '0 */5 * * * *', gated: false });
    expect(cronForInterval(45_000)).toEqual({ expression: '* * * * * *', gated: true });
    expect(() => cronForInterval(10)).toThrow(/at least 1s/);
  });

  it('never overlaps: a tick during a slow cycle is skipped; stop waits for the cycle in flight', async () => {
    let release: () => void = () => {};
    let runs = 0;
    let finished = false;
    const logger = new MemoryLogger();
    const scheduler = new Scheduler({
      intervalMs: 60_000,
      logger,
      run: async () => {
        runs++;
        await new Promise<void>((r) => (release = r));
        finished = true;
      },
    });
    const first = scheduler.tick();
    await scheduler.tick();
    expect(runs).toBe(1);
    expect(scheduler.skipped).toBe(1);
    expect(scheduler.busy).toBe(true);
    const stopped = scheduler.stop();
    let stopDone = false;
    void stopped.then(() => (stopDone = true));
    await Promise.resolve();
    expect(stopDone).toBe(false);
    release();
    await stopped;
    await first;
    expect(finished).toBe(true);
    await scheduler.tick();
    expect(runs).toBe(1);
    expect(logger.lines.some((l) => l.msg.includes('still running'))).toBe(true);
  });

  it('soon: runs the confirmation once, never alongside a cycle, and stop cancels one still waiting', async () => {
    const logger = new MemoryLogger();
    let ticks = 0;
    let release: () => void = () => {};
    const scheduler = new Scheduler({ intervalMs: 60_000, logger, run: async () => {
      ticks++;
      await new Promise<void>((r) => (release = r));
    } });
    const confirmations: string[] = [];
    scheduler.soon(1, async () => {
      confirmations.push('a');
    });
    await vi.waitFor(() => expect(confirmations).toEqual(['a']));
    // While a cycle runs, a confirmation that falls due is dropped (that cycle polls the same flags).
    const tick = scheduler.tick();
    scheduler.soon(1, async () => {
      confirmations.push('during');
    });
    // Its timer fires while the cycle still runs, and the confirmation is dropped.
    await vi.waitFor(() => expect(scheduler.confirmationPending).toBe(false));
    release();
    await tick;
    expect(confirmations).toEqual(['a']);
    expect(ticks).toBe(1);
    scheduler.soon(60_000, async () => {
      confirmations.push('late');
    });
    await scheduler.stop();
    expect(confirmations).toEqual(['a']);
  });
});
