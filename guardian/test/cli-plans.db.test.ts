// `guardian plans` on real PostgreSQL: the list shows each plan's stage, evidence and earliest
// promotion (text and --json); pause, resume and abort are recorded events with alerts, refused
// from the wrong state, and bad arguments name the argument. `guardian validate` refuses each
// malformed plan with the path of the problem, and warns with the arithmetic when a stage's
// traffic cannot reach its minimum users in its minimum time.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.ts';
import { runCycle } from '../src/cycle/run.ts';
import { SqlStore } from '../src/store/sql-store.ts';
import { cli, eventRows, outboxRows, tempFiles } from './cli-helpers.ts';
import { MemoryLogger, rulesFrom, ScriptedSource } from './cycle-helpers.ts';

const RULES = `
interval: 1m
notify:
  slack: { webhook_url: "https://hooks.slack.com/services/T000/B000/XXXX" }
rules:
  - id: beta-guard
    flags: [ai_beta_users, ai_alpha_users]
    source: posthog
    condition: { relative: { max_increase: 0.01 } }
    action: notify_only
    consecutive: 1
plans:
  - flag: ai_alpha_users
    stages: [10, 50, 100]
    min_time: 30m
    min_users: 500
    guard: [beta-guard]
`;

describe('guardian plans', () => {
  let db: TestDatabase;
  let files: Awaited<ReturnType<typeof tempFiles>>;
  let env: Record<string, string>;

  beforeAll(async () => {
    db = await createTestDatabase();
    files = await tempFiles({ 'rules.yaml': RULES });
    env = { DATABASE_URL: db.url, RULES_FILE: files.path('rules.yaml') };
    // One cycle so the plan has a row and an assessment.
    const store = new SqlStore({ sql: db.sql, kind: 'pg', location: 'test' });
    await runCycle({
      now: () => new Date(),
      store,
      sources: new Map([['posthog', new ScriptedSource('posthog', () => ({ treatment: { total: 300, errors: 3 }, control: { total: 2700, errors: 27 } }))]]),
      rules: rulesFrom(RULES),
      logger: new MemoryLogger(),
      signal: new AbortController().signal,
    });
  });
  afterAll(async () => {
    await files?.cleanup();
    await db?.drop();
  });

  it('lists each plan with its stage, users, evidence and earliest promotion', async () => {
    const text = await cli(['plans'], env);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/ai_alpha_users\s+active\s+10% of 10→50→100/);
    expect(text.stdout).toMatch(/300\/500/);
    expect(text.stdout).toMatch(/beta-guard healthy/);
    const json = await cli(['plans', '--json'], env);
    const { plans } = JSON.parse(json.stdout) as { plans: Array<Record<string, unknown>> };
    expect(plans).toHaveLength(1);
    expect(plans[0]).toMatchObject({ flag: 'ai_alpha_users', status: 'active', percentage: 10, stages: [10, 50, 100], users: 300, minUsers: 500 });
    expect(plans[0]!['safety']).toMatchObject({ source: 'posthog', safe: false });
    expect(typeof plans[0]!['earliestPromotionAt']).toBe('string');
  });

  it('pauses, refuses a second pause, resumes and aborts, each an event with its alert', async () => {
    const paused = await cli(['plans', 'pause', 'ai_alpha_users', '--reason', 'waiting for the support team', '--json'], env);
    expect(paused.code).toBe(0);
    expect(JSON.parse(paused.stdout)).toMatchObject({ plan: { status: 'paused', reason: 'waiting for the support team', updatedBy: 'cli:tester' }, event: { kind: 'plan_paused' } });
    const again = await cli(['plans', 'pause', 'ai_alpha_users', '--reason', 'twice'], env);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/the plan of "ai_alpha_users" is paused, not active/);
    expect((await cli(['plans', 'resume', 'ai_alpha_users'], env)).code).toBe(0);
    const aborted = await cli(['plans', 'abort', 'ai_alpha_users', '--reason', 'shipping differently', '--no-notify'], env);
    expect(aborted.code).toBe(0);
    expect(aborted.stdout).toMatch(/is aborted/);
    const events = (await eventRows(db, 'ai_alpha_users')).filter((e) => e.kind.startsWith('plan_'));
    expect(events.map((e) => e.kind)).toEqual(['plan_paused', 'plan_resumed', 'plan_aborted']);
    expect((await outboxRows(db, events[0]!.id)).map((o) => o.channel)).toEqual(['slack']);
    expect(await outboxRows(db, events[2]!.id)).toEqual([]);
    expect((await cli(['plans', 'resume', 'ai_alpha_users'], env)).stderr).toMatch(/is aborted, not paused or stopped/);
  });

  it('names the bad argument (exit 2)', async () => {
    expect(await cli(['plans', 'pause', 'ai_alpha_users'], env)).toMatchObject({ code: 2, stderr: expect.stringMatching(/--reason: required for pause/) });
    expect(await cli(['plans', 'pause', 'ai_beta_users', '--reason', 'x'], env)).toMatchObject({ code: 2, stderr: expect.stringMatching(/ai_beta_users has no release plan/) });
    expect(await cli(['plans', 'promote', 'ai_alpha_users'], env)).toMatchObject({ code: 2, stderr: expect.stringMatching(/unknown subcommand "promote"/) });
    expect(await cli(['plans', 'list', '--reason', 'x'], env)).toMatchObject({ code: 2, stderr: expect.stringMatching(/--reason: only with pause, resume or abort/) });
  });
});

