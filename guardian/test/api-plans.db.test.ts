// Release plans through the admin API, on real PostgreSQL: GET /plans shows each plan of the
// rules file in force with its stage and the guardian's last assessment; pause, resume and abort
// are recorded events with their alerts, refused from the wrong state (409), for a flag without a
// plan (404) and for a viewer (403).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { runCycle } from '../src/cycle/run.ts';
import { BASE_STATUS, caller, startApi, supabaseToken, type ApiHarness } from './api-helpers.ts';
import { MemoryLogger, rulesFrom, ScriptedSource } from './cycle-helpers.ts';

const RULES = rulesFrom(`
notify:
  slack: { webhook_url: "https://hooks.slack.com/services/T000/B000/XXXX" }
rules:
  - id: alpha-guard
    flags: [ai_alpha_users]
    source: posthog
    condition: { relative: { max_increase: 0.01 } }
    action: notify_only
plans:
  - flag: ai_alpha_users
    stages: [10, 50, 100]
    min_time: 30m
    min_users: 500
    guard: [alpha-guard]
`);

describe('release plans through the admin API', () => {
  let api: ApiHarness;
  const call = caller(() => api.base);

  beforeAll(async () => {
    api = await startApi('pg');
    api.status = { ...BASE_STATUS, plans: RULES.plans ?? [] };
    await runCycle({
      now: () => new Date(),
      store: api.store,
      sources: new Map([['posthog', new ScriptedSource('posthog', () => ({ treatment: { total: 300, errors: 3 }, control: { total: 2700, errors: 27 } }))]]),
      rules: RULES,
      logger: new MemoryLogger(),
      signal: new AbortController().signal,
    });
  });
  afterAll(async () => {
    await api?.close();
  });

  it('lists each plan with its stage, users and the evidence the guardian last saw', async () => {
    const { status, body } = await call('GET', '/plans');
    expect(status).toBe(200);
    const plans = body['plans'] as Array<Record<string, unknown>>;
    expect(plans).toHaveLength(1);
    expect(plans[0]).toMatchObject({ flag: 'ai_alpha_users', status: 'active', stages: [10, 50, 100], percentage: 10, users: 300, minUsers: 500 });
    expect(plans[0]!['safety']).toMatchObject({ source: 'posthog', safe: false });
    expect((plans[0]!['harm'] as unknown[]).length).toBe(1);
  });

  it('pauses, refuses a second pause (409), resumes and aborts; each is an event, alerted unless notify is false', async () => {
    const paused = await call('POST', '/plans/ai_alpha_users/pause', { body: { reason: 'support is busy' } });
    expect(paused.status).toBe(200);
    expect(paused.body['plan']).toMatchObject({ status: 'paused', reason: 'support is busy' });
    expect(typeof paused.body['eventId']).toBe('string');
    const again = await call('POST', '/plans/ai_alpha_users/pause', { body: {} });
    expect(again.status).toBe(409);
    expect(again.body.error?.message).toMatch(/is paused, not active/);
    expect((await call('POST', '/plans/ai_alpha_users/resume', { body: {} })).body['plan']).toMatchObject({ status: 'active' });
    const aborted = await call('POST', '/plans/ai_alpha_users/abort', { body: { reason: 'shipping differently', notify: false } });
    expect(aborted.body['plan']).toMatchObject({ status: 'aborted' });
    const { rows } = await api.sql.query<{ kind: string; actor: string; outbox: number }>(
      `select e.kind, e.actor, (select count(*)::int from notification_outbox o where o.event_id = e.id) as outbox
         from rollback_events e where e.flag_name = 'ai_alpha_users' and e.kind like 'plan_%' order by e.id`,
    );
    expect(rows).toEqual([
      { kind: 'plan_paused', actor: 'admin-token', outbox: 1 },
      { kind: 'plan_resumed', actor: 'admin-token', outbox: 1 },
      { kind: 'plan_aborted', actor: 'admin-token', outbox: 0 },
    ]);
  });

  it('answers 404 for a flag without a plan, 400 for a bad body, 403 for a viewer', async () => {
    const none = await call('POST', '/plans/ai_beta_users/pause', { body: {} });
    expect(none.status).toBe(404);
    expect(none.body.error?.message).toMatch(/ai_beta_users has no release plan/);
    const bad = await call('POST', '/plans/ai_alpha_users/pause', { body: { reason: 'x', when: 'now' } });
    expect(bad.status).toBe(400);
    const viewer = await supabaseToken({ role: 'viewer' });
    expect((await call('POST', '/plans/ai_alpha_users/resume', { token: viewer, body: {} })).status).toBe(403);
    expect((await call('GET', '/plans', { token: viewer })).status).toBe(200);
  });
});
