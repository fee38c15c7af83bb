import pg from 'pg';
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import { createTestDatabase } from '../../test/helpers/db.ts';
import type { TestDatabase } from '../../test/helpers/db.ts';
import { createBrowserClient, createServerClient } from '../src/index.ts';
import { parseChange, postgresTransport, type PgPoolLike } from '../src/postgres/index.ts';

let db: TestDatabase;
let pool: pg.Pool;
const QA = '00000000-0000-4000-8000-00000000a001';
const USER = '3b241101-e2bb-4255-8caf-4136c566a962';

async function until(what: string, check: () => boolean, ms: number): Promise<number> {
  const start = performance.now();
  for (let i = 0; i < ms / 5; i++) {
    if (check()) return performance.now() - start;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`timed out after ${ms} ms waiting for: ${what}`);
}

beforeAll(async () => {
  db = await createTestDatabase();
  pool = new pg.Pool({ connectionString: db.url, max: 8, application_name: 'sdk-transport-test' });
  pool.on('error', () => undefined); // idle clients killed by the forced-disconnect test
});
afterAll(async () => {
  await pool?.end();
  await db?.drop();
});

describe('postgres transport on real PostgreSQL', () => {
  test('server mode agrees with evaluate_flags() for every flag and many users', async () => {
    const client = createServerClient({ transport: postgresTransport(pool), pollIntervalMs: 60_000 });
    try {
      expect(await client.ready(5000)).toBe('READY');
      const users = [QA, USER, ...Array.from({ length: 60 }, (_, i) => `user-${i}-ñ😀`)];
      for (const u of users) {
        const { rows } = await db.sql.query<{ name: string; value: boolean; reason: string }>('select name, value, reason from evaluate_flags($1)', [u]);
        expect(rows.length).toBe(7);
        for (const r of rows) expect(client.evaluate(r.name, u)).toMatchObject({ value: r.value, reason: r.reason });
      }
    } finally {
      await client.close();
    }
  });

  test('client mode reads get_my_flags() as the signed-in user and as anon', async () => {
    const me = createBrowserClient({ transport: postgresTransport(pool, { user: { id: QA } }), pollIntervalMs: 60_000 });
    const anon = createBrowserClient({ transport: postgresTransport(pool, { user: { id: null } }), pollIntervalMs: 60_000 });
    try {
      expect(await me.ready(5000)).toBe('READY');
      expect(await anon.ready(5000)).toBe('READY');
      expect(me.evaluate('followup_agent_enabled')).toMatchObject({ value: true, reason: 'TARGETING_MATCH' });
      expect(anon.isEnabled('followup_agent_enabled')).toBe(false);
      expect(anon.isEnabled('ai_ga_enabled')).toBe(true); // 100%: on for anonymous users
      expect(anon.isEnabled('ai_beta_users')).toBe(false); // below 100%: off without a user
      const { rows } = await db.sql.query<{ name: string; value: boolean }>('select name, value from evaluate_flags($1)', [QA]);
      for (const r of rows) expect(me.isEnabled(r.name)).toBe(r.value);
    } finally {
      await me.close();
      await anon.close();
    }
  });

  test('with listen: false, a database update reaches a polling client within the poll bound, with onRollback', async () => {
    const pollIntervalMs = 200;
    const me = createBrowserClient({ transport: postgresTransport(pool, { user: { id: QA }, listen: false }), pollIntervalMs });
    const server = createServerClient({ transport: postgresTransport(pool, { listen: false }), pollIntervalMs });
    try {
      await me.ready(5000);
      await server.ready(5000);
      const rollbacks: string[] = [];
      me.onRollback((e) => rollbacks.push(`${e.flag}:${e.message}`));
      expect(me.isEnabled('booking_agent_enabled')).toBe(true);
      await db.sql.query(`update feature_flags set enabled = false, guard_state = 'rolled_back', rollback_message = 'Paused for now' where name = 'booking_agent_enabled'`);
      const msClient = await until('client sees the rollback', () => !me.isEnabled('booking_agent_enabled'), pollIntervalMs * 3 + 500);
      const msServer = await until('server sees the rollback', () => server.evaluate('booking_agent_enabled', QA).reason === 'DISABLED', pollIntervalMs * 3 + 500);
      console.log(`polling propagation (poll ${pollIntervalMs} ms): client ${msClient.toFixed(0)} ms, server ${msServer.toFixed(0)} ms`);
      expect(rollbacks).toEqual(['booking_agent_enabled:Paused for now']);
      // Forced disconnect: every connection of the SDK's pool is killed, then a change is made.
      await db.sql.query(`select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'sdk-transport-test' and pid <> pg_backend_pid()`);
      await db.sql.query(`update feature_flags set rollout_percentage = 100 where name = 'session_agent_enabled'`);
      const msAfter = await until('change after forced disconnect', () => server.getFlag('session_agent_enabled')?.rolloutPercentage === 100 && me.isEnabled('session_agent_enabled'), pollIntervalMs * 4 + 1000);
      console.log(`polling propagation after a forced disconnect: ${msAfter.toFixed(0)} ms`);
      // A database that goes away and comes back: the client keeps last-known values, then catches up.
      const broken = createServerClient({ transport: postgresTransport(new pg.Pool({ connectionString: db.url.replace(/\/[^/]+$/, '/rg_no_such_db') }), { listen: false }), pollIntervalMs });
      expect(await broken.ready(5000)).toBe('ERROR');
      expect(broken.evaluate('ai_ga_enabled', QA, true)).toMatchObject({ value: true, errorCode: 'PROVIDER_NOT_READY' });
      await broken.close();
    } finally {
      await me.close();
      await server.close();
    }
  });

  test('version-checked polling loads only when a version changed', async () => {
    const queries: string[] = [];
    const counting = {
      query: (text: string, params?: unknown[]) => {
        queries.push(text.includes('md5') ? 'fingerprint' : 'load');
        return pool.query(text, params) as Promise<{ rows: Record<string, unknown>[] }>;
      },
      connect: () => pool.connect() as never,
    };
    const client = createServerClient({ transport: postgresTransport(counting, { listen: false }), pollIntervalMs: 50 });
    try {
      await client.ready(5000);
      await new Promise((r) => setTimeout(r, 400));
      expect(queries.filter((q) => q === 'load').length).toBe(1);
      expect(queries.filter((q) => q === 'fingerprint').length).toBeGreaterThan(3);
      await db.sql.query(`update feature_flags set rollout_percentage = 11 where name = 'session_agent_enabled'`);
      await until('polled change', () => client.getFlag('session_agent_enabled')?.rolloutPercentage === 11, 2000);
      expect(queries.filter((q) => q === 'load').length).toBe(2);
    } finally {
      await client.close();
    }
  });

  test('LISTEN: a rollback reaches server and client mode with polling an hour away; stale and foreign notifications change nothing', async () => {
    const hour = 3_600_000;
    const loads: string[] = [];
    const counting: PgPoolLike = {
      query: (text, params) => {
        if (!text.includes('md5')) loads.push(text.includes('get_my_flags') ? 'mine' : 'all');
        return pool.query(text, params) as Promise<{ rows: Record<string, unknown>[] }>;
      },
      connect: () => pool.connect(),
    };
    const me = createBrowserClient({ transport: postgresTransport(pool, { user: { id: QA } }), pollIntervalMs: hour, ttlMs: hour });
    const server = createServerClient({ transport: postgresTransport(counting), pollIntervalMs: hour, ttlMs: hour });
    try {
      expect(await me.ready(5000)).toBe('READY');
      expect(await server.ready(5000)).toBe('READY');
      await vi.waitFor(() => expect(server.realtime && me.realtime).toBe(true), { timeout: 10_000 });
      const rollbacks: string[] = [];
      me.onRollback((e) => rollbacks.push(`client:${e.flag}`));
      server.onRollback((e) => rollbacks.push(`server:${e.flag}`));
      expect(me.isEnabled('insights_agent_enabled')).toBe(true);
      await db.sql.query(`update feature_flags set enabled = false, guard_state = 'rolled_back' where name = 'insights_agent_enabled'`);
      await vi.waitFor(
        () => {
          expect(me.isEnabled('insights_agent_enabled')).toBe(false);
          expect(server.evaluate('insights_agent_enabled', QA).reason).toBe('DISABLED');
        },
        { timeout: 10_000 },
      );
      expect(rollbacks.sort()).toEqual(['client:insights_agent_enabled', 'server:insights_agent_enabled']);
      // Loads so far: the first one, the re-fetch when the subscription went live and the one after the
      // rollback, the last two joined into one when the second was asked while the first waited to
      // start (a CI run on a loaded machine saw 2). A refresh now runs after any load still pending,
      // so the count is final: those, plus this one.
      expect(await server.refresh()).toBe(true);
      expect([3, 4]).toContain(loads.filter((l) => l === 'all').length);
      // A notification older than (or as old as) the version held, and a rollback event on the same channel: no load.
      const held = server.getFlag('insights_agent_enabled')!.version;
      const before = loads.length;
      await db.sql.query(`select pg_notify('guardian_changes', $1), pg_notify('guardian_changes', $2), pg_notify('guardian_changes', 'not json')`, [
        JSON.stringify({ table: 'feature_flags', op: 'UPDATE', name: 'insights_agent_enabled', version: held }),
        JSON.stringify({ table: 'rollback_events', op: 'INSERT', id: '1', flag: 'insights_agent_enabled', kind: 'restore' }),
      ]);
      // A later real change proves the stale ones were received (same connection, in order) and ignored.
      await db.sql.query(`update feature_flags set rollout_percentage = 42 where name = 'ai_beta_users'`);
      await vi.waitFor(() => expect(server.getFlag('ai_beta_users')?.rolloutPercentage).toBe(42), { timeout: 10_000 });
      expect(loads.length).toBe(before + 1);
      expect(server.getFlag('insights_agent_enabled')?.guardState).toBe('rolled_back');
    } finally {
      await me.close();
      await server.close();
    }
  });

  test('LISTEN: after every listening connection is killed it reconnects, re-fetches what it missed, and hears changes again', async () => {
    const hour = 3_600_000;
    const statuses: string[] = [];
    const transport = postgresTransport(pool, { reconnectDelaysMs: [50, 100] });
    const server = createServerClient({ transport, pollIntervalMs: hour, ttlMs: hour });
    const off = transport.subscribe!({ change: () => undefined, status: (s) => statuses.push(s) });
    try {
      await server.ready(5000);
      await vi.waitFor(() => expect(server.realtime && statuses.includes('live')).toBe(true), { timeout: 10_000 });
      await db.sql.query(`select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'sdk-transport-test' and query ilike 'listen%' and pid <> pg_backend_pid()`);
      // Changed while nobody listens: only the re-fetch after the reconnect can bring it.
      await db.sql.query(`update feature_flags set rollout_percentage = 33 where name = 'ai_alpha_users'`);
      await vi.waitFor(() => expect(statuses.slice(1)).toEqual(expect.arrayContaining(['down', 'live'])), { timeout: 10_000 });
      await vi.waitFor(() => expect(server.getFlag('ai_alpha_users')?.rolloutPercentage).toBe(33), { timeout: 10_000 });
      await vi.waitFor(() => expect(server.realtime).toBe(true), { timeout: 10_000 });
      await db.sql.query(`update feature_flags set rollout_percentage = 34 where name = 'ai_alpha_users'`);
      await vi.waitFor(() => expect(server.getFlag('ai_alpha_users')?.rolloutPercentage).toBe(34), { timeout: 10_000 });
    } finally {
      off();
      await server.close();
    }
  });

  test('parseChange reads flag payloads of the change feed and nothing else', () => {
    expect(parseChange('{"table":"feature_flags","op":"UPDATE","name":"f_1","version":4}')).toEqual({ type: 'UPDATE', name: 'f_1', version: 4, record: null });
    expect(parseChange('{"table":"feature_flags","op":"DELETE","name":"f_1"}')).toEqual({ type: 'DELETE', name: 'f_1', version: null, record: null });
    // The row's public fields only say how soon to re-fetch (its guard state); nothing is applied from them.
    expect(parseChange('{"table":"feature_flags","op":"UPDATE","name":"f_1","version":5,"row":{"name":"f_1","enabled":true,"guard_state":"rolled_back"}}')).toEqual({
      type: 'UPDATE',
      name: 'f_1',
      version: 5,
      record: null,
      guardState: 'rolled_back',
    });
    expect(parseChange('{"table":"feature_flags","op":"UPDATE","name":"f_1","version":5,"row":{"guard_state":"nonsense"}}')).toEqual({ type: 'UPDATE', name: 'f_1', version: 5, record: null });
    expect(parseChange('{"table":"rollback_events","op":"INSERT","id":"1","flag":"f_1","kind":"restore"}')).toBeUndefined();
    expect(parseChange('{"table":"feature_flags","op":"TRUNCATE","name":"f_1"}')).toBeUndefined();
    expect(parseChange('nope')).toBeUndefined();
    expect(parseChange(undefined)).toBeUndefined();
  });

  test('bad arguments name what is wrong', () => {
    expect(() => postgresTransport({} as never)).toThrow(/pg Pool/);
    expect(() => postgresTransport(pool, { user: { id: '' } })).toThrow(/options\.user\.id/);
  });
});
