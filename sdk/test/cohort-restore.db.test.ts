// On the real PostgreSQL (through the Supabase doubles): a rollback and a restore done by the
// database functions the guardian calls (guardian_rollback, restore_flag) put every user back in
// the cohort they had (same hash, same bucket group), as the SDK and SQL both evaluate it; and the
// Supabase transport's polling reads a name:version fingerprint, loading definitions and targets
// only when a version changed.
import { createClient } from '@supabase/supabase-js';
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import { createTestDatabase } from '../../test/helpers/db.ts';
import type { TestDatabase } from '../../test/helpers/db.ts';
import { createServerClient } from '../src/index.ts';
import type { ServerFlagClient } from '../src/index.ts';
import { supabaseTransport } from '../src/supabase/index.ts';
import { jwt, SupabaseDouble } from './helpers/supabase-double.ts';

const USERS = Array.from({ length: 2000 }, (_, i) => `cohort-user-${i}`);
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

const admin = () => createClient(double.url, jwt({ role: 'service_role' }), { auth: { persistSession: false }, realtime: { reconnectAfterMs: () => 100 } });
const cohort = (client: ServerFlagClient, flag: string): string[] => USERS.filter((u) => client.isEnabled(flag, u));
async function sqlCohort(flag: string): Promise<string[]> {
  const { rows } = await db.sql.query<{ u: string }>(`select u from unnest($1::text[]) with ordinality as t(u, i) where public.is_feature_enabled($2, u) order by i`, [USERS, flag]);
  return rows.map((r) => r.u);
}
async function rollback(flag: string, action: 'disable' | 'step_back', key: string): Promise<void> {
  await db.sql.query(
    `select public.guardian_rollback(p_flag => $1, p_action => $2, p_rule_id => 'cohort-test', p_source => 'sentry', p_evidence => '{}'::jsonb,
       p_actor => 'guardian', p_idempotency_key => $3, p_channels => array[]::text[], p_dry_run => false, p_reason => 'test', p_kind => 'auto_rollback', p_stages => $4::integer[])`,
    [flag, action, key, action === 'step_back' ? [10, 50, 100] : null],
  );
}
async function restore(flag: string, key: string): Promise<void> {
  await db.sql.query(`select public.restore_flag(p_flag_or_event => $1, p_actor => 'oncall', p_reason => 'fixed', p_idempotency_key => $2, p_channels => null)`, [flag, key]);
}

describe('rollback + restore never reshuffle users (real database)', () => {
  test('disable then restore: the same users are in the cohort, in the SDK and in SQL; a nested stage steps back inside its group', async () => {
    const client = createServerClient({ transport: supabaseTransport(admin()), refetchJitterMs: 50 });
    try {
      expect(await client.ready(10_000)).toBe('READY');
      await vi.waitFor(() => expect(client.realtime).toBe(true), { timeout: 10_000 });
      const booking = cohort(client, 'booking_agent_enabled');
      const beta = cohort(client, 'ai_beta_users');
      expect(booking.length).toBeGreaterThan(400); // 25%
      expect(booking.length).toBeLessThan(600);
      expect(await sqlCohort('booking_agent_enabled')).toEqual(booking);

      await rollback('booking_agent_enabled', 'disable', 'cohort-rb-1');
      await vi.waitFor(() => expect(cohort(client, 'booking_agent_enabled')).toEqual([]), { timeout: 10_000 });
      await restore('booking_agent_enabled', 'cohort-restore-1');
      await vi.waitFor(() => expect(cohort(client, 'booking_agent_enabled')).toEqual(booking), { timeout: 10_000 });
      expect(await sqlCohort('booking_agent_enabled')).toEqual(booking);

      // ai_beta_users (50%, group ai_rollout) steps back to 10%: the users left are a subset; the
      // restore brings back exactly the 50% there were.
      await rollback('ai_beta_users', 'step_back', 'cohort-rb-2');
      await vi.waitFor(() => expect(client.getFlag('ai_beta_users')?.rolloutPercentage).toBe(10), { timeout: 10_000 });
      const stepped = cohort(client, 'ai_beta_users');
      expect(stepped.length).toBeGreaterThan(0);
      expect(stepped.every((u) => beta.includes(u))).toBe(true);
      expect(stepped).toEqual(cohort(client, 'ai_alpha_users')); // the same 10% as the alpha stage of the group
      await restore('ai_beta_users', 'cohort-restore-2');
      await vi.waitFor(() => expect(cohort(client, 'ai_beta_users')).toEqual(beta), { timeout: 10_000 });
      expect(await sqlCohort('ai_beta_users')).toEqual(beta);
    } finally {
      await client.close();
    }
  }, 60_000);
});

describe('version-checked polling over supabase-js', () => {
  test('polls read only name:version; definitions and targets are loaded again only after a change', async () => {
    const t = supabaseTransport(admin());
    const pollingOnly = { loadAll: t.loadAll!.bind(t), fingerprint: t.fingerprint!.bind(t) };
    const count = (prefix: string): number => double.restRequests.filter((r) => r.startsWith(prefix)).length;
    const targets0 = count('GET /rest/v1/flag_targets');
    const client = createServerClient({ transport: pollingOnly, pollIntervalMs: 20 });
    try {
      await client.ready(10_000);
      const fp0 = count('GET /rest/v1/feature_flags?select=name%2Cversion') + count('GET /rest/v1/feature_flags?select=name,version');
      await vi.waitFor(() => expect(count('GET /rest/v1/feature_flags?select=name%2Cversion') + count('GET /rest/v1/feature_flags?select=name,version')).toBeGreaterThan(fp0 + 5), { timeout: 10_000 });
      expect(count('GET /rest/v1/flag_targets') - targets0).toBe(1); // only the first load
      await db.sql.query(`update feature_flags set rollout_percentage = 30 where name = 'session_agent_enabled'`);
      await vi.waitFor(() => expect(client.getFlag('session_agent_enabled')?.rolloutPercentage).toBe(30), { timeout: 10_000 });
      expect(count('GET /rest/v1/flag_targets') - targets0).toBe(2);
    } finally {
      await client.close();
    }
  }, 30_000);
});
