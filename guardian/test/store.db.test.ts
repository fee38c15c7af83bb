/**
 * The Store contract, one suite for every backend: SqlStore on the real PostgreSQL and on PGlite,
 * and SupabaseStore through supabase-js against the PostgREST protocol double
 * (test/helpers/postgrest-double.ts) on the real PostgreSQL, where every request runs as the role
 * its JWT names. What only Supabase has (keys, max_rows paging, reachability) is in
 * store-supabase.db.test.ts.
 */
import { createHash } from 'node:crypto';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createTestDatabase, createTestPglite, type TestDatabase } from '../../test/helpers/db.ts';
import { PostgrestDouble, supabaseKey } from '../../test/helpers/postgrest-double.ts';
import type { HistoryPoint } from '../src/decide/types.ts';
import { isGuardianError } from '../src/errors.ts';
import { SqlStore } from '../src/store/sql-store.ts';
import { SupabaseStore } from '../src/store/supabase-store.ts';
import type { HistoryQuery, Store } from '../src/store/types.ts';
import { codeOf, errorOf } from './rejection.ts';

/** Every stored poll decide could read, per flag: the tail read with a tail longer than any segment here (nothing left out). */
async function historyOf(store: Store, source: string, queries: readonly HistoryQuery[]): Promise<Map<string, HistoryPoint[]>> {
  const out = new Map<string, HistoryPoint[]>();
  for (const [flag, t] of await store.observationTail(source, queries, 10_000)) {
    expect(t.omitted).toBe(0);
    out.set(flag, t.points);
  }
  return out;
}

interface Opened {
  readonly db: TestDatabase;
  readonly store: Store;
  close(): Promise<void>;
}
type Backend = { name: Store['kind']; open: () => Promise<Opened> };

async function sqlBackend(name: 'pg' | 'pglite', make: () => Promise<TestDatabase>): Promise<Opened> {
  const db = await make();
  return { db, store: new SqlStore({ sql: db.sql, kind: name, location: db.url }), close: () => db.drop() };
}

const backends: Backend[] = [
  { name: 'pg', open: () => sqlBackend('pg', () => createTestDatabase()) },
  { name: 'pglite', open: () => sqlBackend('pglite', () => createTestPglite()) },
  {
    name: 'supabase',
    open: async () => {
      const db = await createTestDatabase();
      const rest = await PostgrestDouble.start({ databaseUrl: db.url });
      const store = new SupabaseStore({ url: rest.url, serviceRoleKey: supabaseKey('service_role') });
      return {
        db,
        store,
        close: async () => {
          await store.close();
          await rest.stop();
          await db.drop();
        },
      };
    },
  },
];

const QA_USER = '00000000-0000-4000-8000-00000000a001';

