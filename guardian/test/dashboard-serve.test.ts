// The dashboard's static serving (createDashboardApp) mounted at /admin in a Hono app and served
// by @hono/node-server on a real port: content types, caching, gzip, ETag/304, the SPA fallback,
// 404 for a missing asset, the public config, the CSP, and 503 when the build is missing.
import { serve } from '@hono/node-server';
import type { ServerType } from '@hono/node-server';
import { Hono } from 'hono';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createDashboardApp, DASHBOARD_DIST } from '../src/http/dashboard.ts';

const servers: ServerType[] = [];

async function start(app: Hono): Promise<string> {
  return new Promise((resolve) => {
    const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, (info) => resolve(`http://127.0.0.1:${info.port}`));
    servers.push(server);
  });
}

function mounted(options: Parameters<typeof createDashboardApp>[0]): Hono {
  const root = new Hono();
  root.get('/healthz', (c) => c.json({ status: 'alive' }));
  root.route('/admin', createDashboardApp(options));
  return root;
}

let dist: string;
let base: string;
const js = `console.log(${JSON.stringify('x'.repeat(2000))});`;

beforeAll(async () => {
  dist = mkdtempSync(join(tmpdir(), 'dashboard-dist-'));
  mkdirSync(join(dist, 'assets'));
  writeFileSync(join(dist, 'index.html'), '<!doctype html><title>t</title><div id="root"></div><script type="module" src="/admin/assets/index-abc.js"></script>');
  writeFileSync(join(dist, 'assets', 'index-abc.js'), js);
  writeFileSync(join(dist, 'assets', 'index-abc.css'), 'body{color:red}');
  base = await start(mounted({ distDir: dist, supabaseUrl: 'https://abc.supabase.co', supabaseAnonKey: 'anon-key' }));
});

afterAll(async () => {
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  rmSync(dist, { recursive: true, force: true });
});

describe('createDashboardApp', () => {
  test('serves index.html at /admin, /admin/ and any client-side page (SPA fallback), never cached', async () => {
    for (const path of ['/admin', '/admin/', '/admin/flags/ai_beta_users', '/admin/rollbacks?kind=restore']) {
      const res = await fetch(`${base}${path}`);
      expect(res.status, path).toBe(200);
      expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
      expect(res.headers.get('cache-control')).toBe('no-cache');
      expect(await res.text()).toContain('<div id="root"></div>');
    }
  });

  test('hashed assets get their content type, a year of immutable caching, gzip and an ETag', async () => {
    const res = await fetch(`${base}/admin/assets/index-abc.js`, { headers: { 'accept-encoding': 'gzip' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(res.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect(res.headers.get('content-encoding')).toBe('gzip');
    expect(await res.text()).toBe(js); // fetch decodes gzip
    const raw = await new Promise<Buffer>((resolve, reject) => {
      import('node:http').then(({ get }) =>
        get(`${base}/admin/assets/index-abc.js`, { headers: { 'accept-encoding': 'gzip' } }, (r) => {
          const chunks: Buffer[] = [];
          r.on('data', (c: Buffer) => chunks.push(c)).on('end', () => resolve(Buffer.concat(chunks))).on('error', reject);
        }),
      );
    });
    expect(raw.length).toBeLessThan(js.length / 10);
    expect(gunzipSync(raw).toString()).toBe(js);
    const css = await fetch(`${base}/admin/assets/index-abc.css`);
    expect(css.headers.get('content-type')).toBe('text/css; charset=utf-8');
    const etag = res.headers.get('etag')!;
    expect(etag).toMatch(/^"[\w-]+"$/);
    const again = await fetch(`${base}/admin/assets/index-abc.js`, { headers: { 'if-none-match': etag } });
    expect(again.status).toBe(304);
  });

  test('a missing asset is a 404, not the page; other methods are refused', async () => {
    const res = await fetch(`${base}/admin/assets/nope.js`);
    expect(res.status).toBe(404);
    expect(await res.text()).toContain('/admin/assets/nope.js');
    expect((await fetch(`${base}/admin/favicon.png`)).status).toBe(404);
    const post = await fetch(`${base}/admin/`, { method: 'POST' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
  });

  test('HEAD answers the headers without a body', async () => {
    const res = await fetch(`${base}/admin/assets/index-abc.js`, { method: 'HEAD' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(await res.text()).toBe('');
  });

  test('config.json tells the page about Supabase Auth; every response carries the CSP', async () => {
    const res = await fetch(`${base}/admin/config.json`);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(await res.json()).toEqual({ apiBase: '/api/v1', supabaseUrl: 'https://abc.supabase.co', supabaseAnonKey: 'anon-key' });
    const csp = res.headers.get('content-security-policy')!;
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain('connect-src \'self\' https://abc.supabase.co wss://abc.supabase.co');
    expect(csp).toContain("frame-ancestors 'none'");
    expect((await fetch(`${base}/admin/`)).headers.get('x-content-type-options')).toBe('nosniff');
  });

  test('index.html carries the same config in a meta tag, escaped', async () => {
    const html = await (await fetch(`${base}/admin/flags/x`)).text();
    const content = /<meta name="guardian-config" content="([^"]*)"/.exec(html)?.[1];
    expect(content).toBeDefined();
    expect(JSON.parse(content!.replace(/&quot;/g, '"').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&'))).toEqual({ apiBase: '/api/v1', supabaseUrl: 'https://abc.supabase.co', supabaseAnonKey: 'anon-key' });
  });

  test('without Supabase the config offers the admin token only', async () => {
    const url = await start(mounted({ distDir: dist, supabaseUrl: 'https://abc.supabase.co' }));
    expect(await (await fetch(`${url}/admin/config.json`)).json()).toEqual({ apiBase: '/api/v1', supabaseUrl: null, supabaseAnonKey: null });
  });

  test('a missing build answers 503 saying how to build it', async () => {
    const url = await start(mounted({ distDir: join(dist, 'not-there') }));
    const res = await fetch(`${url}/admin/`);
    expect(res.status).toBe(503);
    expect(await res.text()).toContain('npm run build -w dashboard');
  });

  test('the real build (npm ci builds it): index.html loads its script from /admin/assets/ and that script is served', async () => {
    expect(existsSync(join(DASHBOARD_DIST, 'index.html')), `${DASHBOARD_DIST} is missing: run npm run build -w dashboard`).toBe(true);
    const url = await start(mounted({}));
    const html = await (await fetch(`${url}/admin/`)).text();
    const src = /<script type="module" crossorigin src="(\/admin\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    expect(src).toBeDefined();
    const res = await fetch(`${url}${src}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
  });
});
