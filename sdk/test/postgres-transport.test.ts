import pg from 'pg';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createTestDatabase } from '../../test/helpers/db.ts';
import type { TestDatabase } from '../../test/helpers/db.ts';
import { createBrowserClient, createServerClient } from '../src/index.ts';
import { postgresTransport } from '../src/postgres/index.ts';

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
  pool = new pg.Pool({ connectionString: db.url, max: 3, application_name: 'sdk-transport-test' });
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

  test('a database update reaches a polling client within the poll bound, with onRollback', async () => {
    const pollIntervalMs = 200;
    const me = createBrowserClient({ transport: postgresTransport(pool, { user: { id: QA } }), pollIntervalMs });
    const server = createServerClient({ transport: postgresTransport(pool), pollIntervalMs });
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
      const broken = createServerClient({ transport: postgresTransport(new pg.Pool({ connectionString: db.url.replace(/\/[^/]+$/, '/rg_no_such_db') })), pollIntervalMs });
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
    const client = createServerClient({ transport: postgresTransport(counting), pollIntervalMs: 50 });
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

  test('bad arguments name what is wrong', () => {
    expect(() => postgresTransport({} as never)).toThrow(/pg Pool/);
    expect(() => postgresTransport(pool, { user: { id: '' } })).toThrow(/options\.user\.id/);
  });
});
