/**
 * `guardian check --once [--dry-run]` against a real throwaway PostgreSQL (migrations and seed
 * applied), in-process through the CLI's io, with PostHog and the Slack webhook answered by nock
 * (response shapes as in fixtures/posthog): sources that are not configured, "no data", a breach
 * in dry run (a dry_run event, no flag changed, the notification delivered) and for real, a locked
 * flag left alone, the --json report, and bad arguments.
 */
import nock from 'nock';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.ts';
import { cli, eventRows, flagRow, outboxRows, tempFiles, UNREACHABLE_URL } from './cli-helpers.ts';
import { posthogQueryAnswer, type PosthogRow } from './posthog-answer.ts';

const POSTHOG = 'https://us.posthog.com';
const QUERY_PATH = '/api/projects/12345/query/';
const SLACK = 'https://hooks.slack.com';
const SLACK_PATH = '/services/T000/B000/XXXX';

const RULE = `  - id: beta-errors
    flags: [ai_beta_users, ai_alpha_users]
    source: posthog
    condition: { absolute: { error_rate_above: 0.05 } }
    action: disable
    consecutive: 1
    min_users: 100
`;

let db: TestDatabase;
let files: Awaited<ReturnType<typeof tempFiles>>;
beforeAll(async () => {
  nock.disableNetConnect();
  nock.enableNetConnect(/^(127\.0\.0\.1|localhost)(:\d+)?$/);
  db = await createTestDatabase();
  files = await tempFiles({
    // No credentials: both sources are "not configured", every rule sees no data.
    'blind.yaml': `sources:
  posthog: { project_id: "", api_key: "" }
  sentry: { org: "", token: "" }
rules:
  - { id: agents, flags: [booking_agent_enabled, session_agent_enabled], source: sentry, action: disable, condition: { absolute: {} } }
${RULE}`,
    'posthog.yaml': `notify:
  slack: { webhook_url: "${SLACK}${SLACK_PATH}" }
sources:
  posthog: { host: "${POSTHOG}", project_id: "12345", api_key: "phx_test_key" }
rules:
${RULE}`,
    'invalid.yaml': `rules:
  - { id: Bad Id, flags: [booking_agent_enabled], source: sentry, action: explode, condition: { absolute: {} } }
`,
  });
});
afterEach(() => {
  const pending = nock.pendingMocks();
  nock.cleanAll();
  expect(pending).toEqual([]);
});
afterAll(async () => {
  nock.enableNetConnect();
  await db.drop();
  await files.cleanup();
});

const check = (...args: string[]) => cli(['check', ...args, '--database-url', db.url]);

/** PostHog's HogQL answer (columns as in fixtures/posthog/guardian-flag-errors-200.json). */
function posthogAnswers(results: PosthogRow[], flags = ['ai_beta_users']): nock.Scope {
  const keys = flags.map((f) => `'${f}'`).join(', ');
  return nock(POSTHOG, { reqheaders: { authorization: 'Bearer phx_test_key' } })
    .post(QUERY_PATH, (body: { query: { kind: string; query: string }; refresh: string }) => {
      // One query for all the watched flags (a locked flag is not asked for).
      return body.query.kind === 'HogQLQuery' && body.refresh === 'force_blocking' && body.query.query.includes(`arrayJoin([${keys}]) AS flag`);
    })
    .reply(200, posthogQueryAnswer(results));
}

const rowOf = (stdout: string, flag: string) => stdout.split('\n').find((l) => l.startsWith('beta-errors') && l.includes(` ${flag} `)) ?? '';

