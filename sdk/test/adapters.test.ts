import { OpenFeature as ServerOpenFeature, ErrorCode } from '@openfeature/server-sdk';
import { OpenFeature as WebOpenFeature } from '@openfeature/web-sdk';
import * as Sentry from '@sentry/node';
import type { ErrorEvent, Event as SentryEvent } from '@sentry/node';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import { PostHog } from 'posthog-node';
import { createElement } from 'react';
import { renderToString } from 'react-dom/server';
import { afterAll, describe, expect, test } from 'vitest';
import { createBrowserClient, createServerClient } from '../src/index.ts';
import { RollbackGuardianProvider } from '../src/openfeature/server.ts';
import { RollbackGuardianWebProvider } from '../src/openfeature/web.ts';
import { flagProperties, instrumentPostHog } from '../src/posthog/index.ts';
import { FlagsProvider, useFeatureFlag } from '../src/react/index.ts';
import { trackFlagsInSentry } from '../src/sentry/index.ts';
import { flag, flush, ManualTimers, MemoryTransport } from './helpers/memory-transport.ts';

function serverClient() {
  const transport = new MemoryTransport();
  transport.rows = [flag('on_flag'), flag('off_flag', { enabled: false }), flag('vip', { rolloutPercentage: 0, targets: ['u1'] })];
  return { transport, client: createServerClient({ transport, timers: new ManualTimers() }) };
}

describe('OpenFeature server provider', () => {
  afterAll(() => ServerOpenFeature.close());
  test('boolean resolution with reasons and error codes', async () => {
    const { client } = serverClient();
    await ServerOpenFeature.setProviderAndWait(new RollbackGuardianProvider(client));
    const of = ServerOpenFeature.getClient();
    expect(await of.getBooleanDetails('vip', false, { targetingKey: 'u1' })).toMatchObject({ value: true, reason: 'TARGETING_MATCH' });
    expect(await of.getBooleanDetails('on_flag', false, { targetingKey: 'u2' })).toMatchObject({ value: true, reason: 'SPLIT', flagMetadata: { version: 1 } });
    expect(await of.getBooleanDetails('off_flag', true, { targetingKey: 'u2' })).toMatchObject({ value: false, reason: 'DISABLED' });
    expect(await of.getBooleanDetails('missing', true, { targetingKey: 'u2' })).toMatchObject({ value: true, reason: 'ERROR', errorCode: ErrorCode.FLAG_NOT_FOUND });
    expect(await of.getBooleanDetails('on_flag', false, {})).toMatchObject({ value: false, reason: 'ERROR', errorCode: ErrorCode.TARGETING_KEY_MISSING });
    expect(await of.getStringDetails('on_flag', 'x', { targetingKey: 'u2' })).toMatchObject({ value: 'x', reason: 'ERROR', errorCode: ErrorCode.TYPE_MISMATCH });
  });

  test('PROVIDER_NOT_READY before the first load', async () => {
    const transport = new MemoryTransport();
    transport.loadAll = () => new Promise(() => undefined); // never loads
    const provider = new RollbackGuardianProvider(createServerClient({ transport, timers: new ManualTimers() }));
    expect(await provider.resolveBooleanEvaluation('on_flag', true, { targetingKey: 'u1' })).toMatchObject({ value: true, errorCode: ErrorCode.PROVIDER_NOT_READY });
  });
});

describe('OpenFeature web provider', () => {
  afterAll(() => WebOpenFeature.close());
  test('resolves the user\'s flags and re-fetches on context change', async () => {
    const transport = new MemoryTransport();
    transport.mine = [{ name: 'beta', value: false, reason: 'SPLIT', version: 1, guardState: 'watching', rollbackMessage: null }];
    await WebOpenFeature.setProviderAndWait(new RollbackGuardianWebProvider(createBrowserClient({ transport, timers: new ManualTimers() })));
    const of = WebOpenFeature.getClient();
    expect(of.getBooleanDetails('beta', true)).toMatchObject({ value: false, reason: 'SPLIT' });
    expect(of.getNumberDetails('beta', 3)).toMatchObject({ value: 3, errorCode: 'TYPE_MISMATCH' });
    transport.mine = [{ name: 'beta', value: true, reason: 'TARGETING_MATCH', version: 1, guardState: 'watching', rollbackMessage: null }];
    transport.userId = 'someone-else'; // the sign-in that comes with the new context
    await WebOpenFeature.setContext({ targetingKey: 'someone-else' });
    expect(of.getBooleanDetails('beta', false)).toMatchObject({ value: true, reason: 'TARGETING_MATCH' });
  });
});

describe('React', () => {
  test('useFeatureFlag renders the default on the server snapshot and values from a loaded client', async () => {
    const transport = new MemoryTransport();
    transport.mine = [{ name: 'beta', value: true, reason: 'SPLIT', version: 1, guardState: 'watching', rollbackMessage: null }];
    const client = createBrowserClient({ transport, timers: new ManualTimers() });
    function Badge() {
      return createElement('span', null, useFeatureFlag('beta', false) ? 'beta-on' : 'beta-off');
    }
    // SSR: getServerSnapshot → the default, whatever the client holds.
    await client.ready();
    expect(renderToString(createElement(FlagsProvider, { client }, createElement(Badge)))).toContain('beta-off');
    expect(renderToString(createElement(Badge))).toContain('beta-off');
    // With the server's snapshot handed to the provider, the server render shows the real value.
    expect(renderToString(createElement(FlagsProvider, { client: null, snapshot: { beta: true } }, createElement(Badge)))).toContain('beta-on');
  });

  test('the store contract useFeatureFlag subscribes to notifies on a rollback', async () => {
    const { client, transport } = serverClient();
    await client.ready();
    const snapshots: boolean[] = [];
    const off = client.subscribe(() => snapshots.push(client.isEnabled('on_flag', 'u2')));
    transport.push({ type: 'UPDATE', name: 'on_flag', version: 2, record: { name: 'on_flag', enabled: false, rolloutPercentage: 100, bucketGroup: null, version: 2, guardState: 'rolled_back', rollbackMessage: 'x' } });
    off();
    expect(snapshots).toContain(false);
  });
});

