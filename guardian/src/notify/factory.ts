/**
 * Picks the notifiers from validated configuration: the rules file's `notify` section (which
 * channels, where to) plus the environment (`SMTP_URL`, `EMAIL_FROM`). An unknown notifier type
 * or a channel that cannot work (email without SMTP_URL) is a validation error listing every
 * problem; nothing ever falls back silently.
 */
import type { Transporter } from 'nodemailer';
import type { GuardianConfig } from '../config.ts';
import { GuardianError } from '../errors.ts';
import { NotifySchema } from '../rules/schema.ts';
import { EmailNotifier } from './email.ts';
import { SlackNotifier } from './slack.ts';
import type { Channel, Notifier } from './types.ts';
import { CHANNELS } from './types.ts';

/** Side effects the notifiers use (injected in tests). */
export interface NotifierDeps {
  /** fetch for Slack. Default: global fetch. */
  readonly fetch?: typeof fetch;
  /** Builds the SMTP transport. Default: nodemailer's SMTP transport from `SMTP_URL`. */
  readonly createTransport?: (smtpUrl: string) => Transporter;
  /** Per-send timeout for every channel. Default 10 s. */
  readonly timeoutMs?: number;
}

/** One problem found while building notifiers: where and what to do. */
export interface NotifierProblem {
  readonly path: string;
  readonly message: string;
}

/**
 * Builds one notifier per configured channel. `notify.slack` with an empty `webhook_url` means
 * "Slack not configured" (the rules file's `${SLACK_WEBHOOK_URL:-}` idiom) and is left out.
 * Throws `CONFIG_INVALID` listing every problem: an unknown notifier type (`notify.teams`), email
 * without `SMTP_URL`, email without a sender (`notify.email.from` or `EMAIL_FROM`).
 *
 * @example
 * const notifiers = createNotifiers(rules.notify, config);
 * const worker = new OutboxWorker({ store, notifiers, logger });
 */
export function createNotifiers(
  rulesNotify: unknown,
  config: Pick<GuardianConfig, 'smtpUrl' | 'emailFrom'>,
  deps: NotifierDeps = {},
): Map<Channel, Notifier> {
  const problems: NotifierProblem[] = [];
  const parsed = NotifySchema.safeParse(rulesNotify ?? {});
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const base = ['notify', ...issue.path.map(String)].join('.');
      if (issue.code === 'unrecognized_keys') {
        for (const key of issue.keys) {
          problems.push({
            path: `${base}.${key}`,
            message: issue.path.length === 0 ? `unknown notifier type "${key}"; supported: ${CHANNELS.join(', ')}` : `unknown setting "${key}"`,
          });
        }
      } else {
        problems.push({ path: base, message: issue.message });
      }
    }
    throw invalid(problems);
  }
  const notify = parsed.data;
  const out = new Map<Channel, Notifier>();

  if (notify.slack && notify.slack.webhook_url !== '') {
    out.set('slack', new SlackNotifier({ webhookUrl: notify.slack.webhook_url, ...(deps.fetch ? { fetch: deps.fetch } : {}), ...(deps.timeoutMs ? { timeoutMs: deps.timeoutMs } : {}) }));
  }
  // Empty addresses (`${GUARDIAN_ONCALL_EMAIL:-}` unset) are dropped; with none left, email is not configured.
  const to = notify.email ? notify.email.to.filter((a) => a !== '') : [];
  if (notify.email && to.length > 0) {
    const from = notify.email.from ?? config.emailFrom;
    if (config.smtpUrl === undefined) problems.push({ path: 'notify.email', message: 'needs SMTP_URL in the environment (smtp://user:password@host:587), or remove notify.email' });
    if (from === undefined) problems.push({ path: 'notify.email.from', message: 'needs a sender: set notify.email.from or EMAIL_FROM' });
    if (config.smtpUrl !== undefined && from !== undefined) {
      const smtpUrl = config.smtpUrl;
      out.set(
        'email',
        new EmailNotifier({
          from,
          to,
          ...(deps.createTransport ? { transport: deps.createTransport(smtpUrl) } : { smtpUrl }),
          ...(deps.timeoutMs ? { timeoutMs: deps.timeoutMs } : {}),
        }),
      );
    }
  }
  if (problems.length > 0) {
    for (const n of out.values()) void n.close?.();
    throw invalid(problems);
  }
  return out;
}

function invalid(problems: readonly NotifierProblem[]): GuardianError {
  const list = problems.map((p) => `  ${p.path}: ${p.message}`).join('\n');
  return new GuardianError('CONFIG_INVALID', `Invalid notification settings (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n${list}`, {
    details: { problems },
  });
}
