/**
 * The admin API over real HTTP on real PostgreSQL and on PGlite: every endpoint as each role,
 * the database checked after each write (row, version, flag_changes row and its actor), stale
 * versions (412, nothing changed), bad bodies and oversized or control-character target lists
 * (400 naming the field, nothing half-written), rollback/restore with their events and outbox
 * rows, events and audit with filters, cursors and CSV, usage and status.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { caller, startApi, supabaseToken, type ApiHarness } from './api-helpers.ts';

describe.each(['pg', 'pglite'] as const)('admin API on %s', (backend) => {
  let api: ApiHarness;
  const call = caller(() => api.base);
  const tokens: Record<'viewer' | 'editor' | 'admin', string> = { viewer: '', editor: '', admin: '' };

  beforeAll(async () => {
    api = await startApi(backend);
    tokens.viewer = await supabaseToken({ role: 'viewer', email: 'vera@example.com' });
    tokens.editor = await supabaseToken({ role: 'editor', email: 'eddie@example.com' });
    tokens.admin = await supabaseToken({ role: 'admin', email: 'ada@example.com' });
  });
  afterAll(() => api?.close());

  const row = async (name: string) => (await api.sql.query<{ version: string; enabled: boolean; rollout_percentage: number; description: string; guard_state: string }>('select * from feature_flags where name = $1', [name])).rows[0];
  const lastChange = async (name: string) =>
    (await api.sql.query<{ op: string; actor: string; new_row: Record<string, unknown> | null }>('select * from flag_changes where flag_name = $1 order by id desc limit 1', [name])).rows[0];
  const changeCount = async () => Number((await api.sql.query<{ n: string }>('select count(*) as n from flag_changes')).rows[0]!.n);

  it('GET /me names the caller for each way in', async () => {
    expect((await call('GET', '/me')).body).toEqual({ actor: 'admin-token', role: 'admin', via: 'admin_token' });
    expect((await call('GET', '/me', { token: tokens.editor })).body).toEqual({ actor: 'eddie@example.com', role: 'editor', via: 'supabase' });
  });

  it('creates a flag as admin (row, version 1, audit actor), refuses it to an editor and a taken name', async () => {
    const denied = await call('POST', '/flags', { token: tokens.editor, body: { name: 'api_new_flag' } });
    expect(denied.status).toBe(403);
    expect(denied.body.error?.code).toBe('forbidden');
    expect(denied.body.error?.message).toMatch(/admin role/);
    expect(await row('api_new_flag')).toBeUndefined();

    const made = await call('POST', '/flags', { token: tokens.admin, body: { name: 'api_new_flag', description: 'From the API', bucketGroup: null } });
    expect(made.status).toBe(201);
    expect(made.headers.get('etag')).toBe('"1"');
    expect(made.body['flag']).toMatchObject({ name: 'api_new_flag', enabled: false, rolloutPercentage: 0, version: 1, updatedBy: 'ada@example.com', targetCount: 0 });
    expect(await row('api_new_flag')).toMatchObject({ enabled: false, rollout_percentage: 0, description: 'From the API' });
    expect(await lastChange('api_new_flag')).toMatchObject({ op: 'insert', actor: 'ada@example.com' });

    const again = await call('POST', '/flags', { token: tokens.admin, body: { name: 'api_new_flag' } });
    expect(again.status).toBe(409);
    expect(again.body.error?.code).toBe('conflict');
    const bad = await call('POST', '/flags', { body: { name: 'Bad Name', extra: 1 } });
    expect(bad.status).toBe(400);
    expect(bad.body.error?.field).toBe('body.name');
    expect(bad.text).toContain('extra');
  });

  it('PATCH changes a flag in one audited write as an editor, and needs If-Match', async () => {
    const viewer = await call('PATCH', '/flags/api_new_flag', { token: tokens.viewer, body: { enabled: true }, ifMatch: 1 });
    expect(viewer.status).toBe(403);
    const noIfMatch = await call('PATCH', '/flags/api_new_flag', { token: tokens.editor, body: { enabled: true } });
    expect(noIfMatch.status).toBe(428);
    expect(noIfMatch.body.error).toMatchObject({ code: 'precondition_required', field: 'header.If-Match' });
    const before = await changeCount();
    const ok = await call('PATCH', '/flags/api_new_flag', { token: tokens.editor, body: { enabled: true, rolloutPercentage: 25 }, ifMatch: '"1"' });
    expect(ok.status).toBe(200);
    const flag = ok.body['flag'] as { version: number; enabled: boolean; rolloutPercentage: number };
    expect(flag).toMatchObject({ enabled: true, rolloutPercentage: 25 });
    expect(ok.headers.get('etag')).toBe(`"${flag.version}"`);
    const r = await row('api_new_flag');
    expect(r).toMatchObject({ enabled: true, rollout_percentage: 25 });
    expect(Number(r!.version)).toBe(flag.version);
    expect(await changeCount()).toBe(before + 1);
    expect(await lastChange('api_new_flag')).toMatchObject({ op: 'update', actor: 'eddie@example.com' });

    const desc = await call('PATCH', '/flags/api_new_flag', { token: tokens.editor, body: { description: 'Now described', locked: true, rollbackMessage: 'Sorry' }, ifMatch: flag.version });
    expect(desc.status).toBe(200);
    expect(desc.body['flag']).toMatchObject({ description: 'Now described', guardState: 'locked', rollbackMessage: 'Sorry' });
    expect(await row('api_new_flag')).toMatchObject({ description: 'Now described', guard_state: 'locked' });
  });

  it('a stale If-Match gets 412 with the current flag and changes nothing', async () => {
    const current = (await call('GET', '/flags/api_new_flag')).body['flag'] as { version: number };
    const before = await row('api_new_flag');
    const changes = await changeCount();
    const stale = await call('PATCH', '/flags/api_new_flag', { token: tokens.editor, body: { rolloutPercentage: 90 }, ifMatch: current.version - 1 });
    expect(stale.status).toBe(412);
    expect(stale.body.error?.code).toBe('version_conflict');
    expect(stale.body['current']).toMatchObject({ name: 'api_new_flag', version: current.version, rolloutPercentage: 25 });
    expect(await row('api_new_flag')).toEqual(before);
    expect(await changeCount()).toBe(changes);
    const staleTargets = await call('POST', '/flags/api_new_flag/targets', { body: { add: ['u-1'] }, ifMatch: current.version - 1 });
    expect(staleTargets.status).toBe(412);
    expect(await changeCount()).toBe(changes);
  });

  it('bad bodies and unknown flags get 400/404 naming the field', async () => {
    const v = ((await call('GET', '/flags/api_new_flag')).body['flag'] as { version: number }).version;
    const cases: [unknown, string][] = [
      [{ rolloutPercentage: 101 }, 'body.rolloutPercentage'],
      [{ rolloutPercentage: 2.5 }, 'body.rolloutPercentage'],
      [{ enabled: 'yes' }, 'body.enabled'],
      [{ description: 'a\u0000b' }, 'body.description'],
      [{}, 'body'],
    ];
    for (const [body, field] of cases) {
      const res = await call('PATCH', '/flags/api_new_flag', { body, ifMatch: v });
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error?.field ?? 'body').toBe(field);
    }
    const notJson = await call('PATCH', '/flags/api_new_flag', { body: '{nope', ifMatch: v });
    expect(notJson.body.error).toMatchObject({ code: 'bad_request', field: 'body' });
    expect((await call('GET', '/flags/no_such_flag')).status).toBe(404);
    const unknown = await call('PATCH', '/flags/no_such_flag', { body: { enabled: false }, ifMatch: 1 });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error?.code).toBe('not_found');
    expect((await call('PATCH', '/flags/api_new_flag', { body: { enabled: false }, ifMatch: 'abc' })).body.error?.field).toBe('header.If-Match');
    expect(Number((await row('api_new_flag'))!.version)).toBe(v);
  });

  it('adds 10,000 pasted ids in one request, lists them paged and searchable, and refuses bad batches whole', async () => {
    let v = ((await call('GET', '/flags/api_new_flag')).body['flag'] as { version: number }).version;
    const ids = Array.from({ length: 10_000 }, (_, i) => `user-${String(i).padStart(5, '0')}`);
    const added = await call('POST', '/flags/api_new_flag/targets', { token: tokens.editor, body: { add: ids }, ifMatch: v });
    expect(added.status).toBe(200);
    expect(added.body).toMatchObject({ added: 10_000, removed: 0 });
    expect(Number((await api.sql.query<{ n: string }>('select count(*) as n from flag_targets where flag_name = $1', ['api_new_flag'])).rows[0]!.n)).toBe(10_000);
    expect(await lastChange('api_new_flag')).toMatchObject({ op: 'target_add', actor: 'eddie@example.com' });
    v = (added.body['flag'] as { version: number }).version;

    const page1 = await call('GET', '/flags/api_new_flag/targets?limit=3&search=user-0999');
    expect(page1.body).toEqual({ targets: ['user-09990', 'user-09991', 'user-09992'], total: 10, nextCursor: 'user-09992' });
    const page2 = await call('GET', `/flags/api_new_flag/targets?limit=100&search=user-0999&cursor=user-09992`);
    expect(page2.body).toMatchObject({ total: 10, nextCursor: null });
    expect((page2.body['targets'] as string[]).length).toBe(7);

    const before = await changeCount();
    const tooMany = await call('POST', '/flags/api_new_flag/targets', { body: { add: [...ids, 'one-more'] }, ifMatch: v });
    expect(tooMany.status).toBe(400);
    expect(tooMany.body.error?.field).toBe('body.add');
    const control = await call('POST', '/flags/api_new_flag/targets', { body: { add: ['fine', 'bad\nid'], remove: ['user-00001'] }, ifMatch: v });
    expect(control.status).toBe(400);
    expect(control.body.error?.field).toBe('body.add[1]');
    // Messages users see and reasons follow the CLI's rule (one line, 500 / 1000 characters).
    const message = await call('PATCH', '/flags/api_new_flag', { body: { rollbackMessage: 'Back soon.\nSorry!' }, ifMatch: v });
    expect(message.status).toBe(400);
    expect(message.body.error?.field).toBe('body.rollbackMessage');
    expect(JSON.stringify(message.body)).toContain('control character U+000A at position 11');
    const long = await call('PATCH', '/flags/api_new_flag', { body: { rollbackMessage: 'x'.repeat(501) }, ifMatch: v });
    expect(long.status).toBe(400);
    expect(JSON.stringify(long.body)).toContain('message longer than 500 characters (got 501)');
    const reason = await call('POST', '/flags/api_new_flag/rollback', { body: { reason: 'r'.repeat(1001) } });
    expect(reason.status).toBe(400);
    expect(reason.body.error?.field).toBe('body.reason');
    expect(await changeCount()).toBe(before);
    expect(Number((await row('api_new_flag'))!.version)).toBe(v);

    const removed = await call('POST', '/flags/api_new_flag/targets', { body: { remove: ['user-00001', 'user-00002', 'not-there'], add: ['new-one'] }, ifMatch: v });
    expect(removed.body).toMatchObject({ added: 1, removed: 2 });
    expect((removed.body['flag'] as { targetCount: number }).targetCount).toBe(9_999);
  });

  it('rolls back and restores with the same events and outbox rows as the CLI', async () => {
    const f = (await call('GET', '/flags/api_new_flag')).body['flag'] as { version: number };
    const unlocked = await call('PATCH', '/flags/api_new_flag', { body: { locked: false }, ifMatch: f.version });
    expect(unlocked.status).toBe(200);
    const locked409 = await call('POST', '/flags/api_new_flag/rollback', { token: tokens.viewer, body: { reason: 'x' } });
    expect(locked409.status).toBe(403);
    const missing = await call('POST', '/flags/api_new_flag/rollback', { token: tokens.editor, body: {} });
    expect(missing.body.error?.field).toBe('body.reason');

    const rb = await call('POST', '/flags/api_new_flag/rollback', { token: tokens.editor, body: { reason: 'checkout errors' } });
    expect(rb.status).toBe(200);
    expect(rb.body['alreadyRolledBack']).toBe(false);
    const event = rb.body['event'] as { id: string; kind: string; actor: string; notifications: { channel: string; status: string }[] };
    expect(event).toMatchObject({ kind: 'manual_rollback', actor: 'eddie@example.com' });
    expect(event.notifications).toEqual([expect.objectContaining({ channel: 'slack', status: 'pending' })]);
    expect(rb.body['flag']).toMatchObject({ enabled: false, guardState: 'rolled_back', lastRollback: expect.objectContaining({ id: event.id }) });
    expect(await row('api_new_flag')).toMatchObject({ enabled: false, guard_state: 'rolled_back' });
    const outbox = await api.sql.query<{ channel: string }>('select channel from notification_outbox where event_id = $1', [event.id]);
    expect(outbox.rows).toEqual([{ channel: 'slack' }]);
    expect(await lastChange('api_new_flag')).toMatchObject({ actor: 'eddie@example.com' });

    const twice = await call('POST', '/flags/api_new_flag/rollback', { token: tokens.editor, body: { reason: 'me too' } });
    expect(twice.body).toMatchObject({ alreadyRolledBack: true, event: expect.objectContaining({ id: event.id }) });

    const v = (rb.body['flag'] as { version: number }).version;
    const enable = await call('PATCH', '/flags/api_new_flag', { body: { enabled: true }, ifMatch: v });
    expect(enable.status).toBe(409);
    expect(enable.body.error?.message).toMatch(/restore/);

    const restored = await call('POST', '/flags/api_new_flag/restore', { token: tokens.editor, body: { reason: 'fixed' } });
    expect(restored.status).toBe(200);
    expect(restored.body['event']).toMatchObject({ kind: 'restore', restoresEventId: event.id, actor: 'eddie@example.com' });
    expect(restored.body['flag']).toMatchObject({ enabled: true, rolloutPercentage: 25, guardState: 'watching', targetCount: 9_999 });
    const again = await call('POST', '/flags/api_new_flag/restore', { body: {} });
    expect(again.status).toBe(409);
  });

  it('lists events with filters, cursor paging and CSV', async () => {
    const all = await call('GET', '/events?flag=api_new_flag');
    const events = all.body['events'] as { id: string; kind: string }[];
    expect(events.map((e) => e.kind)).toEqual(['restore', 'manual_rollback']);
    const p1 = await call('GET', '/events?flag=api_new_flag&limit=1');
    expect((p1.body['events'] as unknown[]).length).toBe(1);
    expect(p1.body['nextCursor']).toBe(events[0]!.id);
    const p2 = await call('GET', `/events?flag=api_new_flag&limit=1&cursor=${String(p1.body['nextCursor'])}`);
    expect((p2.body['events'] as { id: string }[])[0]!.id).toBe(events[1]!.id);
    expect(p2.body['nextCursor']).toBeNull();
    expect(((await call('GET', '/events?kind=restore&actor=eddie@example.com')).body['events'] as unknown[]).length).toBe(1);
    expect(((await call('GET', '/events?actor=nobody')).body['events'] as unknown[]).length).toBe(0);
    expect(((await call('GET', `/events?flag=api_new_flag&until=${new Date(Date.now() - 3_600_000).toISOString()}`)).body['events'] as unknown[]).length).toBe(0);
    const csv = await call('GET', '/events?flag=api_new_flag', { headers: { accept: 'text/csv' } });
    expect(csv.headers.get('content-type')).toMatch(/text\/csv/);
    const lines = csv.text.trim().split('\r\n');
    expect(lines[0]).toBe('id,createdAt,flag,kind,ruleId,source,action,actor,reason,restoresEventId,previousState,newState,evidence');
    expect(lines).toHaveLength(3);
    expect((await call('GET', '/events?since=yesterday')).body.error?.field).toBe('query.since');
  });

  it('audits every change per flag and overall, with filters, paging and CSV', async () => {
    const byAda = (await call('GET', '/flags/api_new_flag/audit?actor=ada@example.com')).body['changes'] as { op: string; actor: string; fields: string[] }[];
    expect(byAda).toEqual([expect.objectContaining({ op: 'INSERT', actor: 'ada@example.com', fields: expect.arrayContaining(['name', 'enabled']) })]);
    const recent = (await call('GET', '/flags/api_new_flag/audit?limit=20')).body['changes'] as { op: string; actor: string; fields: string[]; old: Record<string, unknown>; new: Record<string, unknown> }[];
    const restore = recent.find((c) => c.op === 'UPDATE' && c.fields.includes('enabled'));
    expect(restore).toMatchObject({ actor: 'eddie@example.com', old: expect.objectContaining({ enabled: false }), new: expect.objectContaining({ enabled: true }) });
    const byActor = await call('GET', '/audit?actor=ada@example.com');
    expect((byActor.body['changes'] as { actor: string }[]).every((c) => c.actor === 'ada@example.com')).toBe(true);
    const p1 = await call('GET', '/audit?flag=api_new_flag&limit=2');
    expect(p1.body['nextCursor']).toEqual(expect.any(String));
    const p2 = await call('GET', `/audit?flag=api_new_flag&limit=2&cursor=${String(p1.body['nextCursor'])}`);
    expect(Number((p2.body['changes'] as { id: string }[])[0]!.id)).toBeLessThan(Number(p1.body['nextCursor']));
    const csv = await call('GET', '/flags/api_new_flag/audit?format=csv&limit=3');
    expect(csv.text.split('\r\n')[0]).toBe('id,at,flag,op,actor,fields,old,new');
  });

  it('answers usage per bucket with exposures, judged counts and the rollout changes', async () => {
    const now = Date.now();
    const key = (i: number) => i.toString(16).padStart(64, '0');
    await api.store.recordExposures([
      { flag: 'api_new_flag', cohort: true, userKey: key(1), at: new Date(now - 60_000), error: true },
      { flag: 'api_new_flag', cohort: true, userKey: key(2), at: new Date(now - 60_000), error: false },
      { flag: 'api_new_flag', cohort: false, userKey: key(3), at: new Date(now - 60_000), error: false },
    ]);
    api.status = { ...api.status, rules: [{ id: 'api-rule', source: 'builtin', flags: ['api_new_flag'], condition: { kind: 'absolute', error_rate_above: 0.05, confidence: 0.98 } as never }] };
    await api.store.appendObservations([{ source: 'builtin', flag: 'api_new_flag', stageStartedAt: new Date(now - 120_000), at: new Date(now - 30_000), unit: 'users', treatment: { total: 2, errors: 1 }, control: { total: 1, errors: 0 } }]);
    const u = await call('GET', '/flags/api_new_flag/usage?bucket=minute');
    expect(u.status).toBe(200);
    const series = u.body['series'] as { on: { users: number; errorUsers: number }; off: { users: number } }[];
    expect(series.length).toBeGreaterThanOrEqual(60);
    expect(series.reduce((n, b) => n + b.on.errorUsers, 0)).toBe(1);
    expect(Math.max(...series.map((b) => b.on.users))).toBe(2);
    expect(Math.max(...series.map((b) => b.off.users))).toBe(1);
    expect(u.body['judged']).toEqual([expect.objectContaining({ ruleId: 'api-rule', source: 'builtin', treatment: { errors: 1, total: 2, unit: 'users' } })]);
    expect(u.body['thresholds']).toEqual([{ ruleId: 'api-rule', source: 'builtin', kind: 'absolute', value: 0.05 }]);
    const kinds = (u.body['changes'] as { kind: string }[]).map((c) => c.kind);
    expect(kinds).toEqual(expect.arrayContaining(['change', 'manual_rollback', 'restore']));
    expect((await call('GET', '/flags/api_new_flag/usage?bucket=minute&since=2020-01-01T00:00:00Z')).status).toBe(400);
    expect((await call('GET', '/flags/nope_flag/usage')).status).toBe(404);
    api.status = { ...api.status, rules: [] };
  });

  it('answers guardian status from the daemon snapshot and the store', async () => {
    await api.sql.query(`insert into guardian_source_health (source, last_ok_at, blind_since, last_error) values ('builtin', now() - interval '1 hour', now() - interval '10 minutes', 'no exposures')`);
    await api.store.saveRuleState([{ ruleId: 'api-rule', flag: 'api_new_flag', consecutiveBreaches: 0, lastVerdict: 'healthy', lastEvidence: { reason: 'fine', unit: 'users', treatment: { total: 10, errors: 0, rate: 0 }, threshold: 0.05 } }], new Date());
    const s = await call('GET', '/status', { token: tokens.viewer });
    expect(s.status).toBe(200);
    expect(s.body['sources']).toEqual([expect.objectContaining({ id: 'builtin', configured: true, healthy: false, blindSince: expect.any(String) })]);
    expect(s.body['verdicts']).toEqual([expect.objectContaining({ flag: 'api_new_flag', ruleId: 'api-rule', verdict: 'healthy', summary: 'fine', threshold: 0.05, treatment: { errors: 0, total: 10, unit: 'users' } })]);
    const flags = await call('GET', '/flags?search=api_new&state=on', { token: tokens.viewer });
    expect((flags.body['flags'] as { name: string; verdicts: unknown[] }[]).map((f) => f.name)).toEqual(['api_new_flag']);
    expect(((await call('GET', '/flags?state=rolled_back')).body['flags'] as unknown[]).length).toBe(0);
  });

  it('deletes only a disabled flag, as admin, with If-Match', async () => {
    const f = (await call('GET', '/flags/api_new_flag')).body['flag'] as { version: number };
    expect((await call('DELETE', '/flags/api_new_flag', { token: tokens.editor, ifMatch: f.version })).status).toBe(403);
    expect((await call('DELETE', '/flags/api_new_flag', { token: tokens.admin })).status).toBe(428);
    const enabled = await call('DELETE', '/flags/api_new_flag', { token: tokens.admin, ifMatch: f.version });
    expect(enabled.status).toBe(409);
    const off = await call('PATCH', '/flags/api_new_flag', { body: { enabled: false }, ifMatch: f.version });
    const v = (off.body['flag'] as { version: number }).version;
    expect((await call('DELETE', '/flags/api_new_flag', { token: tokens.admin, ifMatch: v - 1 })).status).toBe(412);
    const gone = await call('DELETE', '/flags/api_new_flag', { token: tokens.admin, ifMatch: v });
    expect(gone.status).toBe(204);
    expect(await row('api_new_flag')).toBeUndefined();
    const audit = await api.sql.query<{ op: string; actor: string }>(`select op, actor from flag_changes where flag_name = 'api_new_flag' and op = 'delete'`);
    expect(audit.rows).toEqual([{ op: 'delete', actor: 'ada@example.com' }]);
  });
});
