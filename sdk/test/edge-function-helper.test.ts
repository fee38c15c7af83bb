// supabase/functions/_shared/feature-flags.ts (the Edge Function helper) run under Node against the
// REAL PostgreSQL test database through the PostgREST and Realtime doubles: the same code an Edge
// Function runs, with the environment and the clock injected. The `npm:` specifier it imports for
// Deno is mapped to the installed supabase-js.
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import { createTestDatabase } from '../../test/helpers/db.ts';
import type { TestDatabase } from '../../test/helpers/db.ts';
import { evaluate } from '../src/index.ts';
import type { SdkLogger } from '../src/index.ts';
import { jwt, SupabaseDouble } from './helpers/supabase-double.ts';

vi.mock('npm:@supabase/supabase-js@2', async () => await import('@supabase/supabase-js'));
const { checkFeatureFlag, configureFeatureFlags, evaluateFeatureFlag, featureFlagsCacheInfo, getFeatureFlags } = await import('../../supabase/functions/_shared/feature-flags.ts');

const QA = '00000000-0000-4000-8000-00000000a001';
const CORE = ['ai_alpha_users', 'ai_beta_users', 'ai_ga_enabled', 'booking_agent_enabled', 'followup_agent_enabled', 'insights_agent_enabled', 'session_agent_enabled'];

let db: TestDatabase;
let double: SupabaseDouble;
let env: Record<string, string>;
const clock = { t: 5_000_000, now: (): number => clock.t };
const errors: string[] = [];
const logger: SdkLogger = {
  warn: () => undefined,
  error: (obj: unknown, msg?: string) => {
    const err = (obj as { err?: unknown }).err;
    errors.push(`${msg ?? ''} ${err instanceof Error ? err.message : ''}`);
  },
};

const requests = (table: string): number => double.restRequests.filter((r) => r.startsWith(`GET /rest/v1/${table}?`)).length;

