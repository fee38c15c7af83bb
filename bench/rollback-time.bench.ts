// Rollback-time benchmark: the real daemon (`guardian start` as a child process) with the shipped
// rules (rules/guardian.yaml, shipped defaults: interval, consecutive, confirm_after), on a real
// PostgreSQL; only the PostHog endpoint is pointed at a local PostHog-shaped HTTP server. Each
// incident: ai_beta_users is (re)started at 50% (a person's restore), the server answers healthy
// counts (5% both arms, 100 new users per minute per arm), and at a random time T it starts
// answering with the detection benchmark's clear regression (flag-on 20%, flag-off 5%). Legs:
//   T → flag row changed (the watcher hears the commit on `guardian_changes`),
//   row → each SDK client's onRollback: server mode on the postgres transport (LISTEN), server mode
//   on the Supabase double (Realtime), client mode on the postgres transport and on the double.
// Run: npm run bench -- rollback-time   (INCIDENTS=… to change the count; default 20; ~1 min each;
// RULES_FILE=… to measure another rules file, e.g. the old defaults: interval 1m, confirm_after 1m)
import { spawn } from 'node:child_process';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

import { createClient } from '@supabase/supabase-js';
import pg from 'pg';

import { posthogQueryAnswer, type PosthogRow } from '../guardian/test/posthog-answer.ts';
import { loadRulesFile } from '../guardian/src/rules/parse.ts';
import { bucket, createBrowserClient, createServerClient, type BrowserFlagClient, type ServerFlagClient } from '../sdk/src/index.ts';
import { postgresTransport } from '../sdk/src/postgres/index.ts';
import { supabaseTransport } from '../sdk/src/supabase/index.ts';
import { jwt, SupabaseDouble } from '../sdk/test/helpers/supabase-double.ts';
import { createTestDatabase } from '../test/helpers/db.ts';

const INCIDENTS = Number(process.env.INCIDENTS ?? 20);
const FLAG = 'ai_beta_users';
const USERS_PER_MIN = 100;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, check: () => T | undefined | false | Promise<T | undefined | false>, ms: number): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for: ${what}`);
    await sleep(5);
  }
}

// ---- the PostHog-shaped server ---------------------------------------------------------------
interface Incident {
  readonly startedAt: number;
  regressedAt: number | undefined;
}
let incident: Incident = { startedAt: Date.now(), regressedAt: undefined };
let queries = 0;
let queryBytes = 0;
/** Counts for one arm: 400 users at the (re)start, then 100 per minute; errors at `rate` (expected values, rounded). */
function arm(rate: number): [number, number] {
  const users = 400 + Math.floor((USERS_PER_MIN * (Date.now() - incident.startedAt)) / 60_000);
  return [users, Math.round(users * rate)];
}
function answerRows(flags: readonly string[]): PosthogRow[] {
  const rows: PosthogRow[] = [];
  for (const flag of flags) {
    if (flag === FLAG) {
      const [onUsers, onErrors] = arm(incident.regressedAt !== undefined ? 0.2 : 0.05);
      const [offUsers, offErrors] = arm(0.05);
      rows.push([flag, 'true', onUsers, onErrors], [flag, 'false', offUsers, offErrors]);
    } else {
      rows.push([flag, 'true', 1000, 20], [flag, 'false', 1000, 20]);
    }
  }
  return rows;
}
const posthog = createServer((req: IncomingMessage, res: ServerResponse) => {
  let body = '';
  req.on('data', (c: Buffer) => (body += c.toString('utf8')));
  req.on('end', () => {
    if (req.method !== 'POST' || req.url !== '/api/projects/1/query/' || req.headers.authorization !== 'Bearer phx_bench') {
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ type: 'invalid_request', code: 'not_found', detail: 'Not found.', attr: null }));
      return;
    }
    queries++;
    queryBytes += body.length;
    const hogql = String((JSON.parse(body) as { query?: { query?: string } }).query?.query ?? '');
    const keys = /arrayJoin\(\[([^\]]*)\]\)/.exec(hogql)?.[1] ?? '';
    const flags = [...keys.matchAll(/'([a-z][a-z0-9_]*)'/g)].map((m) => m[1]!);
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(posthogQueryAnswer(answerRows(flags))));
  });
});

// ---- set-up ----------------------------------------------------------------------------------
const RULES_FILE = process.env.RULES_FILE ?? 'rules/guardian.yaml';
const loaded = await loadRulesFile(RULES_FILE, {});
if (!loaded.ok) throw new Error(`${RULES_FILE} does not load: ${JSON.stringify(loaded.problems)}`);
const rules = loaded.rules;
const db = await createTestDatabase();
await new Promise<void>((r) => posthog.listen(0, '127.0.0.1', r));
const posthogUrl = `http://127.0.0.1:${(posthog.address() as AddressInfo).port}`;
const double = await SupabaseDouble.start(db.url, { liveDelayMs: 100 });
const pool = new pg.Pool({ connectionString: db.url, max: 8 });
pool.on('error', () => undefined);

