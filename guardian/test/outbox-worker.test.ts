/**
 * The outbox worker end to end on real PostgreSQL, a real local SMTP server and a real local
 * HTTP server shaped like a Slack incoming webhook: delivery, retries, a channel down while the
 * other delivers, give-up, and a worker killed with SIGKILL mid-delivery.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.ts';
import { createLogger } from '../src/logger.ts';
import { EmailNotifier } from '../src/notify/email.ts';
import { SqlOutboxStore } from '../src/notify/outbox-store.ts';
import { SlackNotifier } from '../src/notify/slack.ts';
import type { Channel, Notifier } from '../src/notify/types.ts';
import { OutboxWorker, backoffDelay, type OutboxWorkerOptions } from '../src/notify/worker.ts';
import { createSmtpServer, decodeQuotedPrintable, startWebhookServer, waitFor, type SmtpTestServer, type WebhookServer } from './notify-helpers.ts';

const EVIDENCE = {
  unit: 'users',
  treatment: { total: 1000, errors: 91, rate: 0.091 },
  control: { total: 3000, errors: 36, rate: 0.012 },
  condition: 'absolute',
  threshold: 0.05,
  alpha: 0.05,
  statistic: 'beta_binomial_mixture_cs',
  lower_bound: 0.064,
  window: 600_000,
  polls: 4,
  at: '2025-11-25T10:00:00.000Z',
};

let db: TestDatabase;
let store: SqlOutboxStore;
let hook: WebhookServer;
let smtp: SmtpTestServer;
const logLines: string[] = [];
const logger = createLogger({ level: 'debug', destination: { write: (l: string) => void logLines.push(l) } });
let flagCounter = 0;

async function newFlag(): Promise<string> {
  flagCounter += 1;
  const name = `outbox_test_flag_${flagCounter}`;
  await db.sql.query('insert into public.feature_flags (name, enabled, rollout_percentage) values ($1, true, 50)', [name]);
  return name;
}

async function rollback(flag: string, channels: readonly Channel[]): Promise<string> {
  const { rows } = await db.sql.query<{ id: string }>(
    `select (e).id::text as id from (select public.guardian_rollback($1, 'disable', 'booking-agent-errors', 'sentry', $2::jsonb, 'guardian', $3, $4::text[], false, $5) as e) s`,
    [flag, JSON.stringify(EVIDENCE), `test:${flag}`, [...channels], 'flag-on error rate 9.1% is above 5% (lower bound 6.4%)'],
  );
  return rows[0]!.id;
}

async function outboxRows(eventId: string): Promise<Array<{ channel: string; status: string; attempts: number; last_error: string | null; delivered_at: Date | null; next_attempt_at: Date }>> {
  const { rows } = await db.sql.query<{ channel: string; status: string; attempts: number; last_error: string | null; delivered_at: Date | null; next_attempt_at: Date }>(
    'select channel, status, attempts, last_error, delivered_at, next_attempt_at from public.notification_outbox where event_id = $1 order by channel',
    [eventId],
  );
  return rows;
}

function slack(url = hook.url, timeoutMs = 2_000): SlackNotifier {
  return new SlackNotifier({ webhookUrl: url, timeoutMs });
}

function email(url = smtp.url): EmailNotifier {
  return new EmailNotifier({ smtpUrl: url, from: 'Guardian <guardian@example.com>', to: ['oncall@example.com'], timeoutMs: 2_000 });
}

function worker(notifiers: Map<Channel, Notifier>, extra: Partial<OutboxWorkerOptions> = {}): OutboxWorker {
  return new OutboxWorker({
    store,
    notifiers,
    logger,
    lockSeconds: 5,
    sendTimeoutMs: 3_000,
    backoff: { minTimeoutMs: 60, factor: 2, randomize: false },
    dashboardUrl: 'https://guardian.example.com',
    ...extra,
  });
}

/** Runs the worker until `done()` or 40 runs (each waits past the backoff). */
async function runUntil(w: OutboxWorker, done: () => Promise<boolean>): Promise<number> {
  for (let i = 1; i <= 40; i++) {
    await w.runOnce();
    if (await done()) return i;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('worker did not finish in 40 runs');
}

beforeAll(async () => {
  db = await createTestDatabase({ seed: false });
  store = new SqlOutboxStore(db.sql);
  hook = await startWebhookServer();
  smtp = await createSmtpServer();
});

afterAll(async () => {
  await hook?.close();
  await smtp?.stop();
  await db?.drop();
});

beforeEach(async () => {
  // Every test starts with an empty outbox and healthy channels.
  await db.sql.query('delete from public.notification_outbox');
  hook.requests.length = 0;
  hook.always(undefined);
  smtp.mails.length = 0;
  smtp.rejectRecipients(undefined);
  await smtp.start();
});

describe('OutboxWorker', () => {
  it('delivers a rollback to Slack (Block Kit) and email (text + HTML), exactly once per channel', async () => {
    const flag = await newFlag();
    const eventId = await rollback(flag, ['slack', 'email']);
    const w = worker(new Map<Channel, Notifier>([['slack', slack()], ['email', email()]]));

    const report = await w.runOnce();
    expect(report).toEqual({ claimed: 2, delivered: 2, retried: 0, failed: 0, lostLock: 0 });

    expect(hook.requests).toHaveLength(1);
    const req = hook.requests[0]!;
    expect(req.method).toBe('POST');
    expect(req.contentType).toMatch(/^application\/json/);
    const body = req.body as { text: string; blocks: Array<{ type: string; text?: { text: string }; fields?: Array<{ text: string }>; elements?: Array<{ url?: string; text: string | { text: string } }> }> };
    expect(body.text).toContain(`Guardian disabled ${flag}`);
    const allText = JSON.stringify(body.blocks);
    expect(body.blocks[0]).toEqual({ type: 'header', text: { type: 'plain_text', text: `Guardian disabled ${flag}`, emoji: true } });
    for (const expected of [flag, 'booking-agent-errors', 'disable', 'sentry', '9.1% errors (91 of 1,000 users)', '1.2% errors (36 of 3,000 users)', '5% error rate', '6.4%', '10 min', `guardian restore ${flag}`, 'on at 50% → off at 50%']) {
      expect(allText, expected).toContain(expected);
    }
    const button = body.blocks.find((b) => b.type === 'actions')?.elements?.[0];
    expect(button?.url).toBe(`https://guardian.example.com/?flag=${flag}&event=${eventId}`);
    expect(body.blocks.at(-1)?.type).toBe('context');

    expect(smtp.mails).toHaveLength(1);
    const mail = smtp.mails[0]!;
    expect(mail.from).toBe('guardian@example.com');
    expect(mail.to).toEqual(['oncall@example.com']);
    expect(mail.raw).toMatch(new RegExp(`^Subject: \\[Rollback Guardian\\] Guardian disabled ${flag}`, 'm'));
    expect(mail.raw).toContain('Content-Type: text/plain');
    expect(mail.raw).toContain('Content-Type: text/html');
    expect(mail.raw).toMatch(/^Message-ID: <outbox-\d+@rollback-guardian\.local>/m);
    const decoded = decodeQuotedPrintable(mail.raw);
    expect(decoded).toContain(`To restore: guardian restore ${flag}`);
    expect(decoded).toContain('Flag on: 9.1% errors (91 of 1,000 users)');

    const rows = await outboxRows(eventId);
    expect(rows.map((r) => [r.channel, r.status, r.attempts])).toEqual([
      ['email', 'delivered', 1],
      ['slack', 'delivered', 1],
    ]);
    expect(rows.every((r) => r.delivered_at instanceof Date)).toBe(true);

    // Acknowledged rows are never sent again.
    expect((await w.runOnce()).claimed).toBe(0);
    expect(hook.requests).toHaveLength(1);
    expect(smtp.mails).toHaveLength(1);
  });

  it('retries a webhook that fails twice (500 rollup_error, 429 Retry-After) and then succeeds', async () => {
    const flag = await newFlag();
    const eventId = await rollback(flag, ['slack']);
    hook.reply({ status: 500, body: 'rollup_error' }, { status: 429, body: 'rate_limited', headers: { 'retry-after': '1' } });
    const w = worker(new Map<Channel, Notifier>([['slack', slack()]]));

    const first = await w.runOnce();
    expect(first).toMatchObject({ claimed: 1, retried: 1 });
    let [row] = await outboxRows(eventId);
    expect(row).toMatchObject({ status: 'pending', attempts: 1, last_error: 'slack: HTTP 500 rollup_error' });
    expect(row!.next_attempt_at.getTime()).toBeGreaterThan(Date.now() - 1_000);

    await waitFor(async () => (await w.runOnce()).claimed > 0, 3_000, 'second attempt');
    [row] = await outboxRows(eventId);
    expect(row).toMatchObject({ status: 'pending', attempts: 2 });
    expect(row!.last_error).toContain('slack: HTTP 429 rate_limited (retry after 1 s)');
    // Retry-After (1 s) wins over the 120 ms backoff.
    expect(row!.next_attempt_at.getTime() - Date.now()).toBeGreaterThan(700);

    expect((await w.runOnce()).claimed).toBe(0); // not due yet
    await runUntil(w, async () => (await outboxRows(eventId))[0]?.status === 'delivered');
    [row] = await outboxRows(eventId);
    expect(row).toMatchObject({ status: 'delivered', attempts: 3, last_error: null });
    expect(hook.requests.map((r) => r.status)).toEqual([500, 429, 200]);
    expect(hook.requests[2]!.at - hook.requests[1]!.at).toBeGreaterThanOrEqual(950);
  });

  it('keeps email pending while the SMTP server is down and delivers once it is up', async () => {
    await smtp.stop();
    const flag = await newFlag();
    const eventId = await rollback(flag, ['email']);
    const w = worker(new Map<Channel, Notifier>([['email', email()]]));

    expect(await w.runOnce()).toMatchObject({ claimed: 1, retried: 1 });
    await new Promise((r) => setTimeout(r, 150));
    expect(await w.runOnce()).toMatchObject({ claimed: 1, retried: 1 });
    let [row] = await outboxRows(eventId);
    expect(row).toMatchObject({ status: 'pending', attempts: 2 });
    expect(row!.last_error).toMatch(/ECONNREFUSED|ECONNECTION/);
    expect(smtp.mails).toHaveLength(0);

    await smtp.start();
    await runUntil(w, async () => (await outboxRows(eventId))[0]?.status === 'delivered');
    [row] = await outboxRows(eventId);
    expect(row).toMatchObject({ status: 'delivered', attempts: 3 });
    expect(smtp.mails).toHaveLength(1);
  });

  it('delivers email at once while Slack hangs, and Slack later', async () => {
    const flag = await newFlag();
    const eventId = await rollback(flag, ['slack', 'email']);
    hook.reply({ hang: true });
    const w = worker(new Map<Channel, Notifier>([['slack', slack(hook.url, 1_500)], ['email', email()]]));

    const started = Date.now();
    const run = w.runOnce();
    await waitFor(() => smtp.mails.length === 1, 2_000, 'the email');
    const emailDelay = smtp.mails[0]!.at - started;
    const report = await run;
    const slackDelay = Date.now() - started;
    expect(report).toMatchObject({ claimed: 2, delivered: 1, retried: 1 });
    expect(emailDelay).toBeLessThan(1_000);
    expect(slackDelay).toBeGreaterThanOrEqual(1_400); // the hung webhook ran into its timeout meanwhile

    const rows = await outboxRows(eventId);
    expect(rows.map((r) => [r.channel, r.status])).toEqual([
      ['email', 'delivered'],
      ['slack', 'pending'],
    ]);
    expect(rows[1]!.last_error).toContain('timed out after 1500 ms');

    await runUntil(w, async () => (await outboxRows(eventId)).every((r) => r.status === 'delivered'));
    expect(smtp.mails).toHaveLength(1); // email was not sent again
  });

  it('gives up after maxAttempts, and at once on a failure retrying cannot fix, logging each', async () => {
    const flagA = await newFlag();
    const flagB = await newFlag();
    const a = await rollback(flagA, ['slack']);
    hook.always({ status: 503, body: 'service unavailable' });
    const w = worker(new Map<Channel, Notifier>([['slack', slack()]]), { maxAttempts: 3 });
    await runUntil(w, async () => (await outboxRows(a))[0]?.status === 'failed');
    const [rowA] = await outboxRows(a);
    expect(rowA).toMatchObject({ status: 'failed', attempts: 3 });
    expect(rowA!.last_error).toBe('slack: HTTP 503 service unavailable (gave up after 3 attempts)');

    hook.always({ status: 400, body: 'invalid_payload' });
    const b = await rollback(flagB, ['slack']);
    expect(await w.runOnce()).toMatchObject({ claimed: 1, failed: 1 });
    const [rowB] = await outboxRows(b);
    expect(rowB).toMatchObject({ status: 'failed', attempts: 1, last_error: 'slack: HTTP 400 invalid_payload (not retryable)' });

    const failures = logLines.map((l) => JSON.parse(l) as { level: string; msg: string; outboxId?: string }).filter((l) => l.msg === 'outbox: notification failed for good');
    expect(failures.length).toBeGreaterThanOrEqual(2);
    expect(failures.every((l) => l.level === 'error')).toBe(true);
    // The webhook path is a secret: it is in no log line.
    expect(logLines.join('')).not.toContain('testsecretpath');

    const backlog = await store.backlog();
    expect(backlog).toEqual([expect.objectContaining({ channel: 'slack', status: 'failed', count: 2 })]);
  });

  it('after a worker is killed mid-send, the row is never resent (at most once): it turns unconfirmed once the lock expires', async () => {
    const flag = await newFlag();
    const eventId = await rollback(flag, ['slack']);
    hook.reply({ hang: true }); // the child's send never gets an answer
    const child = spawn(process.execPath, [fileURLToPath(new URL('./outbox-crash-child.ts', import.meta.url))], {
      env: { ...process.env, CHILD_DATABASE_URL: db.url, CHILD_WEBHOOK_URL: hook.url },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let childErr = '';
    child.stderr.on('data', (c: Buffer) => (childErr += c.toString()));
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
    try {
      await waitFor(() => hook.requests.length === 1, 10_000, `the child's delivery attempt (stderr: ${childErr})`);
      const [held] = await db.sql.query<{ status: string; locked_by: string; attempts: number }>('select status, locked_by, attempts from public.notification_outbox where event_id = $1', [eventId]).then((r) => r.rows);
      expect(held).toMatchObject({ status: 'delivering', locked_by: 'crash-child', attempts: 1 });
    } finally {
      child.kill('SIGKILL');
    }
    expect(await exited).toBe('SIGKILL');

    const w = worker(new Map<Channel, Notifier>([['slack', slack()]]));
    expect((await w.runOnce()).claimed).toBe(0); // still locked by the dead worker
    // The POST reached the channel (it may have posted it): after the lock expires the row is
    // set unconfirmed by the next claim, with the reason, and never sent again.
    await waitFor(async () => (await w.runOnce()).claimed === 0 && (await outboxRows(eventId))[0]?.status === 'unconfirmed', 6_000, 'the row to turn unconfirmed after the lock expired');
    const [row] = await outboxRows(eventId);
    expect(row).toMatchObject({ status: 'unconfirmed', attempts: 1 });
    expect(row?.last_error).toMatch(/stopped while sending .*not resent/);
    expect((await w.runOnce()).claimed).toBe(0);
    expect(hook.requests).toHaveLength(1);
  });

  it('start() delivers in the background; stop() drains', async () => {
    const flag = await newFlag();
    const eventId = await rollback(flag, ['slack', 'email']);
    const outcomes: string[] = [];
    const w = worker(new Map<Channel, Notifier>([['slack', slack()], ['email', email()]]), { intervalMs: 50, onOutcome: (c, o) => outcomes.push(`${c}:${o}`) });
    w.start();
    try {
      await waitFor(async () => (await outboxRows(eventId)).every((r) => r.status === 'delivered'), 5_000, 'background delivery');
    } finally {
      await w.stop();
    }
    expect(outcomes.sort()).toEqual(['email:delivered', 'slack:delivered']);
  });

  it('rejects a send timeout that is not shorter than the lock', () => {
    expect(() => worker(new Map(), { lockSeconds: 2, sendTimeoutMs: 2_000 })).toThrow(/sendTimeoutMs \(2000\) must be shorter than lockSeconds \(2 s\)/);
  });
});

describe('backoffDelay', () => {
  it('follows p-retry’s schedule: min · factor^(n-1) · random(1..2), capped', () => {
    expect([1, 2, 3, 4].map((n) => backoffDelay(n, { minTimeoutMs: 1000, factor: 2, randomize: false }))).toEqual([1000, 2000, 4000, 8000]);
    expect(backoffDelay(20, { minTimeoutMs: 1000, maxTimeoutMs: 60_000, randomize: false })).toBe(60_000);
    expect(backoffDelay(1, { minTimeoutMs: 1000 }, () => 0.5)).toBe(1500);
  });
});

