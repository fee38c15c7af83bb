/**
 * The `guardian` binary as a real child process (`node guardian/bin/guardian.js …` on the
 * project's Node 22) against a real throwaway PostgreSQL: exit codes, what goes to stdout and
 * stderr, the database reached through DATABASE_URL or --database-url, and an unreachable
 * database failing fast.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.ts';
import { cliProcess, eventRows, flagRow, tempFiles, UNREACHABLE_URL } from './cli-helpers.ts';

let db: TestDatabase;
let files: Awaited<ReturnType<typeof tempFiles>>;
beforeAll(async () => {
  db = await createTestDatabase();
  files = await tempFiles({
    'rules.yaml': `notify:
  slack: { webhook_url: "https://hooks.slack.com/services/T000/B000/XXXX" }
sources:
  posthog: { project_id: "", api_key: "" }
rules:
  - { id: agents, flags: [booking_agent_enabled], source: posthog, action: disable, condition: { absolute: {} } }
`,
  });
});
afterAll(async () => {
  await db.drop();
  await files.cleanup();
});

describe('guardian as a child process', () => {
  it('runs on Node 22 or newer', () => {
    expect(Number(process.versions.node.split('.')[0])).toBeGreaterThanOrEqual(22);
  });

  it('flags list through DATABASE_URL: exit 0, the table on stdout, nothing on stderr', async () => {
    const r = await cliProcess(['flags', 'list'], { DATABASE_URL: db.url });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^flag\s+enabled\s+rollout/);
    expect(r.stdout).toMatch(/\nbooking_agent_enabled\s+yes\s+25%\s+watching/);
  });

  it('rollback, rollback again, restore: exit codes, output and the database', async () => {
    const rules = files.path('rules.yaml');
    const first = await cliProcess(['rollback', 'booking_agent_enabled', '--reason', 'spike in 500s', '--rules', rules, '--database-url', db.url]);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/^Rolled back booking_agent_enabled \(event \d+\): now disabled, rolled_back\. Notified: slack\.\nRestore with: guardian restore booking_agent_enabled\n$/);
    expect(await flagRow(db, 'booking_agent_enabled')).toMatchObject({ enabled: false, guard_state: 'rolled_back', updated_by: 'cli:proc-tester' });

    const second = await cliProcess(['rollback', 'booking_agent_enabled', '--reason', 'again', '--rules', rules, '--database-url', db.url]);
    expect(second.code).toBe(0);
    expect(second.stdout).toContain('booking_agent_enabled is already rolled back by event');
    expect(await eventRows(db, 'booking_agent_enabled')).toHaveLength(1);

    const restore = await cliProcess(['restore', 'booking_agent_enabled', '--json'], { DATABASE_URL: db.url });
    expect(restore.code).toBe(0);
    expect(JSON.parse(restore.stdout)).toMatchObject({ event: { flag: 'booking_agent_enabled', kind: 'restore', actor: 'cli:proc-tester' } });
    expect(await flagRow(db, 'booking_agent_enabled')).toMatchObject({ enabled: true, rollout_percentage: 25, guard_state: 'watching' });

    const again = await cliProcess(['restore', 'booking_agent_enabled'], { DATABASE_URL: db.url });
    expect(again.code).toBe(1);
    expect(again.stdout).toBe('');
    expect(again.stderr).toMatch(/^guardian restore: nothing to restore for booking_agent_enabled: its latest rollback \(event \d+\) was already restored/);
  });

  it('events: table and --json', async () => {
    const text = await cliProcess(['events', '--flag', 'booking_agent_enabled', '--database-url', db.url]);
    expect(text.code).toBe(0);
    expect(text.stdout.trimEnd().split('\n')).toHaveLength(4);
    const json = await cliProcess(['events', '--kind', 'restore', '--json', '--database-url', db.url]);
    expect(json.code).toBe(0);
    expect((JSON.parse(json.stdout) as { events: { kind: string }[] }).events.map((e) => e.kind)).toEqual(['restore']);
  });

  it('check --once --dry-run with sources not configured: exit 0, every verdict printed', async () => {
    const r = await cliProcess(['check', '--once', '--dry-run', '--rules', files.path('rules.yaml'), '--database-url', db.url]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/agents\s+booking_agent_enabled\s+posthog\s+-\s+skipped\s+source "posthog" is not configured/);
    expect(r.stdout).toContain('dry run: no flag was changed\n');
  });

  it.each([
    [['flags', 'set', 'booking_agent_enabled', '--percentage', '101'], 'guardian flags: --percentage: must be a whole number from 0 to 100, got "101"\n'],
    [['flags', 'set', 'booking_agent_enabled', '--percentage', '-1'], 'guardian flags: --percentage: must be a whole number from 0 to 100, got "-1"\n'],
    [['rollback', 'no_such_flag', '--reason', 'x', '--no-notify'], 'guardian rollback: <flag>: there is no flag named "no_such_flag" (see "guardian flags list" for the names)\n'],
    [['rollback', 'booking_agent_enabled'], 'guardian rollback: --reason: required, say why (it is stored with the event and shown in alerts)\n'],
    [['events', '--since', 'yesterday'], 'guardian events: --since: must be a duration like 30m, 24h or 7d, got "yesterday"\n'],
    [['events', '--verbose'], 'guardian events: Unknown option \'--verbose\'. Run "guardian events --help" for the options.\n'],
  ])('exit 2 for %j with one clear line on stderr and nothing on stdout', async (args, stderr) => {
    const r = await cliProcess([...args, '--database-url', db.url]);
    expect(r).toMatchObject({ code: 2, stdout: '', stderr });
  });

  it('an unknown or missing command: exit 2; --help: exit 0 with the list of commands', async () => {
    const unknown = await cliProcess(['rollbak']);
    expect(unknown).toMatchObject({ code: 2, stdout: '', stderr: 'guardian: unknown command "rollbak". Run "guardian --help" for the list of commands.\n' });
    const none = await cliProcess([]);
    expect(none.code).toBe(2);
    expect(none.stdout).toBe('');
    expect(none.stderr).toMatch(/^guardian: missing command\.\nUsage: guardian <command>/);
    const help = await cliProcess(['--help']);
    expect(help.code).toBe(0);
    for (const name of ['validate', 'start', 'check', 'rollback', 'restore', 'flags', 'events']) expect(help.stdout).toMatch(new RegExp(`\\n  ${name}\\s`));
    const sub = await cliProcess(['rollback', '--help']);
    expect(sub.code).toBe(0);
    expect(sub.stdout).toContain('Usage: guardian rollback <flag> --reason TEXT');
  });

  it('an unreachable database: exit 1 within seconds, the reason on stderr (or as JSON on stdout with --json)', async () => {
    const r = await cliProcess(['events'], { DATABASE_URL: UNREACHABLE_URL });
    expect(r.ms).toBeLessThan(8_000);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      'guardian events: cannot reach the database: PostgreSQL at postgres://guardian:***@127.0.0.1:1/nowhere (from DATABASE_URL): connect ECONNREFUSED 127.0.0.1:1. Check the address and that the database is running and accepts connections.\n',
    );
    const json = await cliProcess(['flags', 'list', '--json', '--database-url', UNREACHABLE_URL]);
    expect(json.code).toBe(1);
    expect(json.stderr).toBe('');
    expect(JSON.parse(json.stdout)).toMatchObject({ error: { code: 'STORE_UNREACHABLE' } });
    expect(json.stdout).not.toContain('s3cret-pw');
  });
});