describe.each(backends)('Store contract on $name', ({ name, open }) => {
  let opened: Opened;
  let db: TestDatabase;
  let store: Store;
  beforeAll(async () => {
    opened = await open();
    ({ db, store } = opened);
  });
  afterAll(async () => {
    await opened?.close();
  });

  const outboxOf = async (eventId: string) =>
    (await db.sql.query<{ channel: string; dedupe_key: string; topic: string }>('select channel, dedupe_key, topic from notification_outbox where event_id = $1::bigint order by channel', [eventId]))
      .rows;

  it('lists the seeded flags with their targets', async () => {
    const flags = await store.listFlags();
    expect(flags.map((f) => f.name)).toContain('booking_agent_enabled');
    const booking = flags.find((f) => f.name === 'booking_agent_enabled');
    expect(booking).toMatchObject({ enabled: true, rolloutPercentage: 25, guardState: 'watching', bucketGroup: null });
    expect(booking?.targets).toEqual([QA_USER]);
    expect(booking?.stageStartedAt).toBeInstanceOf(Date);
    expect(Number.isNaN(booking?.updatedAt.getTime())).toBe(false);
    expect(flags.find((f) => f.name === 'ai_beta_users')?.bucketGroup).toBe('ai_rollout');
    expect(await store.getFlag('no_such_flag')).toBeUndefined();
    await store.ping();
    expect(store.kind).toBe(name);
  });

  it('rolls back once per idempotency key: flip, event with previous state, one outbox row per channel, audit actor', async () => {
    const before = await store.getFlag('booking_agent_enabled');
    const req = {
      flag: 'booking_agent_enabled',
      action: 'disable' as const,
      ruleId: 'booking-agent-errors',
      source: 'sentry',
      evidence: { treatment: { total: 900, errors: 90 } },
      actor: 'guardian',
      idempotencyKey: `booking-agent-errors:booking_agent_enabled:${before?.version}`,
      channels: ['slack', 'email'] as const,
      reason: 'error rate 10% above 5%',
    };
    const first = await store.rollback(req);
    const again = await store.rollback(req);
    expect(again.id).toBe(first.id);
    expect(first.id).toMatch(/^\d+$/);
    expect(first).toMatchObject({ kind: 'auto_rollback', action: 'disable', ruleId: 'booking-agent-errors', source: 'sentry', actor: 'guardian', reason: 'error rate 10% above 5%' });
    expect(first.previousState).toEqual({ enabled: true, rolloutPercentage: 25, targets: [QA_USER], guardState: 'watching', rollbackMessage: null, rollbackUrgent: false });
    expect(first.newState).toMatchObject({ enabled: false, rolloutPercentage: 25, guardState: 'rolled_back' });
    expect(first.evidence).toEqual({ treatment: { total: 900, errors: 90 } });
    expect(first.createdAt).toBeInstanceOf(Date);
    expect(Number.isNaN(first.createdAt.getTime())).toBe(false);
    const after = await store.getFlag('booking_agent_enabled');
    expect(after).toMatchObject({ enabled: false, rolloutPercentage: 25, guardState: 'rolled_back', version: (before?.version ?? 0) + 1 });
    expect(await outboxOf(first.id)).toEqual([
      { channel: 'email', dedupe_key: `${first.id}:email`, topic: 'rollback_event' },
      { channel: 'slack', dedupe_key: `${first.id}:slack`, topic: 'rollback_event' },
    ]);
    const audit = await db.sql.query<{ actor: string }>("select actor from flag_changes where flag_name = 'booking_agent_enabled' and op = 'update' order by id desc limit 1");
    expect(audit.rows[0]?.actor).toBe('guardian');
    // Automatic actions never touch a rolled-back flag again (on Supabase: 55000 → HTTP 500 from PostgREST, still a conflict).
    const refused = await errorOf(store.rollback({ ...req, idempotencyKey: 'other-key' }));
    expect(isGuardianError(refused, 'STORE_CONFLICT')).toBe(true);
    expect(refused.message).toMatch(/booking_agent_enabled.*rolled_back/);
  });

  it('restores exactly the previous state (targets included), once', async () => {
    await store.addTarget('booking_agent_enabled', 'added-after-rollback', 'alice');
    await store.removeTarget('booking_agent_enabled', QA_USER, 'alice');
    const restored = await store.restore({ target: 'booking_agent_enabled', actor: 'alice', reason: 'fixed in 1.2.3', idempotencyKey: `restore-${name}-1` });
    expect(restored).toMatchObject({ kind: 'restore', actor: 'alice', reason: 'fixed in 1.2.3', action: null });
    expect(restored.restoresEventId).not.toBeNull();
    const flag = await store.getFlag('booking_agent_enabled');
    expect(flag).toMatchObject({ enabled: true, rolloutPercentage: 25, guardState: 'watching' });
    expect(flag?.targets).toEqual([QA_USER]);
    // Notifies the channels the rollback did.
    expect((await outboxOf(restored.id)).map((r) => r.channel)).toEqual(['email', 'slack']);
    // Same key: same event; new key: the rollback was already restored.
    expect((await store.restore({ target: 'booking_agent_enabled', actor: 'alice', idempotencyKey: `restore-${name}-1` })).id).toBe(restored.id);
    expect(await codeOf(store.restore({ target: 'booking_agent_enabled', actor: 'alice', idempotencyKey: `restore-${name}-2` }))).toBe('STORE_CONFLICT');
    expect(await codeOf(store.restore({ target: 'ai_ga_enabled', actor: 'alice', idempotencyKey: `restore-${name}-3` }))).toBe('NOT_FOUND');
    const missing = await errorOf(store.restore({ target: 'nothing_here', actor: 'alice', idempotencyKey: `restore-${name}-4` }));
    expect(isGuardianError(missing, 'NOT_FOUND')).toBe(true);
    expect(missing.message).toMatch(/no flag and no rollback event named "nothing_here"/);
  });

  it('step_back goes to the previous stage, or disables when there is none below', async () => {
    const beta = await store.rollback({ flag: 'ai_beta_users', action: 'step_back', actor: 'guardian', idempotencyKey: `sb-${name}-1`, channels: ['slack'], stages: [10, 50, 100] });
    expect(beta.newState).toMatchObject({ enabled: true, rolloutPercentage: 10, guardState: 'rolled_back' });
    const alpha = await store.rollback({ flag: 'ai_alpha_users', action: 'step_back', actor: 'guardian', idempotencyKey: `sb-${name}-2`, channels: [], stages: [10, 50, 100] });
    expect(alpha.newState).toMatchObject({ enabled: false, rolloutPercentage: 10, guardState: 'rolled_back' });
    expect(await outboxOf(alpha.id)).toEqual([]);
    // From history: insights went 50 → 20 → 60 by hand; stepping back from 60 lands on 50.
    await store.setFlag('insights_agent_enabled', { rolloutPercentage: 20 }, 'alice');
    await store.setFlag('insights_agent_enabled', { rolloutPercentage: 60 }, 'alice');
    const insights = await store.rollback({ flag: 'insights_agent_enabled', action: 'step_back', actor: 'guardian', idempotencyKey: `sb-${name}-3`, channels: [] });
    expect(insights.newState.rolloutPercentage).toBe(50);
    expect(await store.restore({ target: insights.id, actor: 'alice', idempotencyKey: `sb-${name}-r3` })).toMatchObject({ kind: 'restore' });
    expect((await store.getFlag('insights_agent_enabled'))?.rolloutPercentage).toBe(60);
  });

  it('notify_only and dry runs leave the flag alone', async () => {
    const before = await store.getFlag('session_agent_enabled');
    const notify = await store.rollback({ flag: 'session_agent_enabled', action: 'notify_only', actor: 'guardian', idempotencyKey: `n-${name}`, channels: ['slack'] });
    const dry = await store.rollback({ flag: 'session_agent_enabled', action: 'disable', actor: 'guardian', idempotencyKey: `d-${name}`, channels: ['email'], dryRun: true });
    expect(notify.kind).toBe('auto_rollback');
    expect(dry.kind).toBe('dry_run');
    expect(dry.newState).toMatchObject({ enabled: false, guardState: 'rolled_back' });
    expect(await store.getFlag('session_agent_enabled')).toMatchObject({ enabled: true, guardState: 'watching', version: before?.version });
    expect((await outboxOf(dry.id)).map((r) => r.channel)).toEqual(['email']);
  });

  it('locks: automatic actions refused, manual rollback allowed and the flag stays locked through restore', async () => {
    await store.lock('ai_ga_enabled', 'alice');
    expect(await codeOf(store.rollback({ flag: 'ai_ga_enabled', action: 'disable', actor: 'guardian', idempotencyKey: `l-${name}-1`, channels: [] }))).toBe('STORE_CONFLICT');
    const manual = await store.rollback({ flag: 'ai_ga_enabled', action: 'disable', actor: 'bob', idempotencyKey: `l-${name}-2`, channels: ['slack'], kind: 'manual_rollback', reason: 'incident 42' });
    expect(manual).toMatchObject({ kind: 'manual_rollback', actor: 'bob' });
    expect(await store.getFlag('ai_ga_enabled')).toMatchObject({ enabled: false, guardState: 'locked' });
    expect(await codeOf(store.rollback({ flag: 'ai_ga_enabled', action: 'disable', actor: 'bob', idempotencyKey: `l-${name}-3`, channels: [], kind: 'manual_rollback' }))).toBe('STORE_CONFLICT');
    await store.restore({ target: 'ai_ga_enabled', actor: 'bob', idempotencyKey: `l-${name}-r` });
    expect(await store.getFlag('ai_ga_enabled')).toMatchObject({ enabled: true, guardState: 'locked' });
    expect((await store.unlock('ai_ga_enabled', 'bob')).guardState).toBe('watching');
    expect(await codeOf(store.unlock('ai_ga_enabled', 'bob'))).toBe('STORE_CONFLICT');
  });

  it('setFlag validates (GuardianError with the function’s own words) and audits', async () => {
    const bad = await errorOf(store.setFlag('booking_agent_enabled', { rolloutPercentage: 101 }, 'alice'));
    expect(isGuardianError(bad, 'BAD_ARGUMENT')).toBe(true);
    expect(bad.message).toBe('set flag "booking_agent_enabled": rollout_percentage must be an integer from 0 to 100, got 101');
    const missing = await errorOf(store.setFlag('no_such_flag', { enabled: true }, 'alice'));
    expect(isGuardianError(missing, 'NOT_FOUND')).toBe(true);
    expect(missing.message).toBe('flag "no_such_flag" does not exist');
    expect(await codeOf(store.setFlag('booking_agent_enabled', { enabled: true }, ''))).toBe('BAD_ARGUMENT');
    const f = await store.setFlag('followup_agent_enabled', { enabled: true, rolloutPercentage: 5, rollbackMessage: 'We turned this off for now.' }, 'carol');
    expect(f).toMatchObject({ enabled: true, rolloutPercentage: 5, rollbackMessage: 'We turned this off for now.', updatedBy: 'carol' });
    const audit = await db.sql.query<{ actor: string }>("select actor from flag_changes where flag_name = 'followup_agent_enabled' order by id desc limit 1");
    expect(audit.rows[0]?.actor).toBe('carol');
    // A rolled-back flag is re-enabled only by a restore.
    const rolledBack = await errorOf(store.setFlag('ai_alpha_users', { enabled: true }, 'carol'));
    expect(isGuardianError(rolledBack, 'STORE_CONFLICT')).toBe(true);
    expect(rolledBack.message).toMatch(/restore it/);
  });

  it('filters events', async () => {
    const all = await store.listEvents();
    expect(all.length).toBeGreaterThanOrEqual(8);
    for (let i = 1; i < all.length; i++) expect(all[i - 1]!.createdAt.getTime()).toBeGreaterThanOrEqual(all[i]!.createdAt.getTime());
    const restores = await store.listEvents({ kind: 'restore' });
    expect(restores.length).toBeGreaterThan(0);
    expect(restores.every((e) => e.kind === 'restore')).toBe(true);
    expect((await store.listEvents({ flag: 'ai_beta_users' })).map((e) => e.flag)).toEqual(['ai_beta_users']);
    expect(await store.listEvents({ since: new Date(Date.now() + 3_600_000) })).toEqual([]);
    expect((await store.listEvents({ since: new Date(Date.now() - 3_600_000) })).length).toBe(all.length);
    expect(await store.listEvents({ limit: 2 })).toHaveLength(2);
    expect((await store.listEvents({ limit: 2 })).map((e) => e.id)).toEqual(all.slice(0, 2).map((e) => e.id));
    expect((await store.listEvents({ flag: 'session_agent_enabled', kind: 'dry_run' })).map((e) => e.kind)).toEqual(['dry_run']);
    const one = all[0]!;
    expect((await store.getEvent(one.id))?.id).toBe(one.id);
    expect(await store.getEvent('999999999')).toBeUndefined();
    expect(await store.getEvent('not-a-number')).toBeUndefined();
  });

  it('keeps rule state and observations', async () => {
    const at = new Date('2026-01-01T10:00:00.000Z');
    await store.saveRuleState([{ ruleId: 'r1', flag: 'f1', consecutiveBreaches: 1, lastVerdict: 'healthy', lastEvidence: { polls: 1 } }], at);
    await store.saveRuleState([{ ruleId: 'r1', flag: 'f1', consecutiveBreaches: 2, lastVerdict: 'breach', lastEvidence: null }], new Date(at.getTime() + 60_000));
    expect(await store.loadRuleState()).toEqual([{ ruleId: 'r1', flag: 'f1', consecutiveBreaches: 2, lastVerdict: 'breach', lastEvidence: null, updatedAt: new Date(at.getTime() + 60_000) }]);
    await store.saveRuleState([], at);

    const stage = new Date('2026-01-01T09:00:00.123Z');
    await store.appendObservations([
      { source: 'posthog', flag: 'f1', stageStartedAt: stage, at, unit: 'users', treatment: { total: 100, errors: 2 }, control: { total: 300, errors: 3 } },
      { source: 'posthog', flag: 'f1', stageStartedAt: stage, at: new Date(at.getTime() + 60_000), unit: 'users', treatment: { total: 150, errors: 9 } },
      { source: 'posthog', flag: 'f1', stageStartedAt: new Date('2026-01-01T08:00:00Z'), at, unit: 'users', treatment: { total: 1, errors: 1 } },
      { source: 'sentry', flag: 'f1', stageStartedAt: stage, at, unit: 'events', treatment: { total: 5, errors: 5 } },
    ]);
    await store.appendObservations([]);
    const hist = await historyOf(store, 'posthog', [{ flag: 'f1', stageStartedAt: stage, segmentSince: stage }]);
    expect(hist.get('f1')).toEqual([
      { at, since: stage, unit: 'users', treatment: { total: 100, errors: 2 }, control: { total: 300, errors: 3 } },
      { at: new Date(at.getTime() + 60_000), since: stage, unit: 'users', treatment: { total: 150, errors: 9 } },
    ]);
    // Polls before the current segment: only the last one of their segment comes back.
    expect((await historyOf(store, 'posthog', [{ flag: 'f1', stageStartedAt: stage, segmentSince: new Date(at.getTime() + 1) }])).get('f1')).toEqual([
      { at: new Date(at.getTime() + 60_000), since: stage, unit: 'users', treatment: { total: 150, errors: 9 } },
    ]);
    expect((await historyOf(store, 'sentry', [{ flag: 'f1', stageStartedAt: stage, segmentSince: stage }, { flag: 'f2', stageStartedAt: stage, segmentSince: stage }])).get('f2')).toEqual([]);
    expect(await historyOf(store, 'posthog', [])).toEqual(new Map());
    expect(await store.pruneObservations(new Date(at.getTime() + 1))).toBe(3);
    expect(await store.pruneObservations(new Date(at.getTime() + 1))).toBe(0);
  });

  it('a cycle-sized bulk write (2,500 rows, several statements) saves every row, and a bad row in its last part saves none', async () => {
    const at = new Date('2026-01-02T10:00:00.000Z');
    const stage = new Date('2026-01-02T09:00:00.000Z');
    const states = Array.from({ length: 2_500 }, (_, i) => ({ ruleId: 'bulk', flag: `bulk_${i}`, consecutiveBreaches: i % 3, lastVerdict: 'healthy', lastEvidence: { polls: i } }));
    await store.saveRuleState(states, at);
    const saved = (await store.loadRuleState()).filter((s) => s.ruleId === 'bulk');
    expect(saved).toHaveLength(2_500);
    expect(saved.find((s) => s.flag === 'bulk_2499')).toMatchObject({ consecutiveBreaches: 2499 % 3, lastEvidence: { polls: 2499 } });
    // All or nothing: the last row breaks a check, so not even the first part's rows change.
    const bad = states.map((s, i) => ({ ...s, consecutiveBreaches: i === 2_499 ? -1 : 0 }));
    expect(await codeOf(store.saveRuleState(bad, new Date(at.getTime() + 60_000)))).toBe('BAD_ARGUMENT');
    const after = (await store.loadRuleState({ evidence: false })).filter((s) => s.ruleId === 'bulk');
    expect(after.filter((s) => s.consecutiveBreaches !== Number(s.flag.slice(5)) % 3)).toEqual([]);
    expect(after.every((s) => s.updatedAt.getTime() === at.getTime())).toBe(true);

    const obs = Array.from({ length: 2_500 }, (_, i) => ({ source: 'bulk', flag: `bulk_${i}`, stageStartedAt: stage, at, unit: 'users' as const, treatment: { total: 100 + i, errors: 1 } }));
    expect(await codeOf(store.appendObservations([...obs.slice(0, 2_499), { ...obs[2_499]!, treatment: { total: -1, errors: 0 } }]))).toBe('BAD_ARGUMENT');
    const q = obs.map((o) => ({ flag: o.flag, stageStartedAt: stage, segmentSince: stage }));
    expect([...(await historyOf(store, 'bulk', q)).values()].flat()).toEqual([]);
    await store.appendObservations(obs);
    const hist = await historyOf(store, 'bulk', q);
    expect([...hist.values()].flat()).toHaveLength(2_500);
    expect(hist.get('bulk_2499')).toEqual([{ at, since: stage, unit: 'users', treatment: { total: 2_599, errors: 1 } }]);
  });

  it('observation history of a stage in segments: every poll of the current segment, the last poll of each earlier one', async () => {
    const stage = new Date('2026-03-01T00:00:00.000Z');
    const hour = 3_600_000;
    const obs = [];
    // Three 1h segments, polls every 10 minutes; counts restart with each segment.
    for (let seg = 0; seg < 3; seg++) {
      for (let k = 1; k <= 6; k++) {
        const at = new Date(stage.getTime() + seg * hour + k * 600_000 - 1);
        obs.push({ source: 'seg', flag: 'fs', stageStartedAt: stage, since: new Date(stage.getTime() + seg * hour), at, unit: 'users' as const, treatment: { total: 10 * k, errors: seg }, control: { total: 10 * k, errors: 0 } });
      }
    }
    // Another stage of the same flag and an observation without `since` (it means the stage start).
    obs.push({ source: 'seg', flag: 'fs', stageStartedAt: new Date('2026-02-01T00:00:00Z'), since: new Date('2026-02-01T00:00:00Z'), at: new Date(stage.getTime() + 30_000), unit: 'users' as const, treatment: { total: 1, errors: 1 }, control: { total: 1, errors: 0 } });
    obs.push({ source: 'seg', flag: 'fd', stageStartedAt: stage, at: new Date(stage.getTime() + 60_000), unit: 'users' as const, treatment: { total: 5, errors: 0 } });
    await store.appendObservations(obs);
    const hist = await historyOf(store, 'seg', [
      { flag: 'fs', stageStartedAt: stage, segmentSince: new Date(stage.getTime() + 2 * hour) },
      { flag: 'fd', stageStartedAt: stage, segmentSince: stage },
    ]);
    const fs = hist.get('fs') ?? [];
    expect(fs.map((p) => [p.since?.getTime(), p.treatment.total, p.treatment.errors])).toEqual([
      [stage.getTime(), 60, 0],
      [stage.getTime() + hour, 60, 1],
      ...[1, 2, 3, 4, 5, 6].map((k) => [stage.getTime() + 2 * hour, 10 * k, 2]),
    ]);
    expect(fs.every((p, i) => i === 0 || p.at.getTime() > fs[i - 1]!.at.getTime())).toBe(true);
    expect(hist.get('fd')).toEqual([{ at: new Date(stage.getTime() + 60_000), since: stage, unit: 'users', treatment: { total: 5, errors: 0 } }]);
  });

  it('exposures (builtin source): one all-or-nothing call per batch, counts per cohort since a time, prune', async () => {
    const key = (id: string) => createHash('sha256').update(id, 'utf8').digest('hex');
    const t0 = new Date('2026-02-01T10:00:00.000Z');
    const at = (min: number) => new Date(t0.getTime() + min * 60_000);
    expect(await store.recordExposures([])).toBe(0);
    const touched = await store.recordExposures([
      { flag: 'ex_flag', cohort: true, userKey: key('a'), at: at(0), error: false },
      { flag: 'ex_flag', cohort: true, userKey: key('a'), at: at(5), error: true }, // the same row twice in one batch: merged
      { flag: 'ex_flag', cohort: true, userKey: key('b'), at: at(1), error: false },
      { flag: 'ex_flag', cohort: false, userKey: key('a'), at: at(2), error: false },
      { flag: 'ex_flag', cohort: false, userKey: key('c'), at: at(3), error: true },
      { flag: 'ex_other', cohort: true, userKey: key('d'), at: at(-120), error: true },
    ]);
    expect(touched).toBe(5);
    // A later batch: an older time never moves last_seen back, first_seen is kept, an error moves last_error_at on.
    expect(
      await store.recordExposures([
        { flag: 'ex_flag', cohort: true, userKey: key('a'), at: at(-10), error: false },
        { flag: 'ex_flag', cohort: true, userKey: key('b'), at: at(20), error: true },
      ]),
    ).toBe(2);
    const row = await db.sql.query<{ first_seen: Date; last_seen: Date; last_error_at: Date | null }>(
      "select first_seen, last_seen, last_error_at from guardian_exposures where flag_name = 'ex_flag' and cohort and user_key = $1",
      [key('a')],
    );
    expect(row.rows.map((r) => [new Date(r.first_seen).getTime(), new Date(r.last_seen).getTime(), r.last_error_at && new Date(r.last_error_at).getTime()])).toEqual([
      [at(0).getTime(), at(5).getTime(), at(5).getTime()],
    ]);

    const counts = await store.exposureCounts([
      { flag: 'ex_flag', since: at(0) },
      { flag: 'ex_other', since: at(0) },
      { flag: 'ex_missing', since: at(0) },
    ]);
    expect(counts).toEqual(
      new Map([
        ['ex_flag', { treatment: { total: 2, errors: 2 }, control: { total: 2, errors: 1 } }],
        ['ex_other', { treatment: { total: 0, errors: 0 }, control: { total: 0, errors: 0 } }],
        ['ex_missing', { treatment: { total: 0, errors: 0 }, control: { total: 0, errors: 0 } }],
      ]),
    );
    // Later since: only users seen since then, and only their errors since then.
    expect((await store.exposureCounts([{ flag: 'ex_flag', since: at(4) }])).get('ex_flag')).toEqual({ treatment: { total: 2, errors: 2 }, control: { total: 0, errors: 0 } });
    expect((await store.exposureCounts([{ flag: 'ex_flag', since: at(6) }])).get('ex_flag')).toEqual({ treatment: { total: 1, errors: 1 }, control: { total: 0, errors: 0 } });
    expect((await store.exposureCounts([{ flag: 'ex_other', since: at(-200) }])).get('ex_other')).toEqual({ treatment: { total: 1, errors: 1 }, control: { total: 0, errors: 0 } });
    expect(await store.exposureCounts([])).toEqual(new Map());
    // A flag's target list is left out of both cohorts (a also saw the flag off: gone there too).
    expect((await store.exposureCounts([{ flag: 'ex_flag', since: at(0), excludeUserKeys: [key('a'), key('zz')] }])).get('ex_flag')).toEqual({
      treatment: { total: 1, errors: 1 },
      control: { total: 1, errors: 1 },
    });
    expect((await store.exposureCounts([{ flag: 'ex_flag', since: at(0), excludeUserKeys: [] }])).get('ex_flag')).toEqual({ treatment: { total: 2, errors: 2 }, control: { total: 2, errors: 1 } });

    // All or nothing: a raw user id (not a SHA-256) in a batch is refused, and the valid items beside it are not written.
    const refused = await errorOf(
      store.recordExposures([
        { flag: 'ex_atomic', cohort: true, userKey: key('e'), at: at(0), error: false },
        { flag: 'ex_atomic', cohort: true, userKey: 'raw-user-id', at: at(0), error: false },
      ]),
    );
    expect(isGuardianError(refused, 'BAD_ARGUMENT')).toBe(true);
    expect((await store.exposureCounts([{ flag: 'ex_atomic', since: at(-1) }])).get('ex_atomic')?.treatment.total).toBe(0);

    // Prune: rows last seen before the cut (ex_flag off: a at +2, c at +3; ex_other at -120).
    expect(await store.pruneExposures(at(4))).toBe(3);
    expect(await store.pruneExposures(at(4))).toBe(0);
    expect((await store.exposureCounts([{ flag: 'ex_flag', since: at(-1000) }])).get('ex_flag')).toEqual({ treatment: { total: 2, errors: 2 }, control: { total: 0, errors: 0 } });
  });

  it('leases: one holder at a time, renewable, released, expiring', async () => {
    expect(await store.tryLease('cycle-test', 'a', 60_000)).toBe(true);
    expect(await store.tryLease('cycle-test', 'b', 60_000)).toBe(false);
    expect(await store.tryLease('cycle-test', 'a', 60_000)).toBe(true);
    await store.releaseLease('cycle-test', 'b');
    expect(await store.tryLease('cycle-test', 'b', 60_000)).toBe(false);
    await store.releaseLease('cycle-test', 'a');
    expect(await store.tryLease('cycle-test', 'b', 30)).toBe(true);
    await new Promise((r) => setTimeout(r, 60));
    expect(await store.tryLease('cycle-test', 'c', 60_000)).toBe(true);
    expect(await codeOf(store.tryLease('cycle-test', 'c', 0))).toBe('BAD_ARGUMENT');
  });
});

