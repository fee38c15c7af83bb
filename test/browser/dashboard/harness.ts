/**
 * Shared parts of the dashboard's browser tests: headless Chromium, the guardian's dashboard
 * serving (createDashboardApp) beside an admin API on one origin, sign-in, screenshots under
 * test-results/dashboard/, axe-core and the no-horizontal-scroll check.
 */
import { serve } from '@hono/node-server';
import type { ServerType } from '@hono/node-server';
import { Hono } from 'hono';
import { mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import type { Browser, Page } from 'playwright-core';
import { createDashboardApp } from '../../../guardian/src/http/dashboard.ts';

export const SHOTS = fileURLToPath(new URL('../../../test-results/dashboard/', import.meta.url));

export function launch(): Promise<Browser> {
  return chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-background-networking', '--disable-gpu'] });
}

/** Serves `api` (a Hono app with /api/v1) and the dashboard at /admin on one free port. */
export async function serveWithDashboard(api: Hono): Promise<{ url: string; close(): Promise<void> }> {
  const root = new Hono();
  root.route('/admin', createDashboardApp());
  root.route('/', api);
  const server = await new Promise<ServerType>((resolve) => {
    const s = serve({ fetch: root.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(s));
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise((r) => {
      (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
      server.close(() => r());
    }),
  };
}

/** Opens /admin and signs in with a token as a person would (type it, press Enter). */
export async function signIn(page: Page, url: string, token: string, path = '/admin/'): Promise<void> {
  await page.goto(`${url}${path}`);
  await page.getByRole('textbox', { name: 'Admin token' }).fill(token);
  await page.getByRole('textbox', { name: 'Admin token' }).press('Enter');
  await page.getByRole('navigation', { name: 'Main' }).waitFor();
}

export async function shot(page: Page, name: string): Promise<string> {
  mkdirSync(SHOTS, { recursive: true });
  const path = `${SHOTS}${name}.png`;
  await page.screenshot({ path, fullPage: true });
  return path;
}

const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

export interface AxeViolation {
  readonly id: string;
  readonly impact: string | null;
  readonly help: string;
  readonly nodes: readonly string[];
}

/** axe-core's serious and critical violations on the page as it is now. */
export async function seriousViolations(page: Page): Promise<AxeViolation[]> {
  // Evaluated through the DevTools protocol: the page's CSP (own scripts only) stays in force.
  if (!(await page.evaluate(() => 'axe' in window))) await page.evaluate(AXE);
  return page.evaluate(async () => {
    const axe = (window as unknown as { axe: { run(ctx: Document, o: unknown): Promise<{ violations: { id: string; impact: string | null; help: string; nodes: { target: unknown[] }[] }[] }> } }).axe;
    const r = await axe.run(document, { resultTypes: ['violations'] });
    return r.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => JSON.stringify(n.target)) }));
  });
}

/** Whether the page scrolls sideways at its current width. */
export function horizontalOverflow(page: Page): Promise<{ scrollWidth: number; clientWidth: number }> {
  return page.evaluate(() => ({ scrollWidth: document.documentElement.scrollWidth, clientWidth: document.documentElement.clientWidth }));
}
