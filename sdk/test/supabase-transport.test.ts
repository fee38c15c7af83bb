import { createClient } from '@supabase/supabase-js';
import type { SupabaseClient } from '@supabase/supabase-js';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createTestDatabase } from '../../test/helpers/db.ts';
import type { TestDatabase } from '../../test/helpers/db.ts';
import { createServerClient, evaluate } from '../src/index.ts';
import type { ServerFlagClient } from '../src/index.ts';
import { supabaseTransport } from '../src/supabase/index.ts';
import { jwt, SupabaseDouble } from './helpers/supabase-double.ts';

let db: TestDatabase;
let double: SupabaseDouble;
const serviceKey = jwt({ role: 'service_role', iss: 'supabase-double' });

function supabase(key: string): SupabaseClient {
  return createClient(double.url, key, {
    auth: { persistSession: false, autoRefreshToken: false },
    realtime: { reconnectAfterMs: () => 100, heartbeatIntervalMs: 2000, timeout: 3000 },
  });
}

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
  double = await SupabaseDouble.start(db.url, { liveDelayMs: 150 });
});
afterAll(async () => {
  await double?.stop();
  await db?.drop();
});

describe('supabase transport (PostgREST double + Realtime protocol double on real PostgreSQL)', () => {
  let client: ServerFlagClient;
  afterAll(async () => client?.close());

  test('server mode loads definitions and targets through PostgREST and evaluates like the core', async () => {
    client = createServerClient({ transport: supabaseTransport(supabase(serviceKey), { pageSize: 3 }), pollIntervalMs: 60_000 });
    expect(await client.ready(5000)).toBe('READY');
    expect(client.flagNames().sort()).toEqual(['ai_alpha_users', 'ai_beta_users', 'ai_ga_enabled', 'booking_agent_enabled', 'followup_agent_enabled', 'insights_agent_enabled', 'session_agent_enabled']);
    const qa = '00000000-0000-4000-8000-00000000a001';
    expect(client.evaluate('followup_agent_enabled', qa)).toMatchObject({ value: true, reason: 'TARGETING_MATCH' });
    for (let i = 0; i < 100; i++) {
      expect(client.isEnabled('ai_beta_users', `u${i}`)).toBe(evaluate({ name: 'ai_beta_users', enabled: true, rolloutPercentage: 50, bucketGroup: 'ai_rollout' }, `u${i}`).value);
    }
    // pageSize 3 → several ranged requests per table
    expect(double.restRequests.filter((r) => r.startsWith('GET /rest/v1/feature_flags')).length).toBeGreaterThanOrEqual(3);
  });

  test('waits for a live subscription (postgres_changes_options.wait) and then re-fetches', async () => {
    await until('realtime live', () => client.realtime, 5000);
    const join = double.received.find((f) => f[3] === 'phx_join');
    expect(join?.[4]).toMatchObject({ config: { postgres_changes: [{ event: '*', schema: 'public', table: 'feature_flags' }], postgres_changes_options: { wait: true } } });
  });

  test('a database update reaches the subscribed client through Realtime within 1 s', async () => {
    const rolledBack: string[] = [];
    client.onRollback((e) => rolledBack.push(`${e.flag}:${e.message}`));
    const t0 = performance.now();
    await db.sql.query(`update feature_flags set enabled = false, guard_state = 'rolled_back', rollback_message = 'Booking is paused' where name = 'booking_agent_enabled'`);
    await until('booking_agent_enabled off', () => client.evaluate('booking_agent_enabled', 'x').reason === 'DISABLED', 1000);
    const ms = performance.now() - t0;
    console.log(`realtime propagation: ${ms.toFixed(1)} ms`);
    expect(ms).toBeLessThan(1000);
    expect(rolledBack).toEqual(['booking_agent_enabled:Booking is paused']);
    // A target added bumps the version; the re-fetch brings the target.
    await db.sql.query(`insert into flag_targets (flag_name, user_id) values ('session_agent_enabled', 'vip-1')`);
    await until('target vip-1', () => client.evaluate('session_agent_enabled', 'vip-1').reason === 'TARGETING_MATCH', 1000);
  });

  test('after a forced disconnect the client rejoins, sees SUBSCRIBED again and re-fetches what it missed', async () => {
    const joins = double.joins;
    double.disconnectAll();
    await until('realtime down', () => !client.realtime, 3000);
    // Changed while the client is away: Realtime will never send this event.
    await db.sql.query(`update feature_flags set rollout_percentage = 100 where name = 'insights_agent_enabled'`);
    await until('rejoined', () => double.joins > joins && client.realtime, 5000);
    await until('re-fetched what was missed', () => client.getFlag('insights_agent_enabled')?.rolloutPercentage === 100, 2000);
    // And live changes flow again.
    await db.sql.query(`update feature_flags set enabled = false where name = 'ai_ga_enabled'`);
    await until('ai_ga_enabled off', () => !client.isEnabled('ai_ga_enabled', 'u1'), 1000);
  });

  test('a rejected join (CHANNEL_ERROR) falls back to version-checked polling', async () => {
    double.rejectJoins = 'RealtimeDisabledForConfiguration: feature_flags is not in the publication';
    const polling = createServerClient({ transport: supabaseTransport(supabase(serviceKey), { channel: 'other' }), pollIntervalMs: 200 });
    try {
      expect(await polling.ready(5000)).toBe('READY');
      await new Promise((r) => setTimeout(r, 300));
      expect(polling.realtime).toBe(false);
      await db.sql.query(`update feature_flags set rollout_percentage = 0 where name = 'ai_alpha_users'`);
      await until('polled change', () => polling.getFlag('ai_alpha_users')?.rolloutPercentage === 0, 1500);
    } finally {
      double.rejectJoins = null;
      await polling.close();
    }
  });
});
