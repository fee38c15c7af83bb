/**
 * SupabaseStore over the real supabase-js against the PostgREST protocol double
 * (test/helpers/postgrest-double.ts) on a real PostgreSQL, with every request running as the role
 * its JWT names. The Store contract itself runs on this backend in store.db.test.ts; here is what
 * only Supabase has: requests as service_role, the store factory picking SupabaseStore from
 * SUPABASE_URL + SUPABASE_SERVICE_ROLE_KEY, an anon or forged key refused, Supabase's 1000-row cap
 * not truncating reads, and an unreachable URL failing fast.
 */
import { createServer as createHttpServer } from 'node:http';

import { createClient } from '@supabase/supabase-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.ts';
import { PostgrestDouble, signJwt, supabaseKey } from '../../test/helpers/postgrest-double.ts';
import { loadConfig } from '../src/config.ts';
import { isGuardianError } from '../src/errors.ts';
import { createStore } from '../src/store/index.ts';
import { SupabaseStore } from '../src/store/supabase-store.ts';
import { freePort } from './notify-helpers.ts';
import { codeOf, errorOf } from './rejection.ts';

describe('SupabaseStore through supabase-js and the PostgREST double', () => {
  let db: TestDatabase;
  let rest: PostgrestDouble;
  let store: SupabaseStore;

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

  it('talks to /rest/v1 at its URL as service_role only: reads, and deletes answered 204', async () => {
    await store.ping();
    expect((await store.listFlags()).map((f) => f.name)).toContain('booking_agent_enabled');
    expect(store.kind).toBe('supabase');
    expect(store.location).toBe(rest.url);
    const at = new Date('2026-03-01T10:00:00.000Z');
    await store.appendObservations([{ source: 'posthog', flag: 'f1', stageStartedAt: at, at, unit: 'users', treatment: { total: 100, errors: 2 } }]);
    expect(await store.pruneObservations(new Date(at.getTime() + 1))).toBe(1);
    const seen = rest.requests.filter((r) => r.url.startsWith('/rest/v1/'));
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.every((r) => r.role === 'service_role')).toBe(true);
    const del = rest.requests.filter((r) => r.method === 'DELETE');
    expect(del.at(-1)).toMatchObject({ status: 204, role: 'service_role' });
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
    // Every poll (a tail as long as the segment), paged through PostgREST's max_rows.
    const all = (await store.observationTail('bulk', [{ flag: 'f9', stageStartedAt: stage, segmentSince: stage }], 1500)).get('f9');
    expect(all?.omitted).toBe(0);
    const hist = all?.points ?? [];
    expect(hist).toHaveLength(1500);
    expect(hist.at(-1)?.treatment.total).toBe(1500);
    // The cycle's bounded read through PostgREST: the last polls and how many were left out.
    const tail = (await store.observationTail('bulk', [{ flag: 'f9', stageStartedAt: stage, segmentSince: stage }], 2)).get('f9');
    expect(tail).toEqual({ points: hist.slice(-2), omitted: 1498 });
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
    const url = `http://127.0.0.1:${await freePort()}`;
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
