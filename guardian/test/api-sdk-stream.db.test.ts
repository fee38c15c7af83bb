/**
 * The SDK's streamTransport against the real admin API (PGlite): a server client loads every
 * flag with its targets from the API, hears a change made by SQL through the stream, and
 * re-fetches everything after a `reset` and after a reconnect (the Realtime rule).
 */
import { createServerClient } from '@rollback-guardian/sdk';
import { streamTransport } from '@rollback-guardian/sdk/stream';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

import { ADMIN_TOKEN, startApi, type ApiHarness } from './api-helpers.ts';

describe('SDK streamTransport', () => {
  let api: ApiHarness;
  beforeAll(async () => {
    api = await startApi('pglite');
  });
  afterAll(() => api?.close());

  it('loads from the API, follows the stream, and re-fetches after a reset and a reconnect', async () => {
    let loads = 0;
    const counting: typeof fetch = (input, init) => {
      if (String(input instanceof Request ? input.url : input).endsWith('/api/v1/flags')) loads++;
      return fetch(input, init);
    };
    await api.sql.query(`insert into flag_targets (flag_name, user_id) values ('ai_beta_users', 'target-7')`);
    await api.sql.query(`update feature_flags set enabled = true, rollout_percentage = 0 where name = 'ai_beta_users'`);
    const client = createServerClient({ transport: streamTransport({ url: api.base, token: ADMIN_TOKEN, fetch: counting }), ttlMs: 3_600_000, pollIntervalMs: 3_600_000 });
    try {
      await client.ready(10_000);
      await vi.waitFor(() => expect(client.getFlag('ai_beta_users')?.targets).toEqual(['target-7']));
      expect(client.isEnabled('ai_beta_users', 'target-7')).toBe(true);
      expect(client.isEnabled('ai_beta_users', 'someone-else')).toBe(false);
      await vi.waitFor(() => expect(api.hub.clients).toBe(1));

      await api.sql.query(`update feature_flags set rollout_percentage = 100 where name = 'ai_beta_users'`);
      await vi.waitFor(() => expect(client.isEnabled('ai_beta_users', 'someone-else')).toBe(true), { timeout: 10_000 });

      const before = loads;
      api.hub.publish('reset', {});
      // Re-fetches are spread with the SDK's default jitter (up to 2 s).
      await vi.waitFor(() => expect(loads).toBeGreaterThan(before), { timeout: 10_000 });

      // The server drops every stream: the transport reconnects with Last-Event-ID and re-fetches.
      const beforeReconnect = loads;
      api.hub.disconnectAll();
      await vi.waitFor(() => expect(loads).toBeGreaterThan(beforeReconnect), { timeout: 10_000 });
      await vi.waitFor(() => expect(api.hub.clients).toBe(1));
      await api.sql.query(`update feature_flags set rollout_percentage = 0 where name = 'ai_beta_users'`);
      await vi.waitFor(() => expect(client.isEnabled('ai_beta_users', 'someone-else')).toBe(false), { timeout: 10_000 });
    } finally {
      await client.close();
    }
  });
});
