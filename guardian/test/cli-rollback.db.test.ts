/**
 * `guardian rollback` and `guardian restore` against a real throwaway PostgreSQL (migrations and
 * seed applied), in-process through the CLI's io: the exact rows they write (flag, targets,
 * rollback_events, flag_changes, notification_outbox per configured channel), the second
 * rollback, locks, restore by flag and by event id, and every refusal with its exit code.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.ts';
import type { RollbackEvent } from '../src/store/types.ts';
import { auditRows, cli, eventRows, flagRow, lastAuditId, outboxRows, tempFiles, UNREACHABLE_URL } from './cli-helpers.ts';

const QA = '00000000-0000-4000-8000-00000000a001';

let db: TestDatabase;
let files: Awaited<ReturnType<typeof tempFiles>>;
let rulesFile: string;
beforeAll(async () => {
  db = await createTestDatabase();
  files = await tempFiles({
    'rules.yaml': `notify:
  slack: { webhook_url: "https://hooks.slack.com/services/T000/B000/XXXX" }
  email: { to: [oncall@example.com] }
rules:
  - { id: agents, flags: [booking_agent_enabled], source: sentry, action: disable, condition: { absolute: {} } }
`,
    'slack-only.yaml': `notify: { slack: { webhook_url: "\${HOOK}" } }
rules:
  - { id: agents, flags: [booking_agent_enabled], source: sentry, action: disable, condition: { absolute: {} } }
`,
    'broken.yaml': 'rules: [ {',
  });
  rulesFile = files.path('rules.yaml');
});
afterAll(async () => {
  await db.drop();
  await files.cleanup();
});

/** Email can be delivered (recipient in the rules, SMTP_URL and sender in the environment). */
const MAIL_ENV = { SMTP_URL: 'smtp://127.0.0.1:2525', EMAIL_FROM: 'guardian@example.com' };
const run = (...args: string[]) => cli([...args, '--database-url', db.url], MAIL_ENV);
const countEvents = async (flag: string) => (await eventRows(db, flag)).length;

