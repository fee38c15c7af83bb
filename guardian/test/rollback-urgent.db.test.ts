/**
 * A rule's default rollback message and urgent rollbacks, end to end with real parts:
 * - the SQL functions on PostgreSQL and PGlite (the rule's message only where the flag has none,
 *   the urgent mark, what restore puts back, the 12-argument call of before still working);
 * - the real cycle on PostgreSQL rolling back with a rule's message, seen by an SDK client's
 *   onRollback through the postgres transport (LISTEN), the operator's message winning;
 * - `guardian rollback --urgent` (postgres transport, client mode) and the admin API's
 *   `urgent: true` (the SDK's stream transport): holdUntil is ignored, the save hook still runs
 *   first; a rollback that is not urgent still waits for the app's safe point.
 */
import pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';

import { createTestDatabase, createTestPglite, type TestDatabase } from '../../test/helpers/db.ts';
import { createBrowserClient, createServerClient, type RollbackEvent as SdkRollbackEvent } from '../../sdk/src/index.ts';
import { postgresTransport } from '../../sdk/src/postgres/index.ts';
import { streamTransport } from '../../sdk/src/stream/index.ts';
import { runCycle } from '../src/cycle/run.ts';
import { SqlStore } from '../src/store/sql-store.ts';
import { ADMIN_TOKEN, startApi, type ApiHarness } from './api-helpers.ts';
import { cli } from './cli-helpers.ts';
import { MemoryLogger, rulesFrom, ScriptedSource, steppingClock } from './cycle-helpers.ts';

const QA = '00000000-0000-4000-8000-00000000a001';
const RULE_MESSAGE = 'Bookings are back to the classic flow while we fix a problem.';
const OPERATOR_MESSAGE = 'Session help is paused; your notes are saved.';

/** A promise that never settles: a safe point the user never reaches. */
const never = (): Promise<void> => new Promise<void>(() => undefined);
/** PGlite applies every migration per test: slow on a loaded machine. */
const SLOW = 120_000;