// A user on at 50% and off at 10% in the flag's bucket group (the step back 50 → 10 turns them off).
const { rows: groupRows } = await pool.query<{ g: string | null }>('select bucket_group as g from feature_flags where name = $1', [FLAG]);
const group = groupRows[0]?.g ?? FLAG;
let user = '';
for (let i = 1; user === ''; i++) {
  const id = `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`; // an auth user id (uuid)
  const b = bucket(group, id);
  if (b > 10 && b <= 50) user = id;
}
const authUser = user;
const realtime = { reconnectAfterMs: () => 100, heartbeatIntervalMs: 5000 };
const serviceSupabase = createClient(double.url, jwt({ role: 'service_role' }), { auth: { persistSession: false, autoRefreshToken: false }, realtime });
const userSupabase = createClient(double.url, jwt({ role: 'anon' }), { auth: { persistSession: false, autoRefreshToken: false }, realtime });
await userSupabase.auth.setSession({ access_token: jwt({ sub: authUser, role: 'authenticated', aud: 'authenticated' }), refresh_token: 'r1' });
const hour = 3_600_000;
const clients: { readonly name: string; readonly client: ServerFlagClient | BrowserFlagClient; heard?: number; readonly on: () => boolean }[] = [];
const serverPg = createServerClient({ transport: postgresTransport(pool), pollIntervalMs: hour, ttlMs: hour });
const serverSb = createServerClient({ transport: supabaseTransport(serviceSupabase), pollIntervalMs: hour, ttlMs: hour });
const browserPg = createBrowserClient({ transport: postgresTransport(pool, { user: { id: authUser } }), pollIntervalMs: hour, ttlMs: hour });
const browserSb = createBrowserClient({ transport: supabaseTransport(userSupabase), pollIntervalMs: hour, ttlMs: hour });
clients.push(
  { name: 'server mode, postgres transport (LISTEN)', client: serverPg, on: () => serverPg.evaluate(FLAG, user).value },
  { name: 'server mode, Supabase Realtime (double)', client: serverSb, on: () => serverSb.evaluate(FLAG, user).value },
  { name: 'client mode, postgres transport (LISTEN)', client: browserPg, on: () => browserPg.isEnabled(FLAG) },
  { name: 'client mode, Supabase Realtime (double)', client: browserSb, on: () => browserSb.isEnabled(FLAG) },
);
for (const c of clients) {
  await c.client.ready(10_000);
  c.client.onRollback((e) => {
    if (e.flag === FLAG && c.heard === undefined) c.heard = performance.timeOrigin + performance.now();
  });
}

// The database watcher: when the flag's row change is announced.
const watcher = new pg.Client({ connectionString: db.url });
await watcher.connect();
let rowChangedAt: number | undefined;
let armed = false;
watcher.on('notification', (n) => {
  const p = JSON.parse(n.payload ?? '{}') as { table?: string; name?: string };
  if (armed && p.table === 'feature_flags' && p.name === FLAG && rowChangedAt === undefined) rowChangedAt = performance.timeOrigin + performance.now();
});
await watcher.query('listen guardian_changes');

// The daemon, as a user starts it.
const guardianLog: string[] = [];
const child = spawn(process.execPath, ['guardian/bin/guardian.js', 'start'], {
  env: {
    PATH: process.env.PATH ?? '',
    DATABASE_URL: db.url,
    RULES_FILE,
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    POSTHOG_HOST: posthogUrl,
    POSTHOG_PROJECT_ID: '1',
    POSTHOG_API_KEY: 'phx_bench',
  },
  stdio: ['ignore', 'pipe', 'pipe'],
});
child.stdout.on('data', (c: Buffer) => guardianLog.push(c.toString('utf8')));
child.stderr.on('data', (c: Buffer) => guardianLog.push(c.toString('utf8')));
const exited = new Promise<number | null>((r) => child.once('exit', r));

