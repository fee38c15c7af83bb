// Preserving user state during a rollback (onRollback before the switch, bounded hold, safe
// points, urgent flags), spreading re-fetches (jitter, coalescing), and the OpenFeature providers'
// events, all with injected timers and random numbers: nothing here waits on a real clock.
import { OpenFeature as ServerOpenFeature, ProviderEvents, ProviderStatus } from '@openfeature/server-sdk';
import type { EventDetails } from '@openfeature/server-sdk';
import { OpenFeature as WebOpenFeature, ProviderEvents as WebEvents } from '@openfeature/web-sdk';
import { afterEach, describe, expect, test } from 'vitest';
import { createBrowserClient, createServerClient } from '../src/index.ts';
import type { EvaluatedFlagRecord, FlagRecord, RollbackEvent } from '../src/index.ts';
import { RollbackGuardianProvider } from '../src/openfeature/server.ts';
import { RollbackGuardianWebProvider } from '../src/openfeature/web.ts';
import { ROLLBACK_JITTER_MS } from '../src/client/internal/sync.ts';
import { flag, flush, ManualTimers, MemoryTransport, pub } from './helpers/memory-transport.ts';

const mine = (name: string, value: boolean, over: Partial<EvaluatedFlagRecord> = {}): EvaluatedFlagRecord => ({ name, value, reason: 'SPLIT', version: 1, guardState: 'watching', rollbackMessage: null, ...over });
const rolledBack = (version = 2, message: string | null = 'Paused for now') => mine('booking', false, { version, guardState: 'rolled_back', rollbackMessage: message, reason: 'DISABLED' });

async function browser(opts: { urgentFlags?: string[]; rollbackHoldMs?: number } = {}) {
  const transport = new MemoryTransport();
  transport.mine = [mine('booking', true), mine('other', false)];
  const timers = new ManualTimers();
  const client = createBrowserClient({ transport, timers, refetchJitterMs: 0, ...opts });
  await client.ready();
  return { transport, timers, client };
}

describe('onRollback: before the switch, bounded, with safe points', () => {
  test('a draft saved by the async hook is saved BEFORE the value flips; the message is plain text', async () => {
    const { transport, client } = await browser();
    const log: string[] = [];
    let finishSave!: () => void;
    client.onChange('booking', () => log.push(`flip:${client.isEnabled('booking')}`));
    client.onRollback(async (e) => {
      log.push(`rollback:${e.flag}:${e.message}:${client.isEnabled('booking')}`);
      await new Promise<void>((r) => (finishSave = r));
      log.push('draft saved');
    });
    transport.mine = [rolledBack(2, 'Paused\u0007 for now\u0000')];
    await client.refresh();
    expect(client.isEnabled('booking')).toBe(true); // still the old value while the hook saves
    finishSave();
    await flush();
    expect(log).toEqual(['rollback:booking:Paused for now:true', 'draft saved', 'flip:false']);
    expect(client.evaluate('booking')).toMatchObject({ value: false, rollbackMessage: 'Paused for now' });
  });

  test('the hold is bounded: a hook that never settles holds the switch rollbackHoldMs (default 2 s), no longer', async () => {
    const { transport, client, timers } = await browser();
    client.onRollback(() => new Promise(() => undefined));
    transport.mine = [rolledBack()];
    await client.refresh();
    await timers.advance(1_999);
    expect(client.isEnabled('booking')).toBe(true);
    await timers.advance(1);
    expect(client.isEnabled('booking')).toBe(false);
    expect(() => createBrowserClient({ transport, rollbackHoldMs: 10_001 })).toThrow(/rollbackHoldMs must be at most 10000/);
  });

  test('holdUntil keeps the old value until the safe point; urgent flags ignore it; a newer state cancels the hold', async () => {
    const { transport, client, timers } = await browser();
    let safe!: () => void;
    client.onRollback((e) => e.holdUntil(new Promise<void>((r) => (safe = r))));
    transport.mine = [rolledBack()];
    await client.refresh();
    await timers.advance(60_000);
    expect(client.isEnabled('booking')).toBe(true); // the user is mid-flow
    safe();
    await flush();
    expect(client.isEnabled('booking')).toBe(false);

    const urgent = await browser({ urgentFlags: ['booking'] });
    const seen: RollbackEvent[] = [];
    urgent.client.onRollback((e) => {
      seen.push(e);
      e.holdUntil(new Promise(() => undefined));
    });
    urgent.transport.mine = [rolledBack()];
    await urgent.client.refresh();
    expect(seen[0]?.urgent).toBe(true);
    expect(urgent.client.isEnabled('booking')).toBe(false);

    // A restore arriving while the switch is held wins: the flag simply stays on.
    const held = await browser();
    const rollbacks: string[] = [];
    held.client.onRollback((e) => {
      rollbacks.push(e.flag);
      e.holdUntil(new Promise(() => undefined));
    });
    held.transport.mine = [rolledBack()];
    await held.client.refresh();
    await held.client.refresh(); // the same rolled-back row again: still one announcement
    held.transport.mine = [mine('booking', true, { version: 3 })];
    await held.client.refresh();
    await held.timers.advance(400_000);
    expect(held.client.isEnabled('booking')).toBe(true);
    expect(rollbacks).toEqual(['booking']);
  });

  test('server mode holds the definition switch the same way', async () => {
    const transport = new MemoryTransport();
    transport.rows = [flag('booking')];
    const timers = new ManualTimers();
    const client = createServerClient({ transport, timers, refetchJitterMs: 0, rollbackHoldMs: 500 });
    await client.ready();
    client.onRollback(() => new Promise(() => undefined));
    const off = flag('booking', { enabled: false, version: 2, guardState: 'rolled_back', rollbackMessage: 'Back soon' });
    transport.push({ type: 'UPDATE', name: 'booking', version: 2, record: pub(off) });
    expect(client.isEnabled('booking', 'u1')).toBe(true);
    await timers.advance(500);
    expect(client.evaluate('booking', 'u1')).toMatchObject({ value: false, reason: 'DISABLED', rollbackMessage: 'Back soon' });
  });
});

