// The real daemon (startDaemon, as `guardian start`) serves the dashboard at /admin beside its
// other routes, offers Supabase Auth in the page's config only when SUPABASE_URL and
// SUPABASE_ANON_KEY are both set (DATABASE_URL still picks the store), and says where the dashboard is in its banner.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.ts';
import { startDaemon, type Daemon } from '../src/daemon.ts';
import { linesSink } from './cycle-helpers.ts';

describe('the daemon serves the dashboard at /admin', () => {
  let db: TestDatabase;
  let dir: string;
  const daemons: Daemon[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
    dir = mkdtempSync(join(tmpdir(), 'dashboard-daemon-'));
    writeFileSync(
      join(dir, 'rules.yaml'),
      'interval: 1m\nsources:\n  posthog: { host: https://posthog.example, project_id: "1", api_key: "" }\nrules:\n  - { id: r, flags: [booking_agent_enabled], source: posthog, condition: { absolute: { error_rate_above: 0.05 } }, action: disable }\n',
    );
  });
  afterAll(async () => {
    for (const d of daemons) await d.stop();
    await db?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  async function start(extra: Record<string, string>): Promise<{ daemon: Daemon; banner: string }> {
    const out: string[] = [];
    const daemon = await startDaemon({
      env: { DATABASE_URL: db.url, RULES_FILE: join(dir, 'rules.yaml'), PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'warn', GUARDIAN_ADMIN_TOKEN: 'daemon-dashboard-token-0123456789', ...extra },
      stdout: (t) => void out.push(t),
      logDestination: linesSink([]),
      watchRules: false,
    });
    daemons.push(daemon);
    return { daemon, banner: out.join('') };
  }

  function config(html: string): unknown {
    const content = /<meta name="guardian-config" content="([^"]*)"/.exec(html)?.[1] ?? 'null';
    return JSON.parse(content.replace(/&quot;/g, '"').replace(/&amp;/g, '&'));
  }

  test('GET /admin/ and a client-side page answer the app; the banner names the address', async () => {
    const { daemon, banner } = await start({});
    expect(banner).toContain(`admin:   dashboard at ${daemon.http.url}/admin/ (sign in with GUARDIAN_ADMIN_TOKEN)`);
    for (const path of ['/admin/', '/admin/flags/ai_beta_users']) {
      const res = await fetch(`${daemon.http.url}${path}`);
      expect(res.status, path).toBe(200);
      expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
      expect(res.headers.get('content-security-policy')).toContain("script-src 'self'");
      const html = await res.text();
      expect(html).toContain('<div id="root"></div>');
      expect(config(html)).toEqual({ apiBase: '/api/v1', supabaseUrl: null, supabaseAnonKey: null });
    }
    expect((await fetch(`${daemon.http.url}/healthz`)).status).toBe(200);
  });

  test('with SUPABASE_URL and SUPABASE_ANON_KEY the page offers Supabase Auth', async () => {
    const { daemon, banner } = await start({ SUPABASE_URL: 'https://abc.supabase.co', SUPABASE_SERVICE_ROLE_KEY: 'service-role-key', SUPABASE_ANON_KEY: 'public-anon-key' });
    expect(banner).toContain('or a Supabase Auth account');
    const html = await (await fetch(`${daemon.http.url}/admin/`)).text();
    expect(config(html)).toEqual({ apiBase: '/api/v1', supabaseUrl: 'https://abc.supabase.co', supabaseAnonKey: 'public-anon-key' });
  });
});