describe.each(['pg', 'pglite'] as const)('guardian_rollback and restore_flag: rule message and urgent mark (%s)', (kind) => {
  let db: TestDatabase;
  let store: SqlStore;
  beforeEach(async () => {
    db = kind === 'pg' ? await createTestDatabase() : await createTestPglite();
    store = new SqlStore({ sql: db.sql, kind, location: kind });
  }, SLOW);
  afterEach(async () => {
    await db.drop();
  });

  const rollback = (flag: string, key: string, extra: { message?: string; urgent?: boolean; dryRun?: boolean } = {}) =>
    store.rollback({ flag, action: 'disable', actor: 'guardian', idempotencyKey: key, channels: [], ruleId: 'r1', source: 'builtin', kind: 'auto_rollback', ...extra });
  const restore = (flag: string, key: string) => store.restore({ target: flag, actor: 'oncall', idempotencyKey: key });

  it('sets the rule message only where the flag has none, marks urgency, records both; restore puts back null and clears the mark', async () => {
    const event = await rollback('booking_agent_enabled', 'k1', { message: RULE_MESSAGE, urgent: true });
    expect(event.previousState).toMatchObject({ rollbackMessage: null, rollbackUrgent: false });
    expect(event.newState).toMatchObject({ enabled: false, rollbackMessage: RULE_MESSAGE, rollbackUrgent: true });
    expect(event.evidence).toMatchObject({ urgent: true });
    expect(await store.getFlag('booking_agent_enabled')).toMatchObject({ enabled: false, rollbackMessage: RULE_MESSAGE, rollbackUrgent: true });

    const restored = await restore('booking_agent_enabled', 'k2');
    expect(restored.newState).toMatchObject({ enabled: true, rollbackMessage: null, rollbackUrgent: false });
    expect(await store.getFlag('booking_agent_enabled')).toMatchObject({ enabled: true, guardState: 'watching', rollbackMessage: null, rollbackUrgent: false });
  }, SLOW);

  it('a message the operator set wins over the rule, before the rollback and after it (restore keeps it)', async () => {
    await store.setFlag('session_agent_enabled', { rollbackMessage: OPERATOR_MESSAGE }, 'alice');
    const event = await rollback('session_agent_enabled', 'k1', { message: RULE_MESSAGE });
    expect(event.newState).toMatchObject({ rollbackMessage: OPERATOR_MESSAGE, rollbackUrgent: false });
    expect(event.evidence).not.toHaveProperty('urgent');
    await restore('session_agent_enabled', 'k2');
    expect(await store.getFlag('session_agent_enabled')).toMatchObject({ rollbackMessage: OPERATOR_MESSAGE });

    // The rule's message was set, then a person wrote their own while the flag was rolled back: theirs stays.
    await rollback('booking_agent_enabled', 'k3', { message: RULE_MESSAGE });
    await store.setFlag('booking_agent_enabled', { rollbackMessage: OPERATOR_MESSAGE }, 'alice');
    await restore('booking_agent_enabled', 'k4');
    expect(await store.getFlag('booking_agent_enabled')).toMatchObject({ enabled: true, rollbackMessage: OPERATOR_MESSAGE });
  }, SLOW);

  it('a dry run records what it would set and changes nothing; turning the flag back on by SQL ends the mark', async () => {
    const dry = await rollback('booking_agent_enabled', 'dry', { message: RULE_MESSAGE, urgent: true, dryRun: true });
    expect(dry.kind).toBe('dry_run');
    expect(dry.newState).toMatchObject({ enabled: false, rollbackMessage: RULE_MESSAGE, rollbackUrgent: true });
    expect(await store.getFlag('booking_agent_enabled')).toMatchObject({ enabled: true, rollbackMessage: null, rollbackUrgent: false });

    await rollback('booking_agent_enabled', 'k1', { urgent: true });
    expect(await store.getFlag('booking_agent_enabled')).toMatchObject({ rollbackUrgent: true });
    // The store refuses to re-enable a rolled-back flag without a restore; a raw SQL update can.
    await db.sql.query(`update public.feature_flags set enabled = true where name = 'booking_agent_enabled'`);
    expect(await store.getFlag('booking_agent_enabled')).toMatchObject({ enabled: true, rollbackUrgent: false });
  }, SLOW);

  it('existing callers: the 12-argument call (named) still rolls back, with no message and no mark', async () => {
    await db.sql.query(
      `select public.guardian_rollback(p_flag => 'booking_agent_enabled', p_action => 'disable', p_rule_id => 'old', p_source => 'sentry', p_evidence => '{}'::jsonb,
         p_actor => 'guardian', p_idempotency_key => 'old-call', p_channels => array[]::text[], p_dry_run => false, p_reason => 'test', p_kind => 'auto_rollback', p_stages => null::integer[])`,
    );
    expect(await store.getFlag('booking_agent_enabled')).toMatchObject({ enabled: false, rollbackMessage: null, rollbackUrgent: false });
    const { rows } = await db.sql.query<{ rollback_urgent: boolean }>(`select rollback_urgent from public.evaluate_flags($1) where name = 'booking_agent_enabled'`, [QA]);
    expect(rows).toEqual([{ rollback_urgent: false }]);
  }, SLOW);
});

