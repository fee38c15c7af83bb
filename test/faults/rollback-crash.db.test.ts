/**
 * Fault suite: kill -9 around a rollback. Per trial a fresh flag breaches (a PostHog-shaped
 * server answers 15% errors for flag-on users); guardian A (`guardian start`, a real process on
 * the real PostgreSQL, Slack-like webhook answering after 200 ms, real SMTP) is killed with
 * SIGKILL at a chosen moment: before its first cycle, inside the rollback, while delivering, or
 * after. Guardian B then runs until the outbox is settled (A's row locks are expired in the
 * database instead of waiting out their 60 s). Per trial: exactly one flip and one event, one
 * outbox row per channel, and the alert at most once per channel; the figures count flips,
 * duplicates and losses per channel.
 *
 * Bounded form: 3 trials. Full form (FAULTS_FULL=1): 50 trials.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { posthogQueryAnswer } from '../../guardian/test/posthog-answer.ts';
import { createSmtpServer, decodeQuotedPrintable, startWebhookServer, waitFor, type SmtpTestServer, type WebhookServer } from '../../guardian/test/notify-helpers.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { figure, scale } from './figures.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const TRIALS = scale(3, 50);
/** Kill moments spread from the banner to well after the first cycle's delivery. */
const KILL_WINDOW_MS = 900;

let db: TestDatabase;
let dir: string;
let hook: WebhookServer;
let smtp: SmtpTestServer;
let posthog: Server;
let posthogUrl: string;
let currentFlag = '';
const children: ChildProcess[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  dir = mkdtempSync(join(tmpdir(), 'guardian-rollback-crash-'));
  hook = await startWebhookServer();
  hook.always({ delayMs: 200 });
  smtp = await createSmtpServer();
  posthog = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' }).end(
        JSON.stringify(
          posthogQueryAnswer([
            [currentFlag, 'true', 800, 120],
            [currentFlag, 'false', 2400, 30],
          ]),
        ),
      );
    });
  });
  await new Promise<void>((r) => posthog.listen(0, '127.0.0.1', r));
  posthogUrl = `http://127.0.0.1:${(posthog.address() as AddressInfo).port}`;
});
afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await hook?.close();
  await smtp?.stop();
  await new Promise((r) => posthog?.close(r));
  await db?.drop();
  rmSync(dir, { recursive: true, force: true });
});

