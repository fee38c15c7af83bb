/**
 * End to end, in one process: the real daemon (`startDaemon`, as `guardian start` runs it) on a
 * throwaway database of the real PostgreSQL, PostHog answering through nock exactly like its
 * query API, a real SMTP server and a real HTTP server standing in for the Slack webhook. A
 * breach that becomes visible in PostHog turns the flag off within one interval, writes one
 * event with its evidence, sends one Slack message and one email, and `guardian events --json`
 * lists it. Also: /healthz, /readyz, /metrics, secrets kept out of the logs.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nock from 'nock';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.ts';
import { main } from '../src/cli/main.ts';
import { startDaemon, type Daemon } from '../src/daemon.ts';
import { linesSink } from './cycle-helpers.ts';
import { posthogQueryAnswer } from './posthog-answer.ts';
import { createSmtpServer, decodeQuotedPrintable, startWebhookServer, waitFor, type SmtpTestServer, type WebhookServer } from './notify-helpers.ts';

const POSTHOG = 'https://eu.posthog.example';
const API_KEY = 'phx_e2e_secret_key_0123456789';
const INTERVAL_MS = 2_000;

function rulesYaml(): string {
  return `
interval: 2s
blindness_after: 10m
defaults: { window: 1h, min_users: 100, consecutive: 1 }
notify:
  slack: { webhook_url: "\${SLACK_WEBHOOK_URL}" }
  email: { to: [oncall@example.com], from: guardian@example.com }
sources:
  posthog: { host: ${POSTHOG}, project_id: "4242", api_key: "\${POSTHOG_API_KEY}" }
rules:
  - id: booking-errors
    flags: [booking_agent_enabled]
    source: posthog
    condition: { absolute: { error_rate_above: 0.05 } }
    action: disable
`;
}

/** PostHog's answer for the flag: flag-on and flag-off users and users with an error. */
function posthogAnswer(on: { users: number; errors: number }, off: { users: number; errors: number }) {
  return posthogQueryAnswer([
    ['booking_agent_enabled', 'true', on.users, on.errors],
    ['booking_agent_enabled', 'false', off.users, off.errors],
  ]);
}