describe('guardian validate: release plans', () => {
  const base = `
rules:
  - id: guard
    flags: [ai_beta_users]
    source: posthog
    condition: { relative: { max_increase: 0.01 } }
    action: step_back
  - id: ceiling
    flags: [ai_beta_users]
    source: sentry
    condition: { absolute: { error_rate_above: 0.05 } }
    action: disable
plans:
`;
  const cases: Array<[string, string, RegExp]> = [
    ['stages that go down', '  - { flag: ai_beta_users, stages: [50, 10, 100], guard: [guard] }', /plans\[0\]\.stages\[1\]: must be higher than the stage before it \(50%\)/],
    ['a single stage', '  - { flag: ai_beta_users, stages: [10], guard: [guard] }', /plans\[0\]\.stages: must list at least two stages/],
    ['a stage above 100', '  - { flag: ai_beta_users, stages: [10, 150], guard: [guard] }', /plans\[0\]\.stages\[1\]: must be a whole percentage 1\.\.100, got 150/],
    ['an unknown guard rule', '  - { flag: ai_beta_users, stages: [10, 50], guard: [nope] }', /plans\[0\]\.guard\[0\]: no rule has id "nope"/],
    ['a guard rule not watching the flag', '  - { flag: ai_alpha_users, stages: [10, 50], guard: [guard] }', /plans\[0\]\.guard\[0\]: rule guard does not watch ai_alpha_users/],
    ['no relative guard', '  - { flag: ai_beta_users, stages: [10, 50], guard: [ceiling] }', /plans\[0\]\.guard: needs a relative rule watching ai_beta_users/],
    ['min_time above max_time', '  - { flag: ai_beta_users, stages: [10, 50], guard: [guard], min_time: 2d, max_time: 1d }', /plans\[0\]\.stages\[0\]: min_time 2d is longer than max_time 1d/],
    ['two plans for one flag', '  - { flag: ai_beta_users, stages: [10, 50], guard: [guard] }\n  - { flag: ai_beta_users, stages: [20, 60], guard: [guard] }', /plans\[1\]\.flag: ai_beta_users already has a plan \(plans\[0\]\)/],
    ['an unknown key', '  - { flag: ai_beta_users, stages: [10, 50], guard: [guard], promote_on: time }', /plans\[0\]\.promote_on: unknown key "promote_on"/],
    ['a confidence of 1', '  - { flag: ai_beta_users, stages: [10, 50], guard: [guard], confidence: 1 }', /plans\[0\]\.confidence: must be between 0\.5 and 1/],
    ['a bad on_breach', '  - { flag: ai_beta_users, stages: [10, 50], guard: [guard], on_breach: notify_only }', /plans\[0\]\.on_breach: must be disable or step_back/],
  ];
  it.each(cases)('refuses %s with its path', async (_what, plan, expected) => {
    const files = await tempFiles({ 'rules.yaml': `${base}${plan}\n` });
    try {
      const r = await cli(['validate', files.path('rules.yaml')]);
      expect(r.code).toBe(1);
      expect(`${r.stdout}${r.stderr}`).toMatch(expected);
    } finally {
      await files.cleanup();
    }
  });

  it('warns with the arithmetic when a stage cannot reach min_users in its min_time', async () => {
    const files = await tempFiles({ 'rules.yaml': `${base}  - { flag: ai_beta_users, stages: [10, 50, 100], guard: [guard], min_time: 1h, max_time: 2h, min_users: 1000, expected_users_per_minute: 50 }\n` });
    try {
      const r = await cli(['validate', files.path('rules.yaml')]);
      expect(r.code).toBe(0);
      const out = `${r.stdout}${r.stderr}`;
      expect(out).toMatch(/plans\[0\]\.stages\[0\]: at 10% of 50 users\/min, min_time 1h exposes at most 50 × 10% × 60 min = 300 flag-on users, below min_users 1000.*even by max_time 2h reaches only 600: it will pause, never promote/);
      expect(out).not.toMatch(/plans\[0\]\.stages\[1\]/);
    } finally {
      await files.cleanup();
    }
  });
});
