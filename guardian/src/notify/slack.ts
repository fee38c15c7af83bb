/**
 * Slack incoming-webhook notifier: one POST of JSON `{ text, blocks }` (Block Kit) per message.
 *
 * Slack answers `200 ok` on success. Failures come back as an HTTP status with a plain-text error
 * word as the body (`400 invalid_payload`, `403 action_prohibited`, `404 no_service`,
 * `404 channel_not_found`, `410 channel_is_archived`, `500 rollup_error`) and `429` with a
 * `Retry-After` header (seconds). A 2xx whose body is such an error word is a failure too.
 * Payload errors (`invalid_payload`, `no_text`, `invalid_blocks…`) cannot succeed on retry.
 */
import type { MessageFact, NotificationMessage, Notifier, SendHooks } from './types.ts';
import { notifyFailure } from './types.ts';
import { cutText } from '../errors.ts';

/** Block Kit limits we stay under (header ≤ 150 chars, section text ≤ 3000, ≤ 10 fields per section). */
const HEADER_MAX = 150;
const TEXT_MAX = 3000;
const FIELD_MAX = 2000;
const FIELDS_PER_SECTION = 10;

/** Slack error words that mean the request itself is wrong: retrying cannot help. */
const PERMANENT_ERRORS = /^(invalid_payload|no_text|invalid_blocks[a-z_]*|invalid_attachments|too_many_attachments|missing_text_or_fallback_or_attachments)$/;

const SEVERITY_EMOJI: Record<NotificationMessage['severity'], string> = {
  critical: ':rotating_light:',
  warning: ':warning:',
  info: ':information_source:',
  resolved: ':white_check_mark:',
};

/** A Block Kit text object. */
interface TextObject {
  readonly type: 'plain_text' | 'mrkdwn';
  readonly text: string;
  readonly emoji?: boolean;
}

/** The Block Kit blocks this notifier uses. */
export type SlackBlock =
  | { readonly type: 'header'; readonly text: TextObject }
  | { readonly type: 'section'; readonly text?: TextObject; readonly fields?: readonly TextObject[] }
  | { readonly type: 'context'; readonly elements: readonly TextObject[] }
  | { readonly type: 'divider' }
  | {
      readonly type: 'actions';
      readonly elements: readonly { readonly type: 'button'; readonly text: TextObject; readonly url: string; readonly action_id: string }[];
    };

/** The JSON body posted to the webhook. */
export interface SlackPayload {
  /** Fallback text: notifications, screen readers, clients without Block Kit. */
  readonly text: string;
  readonly blocks: readonly SlackBlock[];
}


