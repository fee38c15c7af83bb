/**
 * `guardian start` on Supabase in client mode (SUPABASE_URL + the service role key, no
 * DATABASE_URL) feeds its admin change stream from Supabase Realtime: the real daemon against the
 * PostgREST protocol double and the Realtime protocol double on one port (test/helpers), on a real
 * PostgreSQL. A flag change and a rollback event reach a connected SSE client with exactly the
 * message the LISTEN path (run beside it on the same database) publishes for the same change, field
 * by field, never with targets; a Realtime disconnect gives `reset` and later changes still arrive;
 * stopping leaves no Realtime socket or timer behind.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it, vi, type MockInstance } from 'vitest';

import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.ts';
import { PostgrestDouble, supabaseKey } from '../../test/helpers/postgrest-double.ts';
import { RealtimeDouble } from '../../test/helpers/realtime-double.ts';
import { pgChangeFeed, pipeFeed } from '../src/api/feed.ts';
import { ChangeHub } from '../src/api/hub.ts';
import { realtimeChangeFeed, realtimeChangePayload } from '../src/api/realtime-feed.ts';
import { startDaemon, type Daemon } from '../src/daemon.ts';
import { SqlStore } from '../src/store/sql-store.ts';
import { ADMIN_TOKEN, caller, openStream } from './api-helpers.ts';
import { linesSink } from './cycle-helpers.ts';

const SECRET_TARGET = 'rt-secret-target-user-7';
const SERVICE_ROLE_KEY = supabaseKey('service_role');

let db: TestDatabase;
let rest: PostgrestDouble;
let realtime: RealtimeDouble;

beforeAll(async () => {
  db = await createTestDatabase();
  rest = await PostgrestDouble.start({ databaseUrl: db.url });
  realtime = await RealtimeDouble.start({ databaseUrl: db.url, server: rest.httpServer, liveDelayMs: 20 });
});
afterAll(async () => {
  await realtime?.stop();
  await rest?.stop();
  await db?.drop();
});

/** A stream message's fields. */
const dataOf = (e: { data: string }): Record<string, unknown> => JSON.parse(e.data) as Record<string, unknown>;