describe('a fetch read before a rollback never undoes it', () => {
  /** Makes the transport's next load wait: it answers what it read now (before the change), when released. */
  function stallNextLoad(transport: MemoryTransport): () => void {
    const mine = transport.mine.map((r) => ({ ...r }));
    const rows = transport.rows.map((r) => ({ ...r }));
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const { loadMine, loadAll } = transport;
    transport.loadMine = async () => {
      transport.loadMine = loadMine;
      await gate;
      return mine;
    };
    transport.loadAll = async () => {
      transport.loadAll = loadAll;
      await gate;
      return rows;
    };
    return release;
  }
  const offRow = (over: Partial<FlagRecord> = {}) => flag('booking', { enabled: false, version: 2, guardState: 'rolled_back', rollbackMessage: 'Paused for now', ...over });

  test('client mode: an urgent rollback applied from the change stays applied; a held one stays held and then applies', async () => {
    // Urgent: switched at once from the change's row; the stale answer (version 1, on) arrives after.
    const urgent = await browser();
    const release = stallNextLoad(urgent.transport);
    const inFlight = urgent.client.refresh();
    urgent.transport.push({ type: 'UPDATE', name: 'booking', version: 2, record: pub(offRow({ rollbackUrgent: true })) });
    await flush();
    expect(urgent.client.isEnabled('booking')).toBe(false);
    release();
    expect(await inFlight).toBe(true);
    expect(urgent.client.evaluate('booking')).toMatchObject({ value: false, rollbackUrgent: true });

    // Held for a safe point: the stale answer neither switches it back nor cancels the hold.
    const held = await browser();
    let safe!: () => void;
    held.client.onRollback((e) => e.holdUntil(new Promise<void>((r) => (safe = r))));
    const releaseHeld = stallNextLoad(held.transport);
    const heldFetch = held.client.refresh();
    held.transport.push({ type: 'UPDATE', name: 'booking', version: 2, record: pub(offRow()) });
    releaseHeld();
    await heldFetch;
    expect(held.client.isEnabled('booking')).toBe(true); // still held: the user is mid-flow
    safe();
    await flush();
    expect(held.client.evaluate('booking')).toMatchObject({ value: false, rollbackMessage: 'Paused for now' });
  });

  test('server mode: the same for a held rollback', async () => {
    const transport = new MemoryTransport();
    transport.rows = [flag('booking')];
    const timers = new ManualTimers();
    const client = createServerClient({ transport, timers, refetchJitterMs: 0 });
    await client.ready();
    let safe!: () => void;
    client.onRollback((e) => e.holdUntil(new Promise<void>((r) => (safe = r))));
    const release = stallNextLoad(transport);
    const inFlight = client.refresh();
    transport.push({ type: 'UPDATE', name: 'booking', version: 2, record: pub(offRow()) });
    release();
    await inFlight;
    expect(client.isEnabled('booking', 'u1')).toBe(true);
    safe();
    await flush();
    expect(client.evaluate('booking', 'u1')).toMatchObject({ value: false, reason: 'DISABLED', rollbackMessage: 'Paused for now' });
  });
});

