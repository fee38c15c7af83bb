/**
 * Test doubles shaped exactly like the real services: a local HTTP server that answers like a
 * Slack incoming webhook (`200 ok`, plain-text error words, `429` + `Retry-After`), and a real
 * SMTP server (smtp-server) that records what it accepts.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { SMTPServer } from 'smtp-server';

/** One scripted webhook answer. `hang: true` never answers (until the server closes). */
export interface WebhookReply {
  readonly status?: number;
  readonly body?: string;
  readonly headers?: Record<string, string>;
  readonly hang?: boolean;
  readonly delayMs?: number;
}

/** A recorded webhook request. */
export interface WebhookRequest {
  readonly method: string;
  readonly path: string;
  readonly contentType: string | undefined;
  readonly body: unknown;
  readonly at: number;
  /** The status answered (undefined while hanging). */
  status?: number;
}

export interface WebhookServer {
  readonly url: string;
  readonly requests: WebhookRequest[];
  /** Queue answers for the next requests; when empty the server answers `200 ok`. */
  reply(...replies: WebhookReply[]): void;
  /** Answer every request this way from now on (until `reply()` queues or `always(undefined)`). */
  always(reply: WebhookReply | undefined): void;
  close(): Promise<void>;
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * Starts a Slack-webhook-shaped server on 127.0.0.1 (random port).
 *
 * @example
 * const hook = await startWebhookServer();
 * hook.reply({ status: 500, body: 'rollup_error' });
 */
export async function startWebhookServer(options: { port?: number } = {}): Promise<WebhookServer> {
  const requests: WebhookRequest[] = [];
  const queue: WebhookReply[] = [];
  let fallback: WebhookReply | undefined;
  const server: Server = createHttpServer(async (req, res) => {
    const text = await readBody(req);
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // keep text
    }
    const record: WebhookRequest = { method: req.method ?? '', path: req.url ?? '', contentType: req.headers['content-type'], body, at: Date.now() };
    requests.push(record);
    const reply = queue.shift() ?? fallback ?? {};
    if (reply.hang) return; // never answer
    if (reply.delayMs) await new Promise((r) => setTimeout(r, reply.delayMs));
    record.status = reply.status ?? 200;
    res.writeHead(record.status, { 'content-type': 'text/html', ...reply.headers });
    res.end(reply.body ?? 'ok');
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}/services/T000TEST/B000TEST/testsecretpath`,
    requests,
    reply: (...r) => void queue.push(...r),
    always: (r) => void (fallback = r),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** One accepted email. */
export interface ReceivedMail {
  readonly from: string;
  readonly to: readonly string[];
  readonly raw: string;
  readonly at: number;
}

export interface SmtpTestServer {
  readonly port: number;
  readonly url: string;
  readonly mails: ReceivedMail[];
  /** Start listening (again) on `port`. */
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Reject RCPT TO with this SMTP code and message (e.g. 550). */
  rejectRecipients(code: number | undefined, message?: string): void;
}

/** A free TCP port on 127.0.0.1 (nothing listens there when this returns). */
export async function freePort(): Promise<number> {
  const s = createNetServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address() as { port: number };
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

/**
 * A real SMTP server (smtp-server) on a fixed free port, started or not.
 *
 * @example
 * const smtp = await createSmtpServer({ started: false }); // "down"
 * await smtp.start(); // "up"
 */
export async function createSmtpServer(options: { started?: boolean } = {}): Promise<SmtpTestServer> {
  const port = await freePort();
  const mails: ReceivedMail[] = [];
  let reject: { code: number; message: string } | undefined;
  let server: SMTPServer | undefined;
  const make = (): SMTPServer =>
    new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS'],
      logger: false,
      onAuth(auth, _session, cb) {
        cb(null, { user: auth.username });
      },
      onRcptTo(_address, _session, cb) {
        if (reject) {
          const err = new Error(reject.message) as Error & { responseCode: number };
          err.responseCode = reject.code;
          cb(err);
          return;
        }
        cb();
      },
      onData(stream, session, cb) {
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => {
          mails.push({
            from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
            to: session.envelope.rcptTo.map((r) => r.address),
            raw: Buffer.concat(chunks).toString('utf8'),
            at: Date.now(),
          });
          cb();
        });
      },
    });
  const api: SmtpTestServer = {
    port,
    url: `smtp://mailer:smtp-test-pass@127.0.0.1:${port}`,
    mails,
    async start() {
      if (server) return;
      server = make();
      const s = server;
      await new Promise<void>((resolve, rejectStart) => {
        s.once('error', rejectStart);
        s.listen(port, '127.0.0.1', () => resolve());
      });
    },
    async stop() {
      const s = server;
      server = undefined;
      if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
    },
    rejectRecipients(code, message = 'mailbox unavailable') {
      reject = code === undefined ? undefined : { code, message };
    },
  };
  if (options.started !== false) await api.start();
  return api;
}

/** Decodes a quoted-printable MIME body enough to search it. */
export function decodeQuotedPrintable(text: string): string {
  const bytes = text.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/g, (_m, hex: string) => `%${hex}`);
  try {
    return decodeURIComponent(bytes.replace(/%(?![0-9A-F]{2})/g, '%25'));
  } catch {
    return bytes;
  }
}

/** Polls `check` every 25 ms until it returns true or `timeoutMs` passes. */
export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 5_000, what = 'condition'): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}
