/**
 * Email counts as a notification channel only when it can be delivered: a recipient, a sender
 * and SMTP all set. A manual rollback never says "Notified: email" nor writes an outbox row that
 * no notifier would ever send (the daemon would retry it forever, warning each time).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.ts';
import { cli, eventRows, outboxRows, tempFiles } from './cli-helpers.ts';

let db: TestDatabase;
let files: Awaited<ReturnType<typeof tempFiles>>;
beforeAll(async () => {
  db = await createTestDatabase();
  files = await tempFiles({ 'rules.yaml': 'notify:\n  email: { to: [oncall@example.com] }\nrules:\n  - { id: x, flags: [session_agent_enabled], source: sentry, action: disable, condition: { absolute: {} } }\n' });
});
afterAll(async () => {
  await db.drop();
  await files.cleanup();
});

describe('guardian rollback and the email channel', () => {
  it.each([
    ['the default rules file with GUARDIAN_ONCALL_EMAIL unset (an empty recipient)', { SMTP_URL: 'smtp://127.0.0.1:2525', EMAIL_FROM: 'g@example.com' }, 'rules/guardian.yaml', false],
    ['a recipient but no SMTP_URL', { EMAIL_FROM: 'guardian@example.com' }, 'rules.yaml', true],
    ['a recipient but no sender', { SMTP_URL: 'smtp://127.0.0.1:2525' }, 'rules.yaml', true],
  ])('is not a channel with %s', async (_what, env, rules, warned) => {
    const path = rules === 'rules.yaml' ? files.path('rules.yaml') : rules;
    const r = await cli(['rollback', 'session_agent_enabled', '--reason', 'email check', '--rules', path, '--database-url', db.url], env);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Notified: nobody.');
    const event = (await eventRows(db, 'session_agent_enabled')).at(-1);
    expect(await outboxRows(db, event?.id ?? '')).toEqual([]);
    if (warned) expect(r.stderr).toBe('guardian rollback: warning: notify.email names a recipient but SMTP_URL or a sender (notify.email.from or EMAIL_FROM) is not set, so nobody is notified by email.\n');
    else expect(r.stderr).toBe('');
    expect((await cli(['restore', 'session_agent_enabled', '--database-url', db.url])).code).toBe(0);
  });

  it('is a channel when recipient, sender and SMTP are all set', async () => {
    const r = await cli(['rollback', 'session_agent_enabled', '--reason', 'email ok', '--rules', files.path('rules.yaml'), '--database-url', db.url], {
      SMTP_URL: 'smtp://127.0.0.1:2525',
      EMAIL_FROM: 'guardian@example.com',
    });
    expect(r.stdout).toContain('Notified: email.');
    const event = (await eventRows(db, 'session_agent_enabled')).at(-1);
    expect((await outboxRows(db, event?.id ?? '')).map((o) => o.channel)).toEqual(['email']);
  });
});
