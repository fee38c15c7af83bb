/**
 * Nothing lost across a crash: the real guardian process (`guardian start`) on the real
 * PostgreSQL flips a flag on a breach shown by a PostHog-shaped HTTP server, cannot deliver yet
 * (Slack and SMTP down), and is killed with SIGKILL between the flip and the delivery. A new
 * guardian process then delivers the alert exactly once per channel, and never flips or records
 * the breach again.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.ts';
import { posthogQueryAnswer } from './posthog-answer.ts';
import { createSmtpServer, freePort, startWebhookServer, waitFor, type SmtpTestServer, type WebhookServer } from './notify-helpers.ts';

const ROOT = resolve(import.meta.dirname, '../..');

/** Answers PostHog's query endpoint with the documented HogQL response shape: a breach. */
function posthogServer(): Promise<{ server: Server; url: string; calls: () => number }> {
  let calls = 0;
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/api/projects/77/query/' || req.headers.authorization !== 'Bearer phx_crash') {
        res.writeHead(404, { 'content-type': 'application/json' }).end('{"type":"invalid_request","detail":"Not found."}');
        return;
      }
      calls++;
      res.writeHead(200, { 'content-type': 'application/json' }).end(
        JSON.stringify(
          posthogQueryAnswer([
            ['session_agent_enabled', 'true', 800, 120],
            ['session_agent_enabled', 'false', 2400, 30],
          ]),
        ),
      );
    });
  });
  return new Promise((r) => server.listen(0, '127.0.0.1', () => r({ server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, calls: () => calls })));
}

describe('guardian killed between the flip and the delivery (real processes, real PostgreSQL)', () => {
  let db: TestDatabase;
  let dir: string;
  let posthog: Awaited<ReturnType<typeof posthogServer>>;
  let smtp: SmtpTestServer;
  let hook: WebhookServer | undefined;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
    dir = mkdtempSync(join(tmpdir(), 'guardian-crash-'));
    posthog = await posthogServer();
    smtp = await createSmtpServer({ started: false });
  });
  afterAll(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await hook?.close();
    await smtp.stop().catch(() => {});
    await new Promise((r) => posthog.server.close(r));
    await db.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the restarted guardian delivers once per channel; no second flip, event or alert', async () => {
    const hookPort = await freePort();
    writeFileSync(
      join(dir, 'rules.yaml'),
      `interval: 2s
defaults: { window: 1h, min_users: 100, consecutive: 1 }
notify:
  slack: { webhook_url: "http://127.0.0.1:${hookPort}/services/T1/B1/crash" }
  email: { to: [oncall@example.com], from: guardian@example.com }
sources:
  posthog: { host: "${posthog.url}", project_id: "77", api_key: phx_crash }
rules:
  - id: session-errors
    flags: [session_agent_enabled]
    source: posthog
    condition: { absolute: { error_rate_above: 0.05 } }
    action: disable
`,
    );
    const env = { PATH: process.env['PATH'] ?? '', DATABASE_URL: db.url, RULES_FILE: join(dir, 'rules.yaml'), PORT: '0', HOST: '127.0.0.1', SMTP_URL: smtp.url, LOG_LEVEL: 'warn' };
    const startGuardian = (): ChildProcess => {
      const c = spawn(process.execPath, [join(ROOT, 'guardian/bin/guardian.js'), 'start'], { cwd: ROOT, env, stdio: ['ignore', 'ignore', 'pipe'] });
      children.push(c);
      return c;
    };
    const outbox = async () =>
      (await db.sql.query<{ channel: string; status: string; attempts: number; delivered_at: Date | null }>(`select channel, status, attempts, delivered_at from notification_outbox order by channel`)).rows;

    // 1. Guardian A flips the flag; both channels are down, so every attempt fails.
    const a = startGuardian();
    await waitFor(async () => {
      const rows = await outbox();
      return rows.length === 2 && rows.every((r) => r.attempts >= 1 && r.status === 'pending');
    }, 30_000, 'the flip and a failed first delivery attempt');
    const flag = await db.sql.query<{ enabled: boolean; guard_state: string }>(`select enabled, guard_state from feature_flags where name = 'session_agent_enabled'`);
    expect(flag.rows[0]).toEqual({ enabled: false, guard_state: 'rolled_back' });
    a.kill('SIGKILL');
    await new Promise((r) => a.once('exit', r));
    expect((await outbox()).every((r) => r.delivered_at === null)).toBe(true);

    // 2. The channels come back; guardian B starts and delivers what A could not.
    hook = await startWebhookServer({ port: hookPort });
    await smtp.start();
    const b = startGuardian();
    let stderr = '';
    b.stderr!.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    await waitFor(async () => (await outbox()).every((r) => r.status === 'delivered'), 45_000, 'delivery after the restart');
    await new Promise((r) => setTimeout(r, 5_000)); // two more cycles of B: nothing new

    expect(hook.requests).toHaveLength(1);
    expect(JSON.stringify(hook.requests[0]!.body)).toContain('session_agent_enabled');
    expect(smtp.mails).toHaveLength(1);
    const events = await db.sql.query<{ kind: string }>(`select kind from rollback_events where flag_name = 'session_agent_enabled'`);
    expect(events.rows).toEqual([{ kind: 'auto_rollback' }]);
    expect(await outbox()).toHaveLength(2);

    b.kill('SIGTERM');
    const code = await new Promise<number | null>((r) => b.once('exit', (c) => r(c)));
    expect(code).toBe(0);
    // stderr carries the start banner (stdout is JSON logs only) and nothing else: no crash, no warning.
    expect(stderr).toMatch(/^Rollback Guardian — 1 rule\(s\)/);
    expect(stderr.split('\n').filter((l) => l !== '' && !/^(Rollback Guardian — | {2}\S)/.test(l))).toEqual([]);
  }, 120_000);
});