describe('guardian daemon end to end (real PostgreSQL, SMTP and webhook; PostHog through nock)', () => {
  let db: TestDatabase;
  let smtp: SmtpTestServer;
  let hook: WebhookServer;
  let dir: string;
  let daemon: Daemon | undefined;
  const logLines: string[] = [];
  let breachVisibleAt: number | undefined;
  let posthogCalls = 0;
  let breachAnswers = 0;

  beforeAll(async () => {
    db = await createTestDatabase();
    smtp = await createSmtpServer();
    hook = await startWebhookServer();
    dir = mkdtempSync(join(tmpdir(), 'guardian-e2e-'));
    writeFileSync(join(dir, 'rules.yaml'), rulesYaml());
    nock.disableNetConnect();
    nock.enableNetConnect((host) => host.startsWith('127.0.0.1') || host.startsWith('localhost'));
    nock(POSTHOG, { reqheaders: { authorization: `Bearer ${API_KEY}` } })
      .post('/api/projects/4242/query/', (body: { query?: { kind?: string }; refresh?: string }) => body.query?.kind === 'HogQLQuery' && body.refresh === 'force_blocking')
      .reply(() => {
        posthogCalls++;
        if (breachVisibleAt !== undefined) breachAnswers++;
        return breachVisibleAt === undefined
          ? [200, posthogAnswer({ users: 400, errors: 4 }, { users: 1200, errors: 12 })]
          : [200, posthogAnswer({ users: 600, errors: 90 }, { users: 1800, errors: 18 })];
      })
      .persist();
  });

  afterAll(async () => {
    await daemon?.stop();
    nock.cleanAll();
    nock.enableNetConnect();
    await hook?.close();
    await smtp?.stop();
    await db?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('flag off within one interval of the breach, one event with evidence, one Slack and one email, listed by guardian events --json', async () => {
    const env = {
      DATABASE_URL: db.url,
      RULES_FILE: join(dir, 'rules.yaml'),
      PORT: '0',
      LOG_LEVEL: 'debug',
      HOST: '127.0.0.1',
      SMTP_URL: smtp.url,
      SLACK_WEBHOOK_URL: hook.url,
      POSTHOG_API_KEY: API_KEY,
      GUARDIAN_DASHBOARD_URL: 'https://flags.example.com',
    };
    const destination = linesSink(logLines);
    const banner: string[] = [];
    daemon = await startDaemon({
      env,
      stdout: (t) => void banner.push(t),
      logDestination: destination,
      outboxIntervalMs: 200,
    });
    expect(banner.join('')).toMatch(/1 rule\(s\), polling every 2s/);
    expect(banner.join('')).toMatch(/rule booking-errors: error rate > 0.05 via posthog → disable; flags booking_agent_enabled \(on 25%, watching\)/);
    const base = daemon.http.url;

    // Healthy first: a cycle runs, nothing happens.
    await waitFor(() => daemon!.lastCycleAt !== null && posthogCalls >= 1, 10_000, 'first cycle');
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    const ready = await fetch(`${base}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ status: 'ready', failing: [] });
    const flagBefore = await db.sql.query<{ enabled: boolean }>(`select enabled from feature_flags where name = 'booking_agent_enabled'`);
    expect(flagBefore.rows[0]?.enabled).toBe(true);

    // The breach becomes visible in PostHog now.
    breachVisibleAt = Date.now();
    await waitFor(async () => {
      const r = await db.sql.query<{ enabled: boolean }>(`select enabled from feature_flags where name = 'booking_agent_enabled'`);
      return r.rows[0]?.enabled === false;
    }, 3 * INTERVAL_MS, 'flag off');
    console.log(`e2e: flag off ${Date.now() - breachVisibleAt} ms after the breach became visible (interval ${INTERVAL_MS} ms)`);

    // One Slack message and one email, delivered from the outbox.
    await waitFor(() => hook.requests.length >= 1 && smtp.mails.length >= 1, 10_000, 'slack and email');
    // Two more cycles: the rolled-back flag is left alone, nothing is sent twice.
    const cycleAt = () => daemon!.lastCycleAt?.getTime() ?? 0;
    const t1 = cycleAt();
    await waitFor(() => cycleAt() > t1, 2 * INTERVAL_MS, 'one more cycle');
    const t2 = cycleAt();
    await waitFor(() => cycleAt() > t2, 2 * INTERVAL_MS, 'two more cycles');
    // Within one interval, counted in polls rather than milliseconds (a loaded machine stretches
    // time, not polls): the first answer that showed the breach turned the flag off, and the
    // rolled-back flag was never polled again.
    expect(breachAnswers).toBe(1);
    const outboxDone = async () =>
      (await db.sql.query<{ n: number }>(`select count(*)::int as n from notification_outbox where status = 'delivered'`)).rows[0]?.n === 2;
    await waitFor(outboxDone, 10_000, 'outbox delivered');
    expect(hook.requests).toHaveLength(1);
    expect(smtp.mails).toHaveLength(1);

    const events = await db.sql.query<{ id: string; kind: string; rule_id: string; evidence: Record<string, unknown>; actor: string }>(
      `select id::text, kind, rule_id, evidence, actor from rollback_events where flag_name = 'booking_agent_enabled'`,
    );
    expect(events.rows).toHaveLength(1);
    const event = events.rows[0]!;
    expect(event).toMatchObject({ kind: 'auto_rollback', rule_id: 'booking-errors', actor: 'guardian' });
    expect(event.evidence).toMatchObject({ treatment: { total: 600, errors: 90 }, threshold: 0.05 });
    expect(Number(event.evidence['lower_bound'])).toBeGreaterThan(0.05);
    const outbox = await db.sql.query<{ channel: string; status: string }>(`select channel, status from notification_outbox order by channel`);
    expect(outbox.rows).toEqual([
      { channel: 'email', status: 'delivered' },
      { channel: 'slack', status: 'delivered' },
    ]);

    // The Slack message: Block Kit with the flag, the rule, the evidence and the restore command.
    const slack = JSON.stringify(hook.requests[0]!.body);
    expect(hook.requests[0]!.path).toBe(new URL(hook.url).pathname);
    expect(slack).toContain('blocks');
    expect(slack).toContain('booking_agent_enabled');
    expect(slack).toContain('booking-errors');
    expect(slack).toContain('guardian restore');
    // The email: to on-call, plain text and HTML.
    const mail = smtp.mails[0]!;
    expect(mail.to).toEqual(['oncall@example.com']);
    const raw = decodeQuotedPrintable(mail.raw);
    expect(raw).toContain('text/plain');
    expect(raw).toContain('text/html');
    expect(raw).toContain('booking_agent_enabled');

    // `guardian events --json` lists it.
    const out: string[] = [];
    const err: string[] = [];
    const code = await main(['events', '--json', '--flag', 'booking_agent_enabled'], {
      stdout: (t) => void out.push(t),
      stderr: (t) => void err.push(t),
      env: { DATABASE_URL: db.url },
    });
    expect(err.join('')).toBe('');
    expect(code).toBe(0);
    const listed = JSON.stringify(JSON.parse(out.join('')));
    expect(listed).toContain(event.id);
    expect(listed).toContain('auto_rollback');

    // Metrics saw it.
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/guardian_rollbacks_total\{flag="booking_agent_enabled",action="disable"\} 1/);
    expect(metrics).toMatch(/guardian_cycles_total\{result="ok"\} \d+/);
    expect(metrics).toMatch(/guardian_verdicts_total\{rule="booking-errors",kind="breach"\} 1/);
    expect(metrics).toMatch(/guardian_notifications_total\{channel="slack",outcome="delivered"\} 1/);
    expect(metrics).toMatch(/guardian_outbox_backlog\{channel="slack",status="pending"\} 0/);

    // Secrets never reached the logs.
    const logs = logLines.join('');
    expect(logs.length).toBeGreaterThan(0);
    expect(logs).not.toContain(API_KEY);
    expect(logs).not.toContain(new URL(hook.url).pathname);

    await daemon.stop();
    daemon = undefined;
  }, 60_000);
});
