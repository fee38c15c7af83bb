// The schema's own guarantees, on a real PostgreSQL and on PGlite: constraints with clear
// messages, version and stage bookkeeping, the audit log (every change, whoever made it),
// append-only logs, Realtime publication.
import { readFile } from 'node:fs/promises';

import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import type { TestDatabase } from '../../test/helpers/db.ts';
import { BACKENDS, num, withRollback } from './support.ts';

interface FlagRow {
  name: string;
  version: string | number;
  updated_by: string | null;
  stage_started_at: Date | string;
  updated_at: Date | string;
}

describe.each(BACKENDS)('schema on $name', ({ create }) => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await create();
  });
  afterAll(async () => {
    await db?.drop();
  });

  const flag = async (name: string): Promise<FlagRow> => {
    const { rows } = await db.sql.query<FlagRow>('select name, version, updated_by, stage_started_at, updated_at from public.feature_flags where name = $1', [name]);
    if (!rows[0]) throw new Error(`no flag ${name}`);
    return rows[0];
  };
  const changes = async (name: string): Promise<Array<{ op: string; actor: string; old_row: Record<string, unknown> | null; new_row: Record<string, unknown> | null }>> =>
    (await db.sql.query<{ op: string; actor: string; old_row: Record<string, unknown> | null; new_row: Record<string, unknown> | null }>(
      'select op, actor, old_row, new_row from public.flag_changes where flag_name = $1 order by id',
      [name],
    )).rows;

  test('the seed created the seven core flags with their stages and targets', async () => {
    const { rows } = await db.sql.query<{ name: string; enabled: boolean; rollout_percentage: number; bucket_group: string | null }>(
      'select name, enabled, rollout_percentage, bucket_group from public.feature_flags order by name',
    );
    expect(rows.map((r) => r.name)).toEqual([
      'ai_alpha_users', 'ai_beta_users', 'ai_ga_enabled', 'booking_agent_enabled', 'followup_agent_enabled', 'insights_agent_enabled', 'session_agent_enabled',
    ]);
    const byName = Object.fromEntries(rows.map((r) => [r.name, r]));
    expect(byName['ai_alpha_users']).toMatchObject({ enabled: true, rollout_percentage: 10, bucket_group: 'ai_rollout' });
    expect(byName['ai_beta_users']).toMatchObject({ enabled: true, rollout_percentage: 50, bucket_group: 'ai_rollout' });
    expect(byName['ai_ga_enabled']).toMatchObject({ enabled: true, rollout_percentage: 100, bucket_group: 'ai_rollout' });
    expect(byName['booking_agent_enabled']).toMatchObject({ rollout_percentage: 25 });
    const targets = await db.sql.query<{ n: string | number }>('select count(*) as n from public.flag_targets');
    expect(num(targets.rows[0]!.n)).toBeGreaterThanOrEqual(2);
  });

  test.each([
    ['percentage 101', "insert into public.feature_flags (name, rollout_percentage) values ('too_high', 101)", /feature_flags_rollout_percentage_range/],
    ['percentage -1', "insert into public.feature_flags (name, rollout_percentage) values ('too_low', -1)", /feature_flags_rollout_percentage_range/],
    ['an upper-case name', "insert into public.feature_flags (name) values ('Bad_Name')", /feature_flags_name_format/],
    ['a name with a dash', "insert into public.feature_flags (name) values ('bad-name')", /feature_flags_name_format/],
    ['a one-letter name', "insert into public.feature_flags (name) values ('a')", /feature_flags_name_format/],
    ['a 65-character name', `insert into public.feature_flags (name) values ('${'a'.repeat(65)}')`, /feature_flags_name_format/],
    ['an unknown guard_state', "insert into public.feature_flags (name, guard_state) values ('gs_flag', 'paused')", /feature_flags_guard_state_valid/],
    ['a bad bucket_group', "insert into public.feature_flags (name, bucket_group) values ('bg_flag', 'AI Rollout')", /feature_flags_bucket_group_format/],
    ['a percentage update to 101', "update public.feature_flags set rollout_percentage = 101 where name = 'ai_beta_users'", /feature_flags_rollout_percentage_range/],
    ['a target of an unknown flag', "insert into public.flag_targets (flag_name, user_id) values ('no_such_flag', 'u1')", /flag_targets_flag_name_fkey/],
    ['an unknown rollback kind', "insert into public.rollback_events (flag_name, kind, previous_state, new_state, actor, idempotency_key) values ('x1', 'oops', '{}', '{}', 'me', 'k-kind')", /rollback_events_kind_valid/],
    ['an unknown outbox channel', "insert into public.notification_outbox (channel, dedupe_key) values ('sms', 'd-1')", /notification_outbox_channel_valid/],
    ['an unknown outbox status', "insert into public.notification_outbox (channel, status, dedupe_key) values ('slack', 'lost', 'd-2')", /notification_outbox_status_valid/],
  ])('refuses %s with the constraint named', async (_what, statement, pattern) => {
    await expect(withRollback(db.sql, (tx) => tx.query(statement))).rejects.toThrow(pattern);
  });

  test('a valid flag gets version 1, the actor, and defaults', async () => {
    await db.sql.transaction(async (tx) => {
      await tx.query("select set_config('app.actor', 'cli:alice', true)");
      await tx.query("insert into public.feature_flags (name, description) values ('schema_new', 'new flag')");
    });
    const f = await flag('schema_new');
    expect(num(f.version)).toBe(1);
    expect(f.updated_by).toBe('cli:alice');
    const log = await changes('schema_new');
    expect(log).toHaveLength(1);
    expect(log[0]).toMatchObject({ op: 'insert', actor: 'cli:alice', old_row: null });
    expect(log[0]!.new_row).toMatchObject({ name: 'schema_new', enabled: false, rollout_percentage: 0, guard_state: 'watching' });
  });

  test('every real change bumps version once; a no-op update does not', async () => {
    await db.sql.query("insert into public.feature_flags (name) values ('schema_bump')");
    expect(num((await flag('schema_bump')).version)).toBe(1);
    await db.sql.query("update public.feature_flags set description = 'changed' where name = 'schema_bump'");
    expect(num((await flag('schema_bump')).version)).toBe(2);
    await db.sql.query("update public.feature_flags set description = 'changed' where name = 'schema_bump'");
    expect(num((await flag('schema_bump')).version)).toBe(2);
    // Writing version directly cannot move it backwards or jump: the trigger owns it.
    await db.sql.query("update public.feature_flags set version = 1000, enabled = true where name = 'schema_bump'");
    expect(num((await flag('schema_bump')).version)).toBe(3);
  });

  test('adding and removing targets bumps the flag version and is logged', async () => {
    await db.sql.query("insert into public.feature_flags (name) values ('schema_targets')");
    await db.sql.query("insert into public.flag_targets (flag_name, user_id) values ('schema_targets', 'u1'), ('schema_targets', 'u2')");
    expect(num((await flag('schema_targets')).version)).toBe(2); // one bump per statement
    await db.sql.query("delete from public.flag_targets where flag_name = 'schema_targets' and user_id = 'u1'");
    expect(num((await flag('schema_targets')).version)).toBe(3);
    await db.sql.query("update public.flag_targets set user_id = 'u3' where flag_name = 'schema_targets' and user_id = 'u2'");
    expect(num((await flag('schema_targets')).version)).toBe(4);
    const log = await changes('schema_targets');
    expect(log.map((c) => c.op)).toEqual(['insert', 'target_add', 'target_add', 'target_remove', 'target_remove', 'target_add']);
    expect(log[1]!.new_row).toMatchObject({ flag_name: 'schema_targets', user_id: 'u1' });
    expect(log[3]!.old_row).toMatchObject({ user_id: 'u1' });
  });

  test('stage_started_at moves when enabled or rollout_percentage changes, not otherwise', async () => {
    // Microseconds, as stored; PGlite's clock only moves by whole milliseconds, so each change
    // waits a few of them (two statements can run within one).
    const tick = () => new Promise((r) => setTimeout(r, 3));
    const stageMicros = async (): Promise<bigint> => {
      const { rows } = await db.sql.query<{ us: string }>("select (extract(epoch from stage_started_at) * 1000000)::bigint::text as us from public.feature_flags where name = 'schema_stage'");
      return BigInt(rows[0]!.us);
    };
    await db.sql.query("insert into public.feature_flags (name, enabled, rollout_percentage) values ('schema_stage', true, 10)");
    const t0 = await stageMicros();
    await tick();
    await db.sql.query("update public.feature_flags set description = 'text only', rollback_message = 'sorry' where name = 'schema_stage'");
    expect(await stageMicros()).toBe(t0);
    await tick();
    await db.sql.query("update public.feature_flags set rollout_percentage = 50 where name = 'schema_stage'");
    const t1 = await stageMicros();
    expect(t1).toBeGreaterThan(t0);
    await tick();
    await db.sql.query("update public.feature_flags set enabled = false where name = 'schema_stage'");
    expect(await stageMicros()).toBeGreaterThan(t1);
  });

  test('flag_changes records a raw SQL UPDATE, with the actor from app.actor, the JWT, or the role', async () => {
    await db.sql.query("insert into public.feature_flags (name) values ('schema_audit')");
    await db.sql.query("update public.feature_flags set enabled = true where name = 'schema_audit'"); // raw SQL, no actor
    await db.sql.transaction(async (tx) => {
      await tx.query(`select set_config('request.jwt.claims', '{"sub":"dash-user","role":"service_role"}', true)`);
      await tx.query("update public.feature_flags set rollout_percentage = 20 where name = 'schema_audit'");
    });
    await db.sql.transaction(async (tx) => {
      await tx.query("select set_config('app.actor', 'guardian:replica-1', true)");
      await tx.query("update public.feature_flags set guard_state = 'locked' where name = 'schema_audit'");
    });
    await db.sql.query("delete from public.feature_flags where name = 'schema_audit'");
    const log = await changes('schema_audit');
    expect(log.map((c) => [c.op, c.actor])).toEqual([
      ['insert', 'postgres'],
      ['update', 'postgres'],
      ['update', 'dash-user'],
      ['update', 'guardian:replica-1'],
      ['delete', 'postgres'],
    ]);
    expect(log[1]!.old_row).toMatchObject({ enabled: false });
    expect(log[1]!.new_row).toMatchObject({ enabled: true });
    expect(log[4]!.old_row).toMatchObject({ name: 'schema_audit', guard_state: 'locked' });
    expect(log[4]!.new_row).toBeNull();
  });

  test('flag_changes and rollback_events refuse UPDATE, DELETE and TRUNCATE, even for the owner', async () => {
    await db.sql.query(
      "insert into public.rollback_events (flag_name, kind, previous_state, new_state, actor, idempotency_key) values ('ai_beta_users', 'manual_rollback', '{\"enabled\":true}', '{\"enabled\":false}', 'tester', 'schema-append-1')",
    );
    for (const statement of [
      "update public.rollback_events set reason = 'rewritten'",
      'delete from public.rollback_events',
      'truncate public.rollback_events cascade',
    ]) {
      await expect(withRollback(db.sql, (tx) => tx.query(statement)), statement).rejects.toThrow(/rollback_events is append-only: (UPDATE|DELETE|TRUNCATE) is refused/);
    }
    for (const statement of ["update public.flag_changes set actor = 'someone else'", 'delete from public.flag_changes', 'truncate public.flag_changes']) {
      await expect(withRollback(db.sql, (tx) => tx.query(statement)), statement).rejects.toThrow(/flag_changes is append-only/);
    }
    const { rows } = await db.sql.query<{ n: string | number }>("select count(*) as n from public.rollback_events where idempotency_key = 'schema-append-1'");
    expect(num(rows[0]!.n)).toBe(1);
  });

  test('rollback_events: the idempotency key is unique', async () => {
    const insert = "insert into public.rollback_events (flag_name, kind, previous_state, new_state, actor, idempotency_key) values ('ai_alpha_users', 'dry_run', '{}', '{}', 'tester', 'schema-dup')";
    await db.sql.query(insert);
    await expect(db.sql.query(insert)).rejects.toThrow(/rollback_events_idempotency_key_key/);
  });

  test('notification_outbox: one row per dedupe key, defaults filled', async () => {
    await db.sql.query("insert into public.notification_outbox (channel, dedupe_key) values ('email', 'schema-outbox:email')");
    await expect(db.sql.query("insert into public.notification_outbox (channel, dedupe_key) values ('email', 'schema-outbox:email')")).rejects.toThrow(/notification_outbox_dedupe_key_key/);
    const { rows } = await db.sql.query<{ status: string; attempts: number; topic: string }>("select status, attempts, topic from public.notification_outbox where dedupe_key = 'schema-outbox:email'");
    expect(rows[0]).toEqual({ status: 'pending', attempts: 0, topic: 'rollback_event' });
  });

  test('deleting a flag removes its targets (cascade) and keeps its history', async () => {
    await db.sql.query("insert into public.feature_flags (name) values ('schema_gone')");
    await db.sql.query("insert into public.flag_targets (flag_name, user_id) values ('schema_gone', 'u1')");
    await db.sql.query("delete from public.feature_flags where name = 'schema_gone'");
    const t = await db.sql.query<{ n: string | number }>("select count(*) as n from public.flag_targets where flag_name = 'schema_gone'");
    expect(num(t.rows[0]!.n)).toBe(0);
    expect((await changes('schema_gone')).map((c) => c.op)).toEqual(['insert', 'target_add', 'delete', 'target_remove']);
  });

  test('feature_flags is in the supabase_realtime publication, with full old rows', async () => {
    const { rows } = await db.sql.query<{ tablename: string }>("select tablename from pg_catalog.pg_publication_tables where pubname = 'supabase_realtime'");
    expect(rows.map((r) => r.tablename)).toContain('feature_flags');
    const ident = await db.sql.query<{ relreplident: string }>("select relreplident from pg_catalog.pg_class where oid = 'public.feature_flags'::regclass");
    expect(ident.rows[0]!.relreplident).toBe('f');
  });

  test('rollback_events is in the supabase_realtime publication (the guardian hears it through Realtime on Supabase), and its migration runs again', async () => {
    const published = async (): Promise<string[]> =>
      (await db.sql.query<{ tablename: string }>("select tablename from pg_catalog.pg_publication_tables where pubname = 'supabase_realtime' and schemaname = 'public' order by 1")).rows.map((r) => r.tablename);
    const before = await published();
    expect(before).toEqual(expect.arrayContaining(['feature_flags', 'rollback_events']));
    const again = await readFile(new URL('../migrations/20251203213000_realtime_rollback_events.sql', import.meta.url), 'utf8');
    await db.sql.exec(again);
    expect(await published()).toEqual(before);
  });

  test('guardian_observations has its lookup index', async () => {
    const { rows } = await db.sql.query<{ indexdef: string }>("select indexdef from pg_catalog.pg_indexes where tablename = 'guardian_observations' and indexname = 'guardian_observations_source_flag_stage_at_idx'");
    expect(rows[0]!.indexdef).toMatch(/\(source, flag_name, stage_started_at, at\)/);
  });

  test('RLS is enabled on every table of the public schema', async () => {
    const { rows } = await db.sql.query<{ relname: string; relrowsecurity: boolean }>(
      "select c.relname, c.relrowsecurity from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace where n.nspname = 'public' and c.relkind = 'r' order by 1",
    );
    expect(rows.length).toBeGreaterThanOrEqual(10);
    expect(rows.filter((r) => !r.relrowsecurity).map((r) => r.relname)).toEqual([]);
  });
});