async function until(what: string, check: () => Promise<boolean>, ms: number): Promise<void> {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out after ${ms} ms waiting for: ${what}`);
}

beforeAll(async () => {
  db = await createTestDatabase();
  double = await SupabaseDouble.start(db.url, { liveDelayMs: 100 });
  env = { SUPABASE_URL: double.url, SUPABASE_SERVICE_ROLE_KEY: jwt({ role: 'service_role', iss: 'supabase-double' }) };
});
afterAll(async () => {
  await configureFeatureFlags({ env: () => undefined, logger });
  await double?.stop();
  await db?.drop();
});

describe('Edge Function helper (_shared/feature-flags.ts) on real PostgreSQL', () => {
  test('the module-level client loads once per isolate and serves many requests from the cache', async () => {
    await configureFeatureFlags({ env: (name) => env[name], now: clock.now, logger, ttlMs: 30_000 });
    expect(featureFlagsCacheInfo().status).toBe('NOT_CREATED');
    const before = { flags: requests('feature_flags'), targets: requests('flag_targets') };
    // A burst of "requests" arriving together, then many more.
    const burst = await Promise.all(Array.from({ length: 20 }, (_, i) => checkFeatureFlag(`user-${i}`, 'ai_beta_users')));
    for (let i = 0; i < 300; i++) {
      const user = `user-${i}`;
      const expected = evaluate({ name: 'ai_beta_users', enabled: true, rolloutPercentage: 50, bucketGroup: 'ai_rollout' }, user).value;
      if (i < 20) expect(burst[i]).toBe(expected);
      expect(await checkFeatureFlag(user, 'ai_beta_users')).toBe(expected);
    }
    expect(await evaluateFeatureFlag(QA, 'followup_agent_enabled')).toMatchObject({ value: true, reason: 'TARGETING_MATCH' });
    expect(await evaluateFeatureFlag('someone', 'followup_agent_enabled')).toMatchObject({ value: false, reason: 'SPLIT' });
    expect(Object.keys(await getFeatureFlags(QA)).sort()).toEqual(CORE);
    expect(await evaluateFeatureFlag(QA, 'no_such_flag')).toMatchObject({ value: false, reason: 'ERROR', errorCode: 'FLAG_NOT_FOUND' });
    expect(requests('feature_flags') - before.flags).toBe(1);
    expect(requests('flag_targets') - before.targets).toBe(1);
    expect(featureFlagsCacheInfo()).toMatchObject({ loads: 1, status: 'READY', realtime: false });
  });

  test('a rollback in the database is served from the cache until the TTL, then re-fetched once', async () => {
    expect(await checkFeatureFlag(QA, 'booking_agent_enabled')).toBe(true); // a target
    await db.sql.query(`update feature_flags set enabled = false, guard_state = 'rolled_back', rollback_message = 'paused' where name = 'booking_agent_enabled'`);
    clock.t += 29_000;
    expect(await checkFeatureFlag(QA, 'booking_agent_enabled')).toBe(true); // still the cached definition
    expect(featureFlagsCacheInfo().loads).toBe(1);
    clock.t += 1_000;
    expect(await evaluateFeatureFlag(QA, 'booking_agent_enabled')).toMatchObject({ value: false, reason: 'DISABLED' });
    expect(await checkFeatureFlag('anyone', 'booking_agent_enabled')).toBe(false);
    expect(featureFlagsCacheInfo().loads).toBe(2);
    await db.sql.query(`update feature_flags set enabled = true, guard_state = 'watching', rollback_message = null where name = 'booking_agent_enabled'`);
  });

  test('a missing SUPABASE_SERVICE_ROLE_KEY: false with PROVIDER_NOT_READY, logged, no request made', async () => {
    await configureFeatureFlags({ env: (name) => (name === 'SUPABASE_URL' ? env[name] : undefined), now: clock.now, logger });
    const sent = double.restRequests.length;
    errors.length = 0;
    expect(await checkFeatureFlag(QA, 'ai_ga_enabled')).toBe(false);
    expect(await evaluateFeatureFlag(QA, 'ai_ga_enabled', true)).toEqual({ flag: 'ai_ga_enabled', value: true, reason: 'ERROR', errorCode: 'PROVIDER_NOT_READY' });
    expect(await getFeatureFlags(QA)).toEqual({});
    expect(double.restRequests.length).toBe(sent);
    expect(errors).toEqual([expect.stringContaining('SUPABASE_SERVICE_ROLE_KEY is not set')]);
  });

  test('an unreachable project: false within loadTimeoutMs, never a rejection', async () => {
    await configureFeatureFlags({ env: (name) => (name === 'SUPABASE_URL' ? 'http://127.0.0.1:9' : env[name]), logger, loadTimeoutMs: 1_500 });
    const t0 = performance.now();
    expect(await evaluateFeatureFlag(QA, 'ai_ga_enabled')).toMatchObject({ value: false, reason: 'ERROR', errorCode: 'PROVIDER_NOT_READY' });
    expect(performance.now() - t0).toBeLessThan(3_000);
  });

  test('with realtime: true, a change reaches the isolate without waiting for the TTL', async () => {
    await configureFeatureFlags({ env: (name) => env[name], now: clock.now, logger, realtime: true, ttlMs: 600_000 });
    expect(await checkFeatureFlag('user-1', 'ai_ga_enabled')).toBe(true);
    await until('subscription live', async () => featureFlagsCacheInfo().realtime, 5_000);
    await db.sql.query(`update feature_flags set enabled = false where name = 'ai_ga_enabled'`);
    await until('ai_ga_enabled off', async () => !(await checkFeatureFlag('user-1', 'ai_ga_enabled')), 2_000);
    expect(await evaluateFeatureFlag('user-1', 'ai_ga_enabled')).toMatchObject({ value: false, reason: 'DISABLED' });
  });
});
