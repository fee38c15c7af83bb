/**
 * `guardian events` against a real throwaway PostgreSQL (migrations and seed applied), in-process
 * through the CLI's io: filters (--flag, --kind, --since), --limit, the --json shape, the table,
 * and every bad argument with exit 2.
 */
import { createServer, type AddressInfo } from 'node:net';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.ts';
import { SqlStore } from '../src/store/sql-store.ts';
import { cli, UNREACHABLE_URL } from './cli-helpers.ts';

let db: TestDatabase;
const ids: Record<string, string> = {};
beforeAll(async () => {
  db = await createTestDatabase();
  const store = new SqlStore({ sql: db.sql, kind: 'pg', location: db.url });
  // An old event (3 days ago), written as the guardian would have.
  const old = await db.sql.query<{ id: string }>(
    `insert into rollback_events (flag_name, kind, rule_id, source, action, reason, evidence, previous_state, new_state, actor, idempotency_key, created_at)
     values ('session_agent_enabled', 'auto_rollback', 'agents-error-ceiling', 'sentry', 'disable', 'old incident', '{}',
             '{"enabled": true, "rollout_percentage": 10, "targets": [], "guard_state": "watching"}',
             '{"enabled": false, "rollout_percentage": 10, "targets": [], "guard_state": "rolled_back"}',
             'guardian', 'old-incident', now() - interval '3 days')
     returning id::text as id`,
  );
  ids['old'] = old.rows[0]?.id ?? '';
  const auto = await store.rollback({
    flag: 'booking_agent_enabled',
    action: 'disable',
    ruleId: 'agents-error-ceiling',
    source: 'sentry',
    evidence: { treatment: { total: 900, errors: 90 } },
    actor: 'guardian',
    idempotencyKey: 'agents-error-ceiling:booking_agent_enabled:1',
    channels: [],
    reason: 'error rate 10% above 5%',
  });
  ids['auto'] = auto.id;
  const restore = await store.restore({ target: 'booking_agent_enabled', actor: 'alice', idempotencyKey: 'r1', reason: 'fixed' });
  ids['restore'] = restore.id;
  const dry = await store.rollback({
    flag: 'ai_beta_users',
    action: 'step_back',
    ruleId: 'ai-stage-regression',
    source: 'posthog',
    actor: 'guardian',
    idempotencyKey: 'dry_run:ai-stage-regression:ai_beta_users:1',
    channels: [],
    dryRun: true,
    stages: [10, 50, 100],
    reason: 'flag-on 3 points worse',
  });
  ids['dry'] = dry.id;
  const manual = await cli(['rollback', 'insights_agent_enabled', '--reason', 'summaries wrong', '--actor', 'bob', '--no-notify', '--json', '--database-url', db.url]);
  ids['manual'] = (JSON.parse(manual.stdout) as { event: { id: string } }).event.id;
});
afterAll(async () => {
  await db.drop();
});

const events = (...args: string[]) => cli(['events', ...args, '--database-url', db.url]);

interface EventJson {
  id: string;
  flag: string;
  kind: string;
  ruleId: string | null;
  source: string | null;
  action: string | null;
  reason: string | null;
  evidence: Record<string, unknown>;
  previousState: { enabled: boolean; rolloutPercentage: number; targets: string[]; guardState: string };
  newState: { enabled: boolean; rolloutPercentage: number; targets: string[]; guardState: string };
  actor: string;
  idempotencyKey: string;
  restoresEventId: string | null;
  createdAt: string;
}
const parse = (stdout: string) => (JSON.parse(stdout) as { events: EventJson[] }).events;

