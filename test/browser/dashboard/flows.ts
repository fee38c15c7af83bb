/**
 * The dashboard scenarios, written once as a person would use the pages (roles and labels, the
 * keyboard where it matters), run against the in-memory API twin (dashboard-pages.test.ts) and
 * against the real guardian on PostgreSQL (dashboard-e2e.db.test.ts). A Backend says how to read
 * the truth behind the page and how to change it behind the page's back.
 */
import { expect } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { bucket } from '../../../sdk/src/index.ts';
import { horizontalOverflow, seriousViolations, shot, signIn } from './harness.ts';

export interface FlagTruth {
  readonly enabled: boolean;
  readonly rolloutPercentage: number;
  readonly version: number;
  readonly guardState: string;
  readonly targetCount: number;
}

export interface Backend {
  /** Screenshot name prefix (`twin` or `e2e`). */
  readonly prefix: string;
  readonly url: string;
  readonly adminToken: string;
  readonly viewerToken: string;
  /** The flag as stored (the database row for the real guardian). */
  flag(name: string): Promise<FlagTruth>;
  /** Someone else changes the percentage (not through this page). */
  setPercentageElsewhere(name: string, pct: number): Promise<void>;
  /** The guardian rolls the flag back (its test source breaches). */
  triggerRollback(name: string): Promise<void>;
}

/**
 * The goal: a change made anywhere shows on an open page within this long. The tests print how long
 * it took and wait up to {@link WAIT_MS} (a bound for a hang, not the goal: on a loaded two-core
 * machine a page may wait for a CPU), so a slow machine is never a failure and the figure is read.
 */
export const LIVE_MS = 1_000;
export const WAIT_MS = 15_000;

export async function open(browser: Browser, b: Backend, token: string, path = '/admin/', width = 1440): Promise<Page> {
  const page = await browser.newPage({ viewport: { width, height: 900 } });
  page.on('pageerror', (e) => {
    throw new Error(`page error: ${e.message}`);
  });
  await signIn(page, b.url, token, path);
  return page;
}

/** axe (no serious/critical), no sideways scroll at 1440 and 360 px, a screenshot at each. */
export async function checkPage(page: Page, name: string, ready: () => Promise<unknown>): Promise<void> {
  for (const width of [1440, 360]) {
    await page.setViewportSize({ width, height: 900 });
    await ready();
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
    expect(await seriousViolations(page), `${name} at ${width}px`).toEqual([]);
    const o = await horizontalOverflow(page);
    expect(o.scrollWidth, `${name} scrolls sideways at ${width}px`).toBeLessThanOrEqual(o.clientWidth);
    await shot(page, `${name}-${width}`);
  }
  await page.setViewportSize({ width: 1440, height: 900 });
}

export const CORE_FLAGS = ['ai_alpha_users', 'ai_beta_users', 'ai_ga_enabled', 'booking_agent_enabled', 'session_agent_enabled', 'insights_agent_enabled', 'followup_agent_enabled'];

export async function seesCoreFlags(browser: Browser, b: Backend): Promise<void> {
  const page = await open(browser, b, b.adminToken);
  for (const name of CORE_FLAGS) await expect.poll(() => page.locator(`tr[data-flag="${name}"]`).count()).toBe(1);
  await expect.poll(() => page.locator('[data-stream="live"]').count()).toBe(1);
  await checkPage(page, `${b.prefix}-flags`, () => page.locator('tr[data-flag="ai_beta_users"] .spark, tr[data-flag="ai_beta_users"] .small').first().waitFor());
  // Search and filter.
  await page.getByRole('searchbox', { name: 'Search flags' }).fill('agent');
  await expect.poll(() => page.locator('tr[data-flag]').count()).toBe(4);
  await page.getByRole('searchbox', { name: 'Search flags' }).fill('');
  await page.close();
}

/** A user whose bucket in ai_rollout is in 11..50: on at 50%, off at 10%. */
export function userBetween10And50(): string {
  for (let i = 0; ; i++) {
    const b = bucket('ai_rollout', `user-${i}`);
    if (b > 10 && b <= 50) return `user-${i}`;
  }
}