describe('on real PostgreSQL with SDK clients', () => {
  let db: TestDatabase;
  let pool: pg.Pool;
  beforeAll(async () => {
    db = await createTestDatabase();
    pool = new pg.Pool({ connectionString: db.url, max: 6, application_name: 'rollback-urgent-test' });
    pool.on('error', () => undefined);
  });
  afterAll(async () => {
    await pool?.end();
    await db?.drop();
  });

  it("the real cycle rolls back with the rule's default message: it reaches onRollback; the operator's own message wins on the other flag", async () => {
    const store = new SqlStore({ sql: db.sql, kind: 'pg', location: 'test' });
    await store.setFlag('session_agent_enabled', { rollbackMessage: OPERATOR_MESSAGE }, 'alice');
    const client = createServerClient({ transport: postgresTransport(pool), refetchJitterMs: 0, pollIntervalMs: 3_600_000 });
    const seen: SdkRollbackEvent[] = [];
    client.onRollback((e) => void seen.push(e));
    try {
      expect(await client.ready(10_000)).toBe('READY');
      await vi.waitFor(() => expect(client.realtime).toBe(true), { timeout: 10_000 });
      const rules = rulesFrom(`
interval: 1m
defaults: { min_users: 100, consecutive: 1, rollback_message: "${RULE_MESSAGE}" }
rules:
  - id: agents-errors
    flags: [booking_agent_enabled, session_agent_enabled]
    source: builtin
    condition: { absolute: { error_rate_above: 0.05 } }
    action: disable
    urgent: true
`);
      const source = new ScriptedSource('builtin', () => ({ treatment: { total: 2000, errors: 400 }, control: { total: 6000, errors: 60 } }));
      const report = await runCycle({ now: steppingClock(new Date(Date.now() + 1000), 60_000), store, sources: new Map([['builtin', source]]), rules, logger: new MemoryLogger(), signal: new AbortController().signal });
      expect(report.results.filter((r) => r.action === 'acted').map((r) => r.flag).sort()).toEqual(['booking_agent_enabled', 'session_agent_enabled']);

      await vi.waitFor(() => expect(seen.map((e) => e.flag).sort()).toEqual(['booking_agent_enabled', 'session_agent_enabled']), { timeout: 10_000 });
      expect(seen.find((e) => e.flag === 'booking_agent_enabled')).toMatchObject({ message: RULE_MESSAGE, urgent: true });
      expect(seen.find((e) => e.flag === 'session_agent_enabled')).toMatchObject({ message: OPERATOR_MESSAGE, urgent: true });
      await vi.waitFor(() => expect(client.evaluate('booking_agent_enabled', QA)).toMatchObject({ value: false, rollbackMessage: RULE_MESSAGE, rollbackUrgent: true }), { timeout: 10_000 });
      const [event] = await store.listEvents({ flag: 'booking_agent_enabled', kind: 'auto_rollback' });
      expect(event?.newState).toMatchObject({ rollbackMessage: RULE_MESSAGE, rollbackUrgent: true });

      // Restore: the rule's message and the mark go; the operator's message stays.
      expect((await cli(['restore', 'booking_agent_enabled', '--reason', 'fixed', '--database-url', db.url])).code).toBe(0);
      expect((await cli(['restore', 'session_agent_enabled', '--reason', 'fixed', '--database-url', db.url])).code).toBe(0);
      await vi.waitFor(() => expect(client.getFlag('booking_agent_enabled')).toMatchObject({ enabled: true, rollbackMessage: null, rollbackUrgent: false }), { timeout: 10_000 });
      await vi.waitFor(() => expect(client.getFlag('session_agent_enabled')).toMatchObject({ enabled: true, rollbackMessage: OPERATOR_MESSAGE, rollbackUrgent: false }), { timeout: 10_000 });
    } finally {
      await client.close();
    }
  });

  it('guardian rollback --urgent: the client ignores holdUntil and flips once the save hook is done; without --urgent it waits for the safe point', async () => {
    // Client mode as the QA user, who is a target of booking_agent_enabled (on for them).
    const client = createBrowserClient({ transport: postgresTransport(pool, { user: { id: QA } }), refetchJitterMs: 0, pollIntervalMs: 3_600_000, rollbackHoldMs: 10_000, safePointMaxMs: 3_600_000 });
    const log: string[] = [];
    let reachSafePoint!: () => void;
    client.onRollback(async (e) => {
      log.push(`rollback:${e.flag}:urgent=${e.urgent}`);
      e.holdUntil(e.urgent ? never() : new Promise<void>((r) => (reachSafePoint = r)));
      await Promise.resolve();
      log.push(`draft saved while on=${client.isEnabled('booking_agent_enabled')}`);
    });
    client.onChange('booking_agent_enabled', () => log.push(`on=${client.isEnabled('booking_agent_enabled')}`));
    try {
      expect(await client.ready(10_000)).toBe('READY');
      await vi.waitFor(() => expect(client.realtime).toBe(true), { timeout: 10_000 });
      expect(client.isEnabled('booking_agent_enabled')).toBe(true);
      log.length = 0; // the first load's change

      // Not urgent: the user is mid-flow, the old value stays until the safe point.
      const plain = await cli(['rollback', 'booking_agent_enabled', '--reason', 'errors', '--no-notify', '--database-url', db.url]);
      expect(plain.code).toBe(0);
      await vi.waitFor(() => expect(log).toContain('draft saved while on=true'), { timeout: 10_000 });
      expect(client.isEnabled('booking_agent_enabled')).toBe(true);
      reachSafePoint();
      await vi.waitFor(() => expect(client.isEnabled('booking_agent_enabled')).toBe(false), { timeout: 10_000 });
      expect(log).toEqual(['rollback:booking_agent_enabled:urgent=false', 'draft saved while on=true', 'on=false']);

      expect((await cli(['restore', 'booking_agent_enabled', '--reason', 'fixed', '--database-url', db.url])).code).toBe(0);
      await vi.waitFor(() => expect(client.isEnabled('booking_agent_enabled')).toBe(true), { timeout: 10_000 });
      log.length = 0;

      // Urgent: the safe point never comes, yet the value flips right after the save hook (the 10 s hold bound is not what ends it).
      const urgent = await cli(['rollback', 'booking_agent_enabled', '--urgent', '--reason', 'data leak', '--no-notify', '--database-url', db.url]);
      expect(urgent.code).toBe(0);
      expect(urgent.stdout).toContain('urgent');
      await vi.waitFor(() => expect(client.isEnabled('booking_agent_enabled')).toBe(false), { timeout: 8_000 });
      expect(log).toEqual(['rollback:booking_agent_enabled:urgent=true', 'draft saved while on=true', 'on=false']);
      expect(client.evaluate('booking_agent_enabled')).toMatchObject({ value: false, rollbackUrgent: true });
    } finally {
      await client.close();
    }
  });
});

