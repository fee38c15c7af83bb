// Row level security and grants, checked as each Supabase API role (SET LOCAL ROLE plus the JWT
// claims PostgREST sets), on a real PostgreSQL and on PGlite.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { evaluate } from '../../sdk/src/core/evaluate.ts';
import type { TestDatabase } from '../../test/helpers/db.ts';
import { asRole, BACKENDS, num, withRollback } from './support.ts';

const QA_USER = '00000000-0000-4000-8000-00000000a001'; // a seed target of ai_alpha_users
const OTHER_USER = '11111111-2222-4333-8444-555555555555';

/** One representative write per table (each runs in its own rolled-back transaction). */
const WRITES: ReadonlyArray<readonly [table: string, statement: string]> = [
  ['feature_flags', "insert into public.feature_flags (name) values ('rls_new')"],
  ['feature_flags', "update public.feature_flags set enabled = false where name = 'ai_ga_enabled'"],
  ['feature_flags', "delete from public.feature_flags where name = 'ai_ga_enabled'"],
  ['flag_targets', `insert into public.flag_targets (flag_name, user_id) values ('ai_beta_users', '${OTHER_USER}')`],
  ['flag_targets', "delete from public.flag_targets"],
  ['flag_changes', "insert into public.flag_changes (flag_name, op, actor) values ('x1', 'update', 'me')"],
  ['rollback_events', "insert into public.rollback_events (flag_name, kind, previous_state, new_state, actor, idempotency_key) values ('ai_ga_enabled', 'manual_rollback', '{}', '{}', 'me', 'rls-1')"],
  ['notification_outbox', "insert into public.notification_outbox (channel, dedupe_key) values ('slack', 'rls:slack')"],
  ['notification_outbox', "update public.notification_outbox set status = 'delivered'"],
  ['guardian_leases', "insert into public.guardian_leases (name, holder, expires_at, acquired_at) values ('leader', 'me', now(), now())"],
  ['guardian_rule_state', "insert into public.guardian_rule_state (rule_id, flag_name) values ('r1', 'ai_ga_enabled')"],
  ['guardian_observations', "insert into public.guardian_observations (source, flag_name, stage_started_at, unit, treatment_total, treatment_errors) values ('sentry', 'ai_ga_enabled', now(), 'users', 1, 0)"],
  ['guardian_source_health', "insert into public.guardian_source_health (source) values ('sentry')"],
  ['guardian_exposures', `insert into public.guardian_exposures (flag_name, cohort, user_key, first_seen, last_seen) values ('ai_ga_enabled', true, '${'a'.repeat(64)}', now(), now())`],
  ['guardian_exposures', 'delete from public.guardian_exposures'],
];

const PRIVATE_TABLES = ['flag_targets', 'flag_changes', 'rollback_events', 'notification_outbox', 'guardian_leases', 'guardian_rule_state', 'guardian_observations', 'guardian_source_health', 'guardian_exposures', 'schema_migrations'];

/** Functions only the guardian (service_role) may call. */
const SERVICE_FUNCTIONS = [
  `select public.guardian_record_exposures('[{"flag":"ai_ga_enabled","cohort":true,"user_key":"${'b'.repeat(64)}","error":true}]'::jsonb)`,
  `select * from public.guardian_exposure_counts('[{"flag":"ai_ga_enabled","since":"2020-01-01T00:00:00Z"}]'::jsonb)`,
];