export async function movesBetaTo10(browser: Browser, b: Backend): Promise<number> {
  const user = userBetween10And50();
  // Another page: the SDK (useFeatureFlag) evaluating for one user, live from the stream.
  const sdkPage = await open(browser, b, b.adminToken, `/admin/preview?user=${encodeURIComponent(user)}`);
  const sdkValue = sdkPage.locator('[data-preview-flag="ai_beta_users"]');
  await expect.poll(() => sdkValue.getAttribute('data-value')).toBe('on');
  await expect.poll(() => sdkPage.locator('[data-stream="live"]').count()).toBe(1);

  const page = await open(browser, b, b.adminToken, '/admin/flags/ai_beta_users');
  await page.getByRole('heading', { name: 'ai_beta_users' }).waitFor();
  expect((await b.flag('ai_beta_users')).rolloutPercentage).toBe(50);
  // Keyboard only: focus the 10% stage button, press it, then Save.
  await page.getByRole('group', { name: 'Stages' }).getByRole('button', { name: '10%' }).focus();
  await page.keyboard.press('Enter');
  expect(await page.getByLabel('Rollout percentage, any value from 0 to 100').inputValue()).toBe('10');
  await page.getByRole('button', { name: 'Save percentage' }).focus();
  const savedAt = Date.now();
  await page.keyboard.press('Enter');
  await expect.poll(async () => (await b.flag('ai_beta_users')).rolloutPercentage, { timeout: 15_000, interval: 20 }).toBe(10);
  await expect.poll(() => sdkValue.getAttribute('data-value'), { timeout: WAIT_MS, interval: 10 }).toBe('off');
  const sdkMs = Date.now() - savedAt;
  await page.getByText('Set ai_beta_users to 10%: done').waitFor();
  await checkPage(page, `${b.prefix}-flag-page`, () => page.locator('.chart:not(.compact) canvas').first().waitFor());
  await shot(sdkPage, `${b.prefix}-sdk-preview`);
  await sdkPage.close();
  await page.close();
  return sdkMs;
}

export async function pastesThousandTargets(browser: Browser, b: Backend): Promise<void> {
  const page = await open(browser, b, b.adminToken, '/admin/flags/session_agent_enabled');
  const before = (await b.flag('session_agent_enabled')).targetCount;
  const ids = Array.from({ length: 1000 }, (_, i) => `pasted-user-${String(i).padStart(4, '0')}`);
  const box = page.getByRole('textbox', { name: 'Add user ids' });
  await box.focus();
  // A paste, as the clipboard delivers it: one insertText of the whole text.
  await page.keyboard.insertText(`${ids.join('\n')}\n${ids.slice(0, 5).join(', ')}`);
  await page.getByText('1,000 ids ready (5 duplicates dropped).').waitFor();
  await page.getByRole('button', { name: 'Add 1,000 ids' }).click();
  await expect.poll(async () => (await b.flag('session_agent_enabled')).targetCount, { timeout: 10_000 }).toBe(before + 1000);
  await page.getByText('Add 1,000 targets: done').waitFor();
  await page.getByRole('searchbox', { name: 'Search targets' }).fill('pasted-user-0999');
  await page.getByRole('list', { name: 'Targeted user ids' }).getByText('pasted-user-0999').waitFor();
  await page.getByRole('button', { name: 'Remove pasted-user-0999' }).click();
  await expect.poll(async () => (await b.flag('session_agent_enabled')).targetCount, { timeout: 10_000 }).toBe(before + 999);
  await shot(page, `${b.prefix}-targets`);
  await page.close();
}

export async function disablesAndReenables(browser: Browser, b: Backend): Promise<void> {
  const page = await open(browser, b, b.adminToken, '/admin/flags/insights_agent_enabled');
  await page.getByRole('button', { name: 'Turn off…' }).click();
  const dialog = page.getByRole('dialog', { name: 'Turn off insights_agent_enabled?' });
  await dialog.waitFor();
  // The confirmation says how many users it affects.
  expect(await dialog.textContent()).toMatch(/users|% of users/);
  await shot(page, `${b.prefix}-toggle-confirm`);
  await dialog.getByRole('button', { name: 'Turn off' }).click();
  await expect.poll(async () => (await b.flag('insights_agent_enabled')).enabled, { timeout: 15_000 }).toBe(false);
  await page.getByRole('button', { name: 'Turn on…' }).click();
  const on = page.getByRole('dialog', { name: 'Turn on insights_agent_enabled?' });
  await on.waitFor();
  await page.keyboard.press('Enter'); // the confirm button has the focus
  await expect.poll(async () => (await b.flag('insights_agent_enabled')).enabled, { timeout: 15_000 }).toBe(true);
  await shot(page, `${b.prefix}-toggled`);
  await page.close();
}

