/**
 * The change stream over real HTTP, fed by the real trigger: LISTEN on PostgreSQL and PGlite's
 * listen on the embedded database. A change by SQL, by the API and by a guardian rollback each
 * reach a connected client (public fields, never targets); a client that was away during 50
 * changes gets all of them on reconnect with Last-Event-ID, or `reset` when it is too far
 * behind; the OFREP variant needs its key and carries flag events only; bounds on clients and
 * on unread bytes per client; heartbeats.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

import { ChangeHub } from '../src/api/hub.ts';
import { ADMIN_TOKEN, caller, OFREP_KEY, openStream, startApi, type ApiHarness } from './api-helpers.ts';

describe.each(['pg', 'pglite'] as const)('change stream on %s', (backend) => {
  let api: ApiHarness;
  const call = caller(() => api.base);
  beforeAll(async () => {
    api = await startApi(backend, { hubOptions: { bufferSize: 100, maxClients: 4 } });
  });
  afterAll(() => api?.close());

  it('delivers changes made by SQL, by the API and by a guardian rollback, never targets', async () => {
    const s = await openStream(`${api.base}/stream`, ADMIN_TOKEN);
    expect(s.status).toBe(200);
    await vi.waitFor(() => expect(s.comments).toContain('connected'));
    await api.sql.query(`update feature_flags set rollout_percentage = 33 where name = 'ai_beta_users'`);
    await vi.waitFor(() => expect(s.events.map((e) => JSON.parse(e.data) as { rolloutPercentage: number }).some((d) => d.rolloutPercentage === 33)).toBe(true), { timeout: 5000 });
    const v = ((await call('GET', '/flags/ai_beta_users')).body['flag'] as { version: number }).version;
    const patched = await call('PATCH', '/flags/ai_beta_users', { body: { rolloutPercentage: 44 }, ifMatch: v });
    expect(patched.status).toBe(200);
    await vi.waitFor(() => expect(s.events.some((e) => e.event === 'flag' && (JSON.parse(e.data) as { version: number }).version === v + 1)).toBe(true), { timeout: 5000 });
    await call('POST', '/flags/ai_beta_users/targets', { body: { add: ['secret-user-id'] }, ifMatch: v + 1 });
    const event = await api.store.rollback({ flag: 'ai_beta_users', action: 'disable', actor: 'guardian', idempotencyKey: `stream-test-${backend}`, channels: [], reason: 'spike' });
    await vi.waitFor(() => expect(s.events.some((e) => e.event === 'rollback_event' && (JSON.parse(e.data) as { id: string }).id === event.id)).toBe(true), { timeout: 5000 });
    const rb = JSON.parse(s.events.find((e) => e.event === 'rollback_event')!.data) as Record<string, unknown>;
    expect(rb).toEqual({ id: event.id, flag: 'ai_beta_users', kind: 'auto_rollback', actor: 'guardian', ruleId: null, createdAt: expect.any(String) });
    const flags = s.events.filter((e) => e.event === 'flag').map((e) => JSON.parse(e.data) as Record<string, unknown>);
    expect(flags.at(-1)).toMatchObject({ name: 'ai_beta_users', enabled: false, guardState: 'rolled_back' });
    expect(Object.keys(flags[0]!).sort()).toEqual(['bucketGroup', 'description', 'enabled', 'guardState', 'name', 'rollbackMessage', 'rollbackUrgent', 'rolloutPercentage', 'updatedAt', 'updatedBy', 'version']);
    expect(s.events.map((e) => e.data).join('\n')).not.toContain('secret-user-id');
    const ids = s.events.map((e) => Number(e.id));
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
    s.close();
    await s.ended;
  });

  it('replays every change a client missed while away (50 changes), and resets one too far behind', async () => {
    const first = await openStream(`${api.base}/stream`, ADMIN_TOKEN);
    await api.sql.query(`update feature_flags set description = 'mark' where name = 'booking_agent_enabled'`);
    await vi.waitFor(() => expect(first.events.some((e) => e.data.includes('"mark"'))).toBe(true), { timeout: 5000 });
    const lastId = first.events.at(-1)!.id!;
    first.close();
    await first.ended;
    for (let i = 0; i < 50; i++) await api.sql.query(`update feature_flags set description = $1 where name = 'booking_agent_enabled'`, [`change ${i}`]);
    await vi.waitFor(() => expect(api.hub.lastId).toBeGreaterThanOrEqual(Number(lastId) + 50), { timeout: 10_000 });
    const back = await openStream(`${api.base}/stream`, ADMIN_TOKEN, lastId);
    await vi.waitFor(() => expect(back.events.length).toBe(50));
    expect(back.events.map((e) => (JSON.parse(e.data) as { description: string }).description)).toEqual(Array.from({ length: 50 }, (_, i) => `change ${i}`));
    back.close();

    // 150 more changes with a buffer of 100: the old id cannot be replayed.
    for (let i = 0; i < 150; i++) await api.sql.query(`update feature_flags set description = $1 where name = 'booking_agent_enabled'`, [`more ${i}`]);
    await vi.waitFor(() => expect(api.hub.lastId).toBeGreaterThanOrEqual(Number(lastId) + 200), { timeout: 10_000 });
    const behind = await openStream(`${api.base}/stream?lastEventId=${lastId}`, ADMIN_TOKEN);
    await vi.waitFor(() => expect(behind.events.map((e) => e.event)).toEqual(['reset']));
    expect(behind.events[0]!.id).toBe(String(api.hub.lastId));
    behind.close();
    const fromAnotherBoot = await openStream(`${api.base}/stream`, ADMIN_TOKEN, '12');
    await vi.waitFor(() => expect(fromAnotherBoot.events.map((e) => e.event)).toEqual(['reset']));
    fromAnotherBoot.close();
  });

  it('serves the OFREP stream with the OFREP key, flag events only', async () => {
    const noKey = await fetch(`${api.base.replace('/api/v1', '/ofrep/v1')}/stream`);
    expect(noKey.status).toBe(401);
    const s = await openStream(`${api.base.replace('/api/v1', '/ofrep/v1')}/stream`, OFREP_KEY);
    expect(s.status).toBe(200);
    await vi.waitFor(() => expect(s.comments).toContain('connected'));
    const event = await api.store.restore({ target: 'ai_beta_users', actor: 'alice', idempotencyKey: `restore-${backend}` });
    await vi.waitFor(() => expect(s.events.some((e) => (JSON.parse(e.data) as { version?: number; name?: string }).name === 'ai_beta_users')).toBe(true), { timeout: 5000 });
    expect(event.kind).toBe('restore');
    const admin = await openStream(`${api.base}/stream`, ADMIN_TOKEN, String(api.hub.lastId - 5));
    await vi.waitFor(() => expect(admin.events.some((e) => e.event === 'rollback_event')).toBe(true));
    expect(s.events.every((e) => e.event === 'flag')).toBe(true);
    s.close();
    admin.close();
    const viewerToken = await fetch(`${api.base}/stream`, { headers: { authorization: `Bearer ${OFREP_KEY}` } });
    expect(viewerToken.status).toBe(401);
  });

  it('bounds the number of clients (503 beyond)', async () => {
    await vi.waitFor(() => expect(api.hub.clients).toBe(0));
    const open = await Promise.all([1, 2, 3, 4].map(() => openStream(`${api.base}/stream`, ADMIN_TOKEN)));
    const over = await fetch(`${api.base}/stream`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    expect(over.status).toBe(503);
    expect(over.headers.get('retry-after')).toBe('5');
    for (const s of open) s.close();
    await vi.waitFor(() => expect(api.hub.clients).toBe(0));
  });
});

describe('ChangeHub', () => {
  it('cuts off a client that does not read once it holds maxClientBytes, keeps the others', async () => {
    const hub = new ChangeHub({ heartbeatMs: 0, maxClientBytes: 4096 });
    const stuck = hub.subscribe(undefined);
    const reader = hub.subscribe(undefined).getReader();
    const got: string[] = [];
    const reading = (async () => {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        got.push(new TextDecoder().decode(value));
      }
    })();
    for (let i = 0; i < 100; i++) {
      hub.publish('flag', { name: 'f', version: i, pad: 'x'.repeat(100) });
      await Promise.resolve();
    }
    expect(hub.droppedSlowClients).toBe(1);
    expect(hub.clients).toBe(1);
    await vi.waitFor(() => expect(got.join('')).toContain('"version":99'));
    hub.close();
    await reading;
    expect(stuck.locked).toBe(false);
  });

  it('sends heartbeat comments on its timer', async () => {
    let beat: () => void = () => {};
    const hub = new ChangeHub({ heartbeatMs: 15_000, setInterval: (fn) => ((beat = fn), {}), clearInterval: () => {} });
    const reader = hub.subscribe(undefined).getReader();
    beat();
    let text = '';
    while (!text.includes('heartbeat')) text += new TextDecoder().decode((await reader.read()).value);
    expect(text).toContain(': heartbeat\n\n');
    hub.close();
  });
});
