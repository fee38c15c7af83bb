/**
 * SupabaseStore over the real supabase-js against the PostgREST protocol double
 * (test/helpers/postgrest-double.ts) on a real PostgreSQL: the same behaviours store.db.test.ts
 * checks for SqlStore, with every request running as the role its JWT names, so the grants, RLS
 * and SQL functions the hosted Supabase would apply are the ones exercised here. Also: the store
 * factory picks SupabaseStore from SUPABASE_URL + SUPABASE_SERVICE_ROLE_KEY, an anon or forged key
 * is refused, Supabase's 1000-row cap does not truncate reads, and an unreachable URL fails fast.
 */
import { createServer as createHttpServer } from 'node:http';
import { createServer } from 'node:net';

import { createClient } from '@supabase/supabase-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.ts';
import { PostgrestDouble, signJwt, supabaseKey } from '../../test/helpers/postgrest-double.ts';
import { loadConfig } from '../src/config.ts';
import { isGuardianError } from '../src/errors.ts';
import { createStore } from '../src/store/index.ts';
import { SupabaseStore } from '../src/store/supabase-store.ts';

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'resolved';
  } catch (err) {
    return isGuardianError(err) ? err.code : `other: ${String(err)}`;
  }
}

async function errorOf(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

/** A TCP port nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address() as { port: number };
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

const QA_USER = '00000000-0000-4000-8000-00000000a001';

describe('SupabaseStore through supabase-js and the PostgREST double', () => {
  let db: TestDatabase;
  let rest: PostgrestDouble;
  let store: SupabaseStore;
  const name = 'supabase';

  beforeAll(async () => {
    db = await createTestDatabase();
    rest = await PostgrestDouble.start({ databaseUrl: db.url });
    store = new SupabaseStore({ url: rest.url, serviceRoleKey: supabaseKey('service_role') });
  });
  afterAll(async () => {
    await store?.close();
    await rest?.stop();
    await db?.drop();
  });

  const outboxOf = async (eventId: string) =>
    (await db.sql.query<{ channel: string; dedupe_key: string; topic: string }>('select channel, dedupe_key, topic from notification_outbox where event_id = $1::bigint order by channel', [eventId]))
      .rows;

  it('lists the seeded flags with their targets, as service_role over /rest/v1', async () => {
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
    expect(store.kind).toBe('supabase');
    expect(store.location).toBe(rest.url);
    const seen = rest.requests.filter((r) => r.url.startsWith('/rest/v1/'));
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.every((r) => r.role === 'service_role')).toBe(true);
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
    expect(first.previousState).toEqual({ enabled: true, rolloutPercentage: 25, targets: [QA_USER], guardState: 'watching' });
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
    // Automatic actions never touch a rolled-back flag again (55000 → HTTP 500 from PostgREST, still a conflict).
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
    expect((await outboxOf(restored.id)).map((r) => r.channel)).toEqual(['email', 'slack']);
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

  it('keeps rule state, observations and source health', async () => {
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
    const hist = await store.observationHistory('posthog', [{ flag: 'f1', stageStartedAt: stage, since: stage }]);
    expect(hist.get('f1')).toEqual([
      { at, unit: 'users', treatment: { total: 100, errors: 2 }, control: { total: 300, errors: 3 } },
      { at: new Date(at.getTime() + 60_000), unit: 'users', treatment: { total: 150, errors: 9 } },
    ]);
    expect((await store.observationHistory('posthog', [{ flag: 'f1', stageStartedAt: stage, since: new Date(at.getTime() + 1) }])).get('f1')).toHaveLength(1);
    expect((await store.observationHistory('sentry', [{ flag: 'f1', stageStartedAt: stage, since: stage }, { flag: 'f2', stageStartedAt: stage, since: stage }])).get('f2')).toEqual([]);
    expect(await store.observationHistory('posthog', [])).toEqual(new Map());
    expect(await store.pruneObservations(new Date(at.getTime() + 1))).toBe(3);
    expect(await store.pruneObservations(new Date(at.getTime() + 1))).toBe(0);
    const del = rest.requests.filter((r) => r.method === 'DELETE');
    expect(del.at(-1)).toMatchObject({ status: 204, role: 'service_role' });

    const blind = await store.recordSourceHealth('sentry', at, 'SOURCE_RATE_LIMITED: 429');
    await store.recordSourceHealth('sentry', new Date(at.getTime() + 60_000), 'SOURCE_UNAVAILABLE: 503');
    expect(blind.blindSince).toEqual(at);
    await store.markBlindAlerted('sentry');
    expect((await store.listSourceHealth())[0]).toMatchObject({ source: 'sentry', blindSince: at, blindAlerted: true, lastError: 'SOURCE_UNAVAILABLE: 503' });
    const ok = await store.recordSourceHealth('sentry', new Date(at.getTime() + 120_000));
    expect(ok).toMatchObject({ blindSince: null, blindAlerted: false, lastError: null, lastOkAt: new Date(at.getTime() + 120_000) });
    const failingAgain = await store.recordSourceHealth('sentry', new Date(at.getTime() + 180_000), 'SOURCE_UNAVAILABLE: 502');
    expect(failingAgain).toMatchObject({ blindSince: new Date(at.getTime() + 180_000), blindAlerted: false, lastOkAt: new Date(at.getTime() + 120_000) });
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

  it('reads past Supabase’s 1000-row cap (max_rows): targets and observations are not truncated', async () => {
    await db.sql.query(`insert into flag_targets (flag_name, user_id) select 'insights_agent_enabled', 'bulk-' || lpad(g::text, 5, '0') from generate_series(1, 1205) g`);
    const flag = await store.getFlag('insights_agent_enabled');
    expect(flag?.targets).toHaveLength(1205);
    expect((await store.listFlags()).find((f) => f.name === 'insights_agent_enabled')?.targets).toHaveLength(1205);
    expect(rest.requests.some((r) => r.url.startsWith('/rest/v1/flag_targets?') && r.url.includes('offset=1000'))).toBe(true);
    // A project whose max_rows is lower than the page asked for: still every row.
    const small = await PostgrestDouble.start({ databaseUrl: db.url, maxRows: 3 });
    const capped = new SupabaseStore({ url: small.url, serviceRoleKey: supabaseKey('service_role') });
    try {
      const flags = await capped.listFlags();
      expect(flags.map((f) => f.name)).toEqual((await store.listFlags()).map((f) => f.name));
      expect(flags).toHaveLength(7);
      expect(flags.find((f) => f.name === 'insights_agent_enabled')?.targets).toHaveLength(1205);
      expect((await capped.listEvents({ limit: 5 })).map((e) => e.id)).toEqual((await store.listEvents({ limit: 5 })).map((e) => e.id));
    } finally {
      await capped.close();
      await small.stop();
    }
    const stage = new Date('2026-02-01T00:00:00Z');
    const obs = Array.from({ length: 1500 }, (_, i) => ({
      source: 'bulk',
      flag: 'f9',
      stageStartedAt: stage,
      at: new Date(stage.getTime() + (i + 1) * 1000),
      unit: 'events' as const,
      treatment: { total: i + 1, errors: 0 },
    }));
    await store.appendObservations(obs);
    const hist = (await store.observationHistory('bulk', [{ flag: 'f9', stageStartedAt: stage, since: stage }])).get('f9') ?? [];
    expect(hist).toHaveLength(1500);
    expect(hist.at(-1)?.treatment.total).toBe(1500);
    const { rows } = await db.sql.query<{ n: number }>("select count(*)::int as n from guardian_observations where at < '2027-01-01T00:00:00Z'");
    expect(rows[0]!.n).toBeGreaterThanOrEqual(1500);
    expect(await store.pruneObservations(new Date('2027-01-01T00:00:00Z'))).toBe(rows[0]!.n);
  });
});

describe('SupabaseStore: concurrency through the double', () => {
  it('ten concurrent rollbacks with one key make one flip, one event, one outbox row per channel', async () => {
    const db = await createTestDatabase();
    const rest = await PostgrestDouble.start({ databaseUrl: db.url, poolSize: 10 });
    const store = new SupabaseStore({ url: rest.url, serviceRoleKey: supabaseKey('service_role') });
    try {
      const events = await Promise.all(
        Array.from({ length: 10 }, () =>
          store.rollback({ flag: 'booking_agent_enabled', action: 'disable', actor: 'guardian', idempotencyKey: 'same', channels: ['slack', 'email'] }),
        ),
      );
      expect(new Set(events.map((e) => e.id)).size).toBe(1);
      expect(rest.requests.filter((r) => r.url === '/rest/v1/rpc/guardian_rollback' && r.status === 200)).toHaveLength(10);
      const counts = await db.sql.query<{ events: number; outbox: number; flips: number }>(
        `select (select count(*)::int from rollback_events) as events, (select count(*)::int from notification_outbox) as outbox,
                (select count(*)::int from flag_changes where flag_name = 'booking_agent_enabled' and op = 'update') as flips`,
      );
      expect(counts.rows[0]).toEqual({ events: 1, outbox: 2, flips: 1 });
    } finally {
      await store.close();
      await rest.stop();
      await db.drop();
    }
  });
});

describe('SupabaseStore: keys, factory and reachability', () => {
  let db: TestDatabase;
  let rest: PostgrestDouble;
  beforeAll(async () => {
    db = await createTestDatabase();
    rest = await PostgrestDouble.start({ databaseUrl: db.url });
  });
  afterAll(async () => {
    await rest?.stop();
    await db?.drop();
  });

  it('createStore picks SupabaseStore from SUPABASE_URL + SUPABASE_SERVICE_ROLE_KEY and it works', async () => {
    const config = loadConfig({ SUPABASE_URL: rest.url, SUPABASE_SERVICE_ROLE_KEY: supabaseKey('service_role') });
    expect(config.store).toBe('supabase');
    const store = await createStore(config);
    try {
      expect(store).toBeInstanceOf(SupabaseStore);
      expect(store.kind).toBe('supabase');
      expect((await store.listFlags()).length).toBe(7);
      expect(await store.tryLease('factory', 'me', 1000)).toBe(true);
    } finally {
      await store.close();
    }
  });

  it('the anon key cannot call guardian_rollback nor read flag_targets (401 from grants), but may read feature_flags', async () => {
    const anon = createClient(rest.url, supabaseKey('anon'), { auth: { persistSession: false, autoRefreshToken: false } });
    const rpc = await anon.rpc('guardian_rollback', {
      p_flag: 'booking_agent_enabled',
      p_action: 'disable',
      p_rule_id: null,
      p_source: null,
      p_evidence: {},
      p_actor: 'attacker',
      p_idempotency_key: 'anon-1',
      p_channels: [],
      p_dry_run: false,
      p_reason: null,
    });
    expect(rpc.status).toBe(401);
    expect(rpc.error).toMatchObject({ code: '42501', message: 'permission denied for function guardian_rollback' });
    const targets = await anon.from('flag_targets').select('*');
    expect(targets.status).toBe(401);
    expect(targets.error).toMatchObject({ code: '42501', message: 'permission denied for table flag_targets' });
    const write = await anon.from('feature_flags').update({ enabled: false }).eq('name', 'ai_ga_enabled');
    expect(write.status).toBe(401);
    expect(write.error?.code).toBe('42501');
    const flags = await anon.from('feature_flags').select('name,enabled').order('name');
    expect(flags.error).toBeNull();
    expect(flags.data).toHaveLength(7);
    const after = await db.sql.query<{ events: number; enabled: boolean }>(
      "select (select count(*)::int from rollback_events) as events, (select enabled from feature_flags where name = 'ai_ga_enabled') as enabled",
    );
    expect(after.rows[0]).toEqual({ events: 0, enabled: true });
    expect(rest.requests.filter((r) => r.role === 'anon').length).toBeGreaterThanOrEqual(4);
  });

  it('refuses a SUPABASE_SERVICE_ROLE_KEY that is the anon key, forged or expired, at start (createStore), naming the variable', async () => {
    const forged = signJwt({ role: 'service_role', iss: 'supabase', exp: Math.floor(Date.now() / 1000) + 3600 }, 'not-the-project-secret-0123456789abcdef');
    for (const key of [supabaseKey('anon'), forged, supabaseKey('service_role', { expiresInSeconds: -3600 })]) {
      const err = await errorOf(createStore(loadConfig({ SUPABASE_URL: rest.url, SUPABASE_SERVICE_ROLE_KEY: key })));
      expect(isGuardianError(err, 'STORE_UNREACHABLE')).toBe(true);
      expect(err.message).toMatch(/SUPABASE_SERVICE_ROLE_KEY/);
    }
    const last = rest.requests.at(-1);
    expect(last?.status).toBe(401);
  });

  it('an unreachable SUPABASE_URL is STORE_UNREACHABLE, fast, for reads and for function calls', async () => {
    const url = `http://127.0.0.1:${await closedPort()}`;
    const store = new SupabaseStore({ url, serviceRoleKey: supabaseKey('service_role') });
    try {
      const started = Date.now();
      const err = await errorOf(store.ping());
      expect(isGuardianError(err, 'STORE_UNREACHABLE')).toBe(true);
      expect(err.message).toMatch(/SUPABASE_URL/);
      expect(await codeOf(store.listFlags())).toBe('STORE_UNREACHABLE');
      expect(await codeOf(store.rollback({ flag: 'f', action: 'disable', actor: 'guardian', idempotencyKey: 'k', channels: [] }))).toBe('STORE_UNREACHABLE');
      expect(await codeOf(store.pruneObservations(new Date()))).toBe('STORE_UNREACHABLE');
      expect(Date.now() - started).toBeLessThan(2000);
      const factory = await errorOf(createStore(loadConfig({ SUPABASE_URL: url, SUPABASE_SERVICE_ROLE_KEY: supabaseKey('service_role') })));
      expect(isGuardianError(factory, 'STORE_UNREACHABLE')).toBe(true);
    } finally {
      await store.close();
    }
  });

  it('a Supabase that accepts but never answers is STORE_UNREACHABLE after timeoutMs, not a hang', async () => {
    const hanging = createHttpServer(() => {});
    await new Promise<void>((resolve) => hanging.listen(0, '127.0.0.1', resolve));
    const { port } = hanging.address() as { port: number };
    const store = new SupabaseStore({ url: `http://127.0.0.1:${port}`, serviceRoleKey: supabaseKey('service_role'), timeoutMs: 300 });
    try {
      const started = Date.now();
      expect(await codeOf(store.ping())).toBe('STORE_UNREACHABLE');
      expect(await codeOf(store.tryLease('cycle', 'me', 1000))).toBe('STORE_UNREACHABLE');
      expect(Date.now() - started).toBeLessThan(3_000);
    } finally {
      await store.close();
      hanging.closeAllConnections();
      await new Promise<void>((resolve) => hanging.close(() => resolve()));
    }
  });

  it('a database without the guardian schema is STORE_FAILED with what to do', async () => {
    const empty = await createTestDatabase({ migrate: false });
    const bare = await PostgrestDouble.start({ databaseUrl: empty.url });
    const store = new SupabaseStore({ url: bare.url, serviceRoleKey: supabaseKey('service_role') });
    try {
      const err = await errorOf(store.listFlags());
      expect(isGuardianError(err, 'STORE_FAILED')).toBe(true);
      expect(err.message).toMatch(/migrations/);
      const rpc = await errorOf(store.tryLease('x', 'y', 1000));
      expect(isGuardianError(rpc, 'STORE_FAILED')).toBe(true);
      expect(rpc.message).toMatch(/guardian_try_lease.*migrations/);
    } finally {
      await store.close();
      await bare.stop();
      await empty.drop();
    }
  });
});