function startGuardian(rulesFile: string): { child: ChildProcess; banner: Promise<void>; stderr: () => string } {
  const child = spawn(process.execPath, [join(ROOT, 'guardian/bin/guardian.js'), 'start'], {
    cwd: ROOT,
    env: { PATH: process.env['PATH'] ?? '', DATABASE_URL: db.url, RULES_FILE: rulesFile, PORT: '0', HOST: '127.0.0.1', SMTP_URL: smtp.url, LOG_LEVEL: 'error' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  // The banner goes to stdout or stderr, depending on the version: either will do.
  const banner = waitFor(() => out.includes('http:') || err.includes('http:') || child.exitCode !== null, 60_000, 'the guardian banner').catch((e: unknown) => {
    throw new Error(`${(e as Error).message}; stdout: ${out.slice(-500)}; stderr: ${err.slice(-1500)}`);
  });
  return { child, banner, stderr: () => err };
}

describe('fault suite: kill -9 around a rollback (real guardian processes, real PostgreSQL)', () => {
  it(`${TRIALS} trials: one flip, one event, each alert at most once per channel`, async () => {
    const tally = { flipsWrong: 0, slack: { duplicates: 0, losses: 0 }, email: { duplicates: 0, losses: 0 } };
    const stages: Record<string, number> = {};
    for (let trial = 0; trial < TRIALS; trial++) {
      currentFlag = `crash_flag_${trial}`;
      await db.sql.query(`insert into public.feature_flags (name, description, enabled, rollout_percentage) values ($1, 'fault suite', true, 100)`, [currentFlag]);
      const rulesFile = join(dir, `rules-${trial}.yaml`);
      writeFileSync(
        rulesFile,
        `interval: 1s
defaults: { window: 1h, min_users: 100, consecutive: 1 }
notify:
  slack: { webhook_url: "${hook.url}" }
  email: { to: [oncall@example.com], from: guardian@example.com }
sources:
  posthog: { host: "${posthogUrl}", project_id: "77", api_key: phx_crash }
rules:
  - { id: crash-rule, flags: [${currentFlag}], source: posthog, condition: { absolute: { error_rate_above: 0.05 } }, action: disable }
`,
      );
      const a = startGuardian(rulesFile);
      await a.banner;
      const killAfter = Math.floor((trial / TRIALS) * KILL_WINDOW_MS + Math.random() * (KILL_WINDOW_MS / TRIALS));
      await new Promise((r) => setTimeout(r, killAfter)); // the fault: a kill at a chosen moment
      a.child.kill('SIGKILL');
      await new Promise((r) => (a.child.exitCode !== null || a.child.signalCode !== null ? r(null) : a.child.once('exit', r)));
      const flipped = (await db.sql.query<{ enabled: boolean }>(`select enabled from public.feature_flags where name = $1`, [currentFlag])).rows[0]!.enabled === false;
      const { rows: rowsAtKill } = await db.sql.query<{ status: string; send_started_at: Date | null }>(
        `select o.status, o.send_started_at from public.notification_outbox o join public.rollback_events e on e.id = o.event_id where e.flag_name = $1`,
        [currentFlag],
      );
      const stage = !flipped ? 'before the flip' : rowsAtKill.every((r) => r.status === 'delivered') ? 'after delivery' : rowsAtKill.some((r) => r.send_started_at !== null) ? 'while sending' : 'after the flip, before sending';
      stages[stage] = (stages[stage] ?? 0) + 1;
      // Waiting out A's 60 s row locks, fast-forwarded.
      await db.sql.query(`update public.notification_outbox set locked_until = clock_timestamp() where status = 'delivering'`);

      const b = startGuardian(rulesFile);
      await b.banner;
      await waitFor(
        async () => {
          const { rows } = await db.sql.query<{ n: string; settled: string }>(
            `select count(*) as n, count(*) filter (where o.status in ('delivered', 'unconfirmed', 'failed')) as settled
               from public.notification_outbox o join public.rollback_events e on e.id = o.event_id where e.flag_name = $1`,
            [currentFlag],
          );
          return Number(rows[0]!.n) === 2 && rows[0]!.settled === rows[0]!.n;
        },
        60_000,
        `trial ${trial}: the rollback and its alerts to settle (B stderr: ${b.stderr().slice(-500)})`,
      );
      b.child.kill('SIGTERM');
      await new Promise((r) => (b.child.exitCode !== null ? r(null) : b.child.once('exit', r)));

      const events = (await db.sql.query<{ kind: string }>(`select kind from public.rollback_events where flag_name = $1`, [currentFlag])).rows;
      const changes = Number((await db.sql.query<{ n: string }>(`select count(*) as n from public.flag_changes where flag_name = $1 and op = 'update' and (old_row ->> 'enabled') = 'true' and (new_row ->> 'enabled') = 'false'`, [currentFlag])).rows[0]!.n);
      if (events.length !== 1 || events[0]!.kind !== 'auto_rollback' || changes !== 1) tally.flipsWrong += 1;
      const slack = hook.requests.filter((r) => JSON.stringify(r.body).includes(currentFlag)).length;
      const email = smtp.mails.filter((m) => decodeQuotedPrintable(m.raw).includes(currentFlag)).length;
      for (const [channel, n] of [['slack', slack], ['email', email]] as const) {
        if (n > 1) tally[channel].duplicates += 1;
        if (n === 0) tally[channel].losses += 1;
      }
    }
    figure('rollback-crash', 'trials with other than one flip and one event', tally.flipsWrong, { trials: TRIALS });
    for (const channel of ['slack', 'email'] as const) {
      figure('rollback-crash', `${channel} duplicates`, tally[channel].duplicates, { trials: TRIALS });
      figure('rollback-crash', `${channel} losses`, tally[channel].losses, { trials: TRIALS });
    }
    figure('rollback-crash', 'kill landed', Object.entries(stages).map(([k, v]) => `${k}: ${v}`).join('; '));
    expect(tally.flipsWrong).toBe(0);
    expect(tally.slack.duplicates).toBe(0);
    expect(tally.email.duplicates).toBe(0);
  }, 1_200_000);
});
