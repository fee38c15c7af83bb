/**
 * The daemon's operations on the real PostgreSQL: rules hot reload (a good edit applies, a bad
 * edit keeps the last good rules and says why), the guardian's own errors reported to Sentry
 * (a local HTTP server receives the SDK's envelopes, secrets scrubbed), and /readyz turning
 * 503 while the database refuses connections and back to 200 after.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ADMIN_URL, createTestDatabase, type TestDatabase } from '../../test/helpers/db.ts';
import { startDaemon, type Daemon } from '../src/daemon.ts';
import { waitFor } from './notify-helpers.ts';
import pg from 'pg';

const SECRET_KEY = 'phx_ops_secret_0123456789abcdef';

function rules(extra = ''): string {
  return `
interval: 1s
sources:
  posthog: { host: https://eu.posthog.example, project_id: "1", api_key: "\${POSTHOG_API_KEY}" }
rules:
  - id: booking-errors
    flags: [booking_agent_enabled]
    source: sentry
    condition: { absolute: { error_rate_above: 0.05 } }
    action: disable
${extra}`;
}

describe('daemon operations (real PostgreSQL)', () => {
  let db: TestDatabase;
  let dir: string;
  let sentry: Server;
  let sentryUrl: string;
  const envelopes: string[] = [];
  let daemon: Daemon | undefined;

  beforeAll(async () => {
    db = await createTestDatabase();
    dir = mkdtempSync(join(tmpdir(), 'guardian-ops-'));
    // Stands in for Sentry's ingestion: the SDK POSTs envelopes to /api/<project>/envelope/.
    sentry = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        envelopes.push(`${req.url} ${req.headers['content-encoding'] === 'gzip' ? gunzipSync(body).toString('utf8') : body.toString('utf8')}`);
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((r) => sentry.listen(0, '127.0.0.1', r));
    sentryUrl = `http://publickey0123456789@127.0.0.1:${(sentry.address() as AddressInfo).port}/42`;
  });

  afterAll(async () => {
    await daemon?.stop();
    await new Promise((r) => sentry.close(r));
    await db.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('hot reload: a good edit applies at once, a bad edit keeps the last good rules, is reported to Sentry and shown by /readyz', async () => {
    const file = join(dir, 'rules.yaml');
    writeFileSync(file, rules());
    daemon = await startDaemon({
      env: { DATABASE_URL: db.url, RULES_FILE: file, PORT: '0', HOST: '127.0.0.1', SENTRY_DSN: sentryUrl, POSTHOG_API_KEY: SECRET_KEY, LOG_LEVEL: 'silent' },
      stdout: () => {},
    });
    const d = daemon;
    expect(d.parts.telemetry.enabled).toBe(true);
    await waitFor(() => d.lastCycleAt !== null, 10_000, 'first cycle');

    // A good edit: a second rule, a new interval.
    writeFileSync(
      file,
      rules(`  - id: ai-beta
    flags: [ai_beta_users]
    source: posthog
    condition: { relative: { max_increase: 0.01 } }
    action: step_back
`).replace('interval: 1s', 'interval: 2s'),
    );
    await waitFor(() => d.parts.rules.rules.length === 2, 5_000, 'the edit to apply');
    expect(d.parts.rules.interval).toBe(2_000);
    expect(d.parts.sources.has('posthog')).toBe(true);

    // A bad edit: refused whole; the two rules stay in force.
    writeFileSync(file, 'interval: often\nrules: []\nbogus: 1\n');
    await waitFor(() => d.parts.lastReloadError !== undefined, 5_000, 'the bad edit to be refused');
    expect(d.parts.rules.rules.map((r) => r.id)).toEqual(['booking-errors', 'ai-beta']);
    expect(d.parts.lastReloadError!.map((p) => p.path)).toEqual(expect.arrayContaining(['interval', 'bogus']));
    const ready = await fetch(`${d.http.url}/readyz`);
    expect(ready.status).toBe(200);
    const body = (await ready.json()) as { checks: { rules: { ok: boolean; warning?: string } } };
    expect(body.checks.rules.warning).toMatch(/last reload failed, running the previous rules: .*interval/);
    const metrics = await (await fetch(`${d.http.url}/metrics`)).text();
    expect(metrics).toMatch(/guardian_rules_reloads_total\{result="ok"\} 1/);
    expect(metrics).toMatch(/guardian_rules_reloads_total\{result="error"\} 1/);

    // The failed reload was logged as an error, so it reached Sentry; so does any error, scrubbed
    // of the secrets the guardian knows (here the PostHog key from the rules file's environment).
    d.parts.logger.child({ part: 'source' }).error({ err: new Error(`PostHog refused key ${SECRET_KEY}`) }, 'source failed');
    await d.parts.telemetry.flush(5_000);
    await waitFor(() => envelopes.some((e) => e.includes('PostHog refused key')), 5_000, 'the second envelope');
    await waitFor(() => envelopes.some((e) => e.includes('rules reload failed')), 5_000, `the Sentry envelope (got ${envelopes.length})`);
    const sent = envelopes.join('\n');
    expect(sent).toContain('/api/42/envelope/');
    expect(sent).not.toContain(SECRET_KEY);

    // Fixing the file clears the error.
    writeFileSync(file, rules());
    await waitFor(() => d.parts.lastReloadError === undefined && d.parts.rules.rules.length === 1, 5_000, 'the fix to apply');
  }, 60_000);

  it('/readyz is 503 naming the database while PostgreSQL refuses connections, 200 again after', async () => {
    const d = daemon!;
    const admin = new pg.Client({ connectionString: ADMIN_URL });
    await admin.connect();
    try {
      await admin.query(`alter database ${db.name} allow_connections false`);
      await admin.query(`select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()`, [db.name]);
      const down = await fetch(`${d.http.url}/readyz`);
      expect(down.status).toBe(503);
      const body = (await down.json()) as { failing: string[]; checks: { database: { error: string } } };
      expect(body.failing).toContain('database');
      expect(body.checks.database.error.length).toBeGreaterThan(0);
      expect((await fetch(`${d.http.url}/healthz`)).status).toBe(200);
    } finally {
      await admin.query(`alter database ${db.name} allow_connections true`);
      await admin.end();
    }
    await waitFor(async () => (await fetch(`${d.http.url}/readyz`)).status === 200, 10_000, 'ready again');
  }, 30_000);
});
