/**
 * Operator paper cuts of the CLI, each as it was met: edits of a rolled-back flag that a restore
 * would silently drop, over-long and control-character text, data that would put raw escape
 * sequences on the terminal, output into a closed pipe (`guardian events | head -1`), and
 * `--json` output that must stay pure JSON. Real PostgreSQL, the CLI in-process and as a process.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.ts';
import { SqlStore } from '../src/store/sql-store.ts';
import { cli, flagRow, REPO_ROOT } from './cli-helpers.ts';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db.drop();
});

const run = (...args: string[]) => cli([...args, '--database-url', db.url]);

describe('editing a rolled-back flag', () => {
  it('says that restore puts back the state from before the rollback, and restore says what it dropped', async () => {
    expect((await run('rollback', 'ai_alpha_users', '--reason', 'alpha errors', '--no-notify')).code).toBe(0);
    const edit = await run('flags', 'set', 'ai_alpha_users', '--percentage', '30');
    expect(edit.code).toBe(0);
    expect(edit.stderr).toBe(
      'guardian flags: note: ai_alpha_users is rolled back: "guardian restore ai_alpha_users" puts back the percentage and targets from before the rollback and drops this edit (it says so when it does). To keep the edit, restore first, then change the flag.\n',
    );
    const json = await run('flags', 'set', 'ai_alpha_users', '--add-target', 'late-user', '--json');
    expect(json.stderr).toBe('');
    expect((JSON.parse(json.stdout) as { notes: string[] }).notes[0]).toContain('is rolled back');

    const restore = await run('restore', 'ai_alpha_users');
    expect(restore.code).toBe(0);
    expect(restore.stderr).toBe('guardian restore: note: edits made while the flag was rolled back were dropped: percentage 30% (now 10%); added target(s) late-user.\n');
    expect(await flagRow(db, 'ai_alpha_users')).toMatchObject({ enabled: true, rollout_percentage: 10 });
  });

  it('a restore with nothing edited in between says nothing more', async () => {
    expect((await run('rollback', 'ai_alpha_users', '--reason', 'again', '--no-notify')).code).toBe(0);
    const restore = await run('restore', 'ai_alpha_users', '--json');
    expect(restore.stderr).toBe('');
    expect(JSON.parse(restore.stdout)).toMatchObject({ dropped: [] });
  });
});

describe('text limits and control characters', () => {
  it.each([
    [['flags', 'set', 'booking_agent_enabled', '--add-target', 'u'.repeat(1500)], '--add-target: user id longer than 1024 characters (got 1500)'],
    [['rollback', 'booking_agent_enabled', '--no-notify', '--reason', 'r'.repeat(1001)], '--reason: reason longer than 1000 characters (got 1001)'],
    [['flags', 'set', 'booking_agent_enabled', '--message', 'm'.repeat(501)], '--message: message longer than 500 characters (got 501)'],
    [['rollback', 'booking_agent_enabled', '--no-notify', '--reason', 'bad\u001b[2Jthing'], '--reason: reason contains the control character U+001B at position 4; use plain text'],
    [['flags', 'set', 'booking_agent_enabled', '--message', 'line\nbreak'], '--message: message contains the control character U+000A at position 5; use plain text'],
    [['flags', 'set', 'booking_agent_enabled', '--percentage', '30', '--actor', 'eve\u009b31m'], '--actor: actor contains the control character U+009B at position 4; use plain text'],
  ])('%j is refused (exit 2) naming the field and the limit', async (args, message) => {
    const r = await run(...args);
    expect(r).toMatchObject({ code: 2, stdout: '', stderr: `guardian ${args[0]}: ${message}\n` });
  });

  it('the store says "1 to 1024 characters" for a too-long target, not the constraint name', async () => {
    const store = new SqlStore({ sql: db.sql, kind: 'pg', location: 'test' });
    await expect(store.setFlag('booking_agent_enabled', { addTargets: ['x'.repeat(1025)] }, 'test')).rejects.toThrow(/a target user id must be 1 to 1024 characters$/);
  });

  it('data written around the CLI never reaches the terminal raw: events and flags escape control characters', async () => {
    await db.sql.query("update feature_flags set enabled = false, updated_by = $1 where name = 'insights_agent_enabled'", ['mallory\u001b]0;pwned\u0007']);
    const events = await run('flags', 'list');
    expect(events.code).toBe(0);
    // eslint-disable-next-line no-control-regex -- the point: no raw control character reaches the terminal
    expect(events.stdout).not.toMatch(/[\u0000-\u0009\u000b-\u001f]/);
    const rb = await run('rollback', 'insights_agent_enabled', '--reason', 'x', '--no-notify');
    expect(rb.stdout).not.toContain('\u001b');
    expect(rb.stdout).toContain('mallory\\u{1b}]0;pwned\\u{7}');
  });
});

describe('output into a closed pipe (guardian events | head -1)', () => {
  it.each([[['--help']], [['events', '--database-url']]])('guardian %j exits 0 quietly, no EPIPE stack trace', async (args) => {
    const full = args.includes('--database-url') ? [...args, db.url] : args;
    const child = spawn(process.execPath, [join(REPO_ROOT, 'guardian/bin/guardian.js'), ...full], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    // The reader goes away before the command writes anything.
    child.stdout.destroy();
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const code = await new Promise<number | null>((r) => child.once('close', (c) => r(c)));
    expect(stderr).toBe('');
    expect(code).toBe(0);
  });
});
