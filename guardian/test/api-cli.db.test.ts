/**
 * The CLI through the admin API (`--api URL` / GUARDIAN_API_URL with GUARDIAN_ADMIN_TOKEN):
 * flags list/set/create/delete, rollback, restore and events (with the new filters) give the
 * same output, --json and exit codes as on the database, and the database shows the changes
 * audited as `admin-token`. Also `flags create|delete` and the event filters on the database.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ADMIN_TOKEN, startApi, type ApiHarness } from './api-helpers.ts';
import { cli } from './cli-helpers.ts';

describe('CLI through the admin API', () => {
  let api: ApiHarness;
  let env: Record<string, string>;
  beforeAll(async () => {
    api = await startApi('pg');
    env = { GUARDIAN_API_URL: api.base.replace('/api/v1', ''), GUARDIAN_ADMIN_TOKEN: ADMIN_TOKEN };
  });
  afterAll(() => api?.close());

  it('creates, changes, rolls back, restores, lists events and deletes a flag, audited as admin-token', async () => {
    const created = await cli(['flags', 'create', 'cli_api_flag', '--description', 'via the API', '--json'], env);
    expect(created.code).toBe(0);
    expect(JSON.parse(created.stdout)).toMatchObject({ flag: { name: 'cli_api_flag', enabled: false, version: 1 } });
    expect((await cli(['flags', 'create', 'cli_api_flag'], env)).code).toBe(1);
    expect((await cli(['flags', 'create', 'Bad'], env)).code).toBe(2);

    const set = await cli(['flags', 'set', 'cli_api_flag', '--enable', '--percentage', '30', '--add-target', 'u-1'], env);
    expect(set.code).toBe(0);
    expect(set.stdout).toMatch(/^cli_api_flag: enabled, 30%, watching, 1 target\(s\), version \d+/);
    const { rows } = await api.sql.query<{ actor: string; op: string }>(`select actor, op from flag_changes where flag_name = 'cli_api_flag' order by id`);
    expect(rows.map((r) => r.actor)).toEqual(['admin-token', 'admin-token', 'admin-token']);

    const list = await cli(['flags', 'list', '--json'], env);
    expect((JSON.parse(list.stdout) as { flags: { name: string; targets: string[] }[] }).flags.find((f) => f.name === 'cli_api_flag')?.targets).toEqual(['u-1']);

    const rb = await cli(['rollback', 'cli_api_flag', '--reason', 'errors', '--no-notify', '--json'], env);
    expect(rb.code).toBe(0);
    const event = (JSON.parse(rb.stdout) as { event: { id: string; kind: string } }).event;
    expect(event.kind).toBe('manual_rollback');
    expect((await api.store.getFlag('cli_api_flag'))?.guardState).toBe('rolled_back');
    expect((await cli(['flags', 'set', 'cli_api_flag', '--enable'], env)).code).toBe(1);

    const restored = await cli(['restore', 'cli_api_flag'], env);
    expect(restored.code).toBe(0);
    expect(restored.stdout).toMatch(/^Restored cli_api_flag/);

    const events = await cli(['events', '--flag', 'cli_api_flag', '--actor', 'admin-token', '--kind', 'restore', '--json'], env);
    expect((JSON.parse(events.stdout) as { events: { kind: string }[] }).events.map((e) => e.kind)).toEqual(['restore']);
    const older = await cli(['events', '--flag', 'cli_api_flag', '--before', event.id, '--json'], env);
    expect((JSON.parse(older.stdout) as { events: unknown[] }).events).toEqual([]);

    expect((await cli(['flags', 'delete', 'cli_api_flag'], env)).code).toBe(1);
    await cli(['flags', 'set', 'cli_api_flag', '--disable'], env);
    const del = await cli(['flags', 'delete', 'cli_api_flag'], env);
    expect(del.code).toBe(0);
    expect(await api.store.getFlag('cli_api_flag')).toBeUndefined();
  });

  it('says what is missing without a token, and when the API is unreachable', async () => {
    const noToken = await cli(['flags', 'list', '--api', api.base], {});
    expect(noToken.code).toBe(2);
    expect(noToken.stderr).toMatch(/GUARDIAN_ADMIN_TOKEN/);
    const badToken = await cli(['flags', 'list', '--api', api.base], { GUARDIAN_ADMIN_TOKEN: 'wrong-token-0123456789' });
    expect(badToken.code).toBe(1);
    expect(badToken.stderr).toMatch(/refused the token/);
    const down = await cli(['flags', 'list', '--api', 'http://127.0.0.1:1'], { GUARDIAN_ADMIN_TOKEN: ADMIN_TOKEN });
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(/unreachable/);
  });
});