describe('no thundering herd', () => {
  test('a burst of changes is one fetch after a random delay below refetchJitterMs; a reconnect is spread too', async () => {
    const transport = new MemoryTransport();
    transport.mine = [mine('a', true)];
    const timers = new ManualTimers();
    const randoms = [0.75, 0.25];
    const client = createBrowserClient({ transport, timers, random: () => randoms.shift() ?? 0, refetchJitterMs: 2_000 });
    await client.ready();
    transport.status('live');
    await flush();
    const afterLive = transport.loads;
    for (let v = 2; v < 12; v++) transport.push({ type: 'UPDATE', name: 'a', version: v, record: null });
    await timers.advance(1_499);
    expect(transport.loads).toBe(afterLive); // 0.75 × 2000 ms not yet passed
    await timers.advance(1);
    expect(transport.loads).toBe(afterLive + 1); // ten changes, one fetch
    transport.status('down');
    transport.status('live'); // a reconnect: Realtime restarted for every client at once
    await flush();
    expect(transport.loads).toBe(afterLive + 1);
    await timers.advance(500); // 0.25 × 2000 ms
    expect(transport.loads).toBe(afterLive + 2);
  });

  test('a rollback that keeps the flag on for some users (a step back) is fetched within ROLLBACK_JITTER_MS, even after a slower fetch was scheduled', async () => {
    const transport = new MemoryTransport();
    transport.mine = [mine('a', true), mine('b', true)];
    const timers = new ManualTimers();
    const randoms = [0.9, 0.5];
    const client = createBrowserClient({ transport, timers, random: () => randoms.shift() ?? 0, refetchJitterMs: 2_000 });
    await client.ready();
    transport.status('live');
    await flush();
    const heard: string[] = [];
    client.onRollback((e) => {
      heard.push(e.flag);
    });
    const loads = transport.loads;
    // An ordinary change to b: its fetch is spread over the whole 2 s (0.9 × 2000 ms).
    transport.push({ type: 'UPDATE', name: 'b', version: 2, record: pub(flag('b', { version: 2, rolloutPercentage: 30 })) });
    // The guardian steps a back: still enabled, now rolled back; this user's value needs the database.
    transport.mine = [mine('a', false, { version: 2, guardState: 'rolled_back', reason: 'SPLIT' }), mine('b', true, { version: 2 })];
    transport.push({ type: 'UPDATE', name: 'a', version: 2, record: pub(flag('a', { version: 2, rolloutPercentage: 10, guardState: 'rolled_back' })) });
    await timers.advance(ROLLBACK_JITTER_MS * 0.5 - 1);
    expect(transport.loads).toBe(loads);
    await timers.advance(1); // 0.5 × 250 ms: one fetch for both changes
    await flush();
    expect(transport.loads).toBe(loads + 1);
    await timers.advance(2_000);
    expect(transport.loads).toBe(loads + 1);
    expect(heard).toEqual(['a']);
    expect(client.isEnabled('a')).toBe(false);
  });

  test('a rollback a transport knows only by its guard state (postgres notifications: no record) is fetched within ROLLBACK_JITTER_MS, in both modes', async () => {
    // Browser (client mode).
    const transport = new MemoryTransport();
    transport.mine = [mine('a', true)];
    const timers = new ManualTimers();
    const client = createBrowserClient({ transport, timers, random: () => 0.5, refetchJitterMs: 2_000 });
    await client.ready();
    transport.status('live');
    await flush();
    const loads = transport.loads;
    transport.mine = [mine('a', false, { version: 2, guardState: 'rolled_back', reason: 'SPLIT' })];
    transport.push({ type: 'UPDATE', name: 'a', version: 2, record: null, guardState: 'rolled_back' });
    await timers.advance(ROLLBACK_JITTER_MS * 0.5);
    await flush();
    expect(transport.loads).toBe(loads + 1);
    expect(client.isEnabled('a')).toBe(false);
    // An ordinary change without a record is still spread over the whole jitter.
    transport.push({ type: 'UPDATE', name: 'a', version: 3, record: null, guardState: 'rolled_back' }); // already rolled back: no hurry
    await timers.advance(ROLLBACK_JITTER_MS);
    expect(transport.loads).toBe(loads + 1);

    // Server mode.
    const st = new MemoryTransport();
    st.rows = [flag('booking')];
    const stimers = new ManualTimers();
    const server = createServerClient({ transport: st, timers: stimers, random: () => 0.5, refetchJitterMs: 2_000 });
    await server.ready();
    st.status('live');
    await flush();
    const sloads = st.loads;
    st.rows = [flag('booking', { enabled: true, rolloutPercentage: 10, version: 2, guardState: 'rolled_back' })];
    st.push({ type: 'UPDATE', name: 'booking', version: 2, record: null, guardState: 'rolled_back' });
    await stimers.advance(ROLLBACK_JITTER_MS * 0.5);
    await flush();
    expect(st.loads).toBe(sloads + 1);
  });

  test('a change that turns a flag off for everyone applies without any fetch', async () => {
    const transport = new MemoryTransport();
    transport.mine = [mine('a', true)];
    const client = createBrowserClient({ transport, timers: new ManualTimers() });
    await client.ready();
    const loads = transport.loads;
    transport.push({ type: 'UPDATE', name: 'a', version: 2, record: pub(flag('a', { enabled: false, version: 2 })) });
    expect(client.evaluate('a')).toMatchObject({ value: false, reason: 'DISABLED', version: 2 });
    expect(transport.loads).toBe(loads);
  });
});