describe('the change stream of guardian start on Supabase (client mode) is fed by Realtime', () => {
  let dir: string;
  let daemon: Daemon | undefined;
  const printed: string[] = [];
  const logLines: string[] = [];
  const call = caller(() => `${daemon!.http.url}/api/v1`);
  // The LISTEN path on the same database: what the trigger's notifications become.
  const listenHub = new ChangeHub({ heartbeatMs: 0 });
  let published: MockInstance<ChangeHub['publish']>;
  let stopListen: (() => Promise<void>) | undefined;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'guardian-rt-'));
    writeFileSync(
      join(dir, 'rules.yaml'),
      'interval: 1m\nrules:\n  - id: beta-builtin\n    flags: [ai_beta_users]\n    source: builtin\n    condition: { absolute: { error_rate_above: 0.05 } }\n    action: notify_only\n',
    );
    published = vi.spyOn(listenHub, 'publish');
    stopListen = await pipeFeed(pgChangeFeed({ connectionString: db.url }), listenHub, new SqlStore({ sql: db.sql, kind: 'pg', location: 'pg' }));
    daemon = await startDaemon({
      env: {
        SUPABASE_URL: rest.url,
        SUPABASE_SERVICE_ROLE_KEY: SERVICE_ROLE_KEY,
        RULES_FILE: join(dir, 'rules.yaml'),
        PORT: '0',
        HOST: '127.0.0.1',
        LOG_LEVEL: 'debug',
        GUARDIAN_ADMIN_TOKEN: ADMIN_TOKEN,
      },
      stdout: (text: string) => printed.push(text),
      logDestination: linesSink(logLines),
      watchRules: false,
    });
  });
  afterAll(async () => {
    await daemon?.stop();
    listenHub.close();
    await stopListen?.();
    rmSync(dir, { recursive: true, force: true });
  });

  it('says in its banner that Realtime feeds the stream, and holds one Realtime socket', async () => {
    expect(printed.join('\n')).toMatch(/state: +supabase at http:\/\/127\.0\.0\.1/);
    expect(printed.join('\n')).toContain('the change stream is fed by Supabase Realtime (feature_flags, rollback_events)');
    await vi.waitFor(() => expect(realtime.sockets).toBe(1));
    const join = realtime.received.find((f) => f[3] === 'phx_join');
    expect((join?.[4]['config'] as { postgres_changes: unknown }).postgres_changes).toEqual([
      { event: '*', schema: 'public', table: 'feature_flags' },
      { event: 'INSERT', schema: 'public', table: 'rollback_events' },
    ]);
  });

  it('sends flag changes and rollback events as the LISTEN path does, in order, field by field, never targets', async () => {
    const stream = await openStream(`${daemon!.http.url}/api/v1/stream`, ADMIN_TOKEN);
    await vi.waitFor(() => expect(stream.comments).toContain('connected'));
    published.mockClear();

    // SQL, the API (through PostgREST), targets (a version bump), a no-op, a rollback, insert and delete.
    await db.sql.query(`update public.feature_flags set rollout_percentage = 33, description = 'rt: ünïcode ✓' where name = 'ai_beta_users'`);
    const v1 = ((await call('GET', '/flags/ai_beta_users')).body['flag'] as { version: number }).version;
    expect((await call('PATCH', '/flags/ai_beta_users', { body: { rolloutPercentage: 34, rollbackMessage: 'Back soon' }, ifMatch: v1 })).status).toBe(200);
    const v2 = ((await call('GET', '/flags/ai_beta_users')).body['flag'] as { version: number }).version;
    expect((await call('POST', '/flags/ai_beta_users/targets', { body: { add: [SECRET_TARGET] }, ifMatch: v2 })).status).toBe(200);
    await db.sql.query(`update public.feature_flags set rollout_percentage = rollout_percentage where name = 'ai_beta_users'`);
    const rolled = await call('POST', '/flags/ai_beta_users/rollback', { body: { reason: 'realtime feed test' } });
    expect(rolled.status).toBe(200);
    await db.sql.query(`insert into public.feature_flags (name, description) values ('rt_short_lived', 'made and dropped')`);
    await db.sql.query(`delete from public.feature_flags where name = 'rt_short_lived'`);

    const isLast = (e: { event: string; data: string }): boolean => e.event === 'flag' && e.data.includes('"rt_short_lived"') && e.data.includes('"deleted":true');
    await vi.waitFor(() => expect(stream.events.some(isLast)).toBe(true), { timeout: 10_000 });
    await vi.waitFor(() => expect(published.mock.calls.some(([event, data]) => isLast({ event, data: JSON.stringify(data) }))).toBe(true), { timeout: 10_000 });
    stream.close();

    const viaRealtime = stream.events.filter((e) => e.event !== 'reset');
    const viaListen = published.mock.calls.filter(([event]) => event !== 'reset').map(([event, data]) => ({ event, data: JSON.stringify(data) }));
    // Flags: SQL, PATCH, targets, the rollback's flag change, insert, delete (the no-op says nothing); one event.
    expect(viaRealtime.map((e) => e.event).sort()).toEqual(['flag', 'flag', 'flag', 'flag', 'flag', 'flag', 'rollback_event']);
    expect(viaRealtime.length).toBe(viaListen.length);
    // Same messages in the same order, compared field by field (same keys, same values).
    const key = (e: { event: string; data: string }): string => {
      const d = dataOf(e);
      return e.event === 'flag' ? `flag ${String(d['name'])}@${String(d['version'])}` : `event ${String(d['id'])}`;
    };
    expect(viaRealtime.map(key)).toEqual(viaListen.map(key));
    for (let i = 0; i < viaRealtime.length; i++) {
      const mine = dataOf(viaRealtime[i]!);
      const theirs = dataOf(viaListen[i]!);
      expect(Object.keys(mine).sort()).toEqual(Object.keys(theirs).sort());
      for (const field of Object.keys(theirs)) expect({ [field]: mine[field] }).toEqual({ [field]: theirs[field] });
    }
    const ruleEvent = viaRealtime.find((e) => e.event === 'rollback_event')!;
    expect(dataOf(ruleEvent)).toMatchObject({ flag: 'ai_beta_users', kind: 'manual_rollback', actor: 'admin-token', ruleId: null });
    expect(dataOf(viaRealtime.find((e) => e.data.includes('"rolloutPercentage":33'))!)).toMatchObject({ description: 'rt: ünïcode ✓' });
    // Never targets: no field for them, and the id added above appears nowhere.
    for (const e of viaRealtime) {
      expect(dataOf(e)).not.toHaveProperty('targets');
      expect(e.data).not.toContain(SECRET_TARGET);
    }
  });

  it('after a Realtime disconnect the stream sends reset, and later changes still arrive', async () => {
    const stream = await openStream(`${daemon!.http.url}/api/v1/stream`, ADMIN_TOKEN);
    await vi.waitFor(() => expect(stream.comments).toContain('connected'));
    const joins = realtime.joins;
    realtime.disconnectAll();
    await vi.waitFor(() => expect(stream.events.some((e) => e.event === 'reset')).toBe(true), { timeout: 20_000 });
    expect(realtime.joins).toBeGreaterThan(joins);
    expect(logLines.join('\n')).toContain('lost Realtime; reconnecting');
    expect(logLines.join('\n')).toContain('Realtime subscribed again');
    expect(logLines.join('\n')).not.toContain(SERVICE_ROLE_KEY);
    await db.sql.query(`update public.feature_flags set rollout_percentage = 61 where name = 'insights_agent_enabled'`);
    await vi.waitFor(() => expect(stream.events.some((e) => e.event === 'flag' && e.data.includes('"rolloutPercentage":61'))).toBe(true), { timeout: 10_000 });
    const resetAt = stream.events.findIndex((e) => e.event === 'reset');
    const changeAt = stream.events.findIndex((e) => e.data.includes('"rolloutPercentage":61'));
    expect(changeAt).toBeGreaterThan(resetAt);
    stream.close();
  });

  it('stopping the daemon closes its Realtime socket', async () => {
    expect(realtime.sockets).toBe(1);
    await daemon!.stop();
    daemon = undefined;
    await vi.waitFor(() => expect(realtime.sockets).toBe(0));
  });
});

