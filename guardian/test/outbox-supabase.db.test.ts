/**
 * SupabaseOutboxStore (outbox and blindness over `.rpc()`) through the real supabase-js against
 * the PostgREST protocol double on a real PostgreSQL: claim/complete/fail/enqueue/backlog and
 * guardian_source_observe behave as the SQL functions do for the service role, the OutboxWorker
 * delivers through it exactly once per channel, and the anon key, an unreachable URL and a
 * missing schema fail with the codes and words the guardian reports.
 */
import { createServer } from 'node:net';

import { createClient } from '@supabase/supabase-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.ts';
import { PostgrestDouble, supabaseKey } from '../../test/helpers/postgrest-double.ts';
import { isGuardianError } from '../src/errors.ts';
import { silentLogger } from '../src/logger.ts';
import { MemoryNotifier } from '../src/notify/memory.ts';
import { SupabaseOutboxStore } from '../src/notify/outbox-supabase.ts';
import { OutboxWorker } from '../src/notify/worker.ts';
import { SupabaseStore } from '../src/store/supabase-store.ts';
import { errorOf } from './rejection.ts';

const anonClient = (url: string) => createClient(url, supabaseKey('anon'), { auth: { persistSession: false, autoRefreshToken: false } });

describe('SupabaseOutboxStore through supabase-js and the PostgREST double', () => {
  let db: TestDatabase;
  let rest: PostgrestDouble;
  let store: SupabaseStore;
  let outbox: SupabaseOutboxStore;

  beforeAll(async () => {
    db = await createTestDatabase();
    rest = await PostgrestDouble.start({ databaseUrl: db.url });
    store = new SupabaseStore({ url: rest.url, serviceRoleKey: supabaseKey('service_role') });
    outbox = new SupabaseOutboxStore(store.client);
  });
  afterAll(async () => {
    await store?.close();
    await rest?.stop();
    await db?.drop();
  });

  const rowOf = async (id: string) =>
    (
      await db.sql.query<{ status: string; attempts: number; locked_by: string | null; last_error: string | null; next_attempt_at: Date; delivered_at: Date | null }>(
        'select status, attempts, locked_by, last_error, next_attempt_at, delivered_at from notification_outbox where id = $1::bigint',
        [id],
      )
    ).rows[0];

  it('enqueue writes one row per channel, idempotent by dedupe key; refusals carry the function’s words', async () => {
    expect(await outbox.enqueue('blindness', { source: 'sentry', blind_since: '2026-01-01T00:00:00Z' }, ['slack', 'email'], 'blindness:sentry:1')).toBe(2);
    expect(await outbox.enqueue('blindness', { source: 'sentry', blind_since: '2026-01-01T00:00:00Z' }, ['slack', 'email'], 'blindness:sentry:1')).toBe(0);
    expect(await outbox.enqueue('recovery', { source: 'sentry' }, [], 'recovery:sentry:1')).toBe(0);
    const badChannel = await errorOf(outbox.enqueue('blindness', { source: 'x' }, ['pager' as 'slack'], 'blindness:x:1'));
    expect(isGuardianError(badChannel, 'STORE_CONFLICT')).toBe(true);
    expect(badChannel.message).toMatch(/outbox_enqueue failed: .*unknown notification channel "pager"/);
    const badTopic = await errorOf(outbox.enqueue('rollback_event' as 'blindness', {}, ['slack'], 'k'));
    expect(badTopic.message).toMatch(/p_topic must be blindness or recovery/);
    const rows = await db.sql.query<{ topic: string; channel: string; payload: Record<string, unknown> }>(
      "select topic, channel, payload from notification_outbox where dedupe_key like 'blindness:sentry:1%' order by channel",
    );
    expect(rows.rows).toEqual([
      { topic: 'blindness', channel: 'email', payload: { source: 'sentry', blind_since: '2026-01-01T00:00:00Z' } },
      { topic: 'blindness', channel: 'slack', payload: { source: 'sentry', blind_since: '2026-01-01T00:00:00Z' } },
    ]);
  });

  it('claim / complete / fail: holder-checked, counted attempts, retries later, gives up', async () => {
    const event = await store.rollback({ flag: 'booking_agent_enabled', action: 'disable', actor: 'guardian', idempotencyKey: 'ob-1', channels: ['slack', 'email'] });
    const claimed = await outbox.claim('w1', 10, 60);
    expect(claimed).toHaveLength(4);
    for (let i = 1; i < claimed.length; i++) {
      const [a, b] = [claimed[i - 1]!, claimed[i]!];
      expect(a.nextAttemptAt.getTime() < b.nextAttemptAt.getTime() || (a.nextAttemptAt.getTime() === b.nextAttemptAt.getTime() && Number(a.id) < Number(b.id))).toBe(true);
    }
    const rollbackRows = claimed.filter((r) => r.topic === 'rollback_event');
    expect(rollbackRows.map((r) => r.channel).sort()).toEqual(['email', 'slack']);
    for (const r of claimed) {
      expect(r).toMatchObject({ status: 'delivering', attempts: 1, lockedBy: 'w1', lastError: null, deliveredAt: null });
      expect(r.id).toMatch(/^\d+$/);
      expect(r.lockedUntil!.getTime()).toBeGreaterThan(Date.now() + 30_000);
      expect(r.createdAt).toBeInstanceOf(Date);
    }
    expect(rollbackRows[0]).toMatchObject({ eventId: event.id, dedupeKey: `${event.id}:${rollbackRows[0]!.channel}` });
    expect(claimed.find((r) => r.topic === 'blindness')?.payload).toEqual({ source: 'sentry', blind_since: '2026-01-01T00:00:00Z' });
    expect(await outbox.claim('w2', 10, 60)).toEqual([]);

    const [slack, email, alertA, alertB] = [rollbackRows.find((r) => r.channel === 'slack')!, rollbackRows.find((r) => r.channel === 'email')!, ...claimed.filter((r) => r.topic === 'blindness')];
    expect(await outbox.complete(slack.id, 'w2')).toBe(false);
    expect(await outbox.complete(slack.id, 'w1')).toBe(true);
    expect(await outbox.complete(slack.id, 'w1')).toBe(false);
    expect(await rowOf(slack.id)).toMatchObject({ status: 'delivered', locked_by: null });

    const later = new Date(Date.now() + 3_600_000);
    expect(await outbox.fail(email.id, 'w2', 'nope', later, false)).toBe(false);
    expect(await outbox.fail(email.id, 'w1', 'SMTP 451 try later', later, false)).toBe(true);
    expect(await rowOf(email.id)).toMatchObject({ status: 'pending', last_error: 'SMTP 451 try later', locked_by: null, next_attempt_at: later });
    expect(await outbox.fail(alertA!.id, 'w1', 'webhook 404 no_team', null, true)).toBe(true);
    expect(await rowOf(alertA!.id)).toMatchObject({ status: 'failed', last_error: 'webhook 404 no_team' });
    expect(await outbox.fail(alertB!.id, 'w1', 'retry now', null, false)).toBe(true);
    // Due again at once (next attempt null = now); the email row is not due for an hour.
    const again = await outbox.claim('w2', 10, 60);
    expect(again.map((r) => [r.id, r.attempts, r.lockedBy])).toEqual([[alertB!.id, 2, 'w2']]);
    expect(await outbox.complete(alertB!.id, 'w2')).toBe(true);
  });

  it('reclaims a row whose lock expired; the old holder then loses it', async () => {
    await outbox.enqueue('recovery', { source: 'posthog' }, ['slack'], 'recovery:posthog:lock');
    const [row] = await outbox.claim('slow', 5, 1);
    expect(row).toMatchObject({ topic: 'recovery', lockedBy: 'slow', attempts: 1 });
    await new Promise((r) => setTimeout(r, 1_100));
    const [taken] = await outbox.claim('fast', 5, 60);
    expect(taken).toMatchObject({ id: row!.id, lockedBy: 'fast', attempts: 2 });
    expect(await outbox.complete(row!.id, 'slow')).toBe(false);
    expect(await outbox.fail(row!.id, 'slow', 'late', null, false)).toBe(false);
    expect(await outbox.complete(row!.id, 'fast')).toBe(true);
  });

  it('backlog counts undelivered rows per channel and status', async () => {
    const backlog = await outbox.backlog();
    const byKey = Object.fromEntries(backlog.map((b) => [`${b.channel}:${b.status}`, b]));
    const expected = await db.sql.query<{ key: string; n: number }>(
      "select channel || ':' || status as key, count(*)::int as n from notification_outbox where status <> 'delivered' group by 1 order by 1",
    );
    expect(Object.keys(byKey).sort()).toEqual(expected.rows.map((r) => r.key));
    for (const r of expected.rows) {
      expect(byKey[r.key]?.count).toBe(r.n);
      expect(byKey[r.key]?.oldestCreatedAt).toBeInstanceOf(Date);
    }
    // Left from the test before: the email rollback row waiting an hour, and the alert given up on.
    expect(byKey['email:pending']?.count).toBe(1);
    expect(backlog.filter((b) => b.status === 'failed').reduce((n, b) => n + b.count, 0)).toBe(1);
    expect(backlog.some((b) => b.status === ('delivered' as string))).toBe(false);
  });

  it('claim arguments are checked before any request', async () => {
    const before = rest.requests.length;
    for (const args of [['', 1, 1], ['w', 0, 1], ['w', 1001, 1], ['w', 1, 0], ['w', 1.5, 1]] as const) {
      const err = await errorOf(outbox.claim(args[0], args[1], args[2]));
      expect(isGuardianError(err, 'BAD_ARGUMENT')).toBe(true);
    }
    expect(rest.requests.length).toBe(before);
  });

  it('observeSource: failing, one blindness alert per channel, still blind, one recovery', async () => {
    const t0 = new Date('2026-03-01T10:00:00.000Z');
    const at = (min: number) => new Date(t0.getTime() + min * 60_000);
    const poll = (min: number, ok: boolean) =>
      outbox.observeSource({ source: 'sentry-eu', at: at(min), ok, ...(ok ? {} : { error: 'HTTP 503' }), blindAfterMs: 10 * 60_000, channels: ['slack', 'email'] });
    expect(await poll(0, true)).toEqual({ transition: 'ok', blindSince: null, lastOkAt: at(0), alertsWritten: 0 });
    expect(await poll(1, false)).toMatchObject({ transition: 'failing', blindSince: at(1), lastOkAt: at(0), alertsWritten: 0 });
    expect(await poll(11, false)).toMatchObject({ transition: 'blind', blindSince: at(1), alertsWritten: 2 });
    expect(await poll(12, false)).toMatchObject({ transition: 'still_blind', blindSince: at(1), alertsWritten: 0 });
    expect(await poll(13, true)).toMatchObject({ transition: 'recovered', blindSince: null, lastOkAt: at(13), alertsWritten: 2 });
    const alerts = await db.sql.query<{ topic: string; n: number }>(
      "select topic, count(*)::int as n from notification_outbox where payload->>'source' = 'sentry-eu' group by topic order by topic",
    );
    expect(alerts.rows).toEqual([
      { topic: 'blindness', n: 2 },
      { topic: 'recovery', n: 2 },
    ]);
    const bad = await errorOf(outbox.observeSource({ source: 'x', at: t0, ok: false, blindAfterMs: 0, channels: [] }));
    expect(bad.message).toMatch(/p_blind_after_seconds must be positive/);
  });

  it('the OutboxWorker delivers through it exactly once per channel', async () => {
    await db.sql.query("update notification_outbox set next_attempt_at = now() - interval '1 second' where status = 'pending'");
    const event = await store.rollback({ flag: 'insights_agent_enabled', action: 'disable', actor: 'guardian', idempotencyKey: 'ob-worker', channels: ['slack', 'email'], reason: 'error rate 12%' });
    const slack = new MemoryNotifier('slack');
    const email = new MemoryNotifier('email');
    const notifiers = new Map([
      ['slack', slack],
      ['email', email],
    ] as const);
    const workers = [1, 2].map((i) => new OutboxWorker({ store: outbox, notifiers, logger: silentLogger(), holder: `worker-${i}`, lockSeconds: 60, sendTimeoutMs: 5_000 }));
    const reports = await Promise.all(workers.map((w) => w.runOnce()));
    expect(reports.reduce((n, r) => n + r.claimed, 0)).toBe(reports.reduce((n, r) => n + r.delivered, 0));
    expect((await Promise.all(workers.map((w) => w.runOnce()))).every((r) => r.claimed === 0)).toBe(true);
    const sentFor = (n: MemoryNotifier) => n.sent.filter((m) => m.topic === 'rollback_event' && m.flag === 'insights_agent_enabled');
    expect(sentFor(slack)).toHaveLength(1);
    expect(sentFor(email)).toHaveLength(1);
    expect(sentFor(slack)[0]).toMatchObject({ kind: 'auto_rollback', severity: 'critical', restoreCommand: expect.stringContaining('insights_agent_enabled') });
    for (const n of [slack, email]) expect(new Set(n.sent.map((m) => m.id)).size).toBe(n.sent.length);
    expect(event.id).toMatch(/^\d+$/);
    const left = await db.sql.query<{ n: number }>("select count(*)::int as n from notification_outbox where status in ('pending', 'delivering') and next_attempt_at <= now()");
    expect(left.rows[0]!.n).toBe(0);
  });

  it('the anon key may not claim or enqueue: STORE_UNREACHABLE naming SUPABASE_SERVICE_ROLE_KEY, nothing changed', async () => {
    const anon = new SupabaseOutboxStore(anonClient(rest.url));
    const before = await db.sql.query<{ n: number }>('select count(*)::int as n from notification_outbox');
    for (const attempt of [() => anon.claim('thief', 10, 60), () => anon.enqueue('blindness', { source: 'x' }, ['slack'], 'anon:1'), () => anon.backlog()]) {
      const err = await errorOf(attempt());
      expect(isGuardianError(err, 'STORE_UNREACHABLE')).toBe(true);
      expect(err.message).toMatch(/permission denied for function outbox_\w+.*SUPABASE_SERVICE_ROLE_KEY/);
    }
    expect(rest.requests.at(-1)).toMatchObject({ role: 'anon', status: 401 });
    const after = await db.sql.query<{ n: number }>('select count(*)::int as n from notification_outbox');
    expect(after.rows[0]!.n).toBe(before.rows[0]!.n);
  });
});