describe('guardian rollback', () => {
  it('disables the flag now: flag row, targets kept, manual_rollback event with the previous state, audit row, one outbox row per channel', async () => {
    const before = await flagRow(db, 'booking_agent_enabled');
    const mark = await lastAuditId(db);
    const r = await run('rollback', 'booking_agent_enabled', '--reason', 'checkout errors after 1.4.2', '--actor', 'alice', '--rules', rulesFile);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const [event] = await eventRows(db, 'booking_agent_enabled');
    expect(r.stdout).toBe(
      `Rolled back booking_agent_enabled (event ${event?.id}): now disabled, rolled_back. Notified: slack, email.\nRestore with: guardian restore booking_agent_enabled\n`,
    );

    expect(await flagRow(db, 'booking_agent_enabled')).toMatchObject({
      enabled: false,
      rollout_percentage: 25,
      guard_state: 'rolled_back',
      updated_by: 'alice',
      version: before.version + 1,
      targets: [QA],
    });
    expect(event).toMatchObject({
      flag_name: 'booking_agent_enabled',
      kind: 'manual_rollback',
      action: 'disable',
      actor: 'alice',
      reason: 'checkout errors after 1.4.2',
      rule_id: null,
      restores_event_id: null,
      idempotency_key: `manual:booking_agent_enabled:${before.version}`,
    });
    expect(event?.previous_state).toEqual({ enabled: true, rollout_percentage: 25, targets: [QA], guard_state: 'watching', rollback_message: null, rollback_urgent: false });
    expect(event?.new_state).toEqual({ enabled: false, rollout_percentage: 25, targets: [QA], guard_state: 'rolled_back', rollback_message: null, rollback_urgent: false });

    const audit = await auditRows(db, 'booking_agent_enabled', mark);
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({ op: 'update', actor: 'alice' });
    expect([audit[0]?.old_row?.['enabled'], audit[0]?.new_row?.['enabled'], audit[0]?.new_row?.['guard_state']]).toEqual([true, false, 'rolled_back']);

    expect(await outboxRows(db, event?.id ?? '')).toEqual([
      { channel: 'email', status: 'pending', dedupe_key: `${event?.id}:email` },
      { channel: 'slack', status: 'pending', dedupe_key: `${event?.id}:slack` },
    ]);
  });

  it('a second rollback changes nothing, records nothing, notifies nobody, and exits 0 naming the first rollback', async () => {
    const before = await flagRow(db, 'booking_agent_enabled');
    const mark = await lastAuditId(db);
    const outboxBefore = await db.sql.query<{ n: number }>('select count(*)::int as n from notification_outbox');
    const [first] = await eventRows(db, 'booking_agent_enabled');
    const r = await run('rollback', 'booking_agent_enabled', '--reason', 'still broken', '--actor', 'bob', '--rules', rulesFile);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      new RegExp(
        `^booking_agent_enabled is already rolled back by event ${first?.id} \\(manual_rollback by alice at \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\dZ: "checkout errors after 1\\.4\\.2"\\)\\. Nothing changed, nothing recorded, nobody notified\\.\nRestore with: guardian restore booking_agent_enabled\n$`,
      ),
    );
    expect(await countEvents('booking_agent_enabled')).toBe(1);
    expect(await flagRow(db, 'booking_agent_enabled')).toEqual(before);
    expect(await auditRows(db, 'booking_agent_enabled', mark)).toEqual([]);
    expect((await db.sql.query<{ n: number }>('select count(*)::int as n from notification_outbox')).rows).toEqual(outboxBefore.rows);

    const json = await run('rollback', 'booking_agent_enabled', '--reason', 'still broken', '--json', '--rules', rulesFile);
    expect(json.code).toBe(0);
    const parsed = JSON.parse(json.stdout) as { changed: boolean; enabled: boolean; guardState: string; event: RollbackEvent; notified: string[] };
    expect(parsed).toMatchObject({ changed: false, enabled: false, guardState: 'rolled_back', notified: [] });
    expect(parsed.event).toMatchObject({ id: first?.id, kind: 'manual_rollback', actor: 'alice' });
  });

  it('a flag disabled by hand is "already disabled, not by a rollback" (exit 0, no event)', async () => {
    expect((await run('flags', 'set', 'insights_agent_enabled', '--disable', '--actor', 'erin')).code).toBe(0);
    const r = await run('rollback', 'insights_agent_enabled', '--reason', 'x', '--no-notify');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^insights_agent_enabled is already disabled \(by erin at [^)]+, not by a rollback\)\. Nothing changed, nothing recorded, nobody notified\.\n$/);
    expect(await countEvents('insights_agent_enabled')).toBe(0);
    expect((await run('flags', 'set', 'insights_agent_enabled', '--enable')).code).toBe(0);
  });

  it('--step-back --stages goes to the previous stage; --no-notify writes no outbox row; --json gives the event', async () => {
    const r = await run('rollback', 'ai_beta_users', '--reason', 'beta regression', '--step-back', '--stages', '10,50,100', '--no-notify', '--json');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as { changed: boolean; event: RollbackEvent; notified: string[]; warnings: string[] };
    expect(out).toMatchObject({ changed: true, notified: [], warnings: [] });
    expect(out.event).toMatchObject({ flag: 'ai_beta_users', kind: 'manual_rollback', action: 'step_back', actor: 'cli:tester', reason: 'beta regression' });
    expect(out.event.previousState).toEqual({ enabled: true, rolloutPercentage: 50, targets: [], guardState: 'watching', rollbackMessage: null, rollbackUrgent: false });
    expect(out.event.newState).toEqual({ enabled: true, rolloutPercentage: 10, targets: [], guardState: 'rolled_back', rollbackMessage: null, rollbackUrgent: false });
    expect(await flagRow(db, 'ai_beta_users')).toMatchObject({ enabled: true, rollout_percentage: 10, guard_state: 'rolled_back' });
    expect(await outboxRows(db, out.event.id)).toEqual([]);
    // No stage below 10%: refused, nothing changed (never a silent disable)...
    const refused = await run('rollback', 'ai_beta_users', '--reason', 'still bad', '--step-back', '--stages', '10,50,100', '--no-notify');
    expect(refused).toMatchObject({ code: 1, stdout: '' });
    expect(refused.stderr).toBe(
      'guardian rollback: --step-back: ai_beta_users has no earlier rollout stage (none of --stages 10,50,100 is below 10%), so stepping back would disable it. Nothing was changed. Roll back without --step-back to disable it, or add --force to let --step-back disable it.\n',
    );
    expect(await flagRow(db, 'ai_beta_users')).toMatchObject({ enabled: true, rollout_percentage: 10 });
    // ... unless --force; the text output of a step back says where the flag is now.
    const text = await run('rollback', 'ai_beta_users', '--reason', 'still bad', '--step-back', '--stages', '10,50,100', '--no-notify', '--force');
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^Rolled back ai_beta_users \(event \d+\): now disabled, rolled_back\. Notified: nobody\.\n/);
  });

  it('takes the channels from RULES_FILE, and warns (but still rolls back) when the rules file is unusable', async () => {
    const viaEnv = await cli(['rollback', 'session_agent_enabled', '--reason', 'errors'], { DATABASE_URL: db.url, RULES_FILE: files.path('slack-only.yaml'), HOOK: 'https://hooks.slack.com/services/T/B/y' });
    expect(viaEnv.code).toBe(0);
    expect(viaEnv.stdout).toContain('Notified: slack.');
    const [event] = await eventRows(db, 'session_agent_enabled');
    expect((await outboxRows(db, event?.id ?? '')).map((o) => o.channel)).toEqual(['slack']);
    expect((await run('restore', 'session_agent_enabled')).code).toBe(0);

    const broken = await run('rollback', 'session_agent_enabled', '--reason', 'errors again', '--rules', files.path('broken.yaml'));
    expect(broken.code).toBe(0);
    expect(broken.stderr).toContain(`guardian rollback: warning: rules file ${files.path('broken.yaml')} is not usable (`);
    expect(broken.stderr).toContain('nobody is notified of this rollback. Pass --rules FILE (or set RULES_FILE), or --no-notify');
    expect(broken.stdout).toContain('Notified: nobody.');
    const last = (await eventRows(db, 'session_agent_enabled')).at(-1);
    expect(last?.reason).toBe('errors again');
    expect(await outboxRows(db, last?.id ?? '')).toEqual([]);
  });

  it('a locked flag is refused without --force; with --force it is rolled back, stays locked, and a restore puts it back locked', async () => {
    expect((await run('flags', 'set', 'ai_ga_enabled', '--lock', '--actor', 'dana')).code).toBe(0);
    const refused = await run('rollback', 'ai_ga_enabled', '--reason', 'GA errors', '--rules', rulesFile);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^guardian rollback: flag "ai_ga_enabled" is locked \(last changed by dana at [^)]+\): nothing was changed\. Pass --force/);
    expect(await countEvents('ai_ga_enabled')).toBe(0);
    expect(await flagRow(db, 'ai_ga_enabled')).toMatchObject({ enabled: true, guard_state: 'locked' });

    const forced = await run('rollback', 'ai_ga_enabled', '--reason', 'GA errors', '--force', '--rules', rulesFile);
    expect(forced.code).toBe(0);
    expect(forced.stdout).toContain('now disabled, locked');
    expect(await flagRow(db, 'ai_ga_enabled')).toMatchObject({ enabled: false, guard_state: 'locked' });
    const restored = await run('restore', 'ai_ga_enabled');
    expect(restored.code).toBe(0);
    expect(await flagRow(db, 'ai_ga_enabled')).toMatchObject({ enabled: true, rollout_percentage: 100, guard_state: 'locked' });
    expect((await run('flags', 'set', 'ai_ga_enabled', '--unlock')).code).toBe(0);
  });

  it.each([
    [['rollback', '--reason', 'x'], 'missing <flag>: guardian rollback booking_agent_enabled --reason "checkout errors"'],
    [['rollback', 'followup_agent_enabled'], '--reason: required, say why'],
    [['rollback', 'followup_agent_enabled', '--reason', '  '], '--reason: required, say why'],
    [['rollback', 'followup_agent_enabled', '--reason'], '--reason: needs a value'],
    [['rollback', 'no_such_flag', '--reason', 'x', '--no-notify'], '<flag>: there is no flag named "no_such_flag" (see "guardian flags list" for the names)'],
    [['rollback', 'followup_agent_enabled', '--reason', 'x', '--stages', '10,50'], '--stages: only with --step-back'],
    [['rollback', 'followup_agent_enabled', '--reason', 'x', '--step-back', '--stages', '10,abc'], '--stages: must be whole percentages 1..100 separated by commas, got "10,abc"'],
    [['rollback', 'followup_agent_enabled', '--reason', 'x', '--step-back', '--stages', '0,50'], '--stages: must be whole percentages 1..100'],
    [['rollback', 'followup_agent_enabled', '--reason', 'x', '--now'], "Unknown option '--now'. Run \"guardian rollback --help\" for the options."],
    [['rollback', 'followup_agent_enabled', 'session_agent_enabled', '--reason', 'x'], 'unexpected argument "session_agent_enabled"'],
    [['rollback', 'followup_agent_enabled', '--reason', 'x', '--no-notify', '--rules', 'r.yaml'], '--rules and --no-notify: choose one'],
  ])('exit 2 for %j, naming the argument; nothing is written', async (args, message) => {
    const before = await flagRow(db, 'followup_agent_enabled');
    const r = await run(...args);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`guardian rollback: ${message}`);
    expect(r.stdout).toBe('');
    expect(await flagRow(db, 'followup_agent_enabled')).toEqual(before);
    expect(await countEvents('followup_agent_enabled')).toBe(0);
  });

  it('an unreachable database: exit 1 fast with a clear message (text and --json)', async () => {
    const started = Date.now();
    const r = await cli(['rollback', 'booking_agent_enabled', '--reason', 'x', '--no-notify', '--database-url', UNREACHABLE_URL]);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^guardian rollback: cannot reach the database: PostgreSQL at postgres:\/\/guardian:\*\*\*@127\.0\.0\.1:1\/nowhere \(from --database-url\): .*ECONNREFUSED.*Check the address/);
    const json = await cli(['rollback', 'booking_agent_enabled', '--reason', 'x', '--no-notify', '--json'], { DATABASE_URL: UNREACHABLE_URL });
    expect(json.code).toBe(1);
    const parsed = JSON.parse(json.stdout) as { error: { code: string; message: string } };
    expect(parsed.error.code).toBe('STORE_UNREACHABLE');
    expect(parsed.error.message).toContain('(from DATABASE_URL)');
    expect(json.stdout).not.toContain('s3cret-pw');
  });
});

