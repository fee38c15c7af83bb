// The Supabase transport on the real PostgreSQL (through the PostgREST/Realtime doubles): a rollback
// with a rule's default message and the urgent mark (guardian_rollback's p_message, p_urgent)
// reaches a server client (feature_flags rows + Realtime) and a signed-in client (get_my_flags)
// with its message, and as urgent: holdUntil is ignored, the save hook still runs first.
import { createClient } from '@supabase/supabase-js';
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import { createTestDatabase } from '../../test/helpers/db.ts';
import type { TestDatabase } from '../../test/helpers/db.ts';
import { createBrowserClient, createServerClient } from '../src/index.ts';
import { supabaseTransport } from '../src/supabase/index.ts';
import { jwt, SupabaseDouble } from './helpers/supabase-double.ts';

const QA = '00000000-0000-4000-8000-00000000a001';
const MESSAGE = 'Follow-ups are back to email while we fix a problem.';
let db: TestDatabase;
let double: SupabaseDouble;

beforeAll(async () => {
  db = await createTestDatabase();
  double = await SupabaseDouble.start(db.url, { liveDelayMs: 50 });
});
afterAll(async () => {
  await double?.stop();
  await db?.drop();
});

describe('urgent rollback with a rule message over the Supabase transport', () => {
  test('server and client mode get the message and urgent: true, and switch without waiting for the safe point', async () => {
    const admin = createClient(double.url, jwt({ role: 'service_role' }), { auth: { persistSession: false }, realtime: { reconnectAfterMs: () => 100 } });
    const user = createClient(double.url, jwt({ role: 'anon' }), { auth: { persistSession: false, autoRefreshToken: false }, realtime: { reconnectAfterMs: () => 100 } });
    expect((await user.auth.setSession({ access_token: jwt({ sub: QA, role: 'authenticated', aud: 'authenticated' }), refresh_token: 'r1' })).error).toBeNull();
    // Polling (through the same transport) backs up a Realtime change lost on a loaded machine.
    const options = { refetchJitterMs: 0, pollIntervalMs: 1_000, rollbackHoldMs: 10_000, safePointMaxMs: 3_600_000 } as const;
    const server = createServerClient({ transport: supabaseTransport(admin), ...options });
    const browser = createBrowserClient({ transport: supabaseTransport(user), ...options });
    const seen: string[] = [];
    for (const [who, client] of [['server', server], ['browser', browser]] as const) {
      client.onRollback(async (e) => {
        e.holdUntil(new Promise(() => undefined)); // the user never reaches a safe point
        await Promise.resolve();
        seen.push(`${who}:${e.flag}:${e.message}:urgent=${e.urgent}`);
      });
    }
    try {
      expect(await server.ready(10_000)).toBe('READY');
      expect(await browser.ready(10_000)).toBe('READY');
      await vi.waitFor(() => expect(browser.currentUser === QA && browser.isEnabled('followup_agent_enabled')).toBe(true), { timeout: 10_000 });
      await vi.waitFor(() => expect(server.realtime && browser.realtime).toBe(true), { timeout: 10_000 });

      await db.sql.query(
        `select public.guardian_rollback(p_flag => 'followup_agent_enabled', p_action => 'disable', p_rule_id => 'followup-errors', p_source => 'posthog',
           p_evidence => '{}'::jsonb, p_actor => 'guardian', p_idempotency_key => 'urgent-1', p_channels => array[]::text[], p_dry_run => false,
           p_reason => 'test', p_kind => 'auto_rollback', p_stages => null, p_message => $1, p_urgent => true)`,
        [MESSAGE],
      );
      await vi.waitFor(() => expect(server.getFlag('followup_agent_enabled')?.enabled).toBe(false), { timeout: 10_000 });
      await vi.waitFor(() => expect(browser.isEnabled('followup_agent_enabled')).toBe(false), { timeout: 10_000 });
      expect(seen.sort()).toEqual([`browser:followup_agent_enabled:${MESSAGE}:urgent=true`, `server:followup_agent_enabled:${MESSAGE}:urgent=true`]);
      expect(browser.evaluate('followup_agent_enabled')).toMatchObject({ value: false, rollbackMessage: MESSAGE, rollbackUrgent: true });
      expect(server.evaluate('followup_agent_enabled', QA)).toMatchObject({ value: false, rollbackMessage: MESSAGE, rollbackUrgent: true });
    } finally {
      await server.close();
      await browser.close();
    }
  });
});
