/**
 * Fault suite: kill -9 of an outbox worker at a random moment while it delivers one alert to a
 * Slack-like webhook (answers after 200 ms; a post counts once its body has arrived, as Slack
 * posts it whether or not the sender hears back) and to a real SMTP server (a mail counts once
 * its DATA ended). A second worker then finishes the outbox. Per channel and trial the alert
 * must have arrived at most once; the figures are the duplicates and the losses per channel
 * (a loss is the one window at-most-once leaves: a kill between "send begins" and the request
 * reaching the channel), and how many rows ended `unconfirmed`.
 *
 * Bounded form: 8 trials. Full form (FAULTS_FULL=1): 60 trials.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { silentLogger } from '../../guardian/src/logger.ts';
import { EmailNotifier } from '../../guardian/src/notify/email.ts';
import { SqlOutboxStore } from '../../guardian/src/notify/outbox-store.ts';
import { SlackNotifier } from '../../guardian/src/notify/slack.ts';
import type { Channel, Notifier } from '../../guardian/src/notify/types.ts';
import { OutboxWorker } from '../../guardian/src/notify/worker.ts';
import { decodeQuotedPrintable, createSmtpServer, startWebhookServer, waitFor, type SmtpTestServer, type WebhookServer } from '../../guardian/test/notify-helpers.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { figure, scale } from './figures.ts';

const TRIALS = scale(8, 60);
/** Kill moments are spread over the whole delivery: claim, mark, POST, the 200 ms wait, complete. */
const KILL_WINDOW_MS = 320;

let db: TestDatabase;
let hook: WebhookServer;
let smtp: SmtpTestServer;

beforeAll(async () => {
  db = await createTestDatabase();
  hook = await startWebhookServer();
  hook.always({ delayMs: 200 });
  smtp = await createSmtpServer();
});
afterAll(async () => {
  await hook?.close();
  await smtp?.stop();
  await db?.drop();
});

function received(trial: number): { slack: number; email: number } {
  const tag = `crash-trial-${trial}-`;
  return {
    slack: hook.requests.filter((r) => JSON.stringify(r.body).includes(tag)).length,
    email: smtp.mails.filter((m) => decodeQuotedPrintable(m.raw).includes(tag)).length,
  };
}

async function runChild(killAfterMs: number): Promise<'killed' | 'finished'> {
  const child = spawn(process.execPath, [fileURLToPath(new URL('./outbox-crash-worker.ts', import.meta.url))], {
    env: { ...process.env, CHILD_DATABASE_URL: db.url, CHILD_WEBHOOK_URL: hook.url, CHILD_SMTP_URL: smtp.url },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  await waitFor(() => out.includes('ready') || child.exitCode !== null, 20_000, 'the worker to connect');
  if (child.exitCode !== null && !out.includes('ready')) throw new Error(`crash worker exited early: ${err}`);
  // The fault itself: a kill at a chosen moment (the only timed wait here, by design).
  await new Promise((r) => setTimeout(r, killAfterMs));
  const finished = out.includes('done');
  child.kill('SIGKILL');
  await exited;
  return finished ? 'finished' : 'killed';
}

describe('fault suite: kill -9 while delivering an alert (Slack-like webhook + real SMTP)', () => {
  it(`${TRIALS} trials: no alert is ever delivered twice on a channel`, async () => {
    const store = new SqlOutboxStore(db.sql);
    const notifiers = new Map<Channel, Notifier>([
      ['slack', new SlackNotifier({ webhookUrl: hook.url, timeoutMs: 5_000 })],
      ['email', new EmailNotifier({ smtpUrl: smtp.url, from: 'guardian@example.com', to: ['oncall@example.com'], timeoutMs: 5_000 })],
    ]);
    const recovery = new OutboxWorker({ store, notifiers, logger: silentLogger(), holder: 'recovery', lockSeconds: 1, sendTimeoutMs: 900 });
    const tally = { slack: { duplicates: 0, losses: 0, unconfirmed: 0 }, email: { duplicates: 0, losses: 0, unconfirmed: 0 } };
    const lossDelays: number[] = [];
    /** Per channel: ms from the at-most-once marker (send_started_at) to the message reaching the server. */
    const windows: Record<Channel, number[]> = { slack: [], email: [] };
    try {
      for (let trial = 0; trial < TRIALS; trial++) {
        await db.sql.query(`select public.outbox_enqueue('blindness', $1::jsonb, array['slack', 'email'], $2)`, [
          JSON.stringify({ source: `crash-trial-${trial}-source`, blind_since: new Date().toISOString(), detected_at: new Date().toISOString() }),
          `crash-trial:${trial}`,
        ]);
        const killAfter = Math.floor((trial / TRIALS) * KILL_WINDOW_MS + Math.random() * (KILL_WINDOW_MS / TRIALS));
        await runChild(killAfter);
        // Finish the outbox: rows left 'delivering' are reclaimed (send not begun) or turn unconfirmed (send begun) once the 1 s lock expires.
        await waitFor(
          async () => {
            await recovery.runOnce();
            const { rows } = await db.sql.query<{ n: string }>(`select count(*) as n from public.notification_outbox where dedupe_key like $1 and status in ('pending', 'delivering')`, [`crash-trial:${trial}:%`]);
            return Number(rows[0]!.n) === 0;
          },
          15_000,
          `trial ${trial}'s rows to settle`,
        );
        const got = received(trial);
        const { rows } = await db.sql.query<{ channel: Channel; status: string; send_started_at: Date | null }>(
          `select channel, status, send_started_at from public.notification_outbox where dedupe_key like $1`,
          [`crash-trial:${trial}:%`],
        );
        const tag = `crash-trial-${trial}-`;
        const arrived: Record<Channel, number | undefined> = {
          slack: hook.requests.find((r) => JSON.stringify(r.body).includes(tag))?.at,
          email: smtp.mails.find((m) => decodeQuotedPrintable(m.raw).includes(tag))?.at,
        };
        for (const r of rows) {
          const at = arrived[r.channel];
          if (r.send_started_at !== null && at !== undefined) windows[r.channel].push(at - r.send_started_at.getTime());
        }
        for (const channel of ['slack', 'email'] as const) {
          if (got[channel] > 1) tally[channel].duplicates += 1;
          if (got[channel] === 0) {
            tally[channel].losses += 1;
            lossDelays.push(killAfter);
          }
          if (rows.some((r) => r.channel === channel && r.status === 'unconfirmed')) tally[channel].unconfirmed += 1;
        }
      }
    } finally {
      for (const n of notifiers.values()) await n.close?.();
    }
    for (const channel of ['slack', 'email'] as const) {
      figure('outbox-crash', `${channel} duplicates`, tally[channel].duplicates, { trials: TRIALS });
      figure('outbox-crash', `${channel} losses`, tally[channel].losses, { trials: TRIALS });
      figure('outbox-crash', `${channel} unconfirmed (sent, not resent)`, tally[channel].unconfirmed, { trials: TRIALS });
    }
    for (const channel of ['slack', 'email'] as const) {
      const w = [...windows[channel]].sort((a, b) => a - b);
      if (w.length > 0) figure('outbox-crash', `${channel} loss window: marker to arrival, median/max ms`, `${w[Math.floor(w.length / 2)]}/${w[w.length - 1]}`, { samples: w.length });
    }
    if (lossDelays.length > 0) figure('outbox-crash', 'kill moments that lost an alert (ms after ready)', lossDelays.join(','));
    expect(tally.slack.duplicates).toBe(0);
    expect(tally.email.duplicates).toBe(0);
  }, 600_000);
});
