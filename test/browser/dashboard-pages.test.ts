// The dashboard's pages in headless Chromium against the in-memory twin of the admin API
// (component level: no guardian, no database), served by the guardian's createDashboardApp.
// The same scenarios run against the real guardian on PostgreSQL in dashboard-e2e.db.test.ts.
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { AdminApiTwin } from './dashboard/api-twin.ts';
import type { Backend, FlagTruth } from './dashboard/flows.ts';
import * as flows from './dashboard/flows.ts';
import { launch, serveWithDashboard, shot } from './dashboard/harness.ts';

const ADMIN = 'admin-token-0123456789abcdef';
const VIEWER = 'viewer-token-0123456789abcdef';

let browser: Browser;
let twin: AdminApiTwin;
let server: { url: string; close(): Promise<void> };
let backend: Backend;

beforeAll(async () => {
  browser = await launch();
  twin = new AdminApiTwin({ tokens: { [ADMIN]: { actor: 'admin-token', role: 'admin', via: 'admin_token' }, [VIEWER]: { actor: 'vera@example.com', role: 'viewer', via: 'supabase' } } });
  server = await serveWithDashboard(twin.app);
  const truth = (name: string): FlagTruth => {
    const f = twin.flags.get(name)!;
    return { enabled: f.enabled, rolloutPercentage: f.rolloutPercentage, version: f.version, guardState: f.guardState, targetCount: f.targets.size };
  };
  backend = {
    prefix: 'twin',
    url: server.url,
    adminToken: ADMIN,
    viewerToken: VIEWER,
    flag: async (name) => truth(name),
    setPercentageElsewhere: async (name, pct) => {
      const r = await fetch(`${server.url}/api/v1/flags/${name}`, { method: 'PATCH', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json', 'if-match': `"${truth(name).version}"` }, body: JSON.stringify({ rolloutPercentage: pct }) });
      expect(r.status).toBe(200);
    },
    triggerRollback: async (name) => {
      twin.rollback(name, 'auto_rollback', 'Flag-on error rate 9.0% is above the 5.0% threshold.', 'booking-agent-errors');
    },
  };
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
});

// Generous ceilings: each scenario drives real pages and waits on conditions, never on the clock.
describe('dashboard pages (API twin)', { timeout: 120_000 }, () => {
  test('sign in with the token: the seven core flags, search, axe, 360 and 1440 px', () => flows.seesCoreFlags(browser, backend));
  test('ai_beta_users 50 → 10 by keyboard: stored, and the SDK in another page gets it live', async () => {
    const ms = await flows.movesBetaTo10(browser, backend);
    console.log(`dashboard (twin): the SDK page saw ai_beta_users at 10% ${ms} ms after Save (goal ${flows.LIVE_MS} ms)`);
  });
  test('1,000 targets by paste, search, remove', () => flows.pastesThousandTargets(browser, backend));
  test('disable and re-enable with a confirmation naming the users affected', () => flows.disablesAndReenables(browser, backend));
  test('a rollback appears on the open Flags and Rollbacks pages without a reload; restore from the page', () => flows.rollbackShowsLiveAndRestores(browser, backend));
  test('a stale edit shows the conflict and retries on the new version', () => flows.staleEditShowsConflict(browser, backend));
  test('a viewer cannot change anything and is told why', () => flows.viewerCannotChange(browser, backend));

  test('the Guardian page: sources healthy or blind, last cycle, rules; axe, 360 and 1440 px', async () => {
    const page = await flows.open(browser, backend, ADMIN, '/admin/guardian');
    await page.getByText('Blind since').waitFor();
    const text = await page.locator('main').textContent();
    expect(text).toContain('Healthy');
    expect(text).toContain('Not configured');
    expect(text).toContain('rules/guardian.yaml');
    await flows.checkPage(page, 'twin-guardian', () => page.getByRole('heading', { name: 'Sources' }).waitFor());
    await page.close();
  });

  test('the Rollbacks page exports CSV and filters by kind', async () => {
    const page = await flows.open(browser, backend, ADMIN, '/admin/rollbacks');
    await page.locator('li.event').first().waitFor();
    const download = page.waitForEvent('download');
    await page.getByRole('button', { name: 'Export CSV' }).click();
    const file = await download;
    expect(file.suggestedFilename()).toMatch(/^rollback-events-.*\.csv$/);
    await page.getByLabel('Kind').selectOption('restore');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await expect.poll(async () => (await page.locator('li.event').count()) > 0 && (await page.locator('li.event:not(.kind-restore)').count()) === 0).toBe(true);
    await page.close();
  });

  test('a wrong token is refused in words', async () => {
    const page = await browser.newPage();
    await page.goto(`${server.url}/admin/`);
    await page.getByRole('textbox', { name: 'Admin token' }).fill('not-the-token');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').getByText('The token is not valid').waitFor();
    await shot(page, 'twin-signin-refused');
    await page.close();
  });
});

describe('hostile values (API twin)', { timeout: 120_000 }, () => {
  let hostileServer: { url: string; close(): Promise<void> };
  beforeAll(async () => {
    const hostile = new AdminApiTwin({ tokens: { [ADMIN]: { actor: flows.HOSTILE, role: 'admin', via: 'admin_token' } }, hostile: flows.HOSTILE });
    hostileServer = await serveWithDashboard(hostile.app);
  });
  afterAll(() => hostileServer?.close());

  test('a description, reason, user id and rules error of <img onerror> render as text on every page', async () => {
    const b = { ...backend, url: hostileServer.url };
    for (const path of ['/admin/', '/admin/flags/booking_agent_enabled', '/admin/rollbacks', '/admin/guardian']) {
      const page = await flows.open(browser, b, ADMIN, path);
      await flows.hostileRendersAsText(page, flows.HOSTILE, path);
      if (path === '/admin/flags/booking_agent_enabled') await page.getByRole('list', { name: 'Targeted user ids' }).getByText(flows.HOSTILE).waitFor();
      await shot(page, `twin-hostile-${path.split('/').filter(Boolean).join('-')}`);
      await page.close();
    }
  });
});