describe('realtimeChangeFeed on its own', () => {
  /**
   * Records the timers supabase-js and the feed make (by the stack that made them) while `run`
   * runs, and returns those still pending and holding the process (ref'd) when it ends.
   */
  async function timersLeftBy(run: (pending: () => string[]) => Promise<void>): Promise<string[]> {
    const made = new Map<ReturnType<typeof setTimeout>, string>();
    const real = { setTimeout: globalThis.setTimeout, setInterval: globalThis.setInterval, clearTimeout: globalThis.clearTimeout, clearInterval: globalThis.clearInterval };
    const ours = (stack: string): boolean => stack.includes('@supabase') || stack.includes('realtime-feed.ts');
    globalThis.setTimeout = ((fn: (...a: unknown[]) => void, ms?: number, ...args: unknown[]) => {
      const stack = new Error().stack ?? '';
      const h = real.setTimeout(
        (...a: unknown[]) => {
          made.delete(h);
          fn(...a);
        },
        ms,
        ...args,
      );
      if (ours(stack)) made.set(h, `setTimeout ${String(ms)} ms ${stack.split('\n').slice(2, 4).join(' ')}`);
      return h;
    }) as typeof setTimeout;
    globalThis.setInterval = ((fn: (...a: unknown[]) => void, ms?: number, ...args: unknown[]) => {
      const stack = new Error().stack ?? '';
      const h = real.setInterval(fn, ms, ...args);
      if (ours(stack)) made.set(h, `setInterval ${String(ms)} ms ${stack.split('\n').slice(2, 4).join(' ')}`);
      return h;
    }) as typeof setInterval;
    globalThis.clearTimeout = ((h?: ReturnType<typeof setTimeout>) => {
      if (h) made.delete(h);
      real.clearTimeout(h);
    }) as typeof clearTimeout;
    globalThis.clearInterval = ((h?: ReturnType<typeof setInterval>) => {
      if (h) made.delete(h);
      real.clearInterval(h);
    }) as typeof clearInterval;
    const pending = (): string[] => [...made.entries()].filter(([h]) => h.hasRef()).map(([, what]) => what);
    try {
      await run(pending);
    } finally {
      Object.assign(globalThis, real);
    }
    return pending();
  }

  it('close() leaves no channel, socket or timer behind', async () => {
    await vi.waitFor(() => expect(realtime.sockets).toBe(0));
    const heard: string[] = [];
    let whileLive: string[] = [];
    let feed: ReturnType<typeof realtimeChangeFeed> | undefined;
    const left = await timersLeftBy(async (pending) => {
      feed = realtimeChangeFeed({ url: rest.url, serviceRoleKey: SERVICE_ROLE_KEY });
      try {
        await feed.start((p) => heard.push(p), () => heard.push('gap'));
        expect(feed.live).toBe(true);
        await db.sql.query(`update public.feature_flags set rollout_percentage = 62 where name = 'insights_agent_enabled'`);
        await vi.waitFor(() => expect(heard.some((p) => p.includes('"rollout_percentage":62'))).toBe(true), { timeout: 10_000 });
        whileLive = pending();
      } finally {
        await feed.close();
      }
    });
    // At once, not eventually: a timer left running (supabase-js' own 10 s disconnect race) would hold a stopping process open.
    expect(whileLive.length).toBeGreaterThan(0); // the recorder sees supabase-js' timers (the socket's heartbeat, at least)
    expect(left).toEqual([]);
    expect(feed!.live).toBe(false);
    expect(feed!.client.realtime.getChannels()).toEqual([]);
    expect(feed!.client.realtime.isConnected()).toBe(false);
    await vi.waitFor(() => expect(realtime.sockets).toBe(0));
    expect(heard).not.toContain('gap');
  });

  it('a channel the server closes is subscribed again after a backoff, with a gap, and changes still arrive', async () => {
    const heard: string[] = [];
    const feed = realtimeChangeFeed({ url: rest.url, serviceRoleKey: SERVICE_ROLE_KEY });
    try {
      await feed.start((p) => heard.push(p), () => heard.push('gap'));
      expect(feed.live).toBe(true);
      expect(realtime.sockets).toBe(1);
      const joins = realtime.joins;
      realtime.closeChannels();
      await vi.waitFor(() => expect(feed.live).toBe(false));
      await vi.waitFor(() => expect(feed.live).toBe(true), { timeout: 15_000 });
      expect(realtime.joins).toBe(joins + 1);
      expect(heard).toEqual(['gap']);
      await db.sql.query(`update public.feature_flags set rollout_percentage = 63 where name = 'insights_agent_enabled'`);
      await vi.waitFor(() => expect(heard.some((p) => p.includes('"rollout_percentage":63'))).toBe(true), { timeout: 10_000 });
      expect(feed.client.realtime.getChannels()).toHaveLength(1);
    } finally {
      await feed.close();
    }
  });

  it('a subscription Realtime ends with a system error is made again, with a gap', async () => {
    const heard: string[] = [];
    const feed = realtimeChangeFeed({ url: rest.url, serviceRoleKey: SERVICE_ROLE_KEY });
    try {
      await feed.start((p) => heard.push(p), () => heard.push('gap'));
      expect(feed.live).toBe(true);
      realtime.failSubscriptions('Subscription lost: replication slot is gone');
      await vi.waitFor(() => expect(feed.live).toBe(false));
      await vi.waitFor(() => expect(feed.live).toBe(true), { timeout: 15_000 });
      expect(heard).toEqual(['gap']);
      await db.sql.query(`update public.feature_flags set rollout_percentage = 64 where name = 'insights_agent_enabled'`);
      await vi.waitFor(() => expect(heard.some((p) => p.includes('"rollout_percentage":64'))).toBe(true), { timeout: 10_000 });
      expect(feed.client.realtime.getChannels()).toHaveLength(1);
    } finally {
      await feed.close();
    }
  });

  it('a rejected join is retried; the first subscription after it is a gap', async () => {
    realtime.rejectJoins = 'RealtimeDisabledForConfiguration: test';
    const heard: string[] = [];
    const feed = realtimeChangeFeed({ url: rest.url, serviceRoleKey: supabaseKey('service_role') });
    try {
      const joins = realtime.joins;
      await feed.start((p) => heard.push(p), () => heard.push('gap'));
      expect(feed.live).toBe(false);
      expect(realtime.joins).toBeGreaterThan(joins);
      realtime.rejectJoins = null;
      await vi.waitFor(() => expect(feed.live).toBe(true), { timeout: 15_000 });
      expect(heard).toEqual(['gap']);
    } finally {
      realtime.rejectJoins = null;
      await feed.close();
    }
  });
});