/** Escapes the three characters Slack's mrkdwn treats as control characters. */
export function escapeMrkdwn(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function fieldSections(facts: readonly MessageFact[]): SlackBlock[] {
  const out: SlackBlock[] = [];
  for (let i = 0; i < facts.length; i += FIELDS_PER_SECTION) {
    out.push({
      type: 'section',
      fields: facts.slice(i, i + FIELDS_PER_SECTION).map((f) => ({ type: 'mrkdwn' as const, text: cutText(`*${escapeMrkdwn(f.label)}*\n${escapeMrkdwn(f.value)}`, FIELD_MAX) })),
    });
  }
  return out;
}

/**
 * Renders a message as a Slack webhook body: header, summary, facts, evidence, the restore
 * command, a dashboard button and the time.
 *
 * @example
 * const body = slackPayload(message);
 * await fetch(webhookUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
 */
export function slackPayload(message: NotificationMessage): SlackPayload {
  const blocks: SlackBlock[] = [
    { type: 'header', text: { type: 'plain_text', text: cutText(message.title, HEADER_MAX), emoji: true } },
    { type: 'section', text: { type: 'mrkdwn', text: cutText(`${SEVERITY_EMOJI[message.severity]} ${escapeMrkdwn(message.summary)}`, TEXT_MAX) } },
    ...fieldSections(message.facts),
  ];
  if (message.evidence.length > 0) {
    blocks.push({ type: 'section', text: { type: 'mrkdwn', text: '*Evidence*' } }, ...fieldSections(message.evidence));
  }
  if (message.restoreCommand) {
    blocks.push({ type: 'section', text: { type: 'mrkdwn', text: `*To restore* (after fixing the cause):\n\`${escapeMrkdwn(message.restoreCommand)}\`` } });
  }
  if (message.link) {
    blocks.push({
      type: 'actions',
      elements: [{ type: 'button', text: { type: 'plain_text', text: cutText(message.link.label, 75) }, url: message.link.url, action_id: 'open_dashboard' }],
    });
  }
  const epoch = Math.floor(message.at.getTime() / 1000);
  blocks.push({
    type: 'context',
    elements: [{ type: 'mrkdwn', text: `Rollback Guardian · <!date^${epoch}^{date_short_pretty} {time_secs}|${message.at.toISOString()}>` }],
  });
  const fallback = [message.title, message.summary, message.restoreCommand ? `To restore: ${message.restoreCommand}` : ''].filter((s) => s !== '').join(' — ');
  return { text: cutText(fallback, TEXT_MAX), blocks };
}

/** Options of {@link SlackNotifier}. */
export interface SlackNotifierOptions {
  /** The incoming-webhook URL (a secret: never logged). */
  readonly webhookUrl: string;
  /** Injected fetch. Default: the global `fetch`. */
  readonly fetch?: typeof fetch;
  /** Per-request timeout. Default 10 s. */
  readonly timeoutMs?: number;
}

/** Reads `Retry-After` (seconds or an HTTP date) as milliseconds. */
export function parseRetryAfter(value: string | null, now: number = Date.now()): number | undefined {
  if (value === null || value.trim() === '') return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return Math.round(seconds * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/**
 * Posts messages to a Slack incoming webhook.
 *
 * @example
 * const slack = new SlackNotifier({ webhookUrl: process.env.SLACK_WEBHOOK_URL! });
 * await slack.send(messageFromOutbox(row));
 */
export class SlackNotifier implements Notifier {
  readonly channel = 'slack' as const;
  readonly callsBeforeTransmit = true;
  readonly #url: string;
  readonly #fetch: typeof fetch;
  readonly #timeoutMs: number;

  constructor(options: SlackNotifierOptions) {
    this.#url = options.webhookUrl;
    this.#fetch = options.fetch ?? globalThis.fetch;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
  }

  async send(message: NotificationMessage, signal?: AbortSignal, hooks?: SendHooks): Promise<void> {
    const body = JSON.stringify(slackPayload(message));
    // The outbox's at-most-once marker, as late as fetch allows: once the body is rendered.
    await hooks?.beforeTransmit?.();
    const timeout = AbortSignal.timeout(this.#timeoutMs);
    const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
    let res: Response;
    try {
      res = await this.#fetch(this.#url, {
        method: 'POST',
        headers: { 'content-type': 'application/json; charset=utf-8' },
        body,
        signal: combined,
      });
    } catch (err) {
      const what = timeout.aborted ? `timed out after ${this.#timeoutMs} ms` : (err as Error).message;
      throw notifyFailure(`slack: request failed: ${what}`, { channel: 'slack', retryable: true }, err);
    }
    const answer = (await res.text().catch(() => '')).trim();
    const word = /^[a-z_]+$/.test(answer) ? answer : undefined;
    let jsonFailure: string | undefined;
    if (answer.startsWith('{')) {
      try {
        const parsed = JSON.parse(answer) as { ok?: unknown; error?: unknown };
        if (parsed.ok === false) jsonFailure = typeof parsed.error === 'string' ? parsed.error : 'ok=false';
      } catch {
        // not JSON: judged by status alone
      }
    }
    if (res.ok && (word === undefined || word === 'ok') && jsonFailure === undefined) return;

    const reason = jsonFailure ?? word ?? (answer === '' ? res.statusText : answer.slice(0, 200));
    const retryAfterMs = res.status === 429 ? parseRetryAfter(res.headers.get('retry-after')) : undefined;
    throw notifyFailure(
      `slack: HTTP ${res.status} ${reason}${retryAfterMs !== undefined ? ` (retry after ${Math.ceil(retryAfterMs / 1000)} s)` : ''}`,
      {
        channel: 'slack',
        retryable: !PERMANENT_ERRORS.test(jsonFailure ?? word ?? ''),
        status: res.status,
        ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
      },
    );
  }
}
