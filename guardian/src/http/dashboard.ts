/**
 * The dashboard's static files as a Hono app, mounted by the guardian at `/admin`:
 * - `/admin/assets/*`: the hashed bundles from `dashboard/dist`, cached for a year (`immutable`),
 *   gzip when the client accepts it (compressed once, at load);
 * - `/admin/config.json` (also written into index.html as `<meta name="guardian-config">`): what the page needs before sign-in (API base, Supabase URL and anon
 *   key when Supabase Auth is configured: both are public by design);
 * - every other `/admin/*` path: `index.html` (`no-cache`), so links and reloads of client-side
 *   pages work (an unknown `/admin/assets/...` file is a 404, not the page).
 * A Content-Security-Policy allows only the guardian's own scripts, so even a value that slipped
 * into the page as markup could not run script. A missing build answers 503 saying how to build.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { extname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { Hono } from 'hono';
import type { Context } from 'hono';

/** Where `npm run build -w dashboard` puts the build. */
export const DASHBOARD_DIST = fileURLToPath(new URL('../../../dashboard/dist', import.meta.url));

/** The mount point of the dashboard. */
export const DASHBOARD_PATH = '/admin';

/**
 * Options of {@link createDashboardApp}.
 *
 * @example
 * const options: DashboardOptions = { supabaseUrl: 'https://abc.supabase.co', supabaseAnonKey: 'eyJ…' };
 */
export interface DashboardOptions {
  /** The built dashboard (default {@link DASHBOARD_DIST}). */
  readonly distDir?: string;
  /** Where the admin API is, as the browser sees it (default `/api/v1`). */
  readonly apiBase?: string;
  /** Supabase project URL: with the anon key, the sign-in page offers Supabase Auth. */
  readonly supabaseUrl?: string;
  /** The project's anon (public) key. */
  readonly supabaseAnonKey?: string;
}

/** The public settings served at `/admin/config.json`. */
export interface DashboardPublicConfig {
  readonly apiBase: string;
  readonly supabaseUrl: string | null;
  readonly supabaseAnonKey: string | null;
}

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
};

interface Asset {
  readonly body: Uint8Array;
  readonly gzip: Uint8Array | null;
  readonly type: string;
  readonly etag: string;
}

