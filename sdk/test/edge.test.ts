// The per-isolate cache of `@rollback-guardian/sdk/edge`, driven by an in-memory transport, an
// injected clock and manual timers: one load for many calls, a re-fetch after the TTL, last-known
// values while the source is down, bounded waits, and never a throw or a rejection.
import { describe, expect, test } from 'vitest';
import { createEdgeFlags } from '../src/edge/index.ts';
import type { EdgeFlagsOptions } from '../src/edge/index.ts';
import { evaluate, SdkError } from '../src/index.ts';
import type { FlagRecord, FlagTransport, SdkLogger } from '../src/index.ts';
import { flag, flush, ManualTimers, MemoryTransport } from './helpers/memory-transport.ts';

class Clock {
  t = 1_000_000;
  now = (): number => this.t;
}

class RecordingLogger implements SdkLogger {
  errors: string[] = [];
  warns: string[] = [];
  warn(_obj: unknown, msg?: string): void {
    this.warns.push(msg ?? '');
  }
  error(_obj: unknown, msg?: string): void {
    this.errors.push(msg ?? '');
  }
}

const ROWS = (): FlagRecord[] => [
  flag('ai_beta_users', { rolloutPercentage: 50, bucketGroup: 'ai_rollout' }),
  flag('booking_agent_enabled', { rolloutPercentage: 100 }),
  flag('followup_agent_enabled', { rolloutPercentage: 0, targets: ['qa-1'] }),
];

function setup(over: Partial<EdgeFlagsOptions> = {}) {
  const transport = new MemoryTransport();
  transport.rows = ROWS();
  const clock = new Clock();
  const timers = new ManualTimers();
  const logger = new RecordingLogger();
  let made = 0;
  const flags = createEdgeFlags({
    transport: () => {
      made++;
      return transport;
    },
    now: clock.now,
    timers,
    logger,
    ttlMs: 30_000,
    ...over,
  });
  return { flags, transport, clock, timers, logger, made: () => made };
}

