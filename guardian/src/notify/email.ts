/**
 * Email notifier: nodemailer over SMTP (`SMTP_URL`), one message per notification with a plain
 * text and an HTML part and a subject that names the flag. The Message-ID is derived from the
 * outbox row. The message is composed first and streamed to the transport, which reads it only
 * once the SMTP connection is up: the outbox's at-most-once marker (`beforeTransmit`) is written
 * then, so a guardian killed while connecting leaves a row that is safely resent.
 */
import { Readable } from 'node:stream';
import nodemailer from 'nodemailer';
import type { Transporter } from 'nodemailer';
import MailComposer from 'nodemailer/lib/mail-composer/index.js';
import type SMTPTransport from 'nodemailer/lib/smtp-transport/index.js';
import { messageText } from './message.ts';
import type { NotificationMessage, Notifier, SendHooks } from './types.ts';
import { notifyFailure } from './types.ts';

/** Options of {@link EmailNotifier}. */
export interface EmailNotifierOptions {
  /** `smtp://user:pass@host:587` (STARTTLS when offered) or `smtps://user:pass@host:465`. Ignored when `transport` is given. */
  readonly smtpUrl?: string;
  /** A ready nodemailer transport (tests, custom TLS). */
  readonly transport?: Transporter;
  /** Sender (`Guardian <guardian@example.com>`). */
  readonly from: string;
  /** Recipients. */
  readonly to: readonly string[];
  /** Connection, greeting and socket timeouts. Default 10 s. */
  readonly timeoutMs?: number;
  /** Domain of generated Message-IDs. Default `rollback-guardian.local`. */
  readonly messageIdDomain?: string;
}

function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

const SEVERITY_COLOR: Record<NotificationMessage['severity'], string> = {
  critical: '#b42318',
  warning: '#b54708',
  info: '#175cd3',
  resolved: '#067647',
};

/**
 * The email subject for a message (prefixed, names the flag through the title).
 *
 * @example
 * emailSubject(message); // '[Rollback Guardian] Guardian disabled booking_agent_enabled'
 */
export function emailSubject(message: NotificationMessage): string {
  return `[Rollback Guardian] ${message.title}`.replace(/[\r\n]+/g, ' ');
}

/**
 * The HTML body of a message: headline, summary, facts and evidence tables, the restore command
 * and the dashboard link. Every value is escaped.
 *
 * @example
 * const html = emailHtml(message);
 */
export function emailHtml(message: NotificationMessage): string {
  const rows = (facts: NotificationMessage['facts']): string =>
    facts.map((f) => `<tr><th align="left" style="padding:2px 12px 2px 0">${escapeHtml(f.label)}</th><td style="padding:2px 0">${escapeHtml(f.value)}</td></tr>`).join('');
  const parts = [
    `<h2 style="color:${SEVERITY_COLOR[message.severity]};margin:0 0 8px">${escapeHtml(message.title)}</h2>`,
    `<p>${escapeHtml(message.summary)}</p>`,
    `<table style="border-collapse:collapse">${rows(message.facts)}</table>`,
  ];
  if (message.evidence.length > 0) parts.push('<h3>Evidence</h3>', `<table style="border-collapse:collapse">${rows(message.evidence)}</table>`);
  if (message.restoreCommand) parts.push(`<p><strong>To restore</strong> (after fixing the cause): <code>${escapeHtml(message.restoreCommand)}</code></p>`);
  if (message.link) parts.push(`<p><a href="${escapeHtml(message.link.url)}">${escapeHtml(message.link.label)}</a></p>`);
  return `<!doctype html><html><body style="font-family:system-ui,sans-serif">${parts.join('\n')}</body></html>`;
}

/** The composed message as a stream that runs `before` when first read (the transport reads it once connected). */
function gatedStream(raw: Buffer, before: (() => Promise<void>) | undefined): Readable {
  let started = false;
  return new Readable({
    read() {
      if (started) return;
      started = true;
      (before ?? (async () => {}))().then(
        () => {
          this.push(raw);
          this.push(null);
        },
        (err: unknown) => this.destroy(err instanceof Error ? err : new Error(String(err))),
      );
    },
  });
}

/**
 * Sends messages by email through nodemailer's SMTP transport.
 *
 * @example
 * const email = new EmailNotifier({ smtpUrl: 'smtp://mailer:pw@smtp.example.com:587', from: 'guardian@example.com', to: ['oncall@example.com'] });
 * await email.send(message);
 * await email.close();
 */
export class EmailNotifier implements Notifier {
  readonly channel = 'email' as const;
  readonly callsBeforeTransmit = true;
  readonly #transport: Transporter;
  readonly #from: string;
  readonly #to: readonly string[];
  readonly #domain: string;

  constructor(options: EmailNotifierOptions) {
    if (options.to.length === 0) throw notifyFailure('email: no recipients (notify.email.to is empty)', { channel: 'email', retryable: false });
    const timeout = options.timeoutMs ?? 10_000;
    if (options.transport) {
      this.#transport = options.transport;
    } else if (options.smtpUrl !== undefined) {
      const smtp: SMTPTransport.Options = { url: options.smtpUrl, connectionTimeout: timeout, greetingTimeout: timeout, socketTimeout: timeout };
      this.#transport = nodemailer.createTransport(smtp);
    } else {
      throw notifyFailure('email: SMTP_URL is not set (email alerts need an SMTP server)', { channel: 'email', retryable: false });
    }
    this.#from = options.from;
    this.#to = options.to;
    this.#domain = options.messageIdDomain ?? 'rollback-guardian.local';
  }

  async send(message: NotificationMessage, signal?: AbortSignal, hooks?: SendHooks): Promise<void> {
    signal?.throwIfAborted();
    const raw = await new Promise<Buffer>((resolve, reject) =>
      new MailComposer({
        from: this.#from,
        to: [...this.#to],
        subject: emailSubject(message),
        text: messageText(message),
        html: emailHtml(message),
        messageId: `<outbox-${message.id}@${this.#domain}>`,
        headers: { 'X-Rollback-Guardian-Topic': message.topic, ...(message.flag ? { 'X-Rollback-Guardian-Flag': message.flag } : {}) },
      })
        .compile()
        .build((err, out) => (err ? reject(err) : resolve(out))),
    );
    const mail = this.#transport.sendMail({ envelope: { from: this.#from, to: [...this.#to] }, raw: gatedStream(raw, hooks?.beforeTransmit) });
    try {
      if (signal) {
        await Promise.race([
          mail,
          new Promise<never>((_, reject) => {
            signal.addEventListener('abort', () => reject(signal.reason instanceof Error ? signal.reason : new Error('aborted')), { once: true });
          }),
        ]);
      } else {
        await mail;
      }
    } catch (err) {
      mail.catch(() => {}); // the race's loser must not become an unhandled rejection
      const e = err as Error & { code?: string; responseCode?: number; response?: string };
      const code = e.responseCode;
      // SMTP 5xx is a permanent refusal (unknown mailbox, policy) — except authentication, which an operator can fix.
      const permanent = typeof code === 'number' && code >= 500 && code < 600 && e.code !== 'EAUTH';
      throw notifyFailure(
        `email: ${e.code ? `${e.code} ` : ''}${code !== undefined ? `${code} ` : ''}${e.message}`,
        { channel: 'email', retryable: !permanent, ...(code !== undefined ? { status: code } : {}) },
        err,
      );
    }
  }

  async close(): Promise<void> {
    this.#transport.close();
  }
}