describe('guardian events', () => {
  it('prints a table, newest first, with what each event did', async () => {
    const r = await events();
    expect(r).toMatchObject({ code: 0, stderr: '' });
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^id\s+when\s+flag\s+kind\s+rule\s+actor\s+what\s+reason$/);
    expect(lines).toHaveLength(2 + 5);
    const rows = lines.slice(2);
    expect(rows.map((l) => l.split(/\s+/)[0])).toEqual([ids['manual'], ids['dry'], ids['restore'], ids['auto'], ids['old']]);
    const row = (id: string | undefined) => rows.find((l) => l.startsWith(`${id} `)) ?? '';
    expect(row(ids['manual'])).toMatch(/\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ\s+insights_agent_enabled\s+manual_rollback\s+-\s+bob\s+disable on 50% → off 50%\s+summaries wrong$/);
    expect(row(ids['dry'])).toMatch(/ai_beta_users\s+dry_run\s+ai-stage-regression\s+guardian\s+step_back on 50% → on 10% \(not applied\)\s+flag-on 3 points worse$/);
    expect(row(ids['restore'])).toMatch(new RegExp(`booking_agent_enabled\\s+restore\\s+agents-error-ceiling\\s+alice\\s+undo of event ${ids['auto']}: off 25% → on 25%\\s+fixed$`));
    expect(row(ids['auto'])).toMatch(/booking_agent_enabled\s+auto_rollback\s+agents-error-ceiling\s+guardian\s+disable on 25% → off 25%\s+error rate 10% above 5%$/);
  });

  it('--json: { events: [...] } with every field, dates as ISO strings', async () => {
    const r = await events('--json');
    expect(r.code).toBe(0);
    const list = parse(r.stdout);
    expect(list.map((e) => e.id)).toEqual([ids['manual'], ids['dry'], ids['restore'], ids['auto'], ids['old']]);
    const auto = list.find((e) => e.id === ids['auto']);
    expect(auto).toEqual({
      id: ids['auto'],
      flag: 'booking_agent_enabled',
      kind: 'auto_rollback',
      ruleId: 'agents-error-ceiling',
      source: 'sentry',
      action: 'disable',
      reason: 'error rate 10% above 5%',
      evidence: { treatment: { total: 900, errors: 90 } },
      previousState: { enabled: true, rolloutPercentage: 25, targets: ['00000000-0000-4000-8000-00000000a001'], guardState: 'watching', rollbackMessage: null, rollbackUrgent: false },
      newState: { enabled: false, rolloutPercentage: 25, targets: ['00000000-0000-4000-8000-00000000a001'], guardState: 'rolled_back', rollbackMessage: null, rollbackUrgent: false },
      actor: 'guardian',
      idempotencyKey: 'agents-error-ceiling:booking_agent_enabled:1',
      restoresEventId: null,
      createdAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/) as unknown as string,
    });
    expect(list.find((e) => e.id === ids['restore'])).toMatchObject({ kind: 'restore', restoresEventId: ids['auto'], action: null, actor: 'alice' });
  });

  it('--flag, --kind and both together', async () => {
    expect(parse((await events('--flag', 'booking_agent_enabled', '--json')).stdout).map((e) => e.id)).toEqual([ids['restore'], ids['auto']]);
    expect(parse((await events('--kind', 'dry_run', '--json')).stdout).map((e) => e.id)).toEqual([ids['dry']]);
    expect(parse((await events('--kind', 'auto_rollback', '--json')).stdout).map((e) => e.id)).toEqual([ids['auto'], ids['old']]);
    expect(parse((await events('--flag', 'booking_agent_enabled', '--kind', 'restore', '--json')).stdout).map((e) => e.id)).toEqual([ids['restore']]);
    const text = await events('--kind', 'manual_rollback');
    expect(text.code).toBe(0);
    expect(text.stdout.trimEnd().split('\n')).toHaveLength(3);
    expect(text.stdout).toContain('insights_agent_enabled');
  });

  it('--since keeps only newer events', async () => {
    const day = parse((await events('--since', '24h', '--json')).stdout).map((e) => e.id);
    expect(day).toHaveLength(4);
    expect(day).not.toContain(ids['old']);
    expect(parse((await events('--since', '7d', '--json')).stdout).map((e) => e.id)).toContain(ids['old']);
    expect(parse((await events('--since', '2d', '--kind', 'auto_rollback', '--json')).stdout).map((e) => e.id)).toEqual([ids['auto']]);
  });

  it('--limit keeps the newest N', async () => {
    expect(parse((await events('--limit', '2', '--json')).stdout).map((e) => e.id)).toEqual([ids['manual'], ids['dry']]);
    const one = await events('--limit', '1');
    expect(one.stdout.trimEnd().split('\n')).toHaveLength(3);
    expect(parse((await events('--limit', '1000', '--json')).stdout)).toHaveLength(5);
  });

  it('nothing matching: "No events." and an empty JSON list', async () => {
    const r = await events('--flag', 'followup_agent_enabled');
    expect(r).toEqual({ code: 0, stdout: 'No events.\n', stderr: '' });
    expect(JSON.parse((await events('--flag', 'followup_agent_enabled', '--json')).stdout)).toEqual({ events: [] });
    expect((await events('--since', '1ms')).stdout).toBe('No events.\n');
  });

  it.each([
    [['--since', 'abc'], '--since: must be a duration like 30m, 24h or 7d, got "abc"'],
    [['--since', '0s'], '--since: must be a duration like 30m, 24h or 7d, got "0s"'],
    [['--since', '-1h'], '--since: must be a duration like 30m, 24h or 7d, got "-1h"'],
    [['--since', '24'], '--since: must be a duration like 30m, 24h or 7d, got "24"'],
    [['--since'], '--since: needs a value'],
    [['--limit', '0'], '--limit: must be a whole number from 1 to 1000, got "0"'],
    [['--limit', '1001'], '--limit: must be a whole number from 1 to 1000, got "1001"'],
    [['--limit', 'ten'], '--limit: must be a whole number from 1 to 1000, got "ten"'],
    [['--limit', '-5'], '--limit: must be a whole number from 1 to 1000, got "-5"'],
    [['--limit', '2.5'], '--limit: must be a whole number from 1 to 1000, got "2.5"'],
    [['--kind', 'rollback'], '--kind: must be one of auto_rollback, manual_rollback, restore, dry_run, promote, plan_paused, plan_resumed, plan_aborted, got "rollback"'],
    [['--flag', 'no_such_flag'], '--flag: there is no flag named "no_such_flag" (see "guardian flags list" for the names)'],
    [['--flags', 'x'], "Unknown option '--flags'. Run \"guardian events --help\" for the options."],
    [['booking_agent_enabled'], 'unexpected argument "booking_agent_enabled" (guardian events takes no positional arguments)'],
  ])('exit 2 for %j, naming the argument', async (args, message) => {
    const r = await events(...args);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.startsWith(`guardian events: ${message}`)).toBe(true);
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
  });

  it('bad arguments with --json: { error } on stdout, exit 2', async () => {
    const r = await events('--limit', '0', '--json');
    expect(r.code).toBe(2);
    expect(JSON.parse(r.stdout)).toMatchObject({ error: { code: 'BAD_ARGUMENT', message: '--limit: must be a whole number from 1 to 1000, got "0"' } });
  });

  it('an unreachable database: exit 1 fast with a clear message', async () => {
    const started = Date.now();
    const r = await cli(['events'], { DATABASE_URL: UNREACHABLE_URL });
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^guardian events: cannot reach the database: PostgreSQL at postgres:\/\/guardian:\*\*\*@127\.0\.0\.1:1\/nowhere \(from DATABASE_URL\): connect ECONNREFUSED 127\.0\.0\.1:1\. Check the address and that the database is running and accepts connections\.\n$/);
  });

  it('a server that hangs up on connect is "cannot reach the database" too (exit 1)', async () => {
    const server = createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const port = (server.address() as AddressInfo).port;
      const r = await cli(['events', '--database-url', `postgres://guardian@127.0.0.1:${port}/app`]);
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(
        `guardian events: cannot reach the database: PostgreSQL at postgres://guardian@127.0.0.1:${port}/app (from --database-url): Connection terminated unexpectedly. Check the address and that the database is running and accepts connections.\n`,
      );
      const json = await cli(['events', '--json', '--database-url', `postgres://guardian@127.0.0.1:${port}/app`]);
      expect(JSON.parse(json.stdout)).toMatchObject({ error: { code: 'STORE_UNREACHABLE' } });
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