describe('edge flags: per-isolate cache', () => {
  test('nothing happens until the first call; then one transport and one load serve every call', async () => {
    const { flags, transport, made } = setup();
    expect(made()).toBe(0);
    expect(flags.cacheInfo()).toEqual({ loads: 0, loadedAt: null, status: 'NOT_CREATED', realtime: false });
    // 50 concurrent first calls share the first load.
    const first = await Promise.all(Array.from({ length: 50 }, (_, i) => flags.checkFeatureFlag(`user-${i}`, 'ai_beta_users')));
    for (let i = 0; i < 500; i++) {
      const user = `user-${i}`;
      const expected = evaluate({ name: 'ai_beta_users', enabled: true, rolloutPercentage: 50, bucketGroup: 'ai_rollout' }, user).value;
      if (i < 50) expect(first[i]).toBe(expected);
      expect(await flags.checkFeatureFlag(user, 'ai_beta_users')).toBe(expected);
    }
    expect(await flags.evaluateFeatureFlag('qa-1', 'followup_agent_enabled')).toMatchObject({ value: true, reason: 'TARGETING_MATCH', version: 1 });
    expect(await flags.allFeatureFlags('qa-1')).toEqual({ ai_beta_users: expect.any(Boolean), booking_agent_enabled: true, followup_agent_enabled: true });
    expect(made()).toBe(1);
    expect(transport.loads).toBe(1);
    expect(flags.cacheInfo()).toMatchObject({ loads: 1, loadedAt: 1_000_000, status: 'READY' });
  });

  test('a change is seen by the first call after the TTL, not before; one re-fetch for concurrent calls', async () => {
    const { flags, transport, clock } = setup();
    expect(await flags.checkFeatureFlag('u1', 'booking_agent_enabled')).toBe(true);
    transport.rows = ROWS().map((r) => (r.name === 'booking_agent_enabled' ? { ...r, enabled: false, version: 2, guardState: 'rolled_back' } : r));
    clock.t += 29_999;
    expect(await flags.checkFeatureFlag('u1', 'booking_agent_enabled')).toBe(true); // cached
    expect(transport.loads).toBe(1);
    clock.t += 1;
    const after = await Promise.all([flags.evaluateFeatureFlag('u1', 'booking_agent_enabled'), flags.checkFeatureFlag('u2', 'booking_agent_enabled')]);
    expect(after[0]).toMatchObject({ value: false, reason: 'DISABLED', version: 2 });
    expect(after[1]).toBe(false);
    expect(transport.loads).toBe(2);
    expect(flags.cacheInfo().loadedAt).toBe(clock.t);
    await flags.checkFeatureFlag('u3', 'booking_agent_enabled');
    expect(transport.loads).toBe(2);
  });

  test('while the source is down: last-known values, one retry per retryAfterMs, then recovery', async () => {
    const { flags, transport, clock, logger } = setup({ retryAfterMs: 5_000 });
    expect(await flags.checkFeatureFlag('u1', 'booking_agent_enabled')).toBe(true);
    transport.fail = new SdkError('TRANSPORT_FAILED', 'database unreachable');
    clock.t += 30_000;
    expect(await flags.checkFeatureFlag('u1', 'booking_agent_enabled')).toBe(true); // stale, still served
    expect(transport.loads).toBe(2);
    expect(flags.cacheInfo().status).toBe('STALE');
    expect(logger.errors.length).toBe(1);
    for (let i = 0; i < 20; i++) {
      clock.t += 200; // 4 s in all: within the retry window
      expect(await flags.checkFeatureFlag('u1', 'booking_agent_enabled')).toBe(true);
    }
    expect(transport.loads).toBe(2);
    clock.t += 1_000;
    transport.fail = null;
    transport.rows = ROWS().filter((r) => r.name !== 'booking_agent_enabled');
    expect(await flags.evaluateFeatureFlag('u1', 'booking_agent_enabled')).toMatchObject({ value: false, reason: 'ERROR', errorCode: 'FLAG_NOT_FOUND' });
    expect(transport.loads).toBe(3);
    expect(flags.cacheInfo().status).toBe('READY');
  });

  test('the first load failing: defaults with PROVIDER_NOT_READY, never a rejection; retried after retryAfterMs', async () => {
    const { flags, transport, clock } = setup({ retryAfterMs: 1_000 });
    transport.fail = new Error('ECONNREFUSED');
    expect(await flags.evaluateFeatureFlag('u1', 'booking_agent_enabled')).toEqual({ flag: 'booking_agent_enabled', value: false, reason: 'ERROR', errorCode: 'PROVIDER_NOT_READY' });
    expect(await flags.evaluateFeatureFlag('u1', 'booking_agent_enabled', true)).toMatchObject({ value: true, errorCode: 'PROVIDER_NOT_READY' });
    expect(await flags.allFeatureFlags('u1')).toEqual({});
    expect(transport.loads).toBe(1);
    transport.fail = null;
    clock.t += 1_000;
    expect(await flags.checkFeatureFlag('u1', 'booking_agent_enabled')).toBe(true);
    expect(transport.loads).toBe(2);
  });

  test('a slow load: the call answers after loadTimeoutMs with the default, a later call from the loaded cache', async () => {
    let release: (rows: readonly FlagRecord[]) => void = () => undefined;
    let loads = 0;
    const slow: FlagTransport = {
      loadAll: () => {
        loads++;
        return new Promise((resolve) => {
          release = resolve;
        });
      },
    };
    const timers = new ManualTimers();
    const flags = createEdgeFlags({ transport: () => slow, timers, now: new Clock().now, loadTimeoutMs: 500 });
    const pending = flags.evaluateFeatureFlag('u1', 'booking_agent_enabled', true);
    await flush();
    await timers.advance(500);
    expect(await pending).toMatchObject({ value: true, reason: 'ERROR', errorCode: 'PROVIDER_NOT_READY' });
    release(ROWS());
    await flush();
    expect(await flags.checkFeatureFlag('u1', 'booking_agent_enabled')).toBe(true);
    expect(loads).toBe(1);
  });

  test('a transport factory that throws (missing env) is logged, answered with defaults, retried later', async () => {
    const clock = new Clock();
    const logger = new RecordingLogger();
    let attempts = 0;
    const transport = new MemoryTransport();
    transport.rows = ROWS();
    const flags = createEdgeFlags({
      transport: () => {
        attempts++;
        if (attempts === 1) throw new Error('SUPABASE_URL is not set');
        return transport;
      },
      now: clock.now,
      timers: new ManualTimers(),
      logger,
      retryAfterMs: 5_000,
    });
    expect(await flags.evaluateFeatureFlag('u1', 'booking_agent_enabled')).toMatchObject({ value: false, errorCode: 'PROVIDER_NOT_READY' });
    expect(await flags.checkFeatureFlag('u1', 'booking_agent_enabled')).toBe(false);
    expect(attempts).toBe(1);
    expect(logger.errors).toEqual(['feature flags: creating the transport failed; answering with defaults']);
    clock.t += 5_000;
    expect(await flags.checkFeatureFlag('u1', 'booking_agent_enabled')).toBe(true);
    expect(attempts).toBe(2);
  });

  test('bad arguments never throw: unknown flag, non-string user id or flag name', async () => {
    const { flags } = setup();
    expect(await flags.evaluateFeatureFlag('u1', 'nope')).toMatchObject({ value: false, reason: 'ERROR', errorCode: 'FLAG_NOT_FOUND' });
    expect(await flags.evaluateFeatureFlag(undefined as unknown as string, 'booking_agent_enabled')).toMatchObject({ value: false, errorCode: 'INVALID_USER_ID' });
    expect(await flags.evaluateFeatureFlag('u1', 42 as unknown as string)).toMatchObject({ value: false, errorCode: 'INVALID_ARGUMENT' });
    expect(await flags.checkFeatureFlag(null as unknown as string, 'booking_agent_enabled')).toBe(false);
    expect(await flags.allFeatureFlags(7 as unknown as string)).toEqual({});
  });

  test('close() drops the client: the next call creates a new one and loads again', async () => {
    const { flags, transport, made } = setup();
    await flags.checkFeatureFlag('u1', 'booking_agent_enabled');
    await flags.close();
    expect(flags.cacheInfo().status).toBe('NOT_CREATED');
    await flags.checkFeatureFlag('u1', 'booking_agent_enabled');
    expect(made()).toBe(2);
    expect(transport.loads).toBe(2);
  });

  test('with realtime, change events apply without waiting for the TTL', async () => {
    const { flags, transport } = setup({ realtime: true });
    expect(await flags.checkFeatureFlag('u1', 'booking_agent_enabled')).toBe(true);
    transport.status('live');
    await flush();
    expect(flags.cacheInfo().realtime).toBe(true);
    const off = flag('booking_agent_enabled', { enabled: false, version: 2 });
    const { targets: _t, ...pub } = off;
    transport.push({ type: 'UPDATE', name: 'booking_agent_enabled', version: 2, record: pub });
    expect(await flags.checkFeatureFlag('u1', 'booking_agent_enabled')).toBe(false);
  });

  test('bad options throw an SdkError naming the option', () => {
    expect(() => createEdgeFlags({} as EdgeFlagsOptions)).toThrow(/options.transport/);
    expect(() => createEdgeFlags({ transport: () => new MemoryTransport(), ttlMs: -1 })).toThrow(/ttlMs/);
    expect(() => createEdgeFlags({ transport: () => new MemoryTransport(), loadTimeoutMs: 0 })).toThrow(/loadTimeoutMs/);
  });
});
