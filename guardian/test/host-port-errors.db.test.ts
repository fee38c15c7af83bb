/**
 * A bad HOST is blamed on HOST and PORT errors show the value given: in the configuration check
 * (before anything is opened) and when the HTTP server cannot listen.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createTestPglite, type TestDatabase } from '../../test/helpers/db.ts';
import { loadConfig } from '../src/config.ts';
import { startDaemon } from '../src/daemon.ts';
import { silentLogger } from '../src/logger.ts';
import { SqlStore } from '../src/store/sql-store.ts';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestPglite();
});
afterAll(async () => {
  // The failed start closed the store it was given (and with it this database).
  await db.drop().catch(() => {});
});

describe('HOST and PORT', () => {
  it.each([
    [{ PORT: 'eighty' }, 'PORT: must be an integer port between 0 and 65535 (0 picks a free port), got "eighty"'],
    [{ PORT: '70000' }, 'PORT: must be an integer port between 0 and 65535 (0 picks a free port), got "70000"'],
    [{ HOST: 'http://localhost:8787' }, 'HOST: must be an IP address or host name to listen on (0.0.0.0: every interface, 127.0.0.1: this machine only), got "http://localhost:8787"'],
  ])('%j is refused naming the setting and the value', (env, message) => {
    expect(() => loadConfig(env)).toThrow(message);
  });

  it('an address this machine does not have is blamed on HOST, not PORT', async () => {
    const store = new SqlStore({ sql: db.sql, kind: 'pglite', location: 'memory' });
    const started = startDaemon({ env: { HOST: '203.0.113.7', PORT: '0' }, stdout: () => {}, store, logger: silentLogger(), watchRules: false });
    await expect(started).rejects.toThrow(/cannot listen on 203\.0\.113\.7:0 \(EADDRNOTAVAIL\): HOST=203\.0\.113\.7 is not an address of this machine/);
  });
});
