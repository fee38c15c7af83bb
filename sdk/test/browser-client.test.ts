import { describe, expect, test } from 'vitest';
import { createBrowserClient } from '../src/index.ts';
import type { EvaluatedFlagRecord, StorageAdapter } from '../src/index.ts';
import { flush, ManualTimers, MemoryTransport } from './helpers/memory-transport.ts';

const mine = (name: string, value: boolean, over: Partial<EvaluatedFlagRecord> = {}): EvaluatedFlagRecord => ({
  name, value, reason: 'SPLIT', version: 1, guardState: 'watching', rollbackMessage: null, ...over,
});

class AsyncStorage implements StorageAdapter {
  data = new Map<string, string>();
  async getItem(k: string): Promise<string | null> {
    return this.data.get(k) ?? null;
  }
  async setItem(k: string, v: string): Promise<void> {
    this.data.set(k, v);
  }
}

describe('client mode', () => {
  test('loads the user\'s evaluated flags and answers from memory', async () => {
    const transport = new MemoryTransport();
    transport.mine = [mine('a', true), mine('b', false, { reason: 'DISABLED' })];
    const client = createBrowserClient({ transport, timers: new ManualTimers(), refetchJitterMs: 0 });
    expect(client.isEnabled('a')).toBe(false);
    expect(await client.ready()).toBe('READY');
    expect(client.evaluate('a')).toEqual({ flag: 'a', value: true, reason: 'SPLIT', version: 1 });
    expect(client.evaluate('b', true)).toMatchObject({ value: false, reason: 'DISABLED' });
    expect(client.evaluate('zzz', true)).toMatchObject({ value: true, errorCode: 'FLAG_NOT_FOUND' });
    expect(client.allValues()).toEqual({ a: true, b: false });
  });

  test('starts offline with last-known values from an async storage, for the same user only', async () => {
    const storage = new AsyncStorage();
    const t1 = new MemoryTransport();
    t1.userId = 'user-1';
    t1.mine = [mine('a', true)];
    const c1 = createBrowserClient({ transport: t1, storage, timers: new ManualTimers() });
    await c1.ready();
    await flush();
    await c1.close();
    expect(JSON.parse(storage.data.get('rollback-guardian.flags')!)).toMatchObject({ userId: 'user-1' });

    const offline = new MemoryTransport();
    offline.userId = 'user-1';
    offline.fail = new Error('offline');
    const c2 = createBrowserClient({ transport: offline, storage, timers: new ManualTimers() });
    expect(await c2.ready()).toBe('READY');
    expect(c2.evaluate('a')).toMatchObject({ value: true, reason: 'CACHED' });
    await flush();
    expect(c2.status).toBe('STALE');
    expect(c2.isEnabled('a')).toBe(true);

    const other = new MemoryTransport();
    other.userId = 'user-2';
    other.fail = new Error('offline');
    const c3 = createBrowserClient({ transport: other, storage, timers: new ManualTimers() });
    expect(await c3.ready()).toBe('ERROR');
    expect(c3.isEnabled('a')).toBe(false);
  });

  test('re-fetches on a newer change event and on auth change; drops stale events', async () => {
    const transport = new MemoryTransport();
    transport.mine = [mine('a', false, { version: 2 })];
    const client = createBrowserClient({ transport, timers: new ManualTimers(), refetchJitterMs: 0 });
    await client.ready();
    const loads = transport.loads;
    transport.push({ type: 'UPDATE', name: 'a', version: 2, record: null });
    await flush();
    expect(transport.loads).toBe(loads);
    transport.mine = [mine('a', true, { version: 3 })];
    transport.push({ type: 'UPDATE', name: 'a', version: 3, record: null });
    await flush();
    expect(client.isEnabled('a')).toBe(true);
    transport.mine = [mine('a', false, { version: 3, reason: 'SPLIT' })];
    transport.signIn('user-7');
    await flush();
    expect(client.isEnabled('a')).toBe(false);
    expect(client.currentUser).toBe('user-7');
  });

  test('onRollback fires when a flag the user had on goes off with guard_state rolled_back', async () => {
    const transport = new MemoryTransport();
    transport.mine = [mine('a', true), mine('b', false)];
    const client = createBrowserClient({ transport, timers: new ManualTimers(), refetchJitterMs: 0 });
    await client.ready();
    const got: unknown[] = [];
    client.onRollback((e) => got.push(e));
    transport.mine = [mine('a', false, { version: 2, guardState: 'rolled_back', rollbackMessage: 'Back soon' }), mine('b', false, { version: 2, guardState: 'rolled_back' })];
    transport.push({ type: 'UPDATE', name: 'a', version: 2, record: null });
    await flush();
    expect(got).toMatchObject([{ flag: 'a', message: 'Back soon', version: 2, urgent: false }]);
  });

  test('bad options name the option', () => {
    const transport = new MemoryTransport();
    expect(() => createBrowserClient({ transport, storage: {} as StorageAdapter })).toThrow(/options\.storage/);
    expect(() => createBrowserClient({ transport: { loadAll: transport.loadAll } })).toThrow(/loadMine/);
  });
});
