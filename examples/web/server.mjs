// The example's production server: serves the built page (dist/client) and renders `/` on the
// server (dist/server) with the signed-in user's flag values, read by a server-mode flag client
// (service-role key) that stays live over Realtime. Environment: SUPABASE_URL, SUPABASE_ANON_KEY,
// SUPABASE_SERVICE_ROLE_KEY, PORT (0: any free port; the URL is printed), and for this demo
// DEMO_ACCESS_TOKEN, the session a login would give.
/* global process, console, Buffer, URL */
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createClient } from '@supabase/supabase-js';
import { createServerClient } from '@rollback-guardian/sdk';
import { supabaseTransport } from '@rollback-guardian/sdk/supabase';

const here = fileURLToPath(new URL('.', import.meta.url));
const { render } = await import(join(here, 'dist/server/entry-server.js'));
const template = await readFile(join(here, 'dist/client/index.html'), 'utf8');
const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is required`);
  return v;
};
const admin = createClient(env('SUPABASE_URL'), env('SUPABASE_SERVICE_ROLE_KEY'), { auth: { persistSession: false } });
const flags = createServerClient({ transport: supabaseTransport(admin) });
await flags.ready(10_000);

const token = env('DEMO_ACCESS_TOKEN');
const userId = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8')).sub;
const TYPES = { '.js': 'text/javascript', '.css': 'text/css', '.map': 'application/json', '.svg': 'image/svg+xml' };

const server = createServer(async (req, res) => {
  const path = new URL(req.url ?? '/', 'http://x').pathname;
  if (path === '/') {
    const { html, head } = render({
      supabaseUrl: env('SUPABASE_URL'),
      anonKey: env('SUPABASE_ANON_KEY'),
      session: { access_token: token, refresh_token: 'demo' },
      snapshot: flags.allValues(userId),
    });
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(template.replace('<!--app-config-->', head).replace('<!--app-html-->', html));
    return;
  }
  if (path.startsWith('/assets/') && !path.includes('..')) {
    try {
      const body = await readFile(join(here, 'dist/client', path));
      res.writeHead(200, { 'content-type': TYPES[extname(path)] ?? 'application/octet-stream' });
      res.end(body);
      return;
    } catch {
      // fall through to 404
    }
  }
  res.writeHead(404).end();
});
server.listen(Number(process.env.PORT ?? 5173), '127.0.0.1', () => console.log(`listening on http://127.0.0.1:${server.address().port}`));
process.once('SIGTERM', () => {
  server.closeAllConnections();
  server.close();
  void flags.close().finally(() => process.exit(0));
});