describe('SqlStore on PostgreSQL: concurrency', () => {
  it('ten concurrent rollbacks with one key make one flip, one event, one outbox row per channel', async () => {
    const db = await createTestDatabase();
    try {
      const store = new SqlStore({ sql: db.sql, kind: 'pg', location: db.url });
      const events = await Promise.all(
        Array.from({ length: 10 }, () =>
          store.rollback({ flag: 'booking_agent_enabled', action: 'disable', actor: 'guardian', idempotencyKey: 'same', channels: ['slack', 'email'] }),
        ),
      );
      expect(new Set(events.map((e) => e.id)).size).toBe(1);
      const counts = await db.sql.query<{ events: number; outbox: number; flips: number }>(
        `select (select count(*)::int from rollback_events) as events, (select count(*)::int from notification_outbox) as outbox,
                (select count(*)::int from flag_changes where flag_name = 'booking_agent_enabled' and op = 'update') as flips`,
      );
      expect(counts.rows[0]).toEqual({ events: 1, outbox: 2, flips: 1 });
    } finally {
      await db.drop();
    }
  });

  it('reports an unreachable database as STORE_UNREACHABLE', async () => {
    const pg = (await import('pg')).default;
    const { pgSqlClient } = await import('../src/store/sql.ts');
    const store = new SqlStore({ sql: pgSqlClient(new pg.Pool({ connectionString: 'postgres://postgres@127.0.0.1:1/none', connectionTimeoutMillis: 2000 })), kind: 'pg', location: '127.0.0.1:1' });
    try {
      expect(await codeOf(store.ping())).toBe('STORE_UNREACHABLE');
    } finally {
      await store.close();
    }
  });
});