export async function rollbackShowsLiveAndRestores(browser: Browser, b: Backend): Promise<void> {
  const flags = await open(browser, b, b.adminToken);
  const rollbacks = await open(browser, b, b.adminToken, '/admin/rollbacks');
  const row = flags.locator('tr[data-flag="booking_agent_enabled"]');
  await row.waitFor();
  await expect.poll(() => row.textContent()).toContain('Watching');
  for (const p of [flags, rollbacks]) await expect.poll(() => p.locator('[data-stream="live"]').count()).toBe(1);
  const before = await rollbacks.locator('li.event').count();

  await b.triggerRollback('booking_agent_enabled');
  const at = Date.now();
  await expect.poll(() => row.textContent(), { timeout: WAIT_MS, interval: 20 }).toContain('Rolled back');
  await expect.poll(() => rollbacks.locator('li.event.kind-auto_rollback').count(), { timeout: WAIT_MS, interval: 20 }).toBeGreaterThan(0);
  expect(await rollbacks.locator('li.event').count()).toBeGreaterThan(before);
  const seenMs = Date.now() - at;
  const event = rollbacks.locator('li.event.kind-auto_rollback').first();
  await event.getByText('Evidence').click();
  expect(await event.textContent()).toMatch(/Flag on/);
  await checkPage(rollbacks, `${b.prefix}-rollbacks`, () => event.waitFor());
  await shot(flags, `${b.prefix}-flags-rolled-back`);

  // Restore from the page: it says exactly what comes back.
  await event.getByRole('link', { name: 'Restore booking_agent_enabled on its page →' }).click();
  await rollbacks.getByRole('heading', { name: 'Restore will put back exactly' }).waitFor();
  const list = await rollbacks.locator('.restore-list').first().textContent();
  expect(list).toContain('Enabled: on');
  expect(list).toContain('Rollout: 25%');
  await rollbacks.getByRole('button', { name: 'Restore booking_agent_enabled…' }).click();
  const dialog = rollbacks.getByRole('dialog', { name: 'Restore booking_agent_enabled?' });
  await dialog.getByRole('button', { name: 'Restore' }).click();
  await expect.poll(async () => (await b.flag('booking_agent_enabled')).guardState, { timeout: 15_000 }).toBe('watching');
  expect((await b.flag('booking_agent_enabled')).enabled).toBe(true);
  await expect.poll(() => row.textContent(), { timeout: WAIT_MS }).toContain('Watching');
  await shot(rollbacks, `${b.prefix}-restored`);
  console.log(`dashboard (${b.prefix}): the rollback showed on the open pages ${seenMs} ms after it was made`);
  await flags.close();
  await rollbacks.close();
}

export async function staleEditShowsConflict(browser: Browser, b: Backend): Promise<void> {
  const page = await open(browser, b, b.adminToken, '/admin/flags/ai_alpha_users');
  await page.getByRole('heading', { name: 'ai_alpha_users' }).waitFor();
  const start = await b.flag('ai_alpha_users');
  // The person starts an edit on what they see…
  await page.getByLabel('Rollout percentage, any value from 0 to 100').fill('30');
  // …someone else changes the flag meanwhile…
  await b.setPercentageElsewhere('ai_alpha_users', 20);
  await page.getByText('the flag changed since you started').waitFor({ timeout: 15_000 });
  // …and the save made on the old version is refused, showing what changed.
  await page.getByRole('button', { name: 'Save percentage' }).click();
  const conflict = page.getByRole('alert').filter({ hasText: 'Someone changed this flag while you were editing' });
  await conflict.waitFor();
  const text = await conflict.textContent();
  expect(text).toContain(`made on version ${start.version}`);
  expect(text).toMatch(/Rollout percentage\s*10\s*20/);
  expect((await b.flag('ai_alpha_users')).rolloutPercentage).toBe(20);
  await shot(page, `${b.prefix}-conflict`);
  await conflict.getByRole('button', { name: /Apply my change to version/ }).click();
  await expect.poll(async () => (await b.flag('ai_alpha_users')).rolloutPercentage, { timeout: 15_000 }).toBe(30);
  await page.close();
}

export async function viewerCannotChange(browser: Browser, b: Backend): Promise<void> {
  const page = await open(browser, b, b.viewerToken, '/admin/flags/ai_ga_enabled');
  await page.getByRole('heading', { name: 'ai_ga_enabled' }).waitFor();
  await page.getByText('You can look but not change anything').waitFor();
  const writes: string[] = [];
  page.on('request', (r) => {
    if (r.method() !== 'GET') writes.push(`${r.method()} ${r.url()}`);
  });
  for (const name of ['Turn off…', 'Save percentage', 'Save message', 'Lock', 'Add ids']) {
    expect(await page.getByRole('button', { name }).isDisabled(), name).toBe(true);
  }
  for (const name of ['10%', '50%', '100%']) expect(await page.getByRole('group', { name: 'Stages' }).getByRole('button', { name }).isDisabled(), name).toBe(true);
  expect(await page.getByLabel('Rollout percentage slider').isDisabled()).toBe(true);
  expect(await page.getByRole('textbox', { name: 'Add user ids' }).isDisabled()).toBe(true);
  // The reason is given next to the controls.
  expect(await page.getByText(/Needs the editor role; you are signed in as viewer/).count()).toBeGreaterThan(0);
  await page.getByRole('button', { name: 'Turn off…' }).click({ force: true }).catch(() => undefined);
  expect(writes).toEqual([]);
  expect((await b.flag('ai_ga_enabled')).enabled).toBe(true);
  await checkPage(page, `${b.prefix}-viewer`, () => page.getByRole('heading', { name: 'ai_ga_enabled' }).waitFor());
  await page.close();
}

/** The hostile string renders as text everywhere it appears; no element or script comes of it. */
export async function hostileRendersAsText(page: Page, hostile: string, where: string): Promise<void> {
  await expect.poll(() => page.evaluate(() => document.body.innerText)).toContain(hostile);
  expect(await page.evaluate(() => document.querySelectorAll('img').length), where).toBe(0);
  expect(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned), where).toBeUndefined();
}

export const HOSTILE = '<img src=x onerror="window.__pwned=1">';