describe('realtimeChangePayload', () => {
  const flagRow = { name: 'f', version: 3, enabled: true, rollout_percentage: 5, bucket_group: null, guard_state: 'watching', rollback_message: null, rollback_urgent: false, description: 'd', updated_at: '2025-12-03T10:00:00.123456+00:00', updated_by: 'ana', created_at: '2025-12-01T00:00:00+00:00', stage_started_at: '2025-12-01T00:00:00+00:00' };

  it('builds the trigger payload of a flag change with only the public columns', () => {
    expect(JSON.parse(realtimeChangePayload({ schema: 'public', table: 'feature_flags', eventType: 'UPDATE', new: flagRow, old: { ...flagRow, version: 2 }, errors: null })!)).toEqual({
      table: 'feature_flags',
      op: 'UPDATE',
      name: 'f',
      version: 3,
      row: { name: 'f', enabled: true, rollout_percentage: 5, bucket_group: null, guard_state: 'watching', rollback_message: null, rollback_urgent: false, description: 'd', updated_at: '2025-12-03T10:00:00.123456+00:00', updated_by: 'ana' },
    });
  });

  it('says nothing for an update that kept its version, another table, or a rollback event update', () => {
    expect(realtimeChangePayload({ schema: 'public', table: 'feature_flags', eventType: 'UPDATE', new: flagRow, old: flagRow })).toBeUndefined();
    expect(realtimeChangePayload({ schema: 'public', table: 'flag_targets', eventType: 'INSERT', new: { flag_name: 'f', user_id: 'u' } })).toBeUndefined();
    expect(realtimeChangePayload({ schema: 'public', table: 'rollback_events', eventType: 'UPDATE', new: { id: 1 } })).toBeUndefined();
  });

  it('marks a row Realtime could not send whole as partial (the stream re-reads it)', () => {
    const partial = JSON.parse(realtimeChangePayload({ schema: 'public', table: 'feature_flags', eventType: 'INSERT', new: { name: 'f', version: 1 }, old: {}, errors: ['Error 413: Payload Too Large'] })!) as Record<string, unknown>;
    expect(partial).toMatchObject({ table: 'feature_flags', op: 'INSERT', name: 'f', version: 1, partial: true });
  });

  it('cuts a rollback event actor and rule id to 500 characters, as left(…, 500) does', () => {
    const long = '✓'.repeat(600);
    const p = JSON.parse(realtimeChangePayload({ schema: 'public', table: 'rollback_events', eventType: 'INSERT', new: { id: 9, flag_name: 'f', kind: 'auto_rollback', actor: long, rule_id: long, created_at: 'x' } })!) as Record<string, string>;
    expect([...p['actor']!].length).toBe(500);
    expect([...p['rule_id']!].length).toBe(500);
    expect(p['id']).toBe('9');
  });
});

