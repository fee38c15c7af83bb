/**
 * `guardian start` serves the admin API at /api/v1 beside its other routes: on PostgreSQL (the
 * stream fed by LISTEN on its own connection) and on the embedded PGlite (fed by its in-process
 * listen), with /status read from the running daemon (rules, sources, the last cycle), writes
 * audited with the caller, the OFREP stream when GUARDIAN_OFREP_KEY is set, and the admin token
 * never in the logs.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.ts';
import { startDaemon, type Daemon } from '../src/daemon.ts';
import { ADMIN_TOKEN, caller, OFREP_KEY, openStream } from './api-helpers.ts';
import { linesSink } from './cycle-helpers.ts';

describe.each(['pg', 'pglite'] as const)('guardian start serves the admin API (%s)', (backend) => {
  let db: TestDatabase | undefined;
  let dir: string;
  let daemon: Daemon | undefined;
  const logLines: string[] = [];
  const call = caller(() => `${daemon!.http.url}/api/v1`);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'guardian-api-'));
    writeFileSync(
      join(dir, 'rules.yaml'),
      'interval: 1m\nrules:\n  - id: beta-builtin\n    flags: [ai_beta_users]\n    source: builtin\n    condition: { absolute: { error_rate_above: 0.05 } }\n    action: notify_only\n',
    );
    if (backend === 'pg') db = await createTestDatabase();
    daemon = await startDaemon({
      env: {
        ...(db ? { DATABASE_URL: db.url } : { GUARDIAN_DATA_DIR: join(dir, 'data') }),
        RULES_FILE: join(dir, 'rules.yaml'),
        PORT: '0',
        HOST: '127.0.0.1',
        LOG_LEVEL: 'debug',
        GUARDIAN_ADMIN_TOKEN: ADMIN_TOKEN,
        GUARDIAN_OFREP_KEY: OFREP_KEY,
        GUARDIAN_ALLOWED_ORIGINS: 'https://admin.example.com',
      },
      stdout: () => {},
      logDestination: linesSink(logLines),
      watchRules: false,
    });
  });
  afterAll(async () => {
    await daemon?.stop();
    await db?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers /api/v1 with the daemon status, streams a change, and audits the caller', async () => {
    await vi.waitFor(() => expect(daemon!.lastCycleAt).not.toBeNull(), { timeout: 20_000 });
    const status = await call('GET', '/status');
    expect(status.status).toBe(200);
    expect(status.body).toMatchObject({ intervalMs: 60_000, rules: { count: 1, ids: ['beta-builtin'], lastReloadError: null }, lastCycle: expect.objectContaining({ ok: true }) });
    expect(status.body['sources']).toEqual(expect.arrayContaining([expect.objectContaining({ id: 'builtin' })]));
    expect((await call('GET', '/openapi.json', { token: null })).status).toBe(200);
    expect((await call('GET', '/flags', { token: null })).status).toBe(401);
    expect((await call('DELETE', '/me')).status).toBe(405);

    const stream = await openStream(`${daemon!.http.url}/api/v1/stream`, ADMIN_TOKEN);
    const ofrep = await openStream(`${daemon!.http.url}/ofrep/v1/stream`, OFREP_KEY);
    await vi.waitFor(() => expect(stream.comments).toContain('connected'));
    await vi.waitFor(() => expect(ofrep.comments).toContain('connected'));
    const v = ((await call('GET', '/flags/ai_beta_users')).body['flag'] as { version: number }).version;
    const patched = await call('PATCH', '/flags/ai_beta_users', { body: { rolloutPercentage: 7 }, ifMatch: v });
    expect(patched.status).toBe(200);
    await vi.waitFor(() => expect(stream.events.some((e) => e.event === 'flag' && e.data.includes('"rolloutPercentage":7'))).toBe(true), { timeout: 5000 });
    await vi.waitFor(() => expect(ofrep.events.some((e) => e.data.includes('"rolloutPercentage":7'))).toBe(true), { timeout: 5000 });
    const audit = await call('GET', '/flags/ai_beta_users/audit?limit=1');
    expect((audit.body['changes'] as { actor: string }[])[0]).toMatchObject({ actor: 'admin-token' });
    stream.close();
    ofrep.close();
    expect(logLines.join('\n')).not.toContain(ADMIN_TOKEN);
  });
});
