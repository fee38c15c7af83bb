/**
 * `guardian demo`: plays a whole incident on a throwaway embedded database, with the real parts
 * and nothing faked but the traffic: the seeded flags, an app evaluating `ai_beta_users` (50%)
 * through the SDK for new users every simulated minute, exposures and errors reported by the
 * SDK's exposure reporter to the guardian's real ingestion endpoint (POST /v1/exposures on a
 * local port) and counted by the builtin source from the database, a bad deploy that makes
 * flag-on users fail, the guardian's cycle judging each minute, the
 * rollback one stage back (50% → 10%), its event and evidence, the alert as Slack and email
 * would say it, and the SDK telling the app. Simulated minutes pass as fast as the cycle runs.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { createServerClient, type ServerFlagClient } from '@rollback-guardian/sdk';
import { postgresTransport, type PgPoolLike } from '@rollback-guardian/sdk/postgres';
import { createExposureReporter, type ExposureReporter } from '@rollback-guardian/sdk/server';

import { loadConfig } from '../../config.ts';
import { runCycle } from '../../cycle/run.ts';
import type { CycleLogger, RuleFlagResult } from '../../cycle/types.ts';
import { GuardianError } from '../../errors.ts';
import { createExposureIngestRoute } from '../../http/ingest.ts';
import { createGuardianMetrics } from '../../http/metrics.ts';
import { startHttpServer, type HttpLogger, type RunningHttpServer } from '../../http/server.ts';
import { messageFromOutbox, messageText } from '../../notify/message.ts';
import { SqlOutboxStore } from '../../notify/outbox-store.ts';
import { parseRules } from '../../rules/parse.ts';
import { createBuiltinSource } from '../../sources/builtin.ts';
import { createStore } from '../../store/index.ts';
import { SqlStore } from '../../store/sql-store.ts';
import type { SqlClient } from '../../store/sql.ts';
import type { CliCommand, CliIo } from '../io.ts';
import { intOption, parseCommandArgs, reportError } from '../shared.ts';
import { rng } from '../../random.ts';

const FLAG = 'ai_beta_users';
const RULES = `
interval: 1m
defaults: { window: 24h, min_users: 200, consecutive: 2 }
rules:
  - id: ai-beta-regression
    flags: [${FLAG}]
    source: builtin
    condition: { relative: { max_increase: 0.01, alpha: 0.02 } }
    action: step_back
    stages: [10, 50, 100]
`;

const usage = `Usage: guardian demo [--users N] [--data-dir DIR] [--json]

Plays a whole incident on a throwaway embedded database (your own database and rules are not
touched): an app evaluates ${FLAG} (50% rollout) through the SDK for N new users every
simulated minute; the SDK's exposure reporter sends who saw which value and who hit an error to
the guardian's ingestion endpoint, and the builtin source counts them. At minute 4 a bad deploy makes
flag-on users fail 25% of the time (flag-off users stay at 2%). The guardian judges every
minute with a relative rule (sequential test, alpha 0.02, 2 breaches in a row), steps the flag
back to 10%, records the event with its evidence, writes the alert for Slack and email, and the
app's SDK sees the rollback.

Options:
  --users N        new users per simulated minute (100..5000, default 400)
  --data-dir DIR   keep the demo database in DIR (default: a temporary folder, removed after)
  --json           print the outcome as JSON

Exit codes: 0 the incident was caught, 1 it was not (or something failed), 2 bad arguments.
`;

const OPTIONS = { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' }, users: { type: 'string' }, 'data-dir': { type: 'string' } } as const;

/** The SDK's postgres transport over the embedded database's client (pg Pool shape). */
function poolOver(sql: SqlClient): PgPoolLike {
  const query = async (text: string, params?: unknown[]) => ({ rows: (await sql.query<Record<string, unknown>>(text, params ?? [])).rows });
  return { query, connect: async () => ({ query, release: () => {} }) };
}

const quiet: CycleLogger & HttpLogger = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };

function pct(x: number): string {
  return `${(x * 100).toFixed(1)}%`;
}

