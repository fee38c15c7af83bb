// examples/web from the PACKED SDK: the example is copied into a fresh project where the tarball is
// installed (third-party packages linked from the repository's node_modules, same pinned versions),
// built by Vite (client + SSR bundles, as `npm run build` does), served by its own server.mjs, and
// driven in headless Chromium against the real PostgreSQL through the Supabase doubles. The page is
// server-rendered with the user's values and hydrates without a mismatch; a rollback in the database
// flips the button without a reload and shows the rollback message as a dismissible plain-text
// notice; a restore flips it back.
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { cpSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createTestDatabase } from '../../../test/helpers/db.ts';
import type { TestDatabase } from '../../../test/helpers/db.ts';
import { installedApp, REPO_ROOT } from '../../../test/helpers/sdk-tarball.ts';
import { jwt, SupabaseDouble } from '../../../sdk/test/helpers/supabase-double.ts';

const run = promisify(execFile);
const EXAMPLE = fileURLToPath(new URL('..', import.meta.url));
const QA = '00000000-0000-4000-8000-00000000a001'; // a target of booking_agent_enabled in the seed
const NODE = join(REPO_ROOT, 'node_modules/node/bin/node');

let db: TestDatabase;
let double: SupabaseDouble;
let app: { dir: string; remove(): void };
let server: ChildProcess;
let url: string;
let browser: Browser;

beforeAll(async () => {
  db = await createTestDatabase();
  double = await SupabaseDouble.start(db.url, { liveDelayMs: 100 });
  app = await installedApp({ links: ['react', 'react-dom', '@supabase', 'vite'] });
  cpSync(EXAMPLE, app.dir, { recursive: true, filter: (src) => !src.includes('/test') && !src.includes('node_modules') && !src.endsWith('package.json') });
  const vite = join(REPO_ROOT, 'node_modules/vite/bin/vite.js');
  await run(NODE, [vite, 'build', '--outDir', 'dist/client', '--logLevel', 'warn'], { cwd: app.dir });
  await run(NODE, [vite, 'build', '--ssr', 'src/entry-server.tsx', '--outDir', 'dist/server', '--logLevel', 'warn'], { cwd: app.dir });
  server = spawn(NODE, ['server.mjs'], {
    cwd: app.dir,
    env: { PATH: process.env['PATH'] ?? '', PORT: '0', SUPABASE_URL: double.url, SUPABASE_ANON_KEY: jwt({ role: 'anon' }), SUPABASE_SERVICE_ROLE_KEY: jwt({ role: 'service_role' }), DEMO_ACCESS_TOKEN: jwt({ sub: QA, role: 'authenticated', aud: 'authenticated' }) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  url = await new Promise<string>((resolve, reject) => {
    server.stdout!.on('data', (d: Buffer) => {
      const m = /listening on (\S+)/.exec(d.toString());
      if (m) {
        server.stdout!.destroy(); // nothing more to read; an open pipe would keep the test worker alive
        resolve(m[1]!);
      }
    });
    server.once('exit', (code) => reject(new Error(`examples/web server.mjs exited with ${code}`)));
  });
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-background-networking', '--disable-gpu'] });
}, 240_000);

afterAll(async () => {
  await browser?.close();
  if (server && server.exitCode === null) {
    const exited = new Promise((resolve) => server.once('exit', resolve));
    server.kill('SIGTERM');
    await exited;
  }
  app?.remove();
  await double?.stop();
  await db?.drop();
});

describe('examples/web (Vite + React, from the tarball) in headless Chromium', () => {
  test('server-rendered with real values, hydrated without a mismatch, flipped live by a rollback and a restore', async () => {
    const page = await browser.newPage();
    const consoleErrors: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') consoleErrors.push(m.text());
    });
    page.on('pageerror', (e) => consoleErrors.push(String(e)));

    // The server's HTML already shows the AI button (the user is a target): SSR used the real value.
    const html = await (await fetch(url)).text();
    expect(html).toMatch(/data-kind="ai"[^>]*>Book with the AI assistant/);

    await page.goto(url);
    const button = page.getByTestId('booking');
    await expect.poll(() => button.getAttribute('data-kind'), { timeout: 15_000 }).toBe('ai');
    // Hydrated (the click handler is React's) and loaded from the database, with no hydration error.
    await page.waitForFunction(() => Array.isArray((window as unknown as { hydrationErrors?: unknown }).hydrationErrors), undefined, { timeout: 15_000 });
    await page.evaluate(() => ((window as unknown as { marker: number }).marker = 42));

    await db.sql.query(`update feature_flags set enabled = false, guard_state = 'rolled_back', rollback_message = 'The booking assistant is paused <b>for now</b>; your details are saved.' where name = 'booking_agent_enabled'`);
    await expect.poll(() => button.getAttribute('data-kind'), { timeout: 15_000 }).toBe('classic');
    const notice = page.getByTestId('rollback-notice');
    // Plain text: the markup in the message is shown as characters, never parsed.
    expect(await notice.locator('span').textContent()).toBe('The booking assistant is paused <b>for now</b>; your details are saved.');
    expect(await notice.locator('b').count()).toBe(0);
    expect(await page.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(42); // no reload
    await notice.getByRole('button', { name: 'Dismiss' }).click();
    await expect.poll(() => notice.count()).toBe(0);

    await db.sql.query(`update feature_flags set enabled = true, guard_state = 'watching', rollback_message = null where name = 'booking_agent_enabled'`);
    await expect.poll(() => button.getAttribute('data-kind'), { timeout: 15_000 }).toBe('ai');
    expect(await page.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(42);

    expect(await page.evaluate(() => (window as unknown as { hydrationErrors: string[] }).hydrationErrors)).toEqual([]);
    expect(consoleErrors).toEqual([]);
  }, 60_000);
});