function loadAssets(dir: string): Map<string, Asset> {
  const out = new Map<string, Asset>();
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      const full = join(d, name);
      if (statSync(full).isDirectory()) {
        walk(full);
        continue;
      }
      const body = readFileSync(full);
      const type = CONTENT_TYPES[extname(name).toLowerCase()] ?? 'application/octet-stream';
      const compressible = /^(text\/|application\/json|image\/svg)/.test(type) && body.length > 512;
      out.set(`/${relative(dir, full).split(sep).join('/')}`, {
        body,
        gzip: compressible ? gzipSync(body, { level: 9 }) : null,
        type,
        etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`,
      });
    }
  };
  walk(dir);
  return out;
}

function escapeAttribute(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/**
 * The Content-Security-Policy of every dashboard response: own scripts only, no inline script,
 * API and stream on the same origin (plus Supabase when configured), no framing.
 *
 * @example
 * contentSecurityPolicy('https://abc.supabase.co'); // "default-src 'self'; … connect-src 'self' https://abc.supabase.co; …"
 */
export function contentSecurityPolicy(supabaseUrl?: string): string {
  const connect = ["'self'", ...(supabaseUrl ? [new URL(supabaseUrl).origin, new URL(supabaseUrl).origin.replace(/^http/, 'ws')] : [])].join(' ');
  return [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data:",
    `connect-src ${connect}`,
    "object-src 'none'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
    "form-action 'self'",
  ].join('; ');
}

/**
 * The dashboard as a Hono app whose routes are relative to its mount point: mount it with
 * `app.route('/admin', createDashboardApp())`. The build is read once, when this is called.
 *
 * @example
 * const app = new Hono();
 * app.route('/admin', createDashboardApp({ supabaseUrl: config.supabase?.url, supabaseAnonKey: process.env.SUPABASE_ANON_KEY }));
 * serve({ fetch: app.fetch, port: 8787 });
 */
export function createDashboardApp(options: DashboardOptions = {}): Hono {
  const dir = options.distDir ?? DASHBOARD_DIST;
  let assets: Map<string, Asset> | null = null;
  let missing: string | null = null;
  try {
    assets = loadAssets(dir);
    if (!assets.has('/index.html')) missing = `${dir}/index.html is missing`;
  } catch (err) {
    missing = `${dir} cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`;
  }
  const publicConfig: DashboardPublicConfig = {
    apiBase: options.apiBase ?? '/api/v1',
    supabaseUrl: options.supabaseUrl && options.supabaseAnonKey ? options.supabaseUrl : null,
    supabaseAnonKey: options.supabaseUrl && options.supabaseAnonKey ? options.supabaseAnonKey : null,
  };
  const csp = contentSecurityPolicy(publicConfig.supabaseUrl ?? undefined);
  // The config goes into the page itself (a meta tag, not a script: the CSP allows no inline
  // script), so the sign-in form needs no second request.
  const index = assets?.get('/index.html');
  if (assets && index) {
    const meta = `<meta name="guardian-config" content="${escapeAttribute(JSON.stringify(publicConfig))}">`;
    const source = Buffer.from(index.body).toString('utf8');
    const html = /<head[^>]*>/i.test(source) ? source.replace(/<head[^>]*>/i, (m) => `${m}\n    ${meta}`) : source.replace(/^(<!doctype[^>]*>)?/i, (m) => `${m}${meta}`);
    const body = Buffer.from(html);
    assets.set('/index.html', { body, gzip: gzipSync(body, { level: 9 }), type: index.type, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` });
  }
  const app = new Hono();

  app.use('*', async (c, next) => {
    await next();
    c.header('content-security-policy', csp);
    c.header('x-content-type-options', 'nosniff');
    c.header('referrer-policy', 'no-referrer');
    c.header('x-frame-options', 'DENY');
  });

  app.get('/config.json', (c) => {
    c.header('cache-control', 'no-store');
    return c.json(publicConfig);
  });

  function send(c: Context, asset: Asset, cache: string): Response {
    const headers: Record<string, string> = { 'content-type': asset.type, 'cache-control': cache, etag: asset.etag, vary: 'accept-encoding' };
    if (c.req.header('if-none-match') === asset.etag) return c.body(null, 304, headers);
    const gzip = asset.gzip !== null && /\bgzip\b/.test(c.req.header('accept-encoding') ?? '');
    const body = gzip ? asset.gzip! : asset.body;
    if (gzip) headers['content-encoding'] = 'gzip';
    headers['content-length'] = String(body.byteLength);
    if (c.req.method === 'HEAD') return c.body(null, 200, headers);
    return c.body(body as Uint8Array<ArrayBuffer>, 200, headers);
  }

  app.on(['GET', 'HEAD'], '*', (c) => {
    if (missing !== null || assets === null) {
      c.header('cache-control', 'no-store');
      return c.html(
        `<!doctype html><html lang="en"><meta charset="utf-8"><title>Dashboard not built</title><body><h1>The dashboard is not built</h1><p>Run <code>npm run build -w dashboard</code> (or <code>npm ci</code>, which builds it), then restart the guardian.</p></body></html>`,
        503,
      );
    }
    // The path below the mount point (Hono keeps the full path in c.req.path).
    const full = c.req.path;
    const at = full.indexOf(DASHBOARD_PATH);
    const path = at === 0 ? full.slice(DASHBOARD_PATH.length) || '/' : full;
    const asset = assets.get(path);
    if (asset && path !== '/index.html') return send(c, asset, path.startsWith('/assets/') ? 'public, max-age=31536000, immutable' : 'no-cache');
    if (path.startsWith('/assets/') || (extname(path) !== '' && extname(path) !== '.html')) {
      c.header('cache-control', 'no-store');
      return c.text(`no file ${full} in the dashboard build`, 404);
    }
    return send(c, assets.get('/index.html')!, 'no-cache');
  });

  app.all('*', (c) => c.text('the dashboard answers GET and HEAD only', 405, { allow: 'GET, HEAD' }));
  return app;
}
