// Server mode's `isEnabled` reads a name-keyed index kept beside the flag Map: it must follow
// every way the flags change (full load, INSERT/UPDATE/DELETE events, a flag gone from a reload)
// and keep the "never throws, default with a reason" promise for names no Map would stumble on.
import { describe, expect, test } from 'vitest';
import { createBrowserClient, createServerClient, evaluate } from '../src/index.ts';
import { flag, flush, ManualTimers, MemoryTransport, pub } from './helpers/memory-transport.ts';

function setup(rows = [flag('a', { rolloutPercentage: 50 }), flag('b', { rolloutPercentage: 100 })]) {
  const transport = new MemoryTransport();
  transport.rows = rows;
  const client = createServerClient({ transport, timers: new ManualTimers(), pollIntervalMs: 1000, ttlMs: 60_000 });
  return { transport, client };
}

describe('server mode hot path', () => {
  test('isEnabled follows change events: UPDATE, INSERT, DELETE', async () => {
    const { client, transport } = setup();
    await client.ready();
    expect(client.isEnabled('b', 'u1')).toBe(true);

    // UPDATE: off at once, before the re-fetch.
    const off = flag('b', { enabled: false, version: 2 });
    transport.push({ type: 'UPDATE', name: 'b', version: 2, record: pub(off) });
    expect(client.isEnabled('b', 'u1', true)).toBe(false);
    expect(client.evaluate('b', 'u1', true)).toMatchObject({ value: false, reason: 'DISABLED' });

    // INSERT of a new flag.
    const c = flag('c', { rolloutPercentage: 100 });
    transport.push({ type: 'INSERT', name: 'c', version: 1, record: pub(c) });
    expect(client.isEnabled('c', 'u1')).toBe(true);

    // DELETE: unknown again, so the caller's default.
    transport.push({ type: 'DELETE', name: 'c', version: null, record: null });
    expect(client.isEnabled('c', 'u1', true)).toBe(true);
    expect(client.isEnabled('c', 'u1', false)).toBe(false);
    expect(client.evaluate('c', 'u1')).toMatchObject({ reason: 'ERROR', errorCode: 'FLAG_NOT_FOUND' });
    await flush();
    await client.close();
  });

  test('a flag missing from a reload is unknown; a changed one answers with its new definition', async () => {
    const { client, transport } = setup();
    await client.ready();
    transport.rows = [flag('a', { rolloutPercentage: 0, version: 2 })];
    expect(await client.refresh()).toBe(true);
    expect(client.isEnabled('b', 'u1', true)).toBe(true); // gone: the default
    expect(client.evaluate('b', 'u1')).toMatchObject({ errorCode: 'FLAG_NOT_FOUND' });
    for (let i = 0; i < 50; i++) expect(client.isEnabled('a', `user-${i}`)).toBe(false);
    await client.close();
  });

  test('names that are Object.prototype members or odd values never throw and never match by accident', async () => {
    const { client } = setup([flag('constructor', { rolloutPercentage: 100 }), flag('a', { rolloutPercentage: 50 })]);
    await client.ready();
    expect(client.isEnabled('constructor', 'u1')).toBe(true);
    for (const name of ['toString', 'hasOwnProperty', '__proto__', 'valueOf', '']) {
      expect(client.isEnabled(name, 'u1', true), name).toBe(true);
      expect(client.isEnabled(name, 'u1', false), name).toBe(false);
      expect(client.evaluate(name, 'u1')).toMatchObject({ reason: 'ERROR', errorCode: 'FLAG_NOT_FOUND' });
    }
    const hostile = {
      toString(): string {
        throw new Error('no');
      },
    };
    for (const bad of [hostile, Symbol('s'), 42, null, undefined, ['a']] as unknown as string[]) {
      expect(() => client.isEnabled(bad, 'u1', true)).not.toThrow();
      expect(client.isEnabled(bad, 'u1', true)).toBe(true);
      expect(client.evaluate(bad, 'u1')).toMatchObject({ value: false, reason: 'ERROR', errorCode: 'INVALID_ARGUMENT' });
    }
    await client.close();
  });

  test('client mode also names a hostile flag argument without throwing', async () => {
    const transport = new MemoryTransport();
    const client = createBrowserClient({ transport, timers: new ManualTimers() });
    const hostile = {
      toString(): string {
        throw new Error('no');
      },
    } as unknown as string;
    expect(client.evaluate(hostile, true)).toMatchObject({ value: true, reason: 'ERROR', errorCode: 'INVALID_ARGUMENT' });
    await client.close();
  });

  test('evaluation listeners see the hot path answers; a throwing listener changes nothing', async () => {
    const { client } = setup();
    await client.ready();
    const seen: Array<[string, boolean, string | null]> = [];
    client.onEvaluation((f, v, u) => seen.push([f, v, u]));
    client.onEvaluation(() => {
      throw new Error('listener bug');
    });
    const expected = evaluate({ name: 'a', enabled: true, rolloutPercentage: 50 }, 'u7').value;
    expect(client.isEnabled('a', 'u7')).toBe(expected);
    expect(seen).toEqual([['a', expected, 'u7']]);
    await client.close();
  });
});
