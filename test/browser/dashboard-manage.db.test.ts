// The dashboard's management pages end to end: the real guardian (startDaemon) on a throwaway
// database of the real PostgreSQL, with a release plan in its rules file and a scripted metric
// source; headless Chromium drives the Plans page (pause / resume / abort, live), Roll back now,
// and creating and deleting flags, as an admin, an editor and a viewer. Each check reads the
// database row behind the page.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startDaemon, type Daemon } from '../../guardian/src/daemon.ts';
import { linesSink, ScriptedSource } from '../../guardian/test/cycle-helpers.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { signJwt } from '../helpers/postgrest-double.ts';
import type { Backend } from './dashboard/flows.ts';
import * as flows from './dashboard/flows.ts';
import { launch, shot } from './dashboard/harness.ts';

const ADMIN_TOKEN = 'manage-admin-token-0123456789abcdef';
const JWT_SECRET = 'manage-supabase-jwt-secret-0123456789abcdef0123';

/** A Supabase Auth access token (HS256, as GoTrue signs them) with a guardian role. */
function supabaseToken(email: string, role: string): string {
  const now = Math.floor(Date.now() / 1000);
  return signJwt({ sub: `00000000-0000-4000-8000-${email.length.toString().padStart(12, '0')}`, email, role: 'authenticated', aud: 'authenticated', iat: now, exp: now + 3600, app_metadata: { role } }, JWT_SECRET);
}