describe('guardian check --once', () => {
  it('sources that are not configured: every pair skipped with the reason, "no data" said, nothing written (exit 0)', async () => {
    const before = await flagRow(db, 'booking_agent_enabled');
    const r = await check('--once', '--dry-run', '--rules', files.path('blind.yaml'));
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toMatch(/^rule\s+flag\s+source\s+verdict\s+action\s+evidence$/);
    expect(r.stdout).toMatch(/agents\s+booking_agent_enabled\s+sentry\s+-\s+skipped\s+source "sentry" is not configured/);
    expect(r.stdout).toMatch(/agents\s+session_agent_enabled\s+sentry\s+-\s+skipped\s+source "sentry" is not configured/);
    expect(r.stdout).toMatch(/beta-errors\s+ai_beta_users\s+posthog\s+-\s+skipped\s+source "posthog" is not configured/);
    expect(r.stdout).toContain('source sentry: not configured (sources.sentry needs org and token (SENTRY_AUTH_TOKEN)); its rules see no data\n');
    expect(r.stdout).toContain('source posthog: not configured (sources.posthog needs project_id and api_key (POSTHOG_API_KEY)); its rules see no data\n');
    expect(r.stdout.endsWith('dry run: no flag was changed\n')).toBe(true);
    expect(await flagRow(db, 'booking_agent_enabled')).toEqual(before);
    expect((await db.sql.query<{ n: number }>('select count(*)::int as n from rollback_events')).rows[0]?.n).toBe(0);
  });

  it('PostHog answers with no rows: verdict no_data (never a breach), no event', async () => {
    posthogAnswers([], ['ai_beta_users', 'ai_alpha_users']);
    const r = await check('--once', '--dry-run', '--rules', files.path('posthog.yaml'));
    expect(r.code).toBe(0);
    expect(rowOf(r.stdout, 'ai_beta_users')).toMatch(/^beta-errors\s+ai_beta_users\s+posthog\s+no_data\s+none\s*$/);
    expect(rowOf(r.stdout, 'ai_alpha_users')).toMatch(/^beta-errors\s+ai_alpha_users\s+posthog\s+no_data\s+none\s*$/);
    expect(r.stdout).toContain('  beta-errors / ai_beta_users: No data from posthog for ai_beta_users this cycle (empty: no flag-on users seen since the segment start); missing data is never a breach.\n');
    expect(r.stdout).toContain('source posthog: 0/2 flag(s) with data, 1 request(s)\n');
    expect(await eventRows(db, 'ai_beta_users')).toEqual([]);
  });

  it('a locked flag is never acted on: reported as skipped', async () => {
    expect((await cli(['flags', 'set', 'ai_alpha_users', '--lock', '--database-url', db.url])).code).toBe(0);
    posthogAnswers([]);
    const r = await check('--once', '--dry-run', '--rules', files.path('posthog.yaml'));
    expect(r.code).toBe(0);
    expect(rowOf(r.stdout, 'ai_alpha_users')).toMatch(/^beta-errors\s+ai_alpha_users\s+posthog\s+-\s+skipped\s+flag is locked: the guardian does not act on it$/);
  });

  it('--dry-run on a breach: prints the verdict and evidence, writes a dry_run event, changes no flag, delivers its notification', async () => {
    const before = await flagRow(db, 'ai_beta_users');
    posthogAnswers([
      ['ai_beta_users', 'true', 5000, 1000],
      ['ai_beta_users', 'false', 5000, 50],
    ]);
    const slack = nock(SLACK).post(SLACK_PATH).reply(200, 'ok');
    const r = await check('--once', '--dry-run', '--rules', files.path('posthog.yaml'));
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const [event] = await eventRows(db, 'ai_beta_users');
    expect(event).toMatchObject({ kind: 'dry_run', action: 'disable', rule_id: 'beta-errors', actor: 'guardian' });
    expect(rowOf(r.stdout, 'ai_beta_users')).toMatch(
      new RegExp(
        `^beta-errors\\s+ai_beta_users\\s+posthog\\s+breach \\(1 in a row\\)\\s+dry run of disable \\(event ${event?.id}\\)\\s+on 1000/5000 users \\(20\\.00%\\), off 50/5000 \\(1\\.00%\\), lower bound \\d+\\.\\d\\d% vs 5\\.00%, window 1h$`,
      ),
    );
    expect(r.stdout).toContain('source posthog: 1/1 flag(s) with data, 1 request(s)\n');
    expect(r.stdout).toContain('dry run: no flag was changed\n');
    expect(r.stdout).toContain('notifications: 1 delivered, 0 to retry, 0 failed\n');
    expect(slack.isDone()).toBe(true);
    expect(event?.new_state).toMatchObject({ enabled: false, guard_state: 'rolled_back' });
    expect(await flagRow(db, 'ai_beta_users')).toEqual(before);
    expect(await outboxRows(db, event?.id ?? '')).toEqual([{ channel: 'slack', status: 'delivered', dedupe_key: `${event?.id}:slack` }]);
  });

  it('without --dry-run the breach rolls the flag back (auto_rollback event); --json gives the whole report', async () => {
    posthogAnswers([
      ['ai_beta_users', 'true', 5000, 1000],
      ['ai_beta_users', 'false', 5000, 50],
    ]);
    nock(SLACK).post(SLACK_PATH).reply(200, 'ok');
    const r = await check('--once', '--json', '--rules', files.path('posthog.yaml'));
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as {
      report: {
        ran: boolean;
        dryRun: boolean;
        errors: unknown[];
        results: { ruleId: string; flag: string; action: string; ruleAction?: string; eventId?: string; skipped?: string; verdict?: { kind: string; evidence?: { treatment: { total: number; errors: number } } } }[];
        sources: { source: string; ok: number; requests: number }[];
      };
      delivery: { delivered: number; failed: number };
    };
    expect(out.report).toMatchObject({ ran: true, dryRun: false, errors: [] });
    const beta = out.report.results.find((x) => x.flag === 'ai_beta_users');
    expect(beta).toMatchObject({ ruleId: 'beta-errors', action: 'acted', ruleAction: 'disable', verdict: { kind: 'breach', evidence: { treatment: { total: 5000, errors: 1000 } } } });
    expect(out.report.results.find((x) => x.flag === 'ai_alpha_users')).toMatchObject({ action: 'skipped' });
    expect(out.report.sources).toEqual([expect.objectContaining({ source: 'posthog', ok: 1, requests: 1 })]);
    expect(out.delivery).toMatchObject({ delivered: 1, failed: 0 });
    expect(await flagRow(db, 'ai_beta_users')).toMatchObject({ enabled: false, rollout_percentage: 50, guard_state: 'rolled_back', updated_by: 'guardian' });
    const auto = (await eventRows(db, 'ai_beta_users')).find((e) => e.kind === 'auto_rollback');
    expect(auto).toMatchObject({ id: beta?.eventId, action: 'disable', rule_id: 'beta-errors', actor: 'guardian' });
    expect(await outboxRows(db, auto?.id ?? '')).toEqual([{ channel: 'slack', status: 'delivered', dedupe_key: `${auto?.id}:slack` }]);
  });

  it('after the rollback the flag is skipped (no poll, no second event)', async () => {
    const r = await check('--once', '--rules', files.path('posthog.yaml'));
    expect(r.code).toBe(0);
    expect(rowOf(r.stdout, 'ai_beta_users')).toMatch(/skipped\s+flag is rolled_back: the guardian does not act on it$/);
    expect((await eventRows(db, 'ai_beta_users')).map((e) => e.kind)).toEqual(['dry_run', 'auto_rollback']);
  });

  it('an invalid rules file: exit 1 listing every problem', async () => {
    const r = await check('--once', '--rules', files.path('invalid.yaml'));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`guardian check: ${files.path('invalid.yaml')} is invalid (2 problems):`);
    expect(r.stderr).toContain('rules[0].id:');
    expect(r.stderr).toContain('rules[0].action:');
  });

  it.each([
    [['--once', '--bogus'], "Unknown option '--bogus'. Run \"guardian check --help\" for the options."],
    [['--once', 'now'], 'unexpected argument "now" (guardian check takes no positional arguments)'],
    [['--once', '--rules', '/nonexistent/rules.yaml'], '--rules: cannot read /nonexistent/rules.yaml (ENOENT): check the path'],
    [['--once', '--rules'], '--rules: needs a value'],
  ])('exit 2 for %j, naming the argument', async (args, message) => {
    const r = await check(...args);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`guardian check: ${message}`);
  });

  it('an unreachable database: exit 1 fast with a clear message', async () => {
    const started = Date.now();
    const r = await cli(['check', '--once', '--dry-run', '--rules', files.path('blind.yaml'), '--database-url', UNREACHABLE_URL]);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('guardian check: cannot reach the database: PostgreSQL at postgres://guardian:***@127.0.0.1:1/nowhere (from --database-url)');
  });
});
