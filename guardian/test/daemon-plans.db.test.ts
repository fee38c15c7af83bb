/**
 * Release plans end to end with the real daemon (`startDaemon`, as `guardian start` runs it) on a
 * throwaway database of the real PostgreSQL, PostHog answering through nock exactly like its query
 * API (counts that follow the flag's stage), a real SMTP server and a real HTTP server for the
 * Slack webhook: a good flag is promoted 10 → 50 → 100 with one promote event and one alert per
 * channel per step; a flag that turns bad at 50% is stepped back to 10% and its plan stops.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nock from 'nock';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.ts';
import { startDaemon, type Daemon } from '../src/daemon.ts';
import { linesSink } from './cycle-helpers.ts';
import { posthogQueryAnswer } from './posthog-answer.ts';
import { createSmtpServer, startWebhookServer, waitFor, type SmtpTestServer, type WebhookServer } from './notify-helpers.ts';

const POSTHOG = 'https://eu.posthog.example';
const API_KEY = 'phx_plans_secret_key_0123456789';

function rulesYaml(): string {
  return `
interval: 2s
notify:
  slack: { webhook_url: "\${SLACK_WEBHOOK_URL}" }
  email: { to: [oncall@example.com], from: guardian@example.com }
sources:
  posthog: { host: ${POSTHOG}, project_id: "4242", api_key: "\${POSTHOG_API_KEY}" }
rules:
  - id: release-guard
    flags: [plan_good, plan_bad]
    source: posthog
    condition: { relative: { max_increase: 0.01 } }
    action: notify_only
    consecutive: 1
    min_users: 100
plans:
  - { flag: plan_good, stages: [10, 50, 100], min_time: 2s, min_users: 100, guard: [release-guard] }
  - { flag: plan_bad, stages: [10, 50, 100], min_time: 2s, min_users: 100, guard: [release-guard], on_breach: step_back }
`;
}

describe('release plans with the real daemon (real PostgreSQL, SMTP and webhook; PostHog through nock)', () => {
  let db: TestDatabase;
  let smtp: SmtpTestServer;
  let hook: WebhookServer;
  let dir: string;
  let daemon: Daemon | undefined;

  beforeAll(async () => {
    db = await createTestDatabase();
    await db.sql.query("insert into feature_flags (name, enabled, rollout_percentage) values ('plan_good', true, 10), ('plan_bad', true, 10)");
    smtp = await createSmtpServer();
    hook = await startWebhookServer();
    dir = mkdtempSync(join(tmpdir(), 'guardian-plans-'));
    writeFileSync(join(dir, 'rules.yaml'), rulesYaml());
    nock.disableNetConnect();
    nock.enableNetConnect((host) => host.startsWith('127.0.0.1') || host.startsWith('localhost'));
    // PostHog counts as a busy app would show them: 20,000 new users a second since the flag's
    // stage began, split by its percentage; plan_bad's flag-on users fail 10% of the time from 50% on.
    nock(POSTHOG, { reqheaders: { authorization: `Bearer ${API_KEY}` } })
      .post('/api/projects/4242/query/', (body: { query?: { kind?: string } }) => body.query?.kind === 'HogQLQuery')
      .reply(async () => {
        const { rows } = await db.sql.query<{ name: string; pct: number; secs: number }>(
          "select name, rollout_percentage as pct, extract(epoch from now() - stage_started_at)::float8 as secs from feature_flags where name in ('plan_good', 'plan_bad')",
        );
        const results = rows.flatMap(({ name, pct, secs }) => {
          const all = Math.round(20_000 * secs);
          const on = Math.round((all * pct) / 100);
          const off = all - on;
          const onRate = name === 'plan_bad' && pct >= 50 ? 0.1 : 0.01;
          return [
            [name, 'true', on, Math.round(on * onRate)] as const,
            [name, 'false', off, Math.round(off * 0.01)] as const,
          ];
        });
        return [200, posthogQueryAnswer(results)];
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

  it('promotes the good flag to 100% step by step, and steps the bad one back to 10% and stops its plan', async () => {
    daemon = await startDaemon({
      env: {
        DATABASE_URL: db.url,
        RULES_FILE: join(dir, 'rules.yaml'),
        PORT: '0',
        HOST: '127.0.0.1',
        LOG_LEVEL: 'info',
        SMTP_URL: smtp.url,
        SLACK_WEBHOOK_URL: hook.url,
        POSTHOG_API_KEY: API_KEY,
      },
      stdout: () => undefined,
      logDestination: linesSink([]),
      outboxIntervalMs: 200,
    });
    const pct = async (flag: string): Promise<{ pct: number; guard: string }> =>
      (await db.sql.query<{ pct: number; guard: string }>('select rollout_percentage as pct, guard_state as guard from feature_flags where name = $1', [flag])).rows[0]!;
    const planStatus = async (flag: string): Promise<string | undefined> =>
      (await db.sql.query<{ status: string }>('select status from guardian_release_plans where flag_name = $1', [flag])).rows[0]?.status;
    await waitFor(async () => (await planStatus('plan_good')) === 'completed' && (await planStatus('plan_bad')) === 'stopped', 45_000, 'both plans done');

    expect(await pct('plan_good')).toEqual({ pct: 100, guard: 'watching' });
    expect(await pct('plan_bad')).toEqual({ pct: 10, guard: 'rolled_back' });
    const { rows } = await db.sql.query<{ flag: string; kind: string; from: number; to: number }>(
      `select flag_name as flag, kind, (previous_state ->> 'rollout_percentage')::int as from, (new_state ->> 'rollout_percentage')::int as to
         from rollback_events order by id`,
    );
    expect(rows.filter((r) => r.flag === 'plan_good')).toEqual([
      { flag: 'plan_good', kind: 'promote', from: 10, to: 50 },
      { flag: 'plan_good', kind: 'promote', from: 50, to: 100 },
    ]);
    expect(rows.filter((r) => r.flag === 'plan_bad')).toEqual([
      { flag: 'plan_bad', kind: 'promote', from: 10, to: 50 },
      { flag: 'plan_bad', kind: 'auto_rollback', from: 50, to: 10 },
    ]);
    // One alert per step per channel: three promotions and one rollback, on Slack and by email.
    await waitFor(() => hook.requests.length >= 4 && smtp.mails.length >= 4, 15_000, 'alerts');
    const titles = hook.requests.map((r) => JSON.stringify(r.body));
    expect(titles.filter((t) => t.includes('plan_good promoted to 50%'))).toHaveLength(1);
    expect(titles.filter((t) => t.includes('plan_good release complete'))).toHaveLength(1);
    expect(titles.filter((t) => t.includes('plan_bad promoted to 50%'))).toHaveLength(1);
    expect(titles.filter((t) => t.includes('plan_bad') && t.includes('stepped'))).toHaveLength(1);
    // Metrics saw the plans' actions and stages.
    const scrape = async () => (await fetch(`${daemon!.http.url}/metrics`)).text();
    await waitFor(async () => /guardian_plan_actions_total\{flag="plan_bad",action="stopped"\} 1/.test(await scrape()), 10_000, 'plan actions counted');
    const metrics = await scrape();
    expect(metrics).toMatch(/guardian_plan_actions_total\{flag="plan_good",action="promoted"\} 1/);
    expect(metrics).toMatch(/guardian_plan_actions_total\{flag="plan_good",action="completed"\} 1/);
    expect(metrics).toMatch(/guardian_plan_actions_total\{flag="plan_bad",action="stopped"\} 1/);
    expect(metrics).toMatch(/guardian_plan_stage_percentage\{flag="plan_good",status="completed"\} 100/);
    const cycles = daemon.lastCycleAt!.getTime();
    await waitFor(() => (daemon!.lastCycleAt?.getTime() ?? 0) > cycles, 10_000, 'one more cycle');
    expect(hook.requests).toHaveLength(4);
    expect(smtp.mails).toHaveLength(4);
    await daemon.stop();
    daemon = undefined;
  }, 90_000);
});
