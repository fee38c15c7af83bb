// Supabase Auth sign-in in the dashboard, run for real: the guardian (startDaemon) on a throwaway
// database of the real PostgreSQL with SUPABASE_URL / SUPABASE_ANON_KEY / SUPABASE_JWT_SECRET
// pointing at a GoTrue-shaped double (test/helpers/gotrue-double.ts), headless Chromium signing in
// through supabase-js as people would: email and password, a magic link, a wrong password, a
// viewer, signing out, and a session that expires.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startDaemon, type Daemon } from '../../guardian/src/daemon.ts';
import { linesSink, ScriptedSource } from '../../guardian/test/cycle-helpers.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { startGoTrueDouble, type GoTrueDouble } from '../helpers/gotrue-double.ts';
import * as flows from './dashboard/flows.ts';
import { launch, shot } from './dashboard/harness.ts';

const JWT_SECRET = 'supabase-e2e-jwt-secret-0123456789abcdef0123';
const ADMIN_TOKEN = 'supabase-e2e-admin-token-0123456789abcdef';

describe('dashboard sign-in with Supabase Auth (GoTrue double, real guardian, real PostgreSQL, Chromium)', { timeout: 120_000 }, () => {
  let db: TestDatabase;
  let dir: string;
  let daemon: Daemon | undefined;
  let auth: GoTrueDouble;
  let browser: Browser;
  let url: string;
  const logLines: string[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
    auth = await startGoTrueDouble({
      jwtSecret: JWT_SECRET,
      users: [
        { email: 'eddie@example.com', password: 'correct horse battery', role: 'editor' },
        { email: 'vera@example.com', password: 'viewer password 123', role: 'viewer' },
        { email: 'mia@example.com', password: 'unused password 123', role: 'editor' },
      ],
    });
    dir = mkdtempSync(join(tmpdir(), 'dashboard-supabase-'));
    writeFileSync(
      join(dir, 'rules.yaml'),
      `
interval: 1s
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
    daemon = await startDaemon({
      env: {
        DATABASE_URL: db.url,
        RULES_FILE: join(dir, 'rules.yaml'),
        PORT: '0',
        HOST: '127.0.0.1',
        LOG_LEVEL: 'warn',
        POSTHOG_API_KEY: 'phx_supabase_0123456789',
        GUARDIAN_ADMIN_TOKEN: ADMIN_TOKEN,
        SUPABASE_URL: auth.url,
        SUPABASE_ANON_KEY: auth.anonKey,
        SUPABASE_JWT_SECRET: JWT_SECRET,
      },
      stdout: () => undefined,
      logDestination: linesSink(logLines),
      sources: new Map([['posthog', new ScriptedSource('posthog', () => ({ treatment: { total: 1000, errors: 10 }, control: { total: 3000, errors: 30 } }))]]),
      watchRules: false,
    });
    url = daemon.http.url;
    browser = await launch();
  });

  afterAll(async () => {
    await browser?.close();
    await daemon?.stop();
    await auth?.close();
    await db?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function newPage(): Promise<Page> {
    const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
    const page = await context.newPage();
    page.on('pageerror', (e) => {
      throw new Error(`page error: ${e.message}`);
    });
    return page;
  }

  const accountForm = (page: Page) => page.getByRole('form', { name: 'With your account' });

  async function signInWithPassword(page: Page, email: string, password: string): Promise<void> {
    await page.goto(`${url}/admin/`);
    const form = accountForm(page);
    await form.getByLabel('Email').fill(email);
    await form.getByLabel('Password').fill(password);
    await form.getByRole('button', { name: 'Sign in' }).click();
  }

  test('an editor signs in with email and password and turns a flag off: the row changes and the actor is the user (sign-in page: axe, 360 and 1440 px)', async () => {
    const page = await newPage();
    await page.goto(`${url}/admin/`);
    await accountForm(page).waitFor();
    await flows.checkPage(page, 'supabase-signin', () => accountForm(page).waitFor());
    await signInWithPassword(page, 'eddie@example.com', 'correct horse battery');
    await page.getByRole('navigation', { name: 'Main' }).waitFor();
    expect(await page.locator('.me').textContent()).toContain('eddie@example.com');
    expect(await page.locator('.me').getAttribute('data-role')).toBe('editor');
    expect(auth.requests).toContain('POST /auth/v1/token?grant_type=password');

    await page.locator('tr[data-flag="insights_agent_enabled"]').getByRole('link').click();
    await page.getByRole('button', { name: 'Turn off…' }).click();
    await page.getByRole('dialog', { name: 'Turn off insights_agent_enabled?' }).getByRole('button', { name: 'Turn off' }).click();
    await expect.poll(async () => (await db.sql.query<{ enabled: boolean }>("select enabled from feature_flags where name = 'insights_agent_enabled'")).rows[0]?.enabled, { timeout: 15_000 }).toBe(false);
    const row = (await db.sql.query<{ updated_by: string }>("select updated_by from feature_flags where name = 'insights_agent_enabled'")).rows[0];
    expect(row?.updated_by).toBe('eddie@example.com');
    const change = (await db.sql.query<{ actor: string }>("select actor from flag_changes where flag_name = 'insights_agent_enabled' order by id desc limit 1")).rows[0];
    expect(change?.actor).toBe('eddie@example.com');
    await shot(page, 'supabase-editor-changed');
    await page.context().close();
  });

  test('a wrong password shows GoTrue’s message in words', async () => {
    const page = await newPage();
    await signInWithPassword(page, 'eddie@example.com', 'not the password');
    const alert = page.getByRole('alert');
    await alert.getByText('Could not sign in: Invalid login credentials').waitFor();
    expect(await page.getByRole('navigation', { name: 'Main' }).count()).toBe(0);
    await flows.checkPage(page, 'supabase-wrong-password', () => alert.waitFor());
    await page.context().close();
  });

  test('a viewer signed in through Supabase sees the controls disabled, with the reason', async () => {
    const page = await newPage();
    await signInWithPassword(page, 'vera@example.com', 'viewer password 123');
    await page.getByText('You can look but not change anything').waitFor();
    await page.goto(`${url}/admin/flags/ai_ga_enabled`);
    await page.getByRole('heading', { name: 'ai_ga_enabled' }).waitFor();
    for (const name of ['Turn off…', 'Save percentage', 'Lock', 'Roll back ai_ga_enabled now…', 'Delete ai_ga_enabled…']) expect(await page.getByRole('button', { name }).isDisabled(), name).toBe(true);
    await page.getByText(/Needs the editor role; you are signed in as viewer \(vera@example.com\)/).first().waitFor();
    await shot(page, 'supabase-viewer');
    await page.context().close();
  });

  test('magic link: request it, the double records the link, open it: signed in; then sign out', async () => {
    const page = await newPage();
    await page.goto(`${url}/admin/`);
    const form = accountForm(page);
    await form.getByLabel('Email').fill('mia@example.com');
    await form.getByRole('button', { name: 'Email me a sign-in link' }).click();
    await page.getByText('A sign-in link is on its way to mia@example.com').waitFor();
    const link = auth.magicLinks.find((l) => l.email === 'mia@example.com');
    expect(link?.redirectTo).toBe(`${url}/admin/`);
    await page.goto(link!.url);
    await page.getByRole('navigation', { name: 'Main' }).waitFor();
    await expect.poll(() => page.locator('.me').textContent()).toContain('mia@example.com');
    // The tokens are not left in the address bar (supabase-js clears them once it holds the session).
    await expect.poll(() => new URL(page.url()).hash).toBe('');
    await shot(page, 'supabase-magic-link-signed-in');

    // A reload keeps the session (supabase-js keeps it); signing out ends it, at GoTrue too.
    await page.reload();
    await page.getByRole('navigation', { name: 'Main' }).waitFor();
    await page.getByRole('button', { name: 'Sign out' }).click();
    await accountForm(page).waitFor();
    await expect.poll(() => auth.requests.some((r) => r.startsWith('POST /auth/v1/logout'))).toBe(true);
    await page.reload();
    await accountForm(page).waitFor();
    expect(await page.getByRole('navigation', { name: 'Main' }).count()).toBe(0);
    expect(await page.getByRole('alert').count()).toBe(0);
    // A used link does not work twice: GoTrue's words are shown.
    await page.goto(link!.url);
    await page.getByRole('alert').getByText(/The sign-in link did not work: Email link is invalid or has expired/).waitFor();
    await shot(page, 'supabase-link-used');
    await page.context().close();
  });

  test('an access token the guardian finds expired leads back to sign-in with a message', async () => {
    const page = await newPage();
    await signInWithPassword(page, 'eddie@example.com', 'correct horse battery');
    await page.getByRole('navigation', { name: 'Main' }).waitFor();
    // The stored session now holds an access token that expired a minute ago, while the page
    // still believes it good for an hour (a clock the guardian disagrees with).
    const expired = auth.accessToken('eddie@example.com', -60);
    await page.evaluate((token) => {
      const key = 'rollback-guardian.supabase-auth';
      const s = JSON.parse(localStorage.getItem(key) ?? '{}') as Record<string, unknown>;
      localStorage.setItem(key, JSON.stringify({ ...s, access_token: token }));
    }, expired);
    await page.reload();
    const alert = page.getByRole('alert').filter({ hasText: 'Your session has ended' });
    await alert.waitFor();
    expect(await alert.textContent()).toMatch(/expired/);
    await accountForm(page).waitFor();
    await shot(page, 'supabase-expired-guardian');
    await page.context().close();
  });

  test('a session Supabase cannot renew (short-lived token, refresh revoked) leads back to sign-in with a message', async () => {
    auth.accessTokenTtl = 5;
    try {
      const page = await newPage();
      await signInWithPassword(page, 'eddie@example.com', 'correct horse battery');
      await page.getByRole('navigation', { name: 'Main' }).waitFor();
      auth.revokeAllSessions();
      // supabase-js keeps a session whose refresh failed while its access token is still good;
      // once the token has really expired, the next request needs a refresh GoTrue refuses.
      const expiresAt = await page.evaluate(() => (JSON.parse(localStorage.getItem('rollback-guardian.supabase-auth') ?? '{}') as { expires_at?: number }).expires_at ?? 0);
      expect(expiresAt).toBeGreaterThan(0);
      await expect.poll(() => Date.now() > expiresAt * 1000 + 500, { timeout: 15_000, interval: 200 }).toBe(true);
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Rollbacks' }).click();
      const alert = page.getByRole('alert').filter({ hasText: 'Your session has ended: it expired and Supabase Auth could not renew it' });
      await alert.waitFor();
      await accountForm(page).waitFor();
      expect(auth.requests).toContain('POST /auth/v1/token?grant_type=refresh_token');
      await shot(page, 'supabase-expired-refresh');
      await page.context().close();
    } finally {
      auth.accessTokenTtl = 3600;
    }
  });
});