console.log(
  `Rollback-time benchmark: ${INCIDENTS} incidents, the real daemon with ${RULES_FILE} (interval ${rules.interval / 1000}s, confirm_after ${(rules.confirm_after ?? 0) / 1000}s, ` +
    `rule ai-stage-regression consecutive ${rules.rules.find((r) => r.id === 'ai-stage-regression')?.consecutive}); regression 5% → 20% at ${USERS_PER_MIN} users/min per arm.`,
);
const legs = { row: [] as number[], clients: new Map<string, number[]>(clients.map((c) => [c.name, []])), t2client: [] as number[] };
const random = (() => {
  let s = 13;
  return () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
})();
try {
  for (let i = 1; i <= INCIDENTS; i++) {
    // A person restores the flag to 50%: a new stage, healthy answers.
    armed = false;
    rowChangedAt = undefined;
    await pool.query(`update feature_flags set enabled = true, rollout_percentage = 50, guard_state = 'watching', rollback_message = null where name = $1`, [FLAG]);
    incident = { startedAt: Date.now(), regressedAt: undefined };
    for (const c of clients) c.heard = undefined;
    await until('every client sees the flag on again', () => clients.every((c) => c.on()), 30_000);
    // T falls at a random phase of the poll schedule.
    await sleep(5000 + random() * rules.interval);
    armed = true;
    const T = performance.timeOrigin + performance.now();
    incident.regressedAt = Date.now();
    await until('the flag row changes', () => rowChangedAt, 180_000);
    await until('every client hears the rollback', () => clients.every((c) => c.heard !== undefined), 30_000);
    const { rows } = await pool.query<{ guard_state: string; rollout_percentage: number }>('select guard_state, rollout_percentage from feature_flags where name = $1', [FLAG]);
    if (rows[0]?.guard_state !== 'rolled_back' || rows[0].rollout_percentage !== 10) throw new Error(`incident ${i}: expected a step back to 10%, got ${JSON.stringify(rows[0])}`);
    legs.row.push(rowChangedAt! - T);
    for (const c of clients) legs.clients.get(c.name)!.push(c.heard! - rowChangedAt!);
    legs.t2client.push(Math.max(...clients.map((c) => c.heard!)) - T);
    process.stdout.write(`   incident ${i}: T → row ${((rowChangedAt! - T) / 1000).toFixed(1)} s, row → slowest client ${(Math.max(...clients.map((c) => c.heard! - rowChangedAt!))).toFixed(0)} ms\n`);
  }
} finally {
  child.kill('SIGTERM');
  const code = await Promise.race([exited, sleep(10_000).then(() => 'timeout')]);
  if (code === 'timeout') child.kill('SIGKILL');
  for (const c of clients) await c.client.close();
  await watcher.end();
  await double.stop();
  await pool.end();
  posthog.close();
  await db.drop();
}

const q = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))] ?? Number.NaN;
const line = (label: string, xs: number[], unit: 's' | 'ms', goal: number): string => {
  const f = (x: number) => (unit === 's' ? `${(x / 1000).toFixed(1)} s` : `${x.toFixed(0)} ms`);
  return `   ${label.padEnd(52)} p50 ${f(q(xs, 0.5))}   p95 ${f(q(xs, 0.95))}   max ${f(Math.max(...xs))}   [${q(xs, 0.95) < goal ? 'MET' : 'NOT MET'}: p95 < ${unit === 's' ? `${goal / 1000} s` : `${goal} ms`}]`;
};
console.log(`\nOver ${legs.row.length} incidents (PostHog queries: ${queries}, ${(queryBytes / Math.max(1, queries)).toFixed(0)} bytes each):`);
console.log(line('T → flag row changed', legs.row, 's', 60_000));
for (const [name, xs] of legs.clients) console.log(line(`row → ${name}`, xs, 'ms', 1000));
console.log(line('T → the last client', legs.t2client, 's', 61_000));
if (guardianLog.some((l) => l.includes('"level":50'))) console.log(`\nguardian errors:\n${guardianLog.filter((l) => l.includes('"level":50')).join('').slice(0, 2000)}`);
