/**
 * `guardian flags list|set` against a real throwaway PostgreSQL (migrations and seed applied),
 * run in-process through the CLI's io: every mutation with its exact effect on the flag row, its
 * targets and the audit log; lock/unlock; and every bad argument with exit 2.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.ts';
import { auditRows, cli, flagRow, lastAuditId, UNREACHABLE_URL } from './cli-helpers.ts';

const QA = '00000000-0000-4000-8000-00000000a001';

let db: TestDatabase;
let url: string;
beforeAll(async () => {
  db = await createTestDatabase();
  url = db.url;
});
afterAll(async () => {
  await db.drop();
});

const flags = (...args: string[]) => cli(['flags', ...args, '--database-url', url]);

interface FlagJson {
  name: string;
  enabled: boolean;
  rolloutPercentage: number;
  guardState: string;
  version: number;
  targets: string[];
  updatedBy: string | null;
  updatedAt: string;
  stageStartedAt: string;
  rollbackMessage: string | null;
}

describe('guardian flags list', () => {
  it('prints a table of every seeded flag', async () => {
    const r = await flags('list');
    expect(r).toMatchObject({ code: 0, stderr: '' });
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^flag\s+enabled\s+rollout\s+guard\s+version\s+targets\s+stage since\s+updated by$/);
    expect(lines[1]).toMatch(/^-+\s+-+/);
    expect(lines).toHaveLength(2 + 7);
    expect(lines.find((l) => l.startsWith('booking_agent_enabled '))).toMatch(/^booking_agent_enabled\s+yes\s+25%\s+watching\s+\d+\s+1\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ\s+seed$/);
    expect(lines.find((l) => l.startsWith('followup_agent_enabled '))).toMatch(/\byes\s+0%\s+watching\b/);
  });

  it('"guardian flags" alone lists too, and --json gives every field with the targets', async () => {
    const plain = await flags();
    expect(plain.code).toBe(0);
    expect(plain.stdout).toContain('booking_agent_enabled');
    const r = await flags('list', '--json');
    expect(r.code).toBe(0);
    const parsed = JSON.parse(r.stdout) as { flags: FlagJson[] };
    expect(parsed.flags.map((f) => f.name)).toEqual([
      'ai_alpha_users',
      'ai_beta_users',
      'ai_ga_enabled',
      'booking_agent_enabled',
      'followup_agent_enabled',
      'insights_agent_enabled',
      'session_agent_enabled',
    ]);
    const booking = parsed.flags.find((f) => f.name === 'booking_agent_enabled');
    expect(booking).toMatchObject({ enabled: true, rolloutPercentage: 25, guardState: 'watching', targets: [QA], updatedBy: 'seed', rollbackMessage: null });
    expect(Number.isNaN(Date.parse(booking?.stageStartedAt ?? ''))).toBe(false);
    expect(Number.isNaN(Date.parse(booking?.updatedAt ?? ''))).toBe(false);
  });

  it('reads DATABASE_URL from the environment when --database-url is not given', async () => {
    const r = await cli(['flags', 'list', '--json'], { DATABASE_URL: url });
    expect(r.code).toBe(0);
    expect((JSON.parse(r.stdout) as { flags: unknown[] }).flags).toHaveLength(7);
  });

  it('refuses set-only options and a flag name', async () => {
    const r = await flags('list', '--enable');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--enable: only for "guardian flags set <flag>"');
    const named = await flags('list', 'booking_agent_enabled');
    expect(named.code).toBe(2);
    expect(named.stderr).toContain('unexpected argument "booking_agent_enabled"');
  });
});

describe('guardian flags set', () => {
  it('--disable then --enable: the row, the actor and one audit row each', async () => {
    const mark = await lastAuditId(db);
    const off = await flags('set', 'insights_agent_enabled', '--disable', '--actor', 'alice');
    expect(off.code).toBe(0);
    expect(off.stdout).toMatch(/^insights_agent_enabled: disabled, 50%, watching, 0 target\(s\), version \d+\n$/);
    expect(await flagRow(db, 'insights_agent_enabled')).toMatchObject({ enabled: false, rollout_percentage: 50, guard_state: 'watching', updated_by: 'alice' });
    const on = await flags('set', 'insights_agent_enabled', '--enable', '--actor', 'alice');
    expect(on.code).toBe(0);
    expect((await flagRow(db, 'insights_agent_enabled')).enabled).toBe(true);
    const audit = await auditRows(db, 'insights_agent_enabled', mark);
    expect(audit.map((a) => [a.op, a.actor, a.old_row?.['enabled'], a.new_row?.['enabled']])).toEqual([
      ['update', 'alice', true, false],
      ['update', 'alice', false, true],
    ]);
  });

  it('--percentage changes the rollout (and bumps the version); the default actor is cli:$USER', async () => {
    const before = await flagRow(db, 'session_agent_enabled');
    const mark = await lastAuditId(db);
    const r = await flags('set', 'session_agent_enabled', '--percentage', '35', '--json');
    expect(r.code).toBe(0);
    const { flag } = JSON.parse(r.stdout) as { flag: FlagJson };
    expect(flag).toMatchObject({ name: 'session_agent_enabled', rolloutPercentage: 35, enabled: true, updatedBy: 'cli:tester' });
    const after = await flagRow(db, 'session_agent_enabled');
    expect(after).toMatchObject({ rollout_percentage: 35, updated_by: 'cli:tester' });
    expect(after.version).toBe(before.version + 1);
    const audit = await auditRows(db, 'session_agent_enabled', mark);
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({ op: 'update', actor: 'cli:tester' });
    expect([audit[0]?.old_row?.['rollout_percentage'], audit[0]?.new_row?.['rollout_percentage']]).toEqual([10, 35]);
    // The edges of the range are allowed.
    expect((await flags('set', 'session_agent_enabled', '--percentage', '0')).code).toBe(0);
    expect((await flags('set', 'session_agent_enabled', '--percentage', '100')).code).toBe(0);
    expect((await flagRow(db, 'session_agent_enabled')).rollout_percentage).toBe(100);
  });

  it('--add-target and --remove-target (repeatable, in one audited change)', async () => {
    const mark = await lastAuditId(db);
    const r = await flags('set', 'followup_agent_enabled', '--add-target', 'user-1', '--add-target', 'user-2', '--remove-target', QA, '--actor', 'bob');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('followup_agent_enabled: enabled, 0%, watching, 2 target(s)');
    expect((await flagRow(db, 'followup_agent_enabled')).targets).toEqual(['user-1', 'user-2']);
    const audit = await auditRows(db, 'followup_agent_enabled', mark);
    expect(audit.map((a) => [a.op, a.actor, (a.new_row ?? a.old_row)?.['user_id']]).sort()).toEqual([
      ['target_add', 'bob', 'user-1'],
      ['target_add', 'bob', 'user-2'],
      ['target_remove', 'bob', QA],
    ]);
    const back = await flags('set', 'followup_agent_enabled', '--remove-target', 'user-2', '--json');
    expect(back.code).toBe(0);
    expect((JSON.parse(back.stdout) as { flag: FlagJson }).flag.targets).toEqual(['user-1']);
    expect((await flagRow(db, 'followup_agent_enabled')).targets).toEqual(['user-1']);
  });

  it('notes a target that is already there or not there, and changes nothing for it', async () => {
    const before = await flagRow(db, 'followup_agent_enabled');
    const r = await flags('set', 'followup_agent_enabled', '--add-target', 'user-1', '--remove-target', 'nobody-9');
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('note: --add-target user-1: already a target, left as is');
    expect(r.stderr).toContain('note: --remove-target nobody-9: not a target of followup_agent_enabled, nothing removed');
    expect(await flagRow(db, 'followup_agent_enabled')).toMatchObject({ targets: before.targets, version: before.version });
  });

  it('--message and --clear-message set and clear the text shown after a rollback', async () => {
    const r = await flags('set', 'booking_agent_enabled', '--message', 'Booking is paused while we fix it.');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('message "Booking is paused while we fix it."');
    expect((await flagRow(db, 'booking_agent_enabled')).rollback_message).toBe('Booking is paused while we fix it.');
    expect((await flags('set', 'booking_agent_enabled', '--clear-message')).code).toBe(0);
    expect((await flagRow(db, 'booking_agent_enabled')).rollback_message).toBeNull();
  });

  it('several changes at once are one audited update', async () => {
    const mark = await lastAuditId(db);
    const r = await flags('set', 'ai_beta_users', '--percentage', '60', '--message', 'AI paused', '--actor', 'carol');
    expect(r.code).toBe(0);
    expect(await flagRow(db, 'ai_beta_users')).toMatchObject({ rollout_percentage: 60, rollback_message: 'AI paused', updated_by: 'carol' });
    expect((await auditRows(db, 'ai_beta_users', mark)).map((a) => [a.op, a.actor])).toEqual([['update', 'carol']]);
  });

  it('--lock and --unlock; a locked flag is refused by rollback (without --force); unlocking an unlocked flag is refused', async () => {
    const lock = await flags('set', 'ai_ga_enabled', '--lock', '--actor', 'dana');
    expect(lock.code).toBe(0);
    expect(lock.stdout).toContain('ai_ga_enabled: enabled, 100%, locked');
    expect(await flagRow(db, 'ai_ga_enabled')).toMatchObject({ guard_state: 'locked', enabled: true, updated_by: 'dana' });

    const refused = await cli(['rollback', 'ai_ga_enabled', '--reason', 'test', '--no-notify', '--database-url', url]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('guardian rollback: flag "ai_ga_enabled" is locked');
    expect(refused.stderr).toContain('--force');
    expect(refused.stderr).toContain('guardian flags set ai_ga_enabled --unlock');
    expect(await flagRow(db, 'ai_ga_enabled')).toMatchObject({ guard_state: 'locked', enabled: true });
    const events = await db.sql.query<{ n: number }>("select count(*)::int as n from rollback_events where flag_name = 'ai_ga_enabled'");
    expect(events.rows[0]?.n).toBe(0);

    const unlock = await flags('set', 'ai_ga_enabled', '--unlock');
    expect(unlock.code).toBe(0);
    expect((await flagRow(db, 'ai_ga_enabled')).guard_state).toBe('watching');
    const again = await flags('set', 'ai_ga_enabled', '--unlock');
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('flag "ai_ga_enabled" is not locked (it is watching)');
  });

  it('a rolled-back flag is re-enabled only by restore (exit 1, says what to run)', async () => {
    expect((await cli(['rollback', 'ai_alpha_users', '--reason', 'spike', '--no-notify', '--database-url', url])).code).toBe(0);
    const r = await flags('set', 'ai_alpha_users', '--enable');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('restore it (guardian restore ai_alpha_users)');
    expect((await flagRow(db, 'ai_alpha_users')).enabled).toBe(false);
  });

  it('--json errors go to stdout as { error } with the stable code', async () => {
    const r = await flags('set', 'booking_agent_enabled', '--percentage', '101', '--json');
    expect(r.code).toBe(2);
    expect(JSON.parse(r.stdout)).toEqual({
      error: { name: 'GuardianError', code: 'BAD_ARGUMENT', message: '--percentage: must be a whole number from 0 to 100, got "101"' },
    });
  });

  it.each([
    [['set', 'booking_agent_enabled', '--percentage', '101'], '--percentage: must be a whole number from 0 to 100, got "101"'],
    [['set', 'booking_agent_enabled', '--percentage', '-1'], '--percentage: must be a whole number from 0 to 100, got "-1"'],
    [['set', 'booking_agent_enabled', '--percentage=-1'], '--percentage: must be a whole number from 0 to 100, got "-1"'],
    [['set', 'booking_agent_enabled', '--percentage', 'abc'], '--percentage: must be a whole number from 0 to 100, got "abc"'],
    [['set', 'booking_agent_enabled', '--percentage', '12.5'], '--percentage: must be a whole number from 0 to 100, got "12.5"'],
    [['set', 'booking_agent_enabled', '--percentage'], '--percentage: needs a value'],
    [['set', '--enable'], 'missing <flag>: guardian flags set booking_agent_enabled --percentage 50'],
    [['set', 'no_such_flag', '--enable'], '<flag>: there is no flag named "no_such_flag" (see "guardian flags list" for the names)'],
    [['set', 'booking_agent_enabled'], 'nothing to change: give at least one of --enable'],
    [['set', 'booking_agent_enabled', '--enable', '--disable'], '--enable and --disable: choose one'],
    [['set', 'booking_agent_enabled', '--lock', '--unlock'], '--lock and --unlock: choose one'],
    [['set', 'booking_agent_enabled', '--message', 'x', '--clear-message'], '--message and --clear-message: choose one'],
    [['set', 'booking_agent_enabled', '--add-target', ' '], '--add-target: the user id must not be empty'],
    [['set', 'booking_agent_enabled', '--remove-target', ''], '--remove-target: the user id must not be empty'],
    [['set', 'booking_agent_enabled', '--add-target', 'u', '--remove-target', 'u'], '--add-target and --remove-target: both name "u"; choose one'],
    [['set', 'booking_agent_enabled', '--enable', '--bogus'], "Unknown option '--bogus'. Run \"guardian flags --help\" for the options."],
    [['set', 'booking_agent_enabled', '--enable', '--actor', ' '], '--actor: must not be empty'],
    [['remove', 'booking_agent_enabled'], 'unknown subcommand "remove"'],
    [['set', 'booking_agent_enabled', 'extra', '--enable'], 'unexpected argument "extra"'],
  ])('exit 2 for %j, naming the argument, and nothing changes', async (args, message) => {
    const before = await flagRow(db, 'booking_agent_enabled');
    const r = await flags(...args);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(`guardian flags: ${message}`);
    expect(r.stderr.endsWith('\n')).toBe(true);
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(await flagRow(db, 'booking_agent_enabled')).toEqual(before);
  });

  it('an unreachable database: exit 1 at once, naming the database without its password', async () => {
    const started = Date.now();
    const r = await cli(['flags', 'set', 'booking_agent_enabled', '--enable', '--database-url', UNREACHABLE_URL]);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('guardian flags: cannot reach the database: PostgreSQL at postgres://guardian:***@127.0.0.1:1/nowhere (from --database-url)');
    expect(r.stderr).toContain('ECONNREFUSED');
    expect(r.stderr).not.toContain('s3cret-pw');
  });

  it('a --database-url that is not postgres:// is a bad argument', async () => {
    const r = await cli(['flags', 'list', '--database-url', 'mysql://db/app']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--database-url: must be a postgres:// URL');
  });
});