describe('admin API urgent: true, seen through the SDK stream transport', () => {
  let api: ApiHarness;
  beforeAll(async () => {
    api = await startApi('pg');
  });
  afterAll(async () => {
    await api?.close();
  });

  const post = (path: string, body: unknown) =>
    fetch(`${api.base}${path}`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });

  it('validates urgent, marks the flag, and the client ignores holdUntil; restore clears the mark', async () => {
    // Documented: the OpenAPI document lists urgent in the rollback body, optional (the body stays backward compatible).
    const doc = (await (await fetch(`${api.base}/openapi.json`)).json()) as {
      paths: Record<string, { post?: { requestBody?: { content: Record<string, { schema: { properties?: Record<string, { type?: string; description?: string }>; required?: string[] } }> } } }>;
    };
    const body0 = doc.paths['/flags/{name}/rollback']?.post?.requestBody?.content['application/json']?.schema;
    expect(body0?.properties?.['urgent']).toMatchObject({ type: 'boolean', description: expect.stringContaining('holdUntil') });
    expect(body0?.required ?? []).not.toContain('urgent');

    const bad = await post('/flags/booking_agent_enabled/rollback', { reason: 'errors', urgent: 'yes' });
    expect(bad.status).toBe(400);
    expect(JSON.stringify(await bad.json())).toContain('urgent');

    const client = createServerClient({ transport: streamTransport({ url: api.base, token: ADMIN_TOKEN }), refetchJitterMs: 0, pollIntervalMs: 3_600_000, rollbackHoldMs: 10_000, safePointMaxMs: 3_600_000 });
    const log: string[] = [];
    client.onRollback(async (e) => {
      e.holdUntil(never());
      await Promise.resolve();
      log.push(`saved:${e.flag}:urgent=${e.urgent}`);
    });
    client.onChange('booking_agent_enabled', () => log.push(`enabled=${client.getFlag('booking_agent_enabled')?.enabled}`));
    try {
      expect(await client.ready(10_000)).toBe('READY');
      await vi.waitFor(() => expect(client.realtime).toBe(true), { timeout: 10_000 });
      log.length = 0; // the first load's change
      const res = await post('/flags/booking_agent_enabled/rollback', { reason: 'users must leave now', urgent: true });
      expect(res.status).toBe(200);
      const body = (await res.json()) as { flag: { rollbackUrgent: boolean }; event: { evidence: Record<string, unknown>; newState: { rollbackUrgent?: boolean } } };
      expect(body.flag.rollbackUrgent).toBe(true);
      expect(body.event.evidence).toMatchObject({ urgent: true });
      expect(body.event.newState.rollbackUrgent).toBe(true);
      await vi.waitFor(() => expect(client.getFlag('booking_agent_enabled')?.enabled).toBe(false), { timeout: 8_000 });
      expect(log).toEqual(['saved:booking_agent_enabled:urgent=true', 'enabled=false']);

      const restored = await post('/flags/booking_agent_enabled/restore', { reason: 'fixed' });
      expect(restored.status).toBe(200);
      expect(((await restored.json()) as { flag: { rollbackUrgent: boolean } }).flag.rollbackUrgent).toBe(false);
      await vi.waitFor(() => expect(client.getFlag('booking_agent_enabled')).toMatchObject({ enabled: true, rollbackUrgent: false }), { timeout: 10_000 });

      // The CLI through the API: --urgent travels as urgent: true.
      log.length = 0;
      const env = { GUARDIAN_API_URL: api.base.replace('/api/v1', ''), GUARDIAN_ADMIN_TOKEN: ADMIN_TOKEN };
      const viaApi = await cli(['rollback', 'booking_agent_enabled', '--urgent', '--reason', 'again', '--no-notify', '--json'], env);
      expect(viaApi.code).toBe(0);
      expect((JSON.parse(viaApi.stdout) as { event: { newState: { rollbackUrgent?: boolean } } }).event.newState.rollbackUrgent).toBe(true);
      await vi.waitFor(() => expect(client.getFlag('booking_agent_enabled')?.enabled).toBe(false), { timeout: 8_000 });
      expect(log).toEqual(['saved:booking_agent_enabled:urgent=true', 'enabled=false']);
    } finally {
      await client.close();
    }
  });
});