describe('dashboard management (real guardian, real PostgreSQL, headless Chromium)', { timeout: 120_000 }, () => {
  let db: TestDatabase;
  let dir: string;
  let daemon: Daemon | undefined;
  let browser: Browser;
  let b: Backend;
  const EDITOR = supabaseToken('eddie@example.com', 'editor');
  const VIEWER = supabaseToken('vera@example.com', 'viewer');
  const logLines: string[] = [];

  const planRow = async (flag: string) => (await db.sql.query<{ status: string; updated_by: string }>('select status, updated_by from guardian_release_plans where flag_name = $1', [flag])).rows[0];
  const flagRow = async (name: string) =>
    (await db.sql.query<{ enabled: boolean; rollout_percentage: number; guard_state: string; bucket_group: string | null; description: string | null; updated_by: string | null }>('select enabled, rollout_percentage, guard_state, bucket_group, description, updated_by from feature_flags where name = $1', [name])).rows[0];

  beforeAll(async () => {
    db = await createTestDatabase();
    dir = mkdtempSync(join(tmpdir(), 'dashboard-manage-'));
    writeFileSync(
      join(dir, 'rules.yaml'),
      `
interval: 1s
defaults: { window: 1h, min_users: 100, consecutive: 1 }
sources:
  posthog: { host: https://posthog.example, project_id: "1", api_key: "\${POSTHOG_API_KEY}" }
rules:
  - id: beta-guard
    flags: [ai_beta_users]
    source: posthog
    condition: { relative: { max_increase: 0.01 } }
    action: notify_only
plans:
  - { flag: ai_beta_users, stages: [10, 50, 100], min_time: 6h, min_users: 500, guard: [beta-guard] }
`,
    );
    // Healthy counts: flag-on no worse than flag-off, not yet enough for a promotion (min_time 6h).
    const source = new ScriptedSource('posthog', () => ({ treatment: { total: 1200, errors: 12 }, control: { total: 1200, errors: 12 } }));
    daemon = await startDaemon({
      env: { DATABASE_URL: db.url, RULES_FILE: join(dir, 'rules.yaml'), PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'warn', POSTHOG_API_KEY: 'phx_manage_0123456789', GUARDIAN_ADMIN_TOKEN: ADMIN_TOKEN, SUPABASE_JWT_SECRET: JWT_SECRET },
      stdout: () => undefined,
      logDestination: linesSink(logLines),
      sources: new Map([['posthog', source]]),
      watchRules: false,
    });
    browser = await launch();
    b = {
      prefix: 'manage',
      url: daemon.http.url,
      adminToken: ADMIN_TOKEN,
      viewerToken: VIEWER,
      flag: async () => {
        throw new Error('not used here');
      },
      setPercentageElsewhere: async () => undefined,
      triggerRollback: async () => undefined,
    };
  });

  afterAll(async () => {
    await browser?.close();
    await daemon?.stop();
    await db?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('Plans page: stage, evidence and earliest promotion; pause from the page, resume elsewhere shows live; axe, 360 and 1440 px', async () => {
    // The guardian has looked at the plan at least once.
    await expect.poll(async () => (await planRow('ai_beta_users'))?.status, { timeout: 20_000 }).toBe('active');
    const page = await flows.open(browser, b, EDITOR, '/admin/');
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Plans' }).click();
    const card = page.locator('article[data-plan="ai_beta_users"]');
    await card.waitFor();
    await expect.poll(() => card.textContent(), { timeout: 15_000 }).toContain('flag-on users of the 500 needed');
    const text = (await card.textContent()) ?? '';
    expect(text).toContain('2 of 3 (50%)');
    expect(text).toMatch(/Safety(Shown safe|Not yet shown safe): flag-on 1\.00% \([\d,]+ of [\d,]+ users\) vs flag-off 1\.00%/);
    expect(text).toMatch(/evidence [\d.e+]+ of [\d.e+]+ needed \(margin 0\.50%, confidence 95%\)/);
    expect(text).toMatch(/beta-guard: no harm shown|beta-guard: too few users/);
    expect(text).toMatch(/Earliest promotion.*if the stage is shown safe by then/);
    expect(await card.locator('[data-plan-status]').getAttribute('data-plan-status')).toBe('active');
    // Resume is not possible from active: disabled, with the reason.
    const resume = card.getByRole('button', { name: 'Resume…' });
    expect(await resume.isDisabled()).toBe(true);
    expect(await resume.getAttribute('aria-describedby')).toBeTruthy();
    await flows.checkPage(page, 'manage-plans', () => card.waitFor());

    // Pause from the page, with a reason, confirmed.
    await card.getByRole('button', { name: 'Pause…' }).click();
    const dialog = page.getByRole('dialog', { name: 'Pause the plan of ai_beta_users?' });
    await dialog.getByLabel(/Reason/).fill('support is busy');
    expect(await dialog.textContent()).toContain('still rolls the flag back');
    await shot(page, 'manage-plan-pause-confirm');
    await dialog.getByRole('button', { name: 'Pause' }).click();
    await expect.poll(async () => (await planRow('ai_beta_users'))?.status, { timeout: 15_000 }).toBe('paused');
    expect((await planRow('ai_beta_users'))?.updated_by).toBe('eddie@example.com');
    await expect.poll(() => card.locator('[data-plan-status]').getAttribute('data-plan-status')).toBe('paused');
    expect(await card.textContent()).toContain('support is busy');

    // Someone else resumes it through the API: the open page shows it without a reload.
    const r = await fetch(`${b.url}/api/v1/plans/ai_beta_users/resume`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ reason: flows.HOSTILE, notify: false }) });
    expect(r.status).toBe(200);
    await expect.poll(() => card.locator('[data-plan-status]').getAttribute('data-plan-status'), { timeout: 15_000 }).toBe('active');
    // Its reason (a hostile one here) is text.
    await flows.hostileRendersAsText(page, flows.HOSTILE, 'plans page');
    await shot(page, 'manage-plans-live');
    await page.close();
  });

  test('the plan on its flag page; a viewer sees the plan controls disabled with the reason', async () => {
    const page = await flows.open(browser, b, VIEWER, '/admin/flags/ai_beta_users');
    const card = page.locator('article[data-plan="ai_beta_users"]');
    await card.waitFor();
    for (const name of ['Pause…', 'Resume…', 'Abort…']) expect(await card.getByRole('button', { name }).isDisabled(), name).toBe(true);
    expect(await card.textContent()).toContain('Needs the editor role; you are signed in as viewer (vera@example.com)');
    // The viewer cannot roll back, create or delete either.
    expect(await page.getByRole('button', { name: 'Roll back ai_beta_users now…' }).isDisabled()).toBe(true);
    expect(await page.getByRole('button', { name: 'Delete ai_beta_users…' }).isDisabled()).toBe(true);
    await flows.checkPage(page, 'manage-flag-plan-viewer', () => card.waitFor());
    await page.close();
  });

  test('Roll back now: a reason is required, the confirmation says who is affected and what happens; then the page shows the rollback and what restore brings back', async () => {
    const page = await flows.open(browser, b, EDITOR, '/admin/flags/booking_agent_enabled');
    await page.getByRole('heading', { name: 'booking_agent_enabled' }).waitFor();
    await page.getByRole('button', { name: 'Roll back booking_agent_enabled now…' }).click();
    const dialog = page.getByRole('dialog', { name: 'Roll back booking_agent_enabled now?' });
    await dialog.waitFor();
    expect(await dialog.textContent()).toMatch(/users|% of users/);
    expect(await dialog.getByRole('radio', { name: /Turn it off for everyone/ }).isChecked()).toBe(true);
    // No reason: refused in the dialog, nothing sent.
    await dialog.getByRole('button', { name: 'Turn off now' }).click();
    await dialog.getByText('Say why you roll it back').waitFor();
    expect((await flagRow('booking_agent_enabled'))?.enabled).toBe(true);
    await dialog.getByLabel(/Reason \(required/).fill('checkout errors reported by support');
    await flows.checkPage(page, 'manage-rollback-confirm', () => dialog.waitFor());
    await dialog.getByRole('button', { name: 'Turn off now' }).click();
    await expect.poll(async () => (await flagRow('booking_agent_enabled'))?.guard_state, { timeout: 15_000 }).toBe('rolled_back');
    expect((await flagRow('booking_agent_enabled'))?.enabled).toBe(false);
    const ev = (await db.sql.query<{ kind: string; actor: string; reason: string }>("select kind, actor, reason from rollback_events where flag_name = 'booking_agent_enabled' order by id desc limit 1")).rows[0];
    expect(ev).toEqual({ kind: 'manual_rollback', actor: 'eddie@example.com', reason: 'checkout errors reported by support' });
    const urgent = async (flag: string) => (await db.sql.query<{ u: boolean }>('select rollback_urgent as u from feature_flags where name = $1', [flag])).rows[0]?.u;
    expect(await urgent('booking_agent_enabled')).toBe(false); // not asked for
    // The page shows the rolled-back state and the restore preview.
    await page.getByRole('heading', { name: 'Restore will put back exactly' }).waitFor();
    const list = await page.locator('.restore-list').first().textContent();
    expect(list).toContain('Enabled: on');
    expect(await page.locator('.badges').textContent()).toContain('Rolled back');
    expect(await page.getByRole('button', { name: /Roll back booking_agent_enabled now/ }).count()).toBe(0);
    await page.getByText('Roll back booking_agent_enabled: done').waitFor();
    await flows.checkPage(page, 'manage-rolled-back', () => page.getByRole('heading', { name: 'Restore will put back exactly' }).waitFor());
    await page.close();
  });

  test('Roll back now, stepping back: the flag goes to its previous stage and is marked rolled back', async () => {
    // insights_agent_enabled was at 10% before its 50% (its history gives the previous stage).
    await db.sql.query("update feature_flags set rollout_percentage = 10 where name = 'insights_agent_enabled'");
    await db.sql.query("update feature_flags set rollout_percentage = 50 where name = 'insights_agent_enabled'");
    const page = await flows.open(browser, b, EDITOR, '/admin/flags/insights_agent_enabled');
    await page.getByRole('button', { name: 'Roll back insights_agent_enabled now…' }).click();
    const dialog = page.getByRole('dialog', { name: 'Roll back insights_agent_enabled now?' });
    await dialog.getByRole('radio', { name: /Step back to the previous rollout stage/ }).check();
    expect(await dialog.textContent()).toContain('It goes from 50% to its previous stage');
    await dialog.getByLabel(/Reason \(required/).fill('latency up at 50%');
    // Marked urgent: apps skip their users' safe points (the SDK side is tested in rollback-urgent.db).
    await dialog.getByRole('checkbox', { name: /Urgent: users must leave the feature at once/ }).check();
    await dialog.getByRole('button', { name: 'Step back now' }).click();
    await expect.poll(async () => (await flagRow('insights_agent_enabled'))?.guard_state, { timeout: 15_000 }).toBe('rolled_back');
    expect(await flagRow('insights_agent_enabled')).toMatchObject({ enabled: true, rollout_percentage: 10 });
    expect((await db.sql.query<{ u: boolean }>("select rollback_urgent as u from feature_flags where name = 'insights_agent_enabled'")).rows[0]?.u).toBe(true);
    await page.getByText('Marked urgent:').waitFor();
    await page.getByRole('heading', { name: 'Restore will put back exactly' }).waitFor();
    expect(await page.locator('.restore-list').first().textContent()).toContain('Rollout: 50% (now 10%)');
    await shot(page, 'manage-stepped-back');
    await page.close();
  });

  test('create a flag (admin): field errors from the API next to the field; created off; an editor sees it disabled with the reason', async () => {
    const editor = await flows.open(browser, b, EDITOR, '/admin/');
    const newButton = editor.getByRole('button', { name: 'New flag…' });
    await newButton.waitFor();
    expect(await newButton.isDisabled()).toBe(true);
    await editor.getByText(/Creating a flag needs the admin role; you are signed in as editor/).waitFor();
    await editor.close();

    const page = await flows.open(browser, b, ADMIN_TOKEN, '/admin/');
    await page.getByRole('button', { name: 'New flag…' }).click();
    await page.getByLabel('Name').fill('Checkout V2');
    await page.getByLabel('Bucket group (optional)').fill('checkout-group');
    await page.getByRole('button', { name: 'Create flag' }).click();
    // The API's words, next to each field (and the fields marked invalid).
    const nameError = page.locator('#new-name-error');
    await nameError.waitFor();
    expect(await nameError.textContent()).toContain('must match ^[a-z][a-z0-9_]{1,63}$');
    expect(await page.locator('#new-bucketGroup-error').textContent()).toContain('must match');
    expect(await page.getByLabel('Name').getAttribute('aria-invalid')).toBe('true');
    await flows.checkPage(page, 'manage-create-errors', () => nameError.waitFor());
    await page.getByLabel('Name').fill('checkout_v2');
    await page.getByLabel('Bucket group (optional)').fill('checkout');
    await page.getByLabel('Description (optional)').fill(flows.HOSTILE);
    await page.getByRole('button', { name: 'Create flag' }).click();
    await page.getByText('Created checkout_v2 (off, 0%).').waitFor();
    expect(await flagRow('checkout_v2')).toMatchObject({ enabled: false, rollout_percentage: 0, bucket_group: 'checkout', description: flows.HOSTILE, updated_by: 'admin-token' });
    await page.locator('tr[data-flag="checkout_v2"]').waitFor();
    await flows.hostileRendersAsText(page, flows.HOSTILE, 'flags page after create');
    // A taken name: the API's 409, next to the name.
    await page.getByRole('button', { name: 'New flag…' }).click();
    await page.getByLabel('Name').fill('checkout_v2');
    await page.getByRole('button', { name: 'Create flag' }).click();
    await nameError.waitFor();
    expect(await nameError.textContent()).toMatch(/checkout_v2/);
    await shot(page, 'manage-create-taken');
    await page.close();
  });

  test('delete a flag (admin): only when it is off, confirmed by typing its name', async () => {
    await db.sql.query("insert into feature_flags (name, enabled, rollout_percentage, description) values ('old_banner', false, 0, 'retired') on conflict do nothing");
    // An enabled flag cannot be deleted: the page says so.
    const page = await flows.open(browser, b, ADMIN_TOKEN, '/admin/flags/session_agent_enabled');
    const enabledDelete = page.getByRole('button', { name: 'Delete session_agent_enabled…' });
    await enabledDelete.waitFor();
    expect(await enabledDelete.isDisabled()).toBe(true);
    await page.getByText('Turn session_agent_enabled off before deleting it').waitFor();
    // An editor may not delete at all.
    const editor = await flows.open(browser, b, EDITOR, '/admin/flags/old_banner');
    expect(await editor.getByRole('button', { name: 'Delete old_banner…' }).isDisabled()).toBe(true);
    await editor.getByText(/Deleting a flag needs the admin role; you are signed in as editor/).waitFor();
    await editor.close();

    await page.goto(`${b.url}/admin/flags/old_banner`);
    await page.getByRole('button', { name: 'Delete old_banner…' }).click();
    const dialog = page.getByRole('dialog', { name: 'Delete old_banner?' });
    const confirm = dialog.getByRole('button', { name: 'Delete for good' });
    expect(await confirm.isDisabled()).toBe(true);
    await dialog.getByLabel('Flag name').fill('old_banne');
    expect(await confirm.isDisabled()).toBe(true);
    await dialog.getByLabel('Flag name').fill('old_banner');
    expect(await confirm.isDisabled()).toBe(false);
    await flows.checkPage(page, 'manage-delete-confirm', () => dialog.waitFor());
    await confirm.click();
    await page.getByText('Deleted old_banner.').waitFor();
    expect(await flagRow('old_banner')).toBeUndefined();
    expect(await page.locator('tr[data-flag="old_banner"]').count()).toBe(0);
    await shot(page, 'manage-deleted');
    await page.close();
  });
});
