/**
 * The notification contracts: outbox rows as the deliverer sees them, the channel-neutral
 * {@link NotificationMessage} every notifier renders, and the {@link Notifier} interface (one
 * implementation per file: slack.ts, email.ts, memory.ts, nop.ts).
 */
import { GuardianError, isGuardianError } from '../errors.ts';
import type { Channel } from '../store/types.ts';

export type { Channel } from '../store/types.ts';

/** Every notification channel, for validation. */
export const CHANNELS: readonly Channel[] = ['slack', 'email'];

/** What an outbox row is about (`notification_outbox.topic`). */
export type OutboxTopic = 'rollback_event' | 'blindness' | 'recovery';

/**
 * `notification_outbox.status`. `unconfirmed`: the worker died while sending (after
 * `markSending`); the channel cannot deduplicate, so the row is never sent again.
 */
export type OutboxStatus = 'pending' | 'delivering' | 'delivered' | 'failed' | 'unconfirmed';

/**
 * One `notification_outbox` row (ids are bigint, given as text).
 *
 * @example
 * const [row] = await store.claim('worker-1', 10, 60);
 * console.log(row?.channel, row?.topic, row?.attempts);
 */
export interface OutboxRow {
  readonly id: string;
  readonly eventId: string | null;
  readonly topic: OutboxTopic;
  /** What the notifier renders (the event for `rollback_event`; source facts for blindness/recovery). */
  readonly payload: Readonly<Record<string, unknown>>;
  readonly channel: Channel;
  readonly status: OutboxStatus;
  /** Claims so far, this one included. */
  readonly attempts: number;
  readonly nextAttemptAt: Date;
  readonly lockedUntil: Date | null;
  readonly lockedBy: string | null;
  readonly lastError: string | null;
  readonly deliveredAt: Date | null;
  readonly createdAt: Date;
  readonly dedupeKey: string;
}

/** A label and its value, shown as a field in Slack and a table row in email. */
export interface MessageFact {
  readonly label: string;
  readonly value: string;
}

/**
 * A notification, channel-neutral: what happened, to which flag, why, and what to do next.
 * Built from an outbox row by `messageFromOutbox` and rendered by each notifier.
 *
 * @example
 * await notifier.send({ id: '1', topic: 'recovery', severity: 'resolved', title: 'sentry sees data again',
 *   summary: 'The guardian can see sentry again after 12 minutes without data.', facts: [], evidence: [], at: new Date() });
 */
export interface NotificationMessage {
  /** The outbox row id (for logs and idempotency headers). */
  readonly id: string;
  readonly topic: OutboxTopic;
  /** For `rollback_event`: `auto_rollback`, `manual_rollback`, `restore` or `dry_run`. */
  readonly kind?: string;
  /** `critical` (a rollback), `warning` (blindness, dry run), `info` (restore), `resolved` (recovery). */
  readonly severity: 'critical' | 'warning' | 'info' | 'resolved';
  readonly flag?: string;
  readonly source?: string;
  /** One line: the headline and email subject (names the flag when there is one). */
  readonly title: string;
  /** A sentence or two: what happened and why. */
  readonly summary: string;
  /** Rule, action, source, actor, state change, time, ... */
  readonly facts: readonly MessageFact[];
  /** The numbers behind a verdict: rates, counts, bound, threshold, statistic, window. */
  readonly evidence: readonly MessageFact[];
  /** The exact command that undoes a rollback (`guardian restore <flag>`). */
  readonly restoreCommand?: string;
  /** A dashboard link. */
  readonly link?: { readonly url: string; readonly label: string };
  /** When it happened. */
  readonly at: Date;
}

/**
 * A notification channel. `send` resolves once the channel acknowledged the message and throws a
 * `NOTIFY_FAILED` {@link GuardianError} (see {@link notifyFailure}) otherwise.
 *
 * @example
 * const slack: Notifier = new SlackNotifier({ webhookUrl });
 * await slack.send(message, AbortSignal.timeout(15_000));
 */
export interface Notifier {
  readonly channel: Channel;
  /**
   * True when `send` calls `hooks.beforeTransmit` itself, as late as it can (e.g. email: once
   * the SMTP connection is up, before the message data). Otherwise the outbox worker calls it
   * just before `send`.
   */
  readonly callsBeforeTransmit?: boolean;
  send(message: NotificationMessage, signal?: AbortSignal, hooks?: SendHooks): Promise<void>;
  /** Releases connections (SMTP pools). */
  close?(): Promise<void>;
}

/**
 * What the outbox worker asks of a send. `beforeTransmit` records that the message may now
 * reach the channel (the at-most-once marker); it must resolve before any byte of the message
 * is transmitted, and when it rejects nothing may be transmitted.
 */
export interface SendHooks {
  readonly beforeTransmit?: () => Promise<void>;
}

/** Facts a notifier attaches to its `NOTIFY_FAILED` error, read by the outbox worker. */
export interface NotifyFailureInfo {
  readonly channel: Channel;
  /** False when retrying cannot help (for example Slack `invalid_payload`): the row is failed at once. */
  readonly retryable: boolean;
  /** The channel asked to wait this long (Slack 429 `Retry-After`). */
  readonly retryAfterMs?: number;
  /** HTTP status or SMTP response code, when there was one. */
  readonly status?: number;
}

/**
 * Creates the error a notifier throws when a delivery fails.
 *
 * @example
 * throw notifyFailure('slack: HTTP 429 rate_limited', { channel: 'slack', retryable: true, retryAfterMs: 30_000, status: 429 });
 */
export function notifyFailure(message: string, info: NotifyFailureInfo, cause?: unknown): GuardianError {
  const details: Record<string, unknown> = { channel: info.channel, retryable: info.retryable };
  if (info.retryAfterMs !== undefined) details['retryAfterMs'] = info.retryAfterMs;
  if (info.status !== undefined) details['status'] = info.status;
  return new GuardianError('NOTIFY_FAILED', message, { cause, details });
}

/**
 * Reads the {@link NotifyFailureInfo} of any error thrown by a notifier. Anything that is not a
 * `NOTIFY_FAILED` error (a bug, a network error thrown raw) counts as retryable.
 *
 * @example
 * const { retryable, retryAfterMs } = failureInfo(err, 'email');
 */
export function failureInfo(err: unknown, channel: Channel): NotifyFailureInfo {
  if (!isGuardianError(err, 'NOTIFY_FAILED') || err.details === undefined) return { channel, retryable: true };
  const d = err.details;
  return {
    channel,
    retryable: d['retryable'] !== false,
    ...(typeof d['retryAfterMs'] === 'number' ? { retryAfterMs: d['retryAfterMs'] } : {}),
    ...(typeof d['status'] === 'number' ? { status: d['status'] } : {}),
  };
}