describe('guardian restore', () => {
  it('by flag name: puts back exactly the state before the rollback (enabled, percentage, targets), writes a restore event, audit rows and the rollback\'s channels', async () => {
    // booking_agent_enabled was rolled back above (25%, target QA). Change it while it is rolled back.
    expect((await run('flags', 'set', 'booking_agent_enabled', '--percentage', '5', '--add-target', 'late-user', '--remove-target', QA)).code).toBe(0);
    expect(await flagRow(db, 'booking_agent_enabled')).toMatchObject({ enabled: false, rollout_percentage: 5, targets: ['late-user'] });
    const [rollback] = await eventRows(db, 'booking_agent_enabled');
    const mark = await lastAuditId(db);

    const r = await run('restore', 'booking_agent_enabled', '--reason', 'fixed in 1.4.3', '--actor', 'frank');
    // The edits made while rolled back are dropped, and restore says so.
    expect(r.stderr).toBe(`guardian restore: note: edits made while the flag was rolled back were dropped: percentage 5% (now 25%); added target(s) late-user; removed target(s) ${QA}.\n`);
    expect(r.code).toBe(0);
    const restore = (await eventRows(db, 'booking_agent_enabled')).at(-1);
    expect(r.stdout).toBe(`Restored booking_agent_enabled (event ${restore?.id}, undoing rollback ${rollback?.id}): enabled, 25%, 1 target(s), watching.\n`);

    expect(await flagRow(db, 'booking_agent_enabled')).toMatchObject({ enabled: true, rollout_percentage: 25, guard_state: 'watching', updated_by: 'frank', targets: [QA] });
    expect(restore).toMatchObject({ kind: 'restore', action: null, actor: 'frank', reason: 'fixed in 1.4.3', restores_event_id: rollback?.id });
    expect(restore?.previous_state).toEqual({ enabled: false, rollout_percentage: 5, targets: ['late-user'], guard_state: 'rolled_back', rollback_message: null, rollback_urgent: false });
    expect(restore?.new_state).toEqual({ enabled: true, rollout_percentage: 25, targets: [QA], guard_state: 'watching', rollback_message: null, rollback_urgent: false });
    expect((await auditRows(db, 'booking_agent_enabled', mark)).map((a) => [a.op, a.actor]).sort()).toEqual([
      ['target_add', 'frank'],
      ['target_remove', 'frank'],
      ['update', 'frank'],
    ]);
    expect((await outboxRows(db, restore?.id ?? '')).map((o) => o.channel)).toEqual(['email', 'slack']);
  });

  it('by event id, with --json', async () => {
    expect((await run('rollback', 'followup_agent_enabled', '--reason', 'drafts broken', '--no-notify')).code).toBe(0);
    const [rollback] = await eventRows(db, 'followup_agent_enabled');
    expect(await flagRow(db, 'followup_agent_enabled')).toMatchObject({ enabled: false, guard_state: 'rolled_back' });
    const r = await run('restore', rollback?.id ?? '', '--json');
    expect(r.code).toBe(0);
    const { event } = JSON.parse(r.stdout) as { event: RollbackEvent };
    expect(event).toMatchObject({ flag: 'followup_agent_enabled', kind: 'restore', restoresEventId: rollback?.id, actor: 'cli:tester', action: null });
    expect(event.newState).toEqual({ enabled: true, rolloutPercentage: 0, targets: [QA], guardState: 'watching', rollbackMessage: null, rollbackUrgent: false });
    expect(await flagRow(db, 'followup_agent_enabled')).toMatchObject({ enabled: true, rollout_percentage: 0, guard_state: 'watching', targets: [QA] });
    expect(await outboxRows(db, event.id)).toEqual([]);
  });

  it('a lock put on a rolled-back flag survives its restore', async () => {
    // session_agent_enabled was rolled back above ("errors again") and not restored.
    expect(await flagRow(db, 'session_agent_enabled')).toMatchObject({ enabled: false, guard_state: 'rolled_back' });
    expect((await run('flags', 'set', 'session_agent_enabled', '--lock')).code).toBe(0);
    const r = await run('restore', 'session_agent_enabled');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('enabled, 10%, 0 target(s), locked.');
    expect(await flagRow(db, 'session_agent_enabled')).toMatchObject({ enabled: true, rollout_percentage: 10, guard_state: 'locked' });
    expect((await run('flags', 'set', 'session_agent_enabled', '--unlock')).code).toBe(0);
  });

  it('a flag that is not rolled back: never rolled back, or already restored → exit 1 saying why and what state it is in', async () => {
    const never = await run('restore', 'insights_agent_enabled');
    expect(never.code).toBe(1);
    expect(never.stderr).toBe(
      'guardian restore: nothing to restore for insights_agent_enabled: it has never been rolled back. The flag is enabled at 50%, watching; change it with "guardian flags set insights_agent_enabled …".\n',
    );
    const before = await flagRow(db, 'booking_agent_enabled');
    const twice = await run('restore', 'booking_agent_enabled');
    expect(twice.code).toBe(1);
    expect(twice.stderr).toMatch(/^guardian restore: nothing to restore for booking_agent_enabled: its latest rollback \(event \d+\) was already restored by event \d+ \(frank at [^)]+\)\. The flag is enabled at 25%, watching/);
    expect(await flagRow(db, 'booking_agent_enabled')).toEqual(before);
    const [rollback] = await eventRows(db, 'booking_agent_enabled');
    const byId = await run('restore', rollback?.id ?? '');
    expect(byId.code).toBe(1);
    expect(byId.stderr).toContain(`rollback ${rollback?.id} of flag "booking_agent_enabled" was already restored by event`);
  });

  it('an older rollback that is not the latest is refused, naming the one to restore', async () => {
    const first = await run('rollback', 'insights_agent_enabled', '--reason', 'step', '--step-back', '--stages', '10,50,100', '--no-notify', '--json');
    const second = await run('rollback', 'insights_agent_enabled', '--reason', 'off', '--no-notify', '--json');
    const e1 = (JSON.parse(first.stdout) as { event: RollbackEvent }).event;
    const e2 = (JSON.parse(second.stdout) as { event: RollbackEvent }).event;
    expect(e2.previousState).toMatchObject({ enabled: true, rolloutPercentage: 10 });
    const r = await run('restore', e1.id);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`rollback ${e1.id} is not the latest rollback of flag "insights_agent_enabled"; restore ${e2.id} instead`);
    expect((await run('restore', e2.id)).code).toBe(0);
    expect(await flagRow(db, 'insights_agent_enabled')).toMatchObject({ enabled: true, rollout_percentage: 10, guard_state: 'watching' });
  });

  it.each([
    [['restore'], 'missing <flag|event-id>: guardian restore booking_agent_enabled'],
    [['restore', 'no_such_flag'], '<flag|event-id>: there is no flag named "no_such_flag"'],
    [['restore', '987654'], '<flag|event-id>: there is no event with id 987654 (see "guardian events" for the ids)'],
    [['restore', 'booking_agent_enabled', 'ai_ga_enabled'], 'unexpected argument "ai_ga_enabled"'],
    [['restore', 'booking_agent_enabled', '--force'], "Unknown option '--force'"],
  ])('exit 2 for %j, naming the argument', async (args, message) => {
    const r = await run(...args);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`guardian restore: ${message}`);
  });

  it('an event that is not a rollback (a restore) is a bad argument', async () => {
    const restore = (await eventRows(db, 'booking_agent_enabled')).find((e) => e.kind === 'restore');
    const r = await run('restore', restore?.id ?? '');
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      `guardian restore: <flag|event-id>: event ${restore?.id} is a restore (of event ${restore?.restores_event_id}), not a rollback; give a rollback event id or the flag name (guardian restore booking_agent_enabled)\n`,
    );
  });

  it('an unreachable database: exit 1 fast', async () => {
    const started = Date.now();
    const r = await cli(['restore', 'booking_agent_enabled', '--database-url', UNREACHABLE_URL]);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('guardian restore: cannot reach the database');
  });
});
