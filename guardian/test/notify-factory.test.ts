import { describe, expect, it } from 'vitest';
import { isGuardianError } from '../src/errors.ts';
import { createNotifiers } from '../src/notify/factory.ts';

const SMTP = { smtpUrl: 'smtp://127.0.0.1:2525', emailFrom: 'guardian@example.com' };
const NONE = { smtpUrl: undefined, emailFrom: undefined };

function problems(fn: () => unknown): { path: string; message: string }[] {
  try {
    fn();
  } catch (err) {
    if (isGuardianError(err, 'CONFIG_INVALID')) return err.details?.['problems'] as { path: string; message: string }[];
    throw err;
  }
  throw new Error('expected CONFIG_INVALID');
}

describe('createNotifiers', () => {
  it('leaves out channels whose settings are empty (the ${VAR:-} idiom with the variable unset)', () => {
    const out = createNotifiers({ slack: { webhook_url: '' }, email: { to: [''] } }, NONE);
    expect([...out.keys()]).toEqual([]);
  });

  it('builds Slack and email when configured, dropping empty addresses', async () => {
    const out = createNotifiers({ slack: { webhook_url: 'https://hooks.slack.com/services/T/B/x' }, email: { to: ['', 'oncall@example.com'] } }, SMTP);
    expect([...out.keys()].sort()).toEqual(['email', 'slack']);
    for (const n of out.values()) await n.close?.();
  });

  it('refuses email that cannot work, listing every problem', () => {
    expect(problems(() => createNotifiers({ email: { to: ['oncall@example.com'] } }, NONE))).toEqual([
      { path: 'notify.email', message: expect.stringContaining('SMTP_URL') },
      { path: 'notify.email.from', message: expect.stringContaining('EMAIL_FROM') },
    ]);
  });

  it('refuses unknown notifier types and bad addresses by path', () => {
    const found = problems(() => createNotifiers({ teams: { url: 'x' }, email: { to: ['not-an-address'] } }, SMTP));
    expect(found.map((p) => p.path).sort()).toEqual(['notify.email.to.0', 'notify.teams']);
  });
});
