// The dashboard end to end, as a new user would use it: the real guardian (startDaemon, as
// `guardian start` runs it) on a throwaway database of the real PostgreSQL, serving the admin API
// and the dashboard at /admin on one port, headless Chromium driving the pages. A scripted
// metric source (the guardian's MetricSource interface) makes the guardian roll a flag back.
// The scenarios are shared with the API-twin tests (dashboard/flows.ts).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startDaemon, type Daemon } from '../../guardian/src/daemon.ts';
import { linesSink, ScriptedSource } from '../../guardian/test/cycle-helpers.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { signJwt } from '../helpers/postgrest-double.ts';
import type { Backend, FlagTruth } from './dashboard/flows.ts';
import * as flows from './dashboard/flows.ts';
import { launch, shot } from './dashboard/harness.ts';

const ADMIN_TOKEN = 'e2e-admin-token-0123456789abcdef';
const JWT_SECRET = 'e2e-supabase-jwt-secret-0123456789abcdef0123';

/** A Supabase Auth access token (HS256, as GoTrue signs them) for a viewer. */
function supabaseToken(email: string, role: string): string {
  const now = Math.floor(Date.now() / 1000);
  return signJwt({ sub: '00000000-0000-4000-8000-0000000000v1', email, role: 'authenticated', aud: 'authenticated', iat: now, exp: now + 3600, app_metadata: { role } }, JWT_SECRET);
}

describe('dashboard end to end (real guardian, real PostgreSQL, headless Chromium)', { timeout: 120_000 }, () => {
  let db: TestDatabase;
  let dir: string;
  let daemon: Daemon | undefined;
  let browser: Browser;
  let backend: Backend;
  let breach = false;
  const logLines: string[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
    dir = mkdtempSync(join(tmpdir(), 'dashboard-e2e-'));
    writeFileSync(
      join(dir, 'rules.yaml'),
      `
interval: 1s
defaults: { window: 1h, min_users: 100, consecutive: 1 }
sources:
  posthog: { host: https://posthog.example, project_id: "1", api_key: "\${POSTHOG_API_KEY}" }
rules:
  - id: booking-agent-errors
    flags: [booking_agent_enabled]
    source: posthog
    condition: { absolute: { error_rate_above: 0.05 } }
    action: disable
`,
    );
    const source = new ScriptedSource('posthog', () =>
      breach ? { treatment: { total: 1000, errors: 300 }, control: { total: 3000, errors: 30 } } : { treatment: { total: 1000, errors: 10 }, control: { total: 3000, errors: 30 } },
    );
    daemon = await startDaemon({
      env: { DATABASE_URL: db.url, RULES_FILE: join(dir, 'rules.yaml'), PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'warn', POSTHOG_API_KEY: 'phx_e2e_0123456789', GUARDIAN_ADMIN_TOKEN: ADMIN_TOKEN, SUPABASE_JWT_SECRET: JWT_SECRET },
      stdout: () => undefined,
      logDestination: linesSink(logLines),
      sources: new Map([['posthog', source]]),
      watchRules: false,
    });
    browser = await launch();
    const truth = async (name: string): Promise<FlagTruth> => {
      const r = await db.sql.query<{ enabled: boolean; rollout_percentage: number; version: string; guard_state: string; targets: string }>(
        `select enabled, rollout_percentage, version::text, guard_state, (select count(*)::text from flag_targets t where t.flag_name = f.name) as targets from feature_flags f where name = $1`,
        [name],
      );
      const row = r.rows[0]!;
      return { enabled: row.enabled, rolloutPercentage: row.rollout_percentage, version: Number(row.version), guardState: row.guard_state, targetCount: Number(row.targets) };
    };
    backend = {
      prefix: 'e2e',
      url: daemon.http.url,
      adminToken: ADMIN_TOKEN,
      viewerToken: supabaseToken('vera@example.com', 'viewer'),
      flag: truth,
      // Someone else, elsewhere: a raw SQL update (the trigger bumps the version and announces it).
      setPercentageElsewhere: async (name, pct) => {
        await db.sql.query(`update feature_flags set rollout_percentage = $2 where name = $1`, [name, pct]);
      },
      triggerRollback: async (name) => {
        breach = true;
        await expect.poll(async () => (await truth(name)).guardState, { timeout: 15_000, interval: 50 }).toBe('rolled_back');
        breach = false;
      },
    };
  });

  afterAll(async () => {
    await browser?.close();
    await daemon?.stop();
    await db?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('sign in with the token and see the seven core flags (search, axe, 360 and 1440 px)', () => flows.seesCoreFlags(browser, backend));
  test('ai_beta_users 50 → 10: the database row changes and the SDK in another page gets it live', async () => {
    const ms = await flows.movesBetaTo10(browser, backend);
    console.log(`dashboard e2e: the SDK page saw ai_beta_users at 10% ${ms} ms after Save (goal ${flows.LIVE_MS} ms)`);
  });
  test('add 1,000 targets by paste', () => flows.pastesThousandTargets(browser, backend));
  test('disable and re-enable a flag', () => flows.disablesAndReenables(browser, backend));
  test('a guardian rollback appears on the open Flags and Rollbacks pages without a reload; restore it from the page', () => flows.rollbackShowsLiveAndRestores(browser, backend));
  test('a stale edit shows the conflict', () => flows.staleEditShowsConflict(browser, backend));
  test('a viewer cannot change anything', () => flows.viewerCannotChange(browser, backend));

  test('the Guardian page on the real daemon (axe, 360 and 1440 px)', async () => {
    const page = await flows.open(browser, backend, ADMIN_TOKEN, '/admin/guardian');
    await page.getByText('booking-agent-errors').first().waitFor();
    await flows.checkPage(page, 'e2e-guardian', () => page.getByRole('heading', { name: 'Sources' }).waitFor());
    await page.close();
  });

  test('hostile description, reason and user id render as text', async () => {
    const base = backend.url;
    const auth = { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' };
    const flag = await backend.flag('followup_agent_enabled');
    let r = await fetch(`${base}/api/v1/flags/followup_agent_enabled`, { method: 'PATCH', headers: { ...auth, 'if-match': `"${flag.version}"` }, body: JSON.stringify({ description: flows.HOSTILE, rollbackMessage: flows.HOSTILE }) });
    expect(r.status).toBe(200);
    const v = ((await r.json()) as { flag: { version: number } }).flag.version;
    r = await fetch(`${base}/api/v1/flags/followup_agent_enabled/targets`, { method: 'POST', headers: { ...auth, 'if-match': `"${v}"` }, body: JSON.stringify({ add: [flows.HOSTILE] }) });
    expect(r.status).toBe(200);
    r = await fetch(`${base}/api/v1/flags/followup_agent_enabled/rollback`, { method: 'POST', headers: auth, body: JSON.stringify({ reason: flows.HOSTILE, notify: false }) });
    expect(r.status).toBe(200);
    for (const path of ['/admin/', '/admin/flags/followup_agent_enabled', '/admin/rollbacks']) {
      const page = await flows.open(browser, backend, ADMIN_TOKEN, path);
      await flows.hostileRendersAsText(page, flows.HOSTILE, path);
      await shot(page, `e2e-hostile-${path.split('/').filter(Boolean).join('-')}`);
      await page.close();
    }
  });
});