function verdictLine(r: RuleFlagResult | undefined): string {
  if (!r?.verdict) return r?.skipped ?? r?.error?.message ?? 'no verdict';
  const e = r.verdict.evidence;
  const counts = e ? `on ${e.treatment.errors}/${e.treatment.total} users erred (${pct(e.treatment.rate)}), off ${e.control ? `${e.control.errors}/${e.control.total} (${pct(e.control.rate)})` : '-'}` : '';
  const stat = e?.log_e_value !== undefined ? `, evidence e^${e.log_e_value.toFixed(1)} vs e^${Math.log(1 / e.alpha).toFixed(1)} needed` : '';
  return `${counts}${stat} → ${r.verdict.kind}${r.verdict.kind === 'breach' ? '' : r.verdict.consecutive > 0 ? ` (${r.verdict.consecutive} breaching poll in a row)` : ''}`;
}

async function run(args: readonly string[], io: CliIo): Promise<number> {
  const json = args.includes('--json');
  let dir: string | undefined;
  let temporary = false;
  let client: ServerFlagClient | undefined;
  let store: SqlStore | undefined;
  let http: RunningHttpServer | undefined;
  let reporter: ExposureReporter | undefined;
  try {
    const { values } = parseCommandArgs('demo', args, OPTIONS, 0);
    const usersPerMinute = values.users === undefined ? 400 : intOption('--users', values.users, 100, 5000);
    dir = values['data-dir'];
    if (dir === undefined) {
      dir = await mkdtemp(join(tmpdir(), 'guardian-demo-'));
      temporary = true;
    }
    const say = (line: string) => {
      if (!json) io.stdout(`${line}\n`);
    };
    say(`Rollback Guardian demo — embedded database in ${dir}${temporary ? ' (removed afterwards)' : ''}`);
    const opened = await createStore(loadConfig({ GUARDIAN_DATA_DIR: dir }));
    if (!(opened instanceof SqlStore)) throw new GuardianError('STORE_FAILED', 'demo: expected the embedded store');
    store = opened;
    const flag0 = await store.getFlag(FLAG);
    if (!flag0) throw new GuardianError('NOT_FOUND', `demo: ${FLAG} is missing from ${dir}; use an empty --data-dir`);
    if (flag0.guardState !== 'watching' || !flag0.enabled || flag0.rolloutPercentage !== 50) {
      throw new GuardianError('BAD_ARGUMENT', `--data-dir: ${FLAG} in ${dir} is not at its seeded 50% (it is ${flag0.enabled ? `on ${flag0.rolloutPercentage}%` : 'off'}, ${flag0.guardState}); use an empty folder`);
    }
    await store.setFlag(FLAG, { rollbackMessage: 'The AI assistant is back to its previous version while we fix a problem.' }, 'demo');

    // The app: server-mode SDK over the same database, polling for changes.
    client = createServerClient({ transport: postgresTransport(poolOver(store.sql)), pollIntervalMs: 100 });
    const seen: { flag: string; message: string | null }[] = [];
    client.onRollback((e) => void seen.push({ flag: e.flag, message: e.message }));
    if ((await client.ready(10_000)) !== 'READY') throw new GuardianError('STORE_FAILED', 'demo: the SDK could not load the flags');
    say(`app: ${FLAG} is on for ${pct(0.5)} of users (SDK server mode, evaluated locally); ${usersPerMinute} new users a minute; errors counted by the builtin source`);

    const rules = parseRules(RULES);
    if (!rules.ok) throw new GuardianError('RULES_INVALID', rules.problems.map((p) => `${p.path}: ${p.message}`).join('; '));
    const start = new Date(Math.max(Date.now(), flag0.stageStartedAt.getTime()) + 1_000);
    let now = start;
    // The guardian's ingestion endpoint on a local port (on the simulated clock), and the app's
    // exposure reporter sending to it: every evaluation is an exposure, every failure an error.
    const ingestKey = randomBytes(24).toString('hex');
    const ingest = createExposureIngestRoute({ store, ingestKey, logger: quiet, now: () => now });
    const health = async () => ({ database: { ok: true }, rules: { loaded: true }, lastCycleAt: now, cycleIntervalMs: 60_000 });
    http = await startHttpServer({ port: 0, host: '127.0.0.1', health, metrics: createGuardianMetrics(), logger: quiet, mounts: [ingest], now: () => now });
    reporter = createExposureReporter({ url: http.url, ingestKey, flushIntervalMs: 3_600_000, maxBatch: 1000, maxBuffer: 100_000, logger: { warn: () => {}, error: (obj, msg) => say(`reporter: ${msg ?? ''}`) } });
    reporter.attach(client);
    const sources = new Map([['builtin', createBuiltinSource({ store, now: () => now })]]);
    const random = rng(7);
    const BAD_DEPLOY = 4;
    let caughtAt: number | undefined;
    let eventId: string | undefined;
    for (let minute = 1; minute <= 15 && caughtAt === undefined; minute++) {
      now = new Date(start.getTime() + minute * 60_000);
      if (minute === BAD_DEPLOY) say(`minute ${String(minute).padStart(2)}: a bad model deploy — flag-on users now fail 25% of the time (flag-off: 2%)`);
      for (let i = 0; i < usersPerMinute; i++) {
        const user = `demo-user-${minute}-${i}`;
        const on = client.isEnabled(FLAG, user); // the reporter records the exposure
        const errorRate = on && minute >= BAD_DEPLOY ? 0.25 : 0.02;
        if (random() < errorRate) reporter.error(user);
      }
      await reporter.flush();
      const report = await runCycle({ now: () => now, store, sources, rules: rules.rules, logger: quiet, signal: AbortSignal.timeout(30_000), channels: ['slack', 'email'] });
      const r = report.results.find((x) => x.flag === FLAG);
      say(`minute ${String(minute).padStart(2)}: ${verdictLine(r)}`);
      if (r?.action === 'acted') {
        caughtAt = minute;
        eventId = r.eventId;
      }
    }
    if (caughtAt === undefined || eventId === undefined) {
      say('the guardian did not catch the incident within 15 minutes');
      if (json) io.stdout(`${JSON.stringify({ caught: false })}\n`);
      return 1;
    }
    const after = await store.getFlag(FLAG);
    const event = await store.getEvent(eventId);
    say(`\nguardian: ${FLAG} stepped back ${flag0.rolloutPercentage}% → ${after?.rolloutPercentage ?? '?'}% (${after?.guardState ?? '?'}), ${caughtAt - BAD_DEPLOY + 1} minute(s) after the deploy; event ${eventId}`);

    // The alert, as the outbox holds it for Slack and email (no channel is configured here).
    const outbox = new SqlOutboxStore(store.sql);
    const rows = await outbox.claim('demo', 10, 60);
    const row = rows.find((x) => x.channel === 'slack') ?? rows[0];
    let alert: string | undefined;
    if (row) {
      alert = messageText(messageFromOutbox(row));
      say(`\nalert (${rows.map((x) => x.channel).join(' and ')}; Slack gets it as Block Kit, email as text + HTML):`);
      say(alert.replace(/^/gm, '  | '));
    }
    for (const x of rows) await outbox.complete(x.id, 'demo');

    // The app hears about it through the SDK.
    const deadline = Date.now() + 5_000;
    while (seen.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const heard = seen[0];
    say(heard ? `\napp: onRollback(${heard.flag}) → "${heard.message ?? ''}"` : '\napp: the SDK did not report the rollback within 5 s');
    say(
      temporary
        ? `\nundo it with: guardian restore ${FLAG} (this demo's database is removed now; keep one with --data-dir DIR)`
        : `\nundo it with: GUARDIAN_DATA_DIR=${dir} guardian restore ${FLAG}`,
    );
    if (json) {
      io.stdout(
        `${JSON.stringify({ caught: true, minute: caughtAt, badDeployMinute: BAD_DEPLOY, flag: FLAG, before: flag0.rolloutPercentage, after: after?.rolloutPercentage, guardState: after?.guardState, event, alertChannels: rows.map((x) => x.channel), appHeard: heard ?? null }, null, 2)}\n`,
      );
    }
    return heard ? 0 : 1;
  } catch (err) {
    return reportError(io, 'demo', err, json);
  } finally {
    await reporter?.close().catch(() => {});
    await client?.close().catch(() => {});
    await http?.close().catch(() => {});
    await store?.close().catch(() => {});
    if (temporary && dir !== undefined) await rm(dir, { recursive: true, force: true }).catch(() => {});
  }
}

/** `guardian demo`. */
export const command: CliCommand = { name: 'demo', summary: 'Play a whole incident on a throwaway embedded database (SDK traffic, error spike, rollback, alert)', usage, run };