describe.each(BACKENDS)('RLS and grants on $name', ({ create }) => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await create();
  });
  afterAll(async () => {
    await db?.drop();
  });

  const clients = [
    ['anon', null],
    ['authenticated', { sub: OTHER_USER, role: 'authenticated' }],
  ] as const;

  describe.each(clients)('as %s', (role, claims) => {
    test('can read feature_flags', async () => {
      const rows = await asRole(db.sql, role, claims, async (tx) => (await tx.query<{ name: string }>('select name, enabled, rollout_percentage from public.feature_flags')).rows);
      expect(rows).toHaveLength(7);
    });

    test.each(PRIVATE_TABLES)('cannot read %s', async (table) => {
      await expect(asRole(db.sql, role, claims, (tx) => tx.query(`select * from public.${table}`))).rejects.toThrow(/permission denied/);
    });

    test.each(WRITES.map(([t, s]) => [`${t}: ${s.split(' ').slice(0, 3).join(' ')}`, s] as const))('cannot write %s', async (_label, statement) => {
      await expect(asRole(db.sql, role, claims, (tx) => tx.query(statement))).rejects.toThrow(/permission denied/);
    });

    test.each([
      ["select public.evaluate_flags('someone')"],
      ["select public.is_feature_enabled('ai_beta_users', 'someone')"],
      ["select public.flag_bucket('ai_rollout', 'someone')"],
    ])('cannot call the server-side function: %s', async (statement) => {
      await expect(asRole(db.sql, role, claims, (tx) => tx.query(statement))).rejects.toThrow(/permission denied for function/);
    });

    test.each(SERVICE_FUNCTIONS)('cannot call the guardian-only function: %s', async (statement) => {
      await expect(asRole(db.sql, role, claims, (tx) => tx.query(statement))).rejects.toThrow(/permission denied for function/);
    });

    test('cannot change a flag through the audited helper tables either (no sequences, no truncate)', async () => {
      await expect(asRole(db.sql, role, claims, (tx) => tx.query('truncate public.feature_flags cascade'))).rejects.toThrow(/permission denied/);
    });
  });

  test('get_my_flags: a target sees TARGETING_MATCH for their own id', async () => {
    const rows = await asRole(db.sql, 'authenticated', { sub: QA_USER, role: 'authenticated' }, async (tx) =>
      (await tx.query<{ name: string; value: boolean; reason: string }>('select name, value, reason from public.get_my_flags()')).rows,
    );
    expect(rows.find((r) => r.name === 'ai_alpha_users')).toEqual({ name: 'ai_alpha_users', value: true, reason: 'TARGETING_MATCH' });
  });

  test("get_my_flags: another user gets only their own evaluation, never the target's", async () => {
    const rows = await asRole(db.sql, 'authenticated', { sub: OTHER_USER, role: 'authenticated' }, async (tx) =>
      (await tx.query<{ name: string; value: boolean; reason: string }>('select name, value, reason, version, guard_state, rollback_message from public.get_my_flags()')).rows,
    );
    expect(rows).toHaveLength(7);
    expect(JSON.stringify(rows)).not.toContain(QA_USER);
    expect(rows.some((r) => r.reason === 'TARGETING_MATCH')).toBe(false);
    const alpha = rows.find((r) => r.name === 'ai_alpha_users')!;
    expect(alpha.value).toBe(evaluate({ name: 'ai_alpha_users', enabled: true, rolloutPercentage: 10, bucketGroup: 'ai_rollout' }, OTHER_USER).value);
    // The follow-up agent is 0% plus QA targets: off for everyone else.
    expect(rows.find((r) => r.name === 'followup_agent_enabled')).toMatchObject({ name: 'followup_agent_enabled', value: false, reason: 'SPLIT' });
  });

  test('get_my_flags as anon: no user, so only 100% rollouts are on', async () => {
    const rows = await asRole(db.sql, 'anon', null, async (tx) => (await tx.query<{ name: string; value: boolean; reason: string }>('select name, value, reason from public.get_my_flags()')).rows);
    const on = rows.filter((r) => r.value).map((r) => r.name);
    expect(on).toEqual(['ai_ga_enabled']);
    expect(rows.every((r) => r.reason === 'SPLIT' || r.reason === 'DISABLED')).toBe(true);
  });

  test('service_role reads and writes every mutable table', async () => {
    await asRole(db.sql, 'service_role', { role: 'service_role' }, async (tx) => {
      for (const table of PRIVATE_TABLES.filter((t) => t !== 'schema_migrations')) await tx.query(`select count(*) from public.${table}`);
      const ev = await tx.query<{ value: boolean }>("select value from public.evaluate_flags($1) where name = 'ai_alpha_users'", [QA_USER]);
      expect(ev.rows[0]!.value).toBe(true);
      const one = await tx.query<{ on: boolean }>("select public.is_feature_enabled('ai_ga_enabled', 'x') as on");
      expect(one.rows[0]!.on).toBe(true);
      await tx.query("select set_config('app.actor', 'guardian:test', true)");
      for (const [, statement] of WRITES) await tx.query(statement);
      const recorded = await tx.query<{ n: number }>(`${SERVICE_FUNCTIONS[0]!} as n`);
      expect(recorded.rows[0]!.n).toBe(1);
      const counted = await tx.query<{ flag_name: string; cohort: boolean; users: string | number; error_users: string | number }>(SERVICE_FUNCTIONS[1]!);
      expect(counted.rows.map((r) => [r.flag_name, r.cohort, num(r.users), num(r.error_users)])).toEqual([['ai_ga_enabled', true, 1, 1]]);
      const { rows } = await tx.query<{ n: string | number }>("select count(*) as n from public.flag_changes where actor = 'guardian:test'");
      expect(num(rows[0]!.n)).toBeGreaterThan(0);
    });
  });

  test.each([
    ["update public.rollback_events set reason = 'x'", /append-only|permission denied/],
    ['delete from public.rollback_events', /append-only|permission denied/],
    ["update public.flag_changes set actor = 'x'", /append-only|permission denied/],
    ['delete from public.flag_changes', /append-only|permission denied/],
  ])('service_role cannot alter the logs: %s', async (statement, pattern) => {
    await withRollback(db.sql, (tx) =>
      tx.query("insert into public.rollback_events (flag_name, kind, previous_state, new_state, actor, idempotency_key) values ('ai_ga_enabled', 'dry_run', '{}', '{}', 'me', 'rls-log')"),
    );
    await expect(asRole(db.sql, 'service_role', { role: 'service_role' }, (tx) => tx.query(statement))).rejects.toThrow(pattern);
  });

  test('nobody, the superuser included, can alter rollback_events', async () => {
    await db.sql.query("insert into public.rollback_events (flag_name, kind, previous_state, new_state, actor, idempotency_key) values ('ai_ga_enabled', 'dry_run', '{}', '{}', 'me', 'rls-superuser')");
    await expect(db.sql.query("update public.rollback_events set actor = 'forged' where idempotency_key = 'rls-superuser'")).rejects.toThrow(/rollback_events is append-only: UPDATE is refused/);
    await expect(db.sql.query("delete from public.rollback_events where idempotency_key = 'rls-superuser'")).rejects.toThrow(/rollback_events is append-only: DELETE is refused/);
  });

  test('the API roles have no function rights beyond get_my_flags (and auth helpers)', async () => {
    const { rows } = await db.sql.query<{ proname: string; role: string }>(`
      select p.proname, r.rolname as role
      from pg_catalog.pg_proc p
      join pg_catalog.pg_namespace n on n.oid = p.pronamespace
      cross join (select rolname from pg_catalog.pg_roles where rolname in ('anon', 'authenticated')) r
      where n.nspname = 'public' and p.prokind = 'f' and pg_catalog.has_function_privilege(r.rolname, p.oid, 'execute')
        and p.prorettype <> 'pg_catalog.trigger'::pg_catalog.regtype
      order by 1, 2`);
    const callable = [...new Set(rows.map((r) => r.proname))];
    // Other migrations may add client functions later; ours: only get_my_flags.
    for (const server of ['evaluate_flags', 'is_feature_enabled', 'flag_bucket', 'flag_actor', 'guardian_record_exposures', 'guardian_exposure_counts']) expect(callable).not.toContain(server);
    expect(callable).toContain('get_my_flags');
  });
});