describe('Sentry adapter (real @sentry/node, events captured in-process)', () => {
  test('errors and transactions carry flag.<name> tags; errors carry contexts.flags', async () => {
    const errors: ErrorEvent[] = [];
    const transactions: SentryEvent[] = [];
    Sentry.init({
      dsn: 'https://public@o0.ingest.sentry.io/1',
      integrations: [Sentry.featureFlagsIntegration()],
      tracesSampleRate: 1,
      // Classic transactions (what the guardian's `dataset=transactions` query counts); v11's
      // default span streaming carries the flags as `flag.evaluation.<name>` span attributes.
      traceLifecycle: 'static',
      beforeSend: (e) => {
        errors.push(e);
        return null;
      },
      beforeSendTransaction: (e) => {
        transactions.push(e);
        return null;
      },
    });
    const { client } = serverClient();
    await client.ready();
    const stop = trackFlagsInSentry(client, Sentry);
    Sentry.withIsolationScope(() => {
      Sentry.startSpan({ name: 'GET /book' }, () => {
        client.isEnabled('on_flag', 'u2');
        client.isEnabled('vip', 'u2');
        Sentry.captureException(new Error('booking failed'));
      });
    });
    // The OpenTelemetry span exporter hands finished root spans over in batches; give it a beat.
    for (let i = 0; i < 40 && transactions.length === 0; i++) {
      await Sentry.flush(100);
      await new Promise((r) => setTimeout(r, 50));
    }
    stop();
    expect(errors).toHaveLength(1);
    expect(errors[0]?.tags).toMatchObject({ 'flag.on_flag': 'true', 'flag.vip': 'false' });
    expect(errors[0]?.contexts?.['flags']).toEqual({ values: [{ flag: 'on_flag', result: true }, { flag: 'vip', result: false }] });
    expect(transactions).toHaveLength(1);
    expect(transactions[0]?.tags).toMatchObject({ 'flag.on_flag': 'true', 'flag.vip': 'false' });
    // The evaluated user rides on both, so the guardian can count users on both sides.
    expect(errors[0]?.user).toMatchObject({ id: 'u2' });
    expect(transactions[0]?.user).toMatchObject({ id: 'u2' });
    await Sentry.close();
  });
});

describe('PostHog adapter (real posthog-node against a local /batch/ endpoint)', () => {
  test('capture and captureException carry $feature/<name> for the distinctId', async () => {
    const batches: { batch: { event: string; distinct_id: string; properties: Record<string, unknown> }[] }[] = [];
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const raw = Buffer.concat(chunks);
        const body = req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw;
        if (req.url?.startsWith('/batch')) batches.push(JSON.parse(body.toString('utf8')));
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":1}');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const host = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const posthog = new PostHog('phc_test', { host, flushAt: 1, flushInterval: 0, disableCompression: true });
    const { client } = serverClient();
    await client.ready();
    const undo = instrumentPostHog(posthog, client);
    try {
      posthog.capture({ distinctId: 'u1', event: 'booked', properties: { plan: 'pro' } });
      posthog.captureException(new Error('agent crashed'), 'u2', { where: 'agent' });
      await posthog.flush();
      await posthog.shutdown();
      const events = batches.flatMap((b) => b.batch);
      const booked = events.find((e) => e.event === 'booked');
      const exception = events.find((e) => e.event === '$exception');
      expect(booked?.properties).toMatchObject({ plan: 'pro', '$feature/on_flag': true, '$feature/off_flag': false, '$feature/vip': true });
      expect(exception?.properties).toMatchObject({ where: 'agent', '$feature/on_flag': true, '$feature/vip': false, $active_feature_flags: ['on_flag'] });
      expect(exception?.distinct_id).toBe('u2');
    } finally {
      undo();
      server.close();
    }
  });

  test('posthog-js: registers super properties and re-registers on change', async () => {
    const transport = new MemoryTransport();
    transport.mine = [{ name: 'beta', value: true, reason: 'SPLIT', version: 1, guardState: 'watching', rollbackMessage: null }];
    const client = createBrowserClient({ transport, timers: new ManualTimers() });
    await client.ready();
    const registered: Record<string, unknown>[] = [];
    instrumentPostHog({ register: (p) => void registered.push(p) }, client);
    transport.mine = [{ name: 'beta', value: false, reason: 'DISABLED', version: 2, guardState: 'rolled_back', rollbackMessage: null }];
    await client.refresh();
    await flush();
    expect(registered[0]).toEqual(flagProperties({ beta: true }));
    expect(registered.at(-1)).toEqual(flagProperties({ beta: false }));
  });
});