describe('SupabaseOutboxStore: unreachable and schema-less Supabase', () => {
  it('an unreachable URL is STORE_UNREACHABLE, fast', async () => {
    const srv = createServer();
    await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
    const { port } = srv.address() as { port: number };
    await new Promise<void>((resolve) => srv.close(() => resolve()));
    const store = new SupabaseStore({ url: `http://127.0.0.1:${port}`, serviceRoleKey: supabaseKey('service_role') });
    const outbox = new SupabaseOutboxStore(store.client);
    const started = Date.now();
    for (const attempt of [() => outbox.claim('w', 1, 1), () => outbox.backlog(), () => outbox.complete('1', 'w')]) {
      const err = await errorOf(attempt());
      expect(isGuardianError(err, 'STORE_UNREACHABLE')).toBe(true);
      expect(err.message).toMatch(/SUPABASE_URL/);
    }
    expect(Date.now() - started).toBeLessThan(2_000);
    await store.close();
  });

  it('a database without the outbox functions is STORE_FAILED with what to do', async () => {
    const empty = await createTestDatabase({ migrate: false });
    const rest = await PostgrestDouble.start({ databaseUrl: empty.url });
    const store = new SupabaseStore({ url: rest.url, serviceRoleKey: supabaseKey('service_role') });
    try {
      const err = await errorOf(new SupabaseOutboxStore(store.client).claim('w', 1, 60));
      expect(isGuardianError(err, 'STORE_FAILED')).toBe(true);
      expect(err.message).toMatch(/Could not find the function public\.outbox_claim\(p_holder, p_limit, p_lock_seconds\).*apply the migrations/);
    } finally {
      await store.close();
      await rest.stop();
      await empty.drop();
    }
  });
});
