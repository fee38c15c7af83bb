import { createClient } from '@supabase/supabase-js';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createTestDatabase } from '../../test/helpers/db.ts';
import type { TestDatabase } from '../../test/helpers/db.ts';
import { createBrowserClient } from '../src/index.ts';
import { supabaseTransport } from '../src/supabase/index.ts';
import { jwt, SupabaseDouble } from './helpers/supabase-double.ts';

let db: TestDatabase;
let double: SupabaseDouble;
const QA = '00000000-0000-4000-8000-00000000a001';

async function until(what: string, check: () => boolean, ms: number): Promise<void> {
  for (let i = 0; i < ms / 5; i++) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`timed out after ${ms} ms waiting for: ${what}`);
}

beforeAll(async () => {
  db = await createTestDatabase();
  double = await SupabaseDouble.start(db.url, { liveDelayMs: 100 });
});
afterAll(async () => {
  await double?.stop();
  await db?.drop();
});

describe('client mode over supabase-js (anon key, get_my_flags via the PostgREST double)', () => {
  test('anonymous, then signed in, then signed out; Realtime changes re-fetch; storage keeps the last values', async () => {
    const supabase = createClient(double.url, jwt({ role: 'anon' }), {
      auth: { persistSession: false, autoRefreshToken: false },
      realtime: { reconnectAfterMs: () => 100, heartbeatIntervalMs: 2000 },
    });
    const store = new Map<string, string>();
    const storage = { getItem: (k: string) => store.get(k) ?? null, setItem: (k: string, v: string) => void store.set(k, v) };
    const client = createBrowserClient({ transport: supabaseTransport(supabase), storage, pollIntervalMs: 60_000 });
    try {
      expect(await client.ready(5000)).toBe('READY');
      expect(client.isEnabled('ai_ga_enabled')).toBe(true);
      expect(client.isEnabled('followup_agent_enabled')).toBe(false);

      const { error } = await supabase.auth.setSession({ access_token: jwt({ sub: QA, role: 'authenticated', aud: 'authenticated' }), refresh_token: 'r1' });
      expect(error).toBeNull();
      await until('signed-in flags', () => client.currentUser === QA && client.isEnabled('followup_agent_enabled'), 3000);
      expect(client.evaluate('followup_agent_enabled').reason).toBe('TARGETING_MATCH');
      expect(double.restRequests.some((r) => r.startsWith('POST /rest/v1/rpc/get_my_flags'))).toBe(true);

      await until('realtime live', () => client.realtime, 3000);
      const rollbacks: string[] = [];
      client.onRollback((e) => rollbacks.push(`${e.flag}:${e.message}`));
      const t0 = performance.now();
      await db.sql.query(`update feature_flags set enabled = false, guard_state = 'rolled_back', rollback_message = 'Follow-ups are paused' where name = 'followup_agent_enabled'`);
      await until('rollback reached the client', () => !client.isEnabled('followup_agent_enabled'), 1000);
      expect(performance.now() - t0).toBeLessThan(1000);
      expect(rollbacks).toEqual(['followup_agent_enabled:Follow-ups are paused']);
      expect(JSON.parse(store.get('rollback-guardian.flags')!)).toMatchObject({ userId: QA });

      await supabase.auth.signOut();
      await until('signed-out flags', () => client.currentUser === null, 3000);
      expect(client.isEnabled('ai_beta_users')).toBe(false);
    } finally {
      await client.close();
    }
  });
});