describe('OpenFeature providers: events', () => {
  afterEach(async () => {
    await ServerOpenFeature.close();
    await WebOpenFeature.close();
  });

  test('one ConfigurationChanged per batch with the flag list; STALE when the feed is lost, READY when it is back', async () => {
    const transport = new MemoryTransport();
    transport.rows = [flag('a'), flag('b'), flag('c')];
    const client = createServerClient({ transport, timers: new ManualTimers(), refetchJitterMs: 0 });
    await ServerOpenFeature.setProviderAndWait(new RollbackGuardianProvider(client));
    const events: string[] = [];
    const changed: EventDetails[] = [];
    ServerOpenFeature.addHandler(ProviderEvents.ConfigurationChanged, (d) => changed.push(d!));
    ServerOpenFeature.addHandler(ProviderEvents.Stale, () => events.push('stale'));
    ServerOpenFeature.addHandler(ProviderEvents.Ready, () => events.push('ready'));
    events.length = 0; // (a Ready handler added to a ready provider runs at once)
    transport.status('live');
    await flush();
    transport.rows = [flag('a', { version: 2, enabled: false }), flag('b', { version: 2, rolloutPercentage: 10 }), flag('c')];
    await client.refresh();
    await flush();
    expect(changed.map((d) => d.flagsChanged)).toEqual([['a', 'b']]);
    transport.status('down');
    await flush();
    expect(ServerOpenFeature.getClient().providerStatus).toBe(ProviderStatus.STALE);
    transport.status('live');
    await flush();
    expect(events).toEqual(['stale', 'ready']);
    expect(ServerOpenFeature.getClient().providerStatus).toBe(ProviderStatus.READY);
  });

  test('PROVIDER_ERROR with a typed error when the first load fails with nothing cached', async () => {
    const transport = new MemoryTransport();
    transport.fail = new Error('database unreachable');
    const client = createServerClient({ transport, timers: new ManualTimers() });
    const errors: EventDetails[] = [];
    ServerOpenFeature.addHandler(ProviderEvents.Error, (d) => errors.push(d!));
    await expect(ServerOpenFeature.setProviderAndWait(new RollbackGuardianProvider(client))).rejects.toMatchObject({ name: 'ProviderNotReadyError', code: 'PROVIDER_NOT_READY' });
    expect(ServerOpenFeature.getClient().providerStatus).toBe(ProviderStatus.ERROR);
    expect(errors[0]?.message).toMatch(/first flag load failed and nothing is cached/);
    // The OpenFeature client answers with the default and says why (its published behaviour for a provider in ERROR).
    expect(await ServerOpenFeature.getClient().getBooleanDetails('a', true, { targetingKey: 'u1' })).toMatchObject({ value: true, errorCode: 'PROVIDER_NOT_READY' });
  });

  test('the web provider honours targetingKey: another user than the loaded one gets the default with INVALID_CONTEXT', async () => {
    const transport = new MemoryTransport();
    transport.userId = 'alice';
    transport.mine = [mine('beta', true)];
    const client = createBrowserClient({ transport, timers: new ManualTimers() });
    await WebOpenFeature.setContext({ targetingKey: 'alice' });
    await WebOpenFeature.setProviderAndWait(new RollbackGuardianWebProvider(client));
    const of = WebOpenFeature.getClient();
    expect(of.getBooleanDetails('beta', false)).toMatchObject({ value: true, reason: 'SPLIT' });
    const changed: string[][] = [];
    WebOpenFeature.addHandler(WebEvents.ConfigurationChanged, (d) => changed.push((d as { flagsChanged?: string[] } | undefined)?.flagsChanged ?? []));
    transport.userId = 'bob';
    transport.mine = [mine('beta', false, { version: 2 })];
    await WebOpenFeature.setContext({ targetingKey: 'bob' }); // a sign-in: the provider re-fetches bob's flags
    expect(of.getBooleanDetails('beta', true)).toMatchObject({ value: false });
    expect(changed).toEqual([['beta']]);
    await WebOpenFeature.setContext({ targetingKey: 'mallory' }); // but the session is still bob's
    expect(of.getBooleanDetails('beta', true)).toMatchObject({ value: true, errorCode: 'INVALID_CONTEXT' });
  });
});
