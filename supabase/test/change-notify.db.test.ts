// The change feed (migration 20251203000100): every committed flag change and rollback event is
// announced on the channel guardian_changes with a small public payload, on a real PostgreSQL
// (LISTEN over a pg connection) and on PGlite (its in-process listen). A rolled-back write and
// an update that changes nothing say nothing.
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';

import { applyMigrations } from '../../guardian/src/store/migrations.ts';
import { pgliteSqlClient, type SqlClient } from '../../guardian/src/store/sql.ts';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.ts';

interface Feed {
  readonly sql: SqlClient;
  readonly heard: unknown[];
  close(): Promise<void>;
}

async function postgresFeed(): Promise<Feed> {
  const db: TestDatabase = await createTestDatabase();
  const listener = new pg.Client({ connectionString: db.url });
  await listener.connect();
  const heard: unknown[] = [];
  listener.on('notification', (n) => {
    if (n.channel === 'guardian_changes' && n.payload) heard.push(JSON.parse(n.payload));
  });
  await listener.query('listen guardian_changes');
  return { sql: db.sql, heard, close: async () => { await listener.end(); await db.drop(); } };
}

async function pgliteFeed(): Promise<Feed> {
  const pglite = await PGlite.create();
  const sql = pgliteSqlClient(pglite);
  await applyMigrations(sql, { shim: true, seed: true });
  const heard: unknown[] = [];
  await pglite.listen('guardian_changes', (payload) => heard.push(JSON.parse(payload)));
  return { sql, heard, close: () => pglite.close() };
}

describe.each([
  { name: 'postgres', open: postgresFeed },
  { name: 'pglite', open: pgliteFeed },
])('change feed on $name', ({ open }) => {
  let feed: Feed;
  beforeAll(async () => {
    feed = await open();
  });
  afterAll(async () => {
    await feed?.close();
  });

  test('a flag update is announced with its name and new version, never its targets', async () => {
    feed.heard.length = 0;
    await feed.sql.query("update public.feature_flags set rollout_percentage = 20 where name = 'ai_alpha_users'");
    const { rows } = await feed.sql.query<{ version: string | number }>("select version from public.feature_flags where name = 'ai_alpha_users'");
    await vi.waitFor(() => expect(feed.heard).toContainEqual(expect.objectContaining({ table: 'feature_flags', op: 'UPDATE', name: 'ai_alpha_users', version: Number(rows[0]!.version) })), { timeout: 5000 });
    expect(JSON.stringify(feed.heard)).not.toContain('target');
  });

  test('a target change is announced (it bumps the version); insert and delete too', async () => {
    feed.heard.length = 0;
    await feed.sql.query("insert into public.flag_targets (flag_name, user_id) values ('booking_agent_enabled', 'user-notify-1')");
    await vi.waitFor(() => expect(feed.heard).toContainEqual(expect.objectContaining({ table: 'feature_flags', op: 'UPDATE', name: 'booking_agent_enabled' })), { timeout: 5000 });
    await feed.sql.query("insert into public.feature_flags (name) values ('notify_probe')");
    await feed.sql.query("delete from public.feature_flags where name = 'notify_probe'");
    await vi.waitFor(() => {
      expect(feed.heard).toContainEqual(expect.objectContaining({ table: 'feature_flags', op: 'INSERT', name: 'notify_probe', version: 1 }));
      expect(feed.heard).toContainEqual({ table: 'feature_flags', op: 'DELETE', name: 'notify_probe', version: 1 });
    }, { timeout: 5000 });
  });

  test('a rollback event is announced with its id, flag and kind', async () => {
    const { rows } = await feed.sql.query<{ id: string | number }>(
      `insert into public.rollback_events (flag_name, kind, previous_state, new_state, actor, idempotency_key)
       values ('session_agent_enabled', 'manual_rollback', '{}'::jsonb, '{}'::jsonb, 'test', 'notify-test-1') returning id`,
    );
    await vi.waitFor(() => expect(feed.heard).toContainEqual(expect.objectContaining({ table: 'rollback_events', op: 'INSERT', id: String(rows[0]!.id), flag: 'session_agent_enabled', kind: 'manual_rollback' })), { timeout: 5000 });
  });

  test('a flag change carries its public fields as committed (additive keys of 20251203010400); a huge one leaves the text out', async () => {
    feed.heard.length = 0;
    await feed.sql.query("update public.feature_flags set rollout_percentage = 21, description = 'with fields' where name = 'ai_alpha_users'");
    await vi.waitFor(() => expect(feed.heard).toContainEqual(expect.objectContaining({ name: 'ai_alpha_users', row: expect.objectContaining({ rollout_percentage: 21, description: 'with fields', enabled: expect.any(Boolean) }) })), { timeout: 5000 });
    await feed.sql.query("update public.feature_flags set description = repeat('é', 4000) where name = 'ai_alpha_users'");
    await vi.waitFor(() => expect(feed.heard).toContainEqual(expect.objectContaining({ name: 'ai_alpha_users', partial: true })), { timeout: 5000 });
    expect(JSON.stringify(feed.heard)).not.toContain('target');
  });

  test('a rolled-back write and an update that changes nothing are never announced', async () => {
    const mark = feed.heard.length;
    await feed.sql.query("update public.feature_flags set description = description where name = 'insights_agent_enabled'");
    await feed.sql.transaction(async (tx) => {
      await tx.query("update public.feature_flags set rollout_percentage = 33 where name = 'followup_agent_enabled'");
      throw new Error('abort');
    }).catch(() => undefined);
    // A committed marker after both: notifications arrive in commit order, so once it is heard
    // anything announced before it has been heard too.
    await feed.sql.query("update public.feature_flags set description = 'marker' where name = 'ai_ga_enabled'");
    await vi.waitFor(() => expect(feed.heard.slice(mark)).toContainEqual(expect.objectContaining({ name: 'ai_ga_enabled' })), { timeout: 5000 });
    expect(feed.heard.slice(mark)).toEqual([expect.objectContaining({ name: 'ai_ga_enabled' })]);
  });
});
