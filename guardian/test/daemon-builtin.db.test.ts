/**
 * The builtin source end to end, in one process: the real daemon (`startDaemon`, as `guardian
 * start` runs it) on a throwaway database of the real PostgreSQL with `GUARDIAN_INGEST_KEY` set
 * and a rule with `source: builtin`. Exposures POSTed to /v1/exposures (as the SDK's reporter or
 * curl would) are counted from the database, the rule judges them and turns the flag off, with the
 * counts as evidence; the key never reaches the logs.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.ts';
import { startDaemon, type Daemon } from '../src/daemon.ts';
import { linesSink } from './cycle-helpers.ts';
import { waitFor } from './notify-helpers.ts';

const KEY = 'daemon-ingest-key-0123456789abcdef';
const FLAG = 'booking_agent_enabled';

const RULES = `
interval: 2s
defaults: { window: 1h, min_users: 100, consecutive: 1 }
rules:
  - id: booking-builtin
    flags: [${FLAG}]
    source: builtin
    condition: { absolute: { error_rate_above: 0.05 } }
    action: disable
`;

describe('guardian start with GUARDIAN_INGEST_KEY: the builtin source (real PostgreSQL)', () => {
  let db: TestDatabase;
  let dir: string;
  let daemon: Daemon | undefined;
  const logLines: string[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
    dir = mkdtempSync(join(tmpdir(), 'guardian-builtin-'));
    writeFileSync(join(dir, 'rules.yaml'), RULES);
  });
  afterAll(async () => {
    await daemon?.stop();
    await db?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('accepts exposures at POST /v1/exposures and a builtin rule judges them: flag off with the counts as evidence', async () => {
    const banner: string[] = [];
    daemon = await startDaemon({
      env: { DATABASE_URL: db.url, RULES_FILE: join(dir, 'rules.yaml'), PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'debug', GUARDIAN_INGEST_KEY: KEY },
      stdout: (t) => void banner.push(t),
      logDestination: linesSink(logLines),
      watchRules: false,
    });
    const text = banner.join('');
    expect(text).toContain(`POST ${daemon.http.url}/v1/exposures (SDK exposures)`);
    expect(text).toContain('builtin configured (SDK exposures at POST /v1/exposures)');
    expect(text).toMatch(/rule booking-builtin: error rate > 0.05 via builtin → disable; flags booking_agent_enabled \(on 25%, watching\)$/m);

    // First cycle: nothing reported yet, nothing happens.
    await waitFor(() => daemon!.lastCycleAt !== null, 10_000, 'first cycle');
    const post = (exposures: unknown[], key = KEY) =>
      fetch(`${daemon!.http.url}/v1/exposures`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` }, body: JSON.stringify({ exposures }) });
    expect((await post([{ flag: FLAG, user: 'u', value: true }], 'wrong-key-0123456789')).status).toBe(401);

    // 400 flag-on users, 80 of them fail; 1200 flag-off users, 12 fail: in batches of 800.
    const all = [
      ...Array.from({ length: 400 }, (_, i) => ({ flag: FLAG, user: `on-${i}`, value: true, error: i < 80 })),
      ...Array.from({ length: 1200 }, (_, i) => ({ flag: FLAG, user: `off-${i}`, value: false, error: i < 12 })),
    ];
    for (let i = 0; i < all.length; i += 800) {
      const res = await post(all.slice(i, i + 800));
      expect(res.status).toBe(202);
      expect(await res.json()).toEqual({ accepted: 800 });
    }

    await waitFor(async () => (await db.sql.query<{ enabled: boolean }>('select enabled from feature_flags where name = $1', [FLAG])).rows[0]?.enabled === false, 10_000, 'flag off');
    const events = await db.sql.query<{ kind: string; rule_id: string; source: string; evidence: Record<string, unknown> }>(
      'select kind, rule_id, source, evidence from rollback_events where flag_name = $1',
      [FLAG],
    );
    expect(events.rows).toHaveLength(1);
    expect(events.rows[0]).toMatchObject({ kind: 'auto_rollback', rule_id: 'booking-builtin', source: 'builtin', evidence: { treatment: { total: 400, errors: 80 } } });
    const raw = await db.sql.query<{ n: number }>("select count(*)::int as n from guardian_exposures where user_key like 'on-%' or user_key like 'off-%'");
    expect(raw.rows[0]?.n).toBe(0); // only hashes are stored

    // The counter moves after the rollback's transaction commits: wait for it, do not race it.
    const scrape = async () => (await fetch(`${daemon!.http.url}/metrics`)).text();
    await waitFor(async () => /guardian_rollbacks_total\{flag="booking_agent_enabled",action="disable"\} 1/.test(await scrape()), 10_000, 'rollback counted');
    const metrics = await scrape();
    expect(metrics).toMatch(/guardian_exposures_total\{result="accepted"\} 1600/);
    expect(metrics).toMatch(/guardian_exposure_requests_total\{status="401"\} 1/);
    expect(metrics).toMatch(/guardian_rollbacks_total\{flag="booking_agent_enabled",action="disable"\} 1/);
    await daemon.stop();
    expect(logLines.join('')).not.toContain(KEY);
  }, 60_000);
});
