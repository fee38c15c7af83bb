import { describe, expect, test } from 'vitest';
import { createServerClient, evaluate, SdkError } from '../src/index.ts';
import { flag, flush, ManualTimers, MemoryTransport, pub } from './helpers/memory-transport.ts';

function setup(rows = [flag('a', { rolloutPercentage: 50, bucketGroup: 'grp' }), flag('b', { targets: ['u1'], rolloutPercentage: 0 })]) {
  const transport = new MemoryTransport();
  transport.rows = rows;
  const timers = new ManualTimers();
  const client = createServerClient({ transport, timers, pollIntervalMs: 1000, ttlMs: 60_000, refetchJitterMs: 0 });
  return { transport, timers, client };
}

describe('server mode', () => {
  test('loads once and evaluates locally, exactly as the core', async () => {
    const { client, transport } = setup();
    expect(client.evaluate('a', 'u1', true)).toMatchObject({ value: true, reason: 'ERROR', errorCode: 'PROVIDER_NOT_READY' });
    expect(await client.ready()).toBe('READY');
    for (let i = 0; i < 200; i++) {
      const u = `user-${i}`;
      const core = evaluate({ name: 'a', enabled: true, rolloutPercentage: 50, bucketGroup: 'grp' }, u);
      expect(client.isEnabled('a', u)).toBe(core.value);
      expect(client.evaluate('a', u)).toMatchObject({ value: core.value, reason: 'SPLIT', version: 1 });
    }
    expect(client.evaluate('b', 'u1')).toMatchObject({ value: true, reason: 'TARGETING_MATCH' });
    expect(client.isEnabled('b', 'u2')).toBe(false);
    expect(transport.loads).toBe(1);
  });

  test('never throws: bad arguments and unknown flags give the default with a reason', async () => {
    const { client } = setup();
    await client.ready();
    expect(client.evaluate('nope', 'u1', true)).toEqual({ flag: 'nope', value: true, reason: 'ERROR', errorCode: 'FLAG_NOT_FOUND' });
    expect(client.isEnabled('nope', 'u1', true)).toBe(true);
    expect(client.evaluate('a', undefined as unknown as string, true)).toMatchObject({ value: true, errorCode: 'INVALID_USER_ID' });
    expect(client.evaluate(null as unknown as string, 'u1')).toMatchObject({ value: false, errorCode: 'INVALID_ARGUMENT' });
    expect(client.isEnabled('a', 12 as unknown as string, true)).toBe(true);
  });

  test('ready(timeoutMs) runs on the injected timers, gives the status at that time, and refuses a bad timeout', async () => {
    const transport = new MemoryTransport();
    let release: () => void = () => undefined;
    transport.loadAll = async () => {
      await new Promise<void>((r) => (release = r));
      return [flag('a')];
    };
    const timers = new ManualTimers();
    const client = createServerClient({ transport, timers, pollIntervalMs: 1000, ttlMs: 60_000, refetchJitterMs: 0 });
    let settled: string | undefined;
    void client.ready(500).then((s) => (settled = s));
    await timers.advance(499);
    expect(settled).toBeUndefined();
    await timers.advance(1);
    expect(settled).toBe('NOT_READY');
    // The first load still settles later waiters.
    const later = client.ready();
    release();
    expect(await later).toBe('READY');
    for (const bad of [-1, Number.NaN, Infinity, '5' as unknown as number]) {
      expect(() => client.ready(bad)).toThrow(SdkError);
      expect(() => client.ready(bad)).toThrow(/ready\(timeoutMs\): timeoutMs must be a number of milliseconds ≥ 0/);
    }
    expect(await client.ready(0)).toBe('READY');
    client.close();
  });

  test('bad options throw an SdkError naming the option', () => {
    const transport = new MemoryTransport();
    expect(() => createServerClient({ transport, pollIntervalMs: -5 })).toThrow(/pollIntervalMs/);
    expect(() => createServerClient({} as never)).toThrow(SdkError);
    expect(() => createServerClient({ transport: { loadMine: transport.loadMine } })).toThrow(/loadAll/);
  });

  test('change events apply at once, older versions are dropped, targets are re-fetched', async () => {
    const { client, transport } = setup();
    await client.ready();
    const seen: string[] = [];
    client.onChange('a', (e) => seen.push(`${e.flag}@${e.version}`));
    transport.rows = [flag('a', { enabled: false, version: 3, bucketGroup: 'grp', rolloutPercentage: 50 }), flag('b', { targets: ['u1'], rolloutPercentage: 0 })];
    transport.push({ type: 'UPDATE', name: 'a', version: 3, record: pub(transport.rows[0]!) });
    expect(client.evaluate('a', 'x')).toMatchObject({ value: false, reason: 'DISABLED', version: 3 });
    transport.push({ type: 'UPDATE', name: 'a', version: 2, record: flag('a', { version: 2 }) });
    expect(client.getFlag('a')?.version).toBe(3);
    await flush();
    expect(seen).toEqual(['a@3']);
    // A target added: the event has no targets; the re-fetch brings them.
    transport.rows = [transport.rows[0]!, flag('b', { targets: ['u1', 'u9'], rolloutPercentage: 0, version: 2 })];
    transport.push({ type: 'UPDATE', name: 'b', version: 2, record: pub(flag('b', { rolloutPercentage: 0, version: 2 })) });
    await flush();
    expect(client.isEnabled('b', 'u9')).toBe(true);
    transport.push({ type: 'DELETE', name: 'b', version: null, record: null });
    expect(client.evaluate('b', 'u9')).toMatchObject({ errorCode: 'FLAG_NOT_FOUND' });
  });

  test('onRollback fires when a flag becomes rolled_back, with its message', async () => {
    const { client, transport } = setup();
    await client.ready();
    const got: unknown[] = [];
    client.onRollback((e) => got.push(e));
    transport.push({ type: 'UPDATE', name: 'a', version: 2, record: pub(flag('a', { enabled: false, version: 2, guardState: 'rolled_back', rollbackMessage: 'Sorry!' })) });
    expect(got).toMatchObject([{ flag: 'a', message: 'Sorry!', version: 2, urgent: false }]);
  });

  test('polls while the subscription is down, re-fetches on every live, TTL while live', async () => {
    const { client, transport, timers } = setup();
    await client.ready();
    await flush();
    expect(transport.loads).toBe(1);
    await timers.advance(1000); // no subscription yet: polling
    expect(transport.loads).toBe(2);
    transport.status('live');
    await flush();
    expect(transport.loads).toBe(3);
    await timers.advance(30_000); // live: no polling
    expect(transport.loads).toBe(3);
    await timers.advance(30_000); // TTL
    expect(transport.loads).toBe(4);
    transport.status('down');
    transport.rows = [flag('a', { enabled: false, version: 9 })];
    await timers.advance(1000);
    expect(transport.loads).toBe(5);
    expect(client.isEnabled('a', 'anyone')).toBe(false);
    transport.status('live'); // rejoin: re-fetch
    await flush();
    expect(transport.loads).toBe(6);
    expect(client.realtime).toBe(true);
    await client.close();
    expect(timers.size).toBe(0);
  });

  test('a failed refresh keeps last-known values (STALE); a failed first load is ERROR', async () => {
    const { client, transport, timers } = setup();
    await client.ready();
    await flush();
    transport.fail = new Error('boom');
    await timers.advance(1000);
    expect(client.status).toBe('STALE');
    expect(client.isEnabled('b', 'u1')).toBe(true);
    const t2 = new MemoryTransport();
    t2.fail = new Error('down');
    const c2 = createServerClient({ transport: t2, timers: new ManualTimers() });
    expect(await c2.ready()).toBe('ERROR');
    expect(c2.evaluate('a', 'u', true)).toMatchObject({ value: true, errorCode: 'PROVIDER_NOT_READY' });
  });

  test('onEvaluation listeners see each evaluation; a throwing listener is contained', async () => {
    const { client } = setup();
    await client.ready();
    const seen: string[] = [];
    client.onEvaluation(() => {
      throw new Error('listener bug');
    });
    const off = client.onEvaluation((f, v, u) => seen.push(`${f}:${v}:${u}`));
    client.isEnabled('b', 'u1');
    client.evaluate('nope', 'u2');
    off();
    client.isEnabled('b', 'u1');
    expect(seen).toEqual(['b:true:u1', 'nope:false:u2']);
  });
});
