// Change stream latency and footprint (`npm run bench:stream`, or `npm run bench -- stream`): the
// admin API on a throwaway PostgreSQL database (LISTEN feed), one SSE client over fetch. For each
// way a flag changes — raw SQL, the CLI (`guardian flags set`, a new process each time), the
// admin API (PATCH) and a guardian rollback (the guardian_rollback SQL function the cycle calls)
// — it times from just before the change is sent to the moment the client has read the event
// (one change at a time, so the figure is latency, not queueing), and prints p50/p95 (goal: under
// 1 s). Then a client that was disconnected during 50 changes reconnects with Last-Event-ID and
// must get all 50; then 1,000 idle stream clients (raw sockets, tiny on the client side) are
// opened and the process's extra memory is printed (goal: under 100 MB).
// The Supabase rows: the same admin API in client mode (SupabaseStore over the PostgREST protocol
// double, the stream fed by Supabase Realtime through the Realtime protocol double on the same
// port, both on the same database), changes made by SQL and by guardian rollbacks (the SQL
// function through PostgREST, as the Supabase store calls it). The double stands in for Realtime's
// WAL decoding with a trigger and NOTIFY: the figure is our feed's and the double's, not hosted
// Realtime's (its own delay between commit and socket is not measured here). The rollback row
// includes the PostgREST round trips of the rollback itself.
// BENCH_CHANGES overrides the 200 changes per way (the CLI does a tenth of them: each is a process start).
import { execFile } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { serve, type ServerType } from '@hono/node-server';
import { Hono } from 'hono';

import { createAdminApi } from '../guardian/src/api/app.ts';
import { FailureLimiter } from '../guardian/src/api/auth.ts';
import { pipeFeed } from '../guardian/src/api/feed.ts';
import { ChangeHub } from '../guardian/src/api/hub.ts';
import { realtimeChangeFeed } from '../guardian/src/api/realtime-feed.ts';
import { SupabaseStore } from '../guardian/src/store/supabase-store.ts';
import { ADMIN_TOKEN, BASE_STATUS, JWT_SECRET, SUPABASE_URL, openStream, startApi } from '../guardian/test/api-helpers.ts';
import { PostgrestDouble, supabaseKey } from '../test/helpers/postgrest-double.ts';
import { RealtimeDouble } from '../test/helpers/realtime-double.ts';

const N = Math.max(20, Number(process.env['BENCH_CHANGES'] ?? 200));
const run = promisify(execFile);
const root = join(import.meta.dirname, '..');

function pct(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] ?? Number.NaN;
}

async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setImmediate(r));
  }
}

const api = await startApi('pg', { hubOptions: { maxClients: 5000, bufferSize: 1000 } });
const { rows } = await api.sql.query<{ url: string }>(`select current_database() as url`);
const databaseUrl = `postgres://postgres@127.0.0.1:5432/${rows[0]!.url}`;
const stream = await openStream(`${api.base}/stream`, ADMIN_TOKEN);
await until(() => stream.comments.includes('connected'), 'the stream');

/** Times one change: from before `act` to the client reading an event that `seen` accepts. */
async function timeChange(act: () => Promise<unknown>, seen: (e: { event: string; data: string }) => boolean): Promise<number> {
  const mark = stream.events.length;
  const t0 = performance.now();
  await act();
  await until(() => stream.events.slice(mark).some(seen), 'the event');
  return performance.now() - t0;
}

const flagAt = (pctValue: number) => (e: { event: string; data: string }) => e.event === 'flag' && e.data.includes(`"rolloutPercentage":${pctValue},`);
const results: Record<string, number[]> = { sql: [], api: [], cli: [], 'guardian rollback': [] };
/** CLI: from the change's own time (its updatedAt, the transaction's start in the database) to the client reading it. */
const cliFromCommit: number[] = [];

for (let i = 0; i < N; i++) {
  const p = i % 2 === 0 ? 41 : 42;
  results['sql']!.push(await timeChange(() => api.sql.query(`update feature_flags set rollout_percentage = $1 where name = 'ai_ga_enabled'`, [p]), flagAt(p)));
}
for (let i = 0; i < N; i++) {
  const p = i % 2 === 0 ? 43 : 44;
  const v = (await api.store.getFlag('ai_ga_enabled'))!.version;
  results['api']!.push(
    await timeChange(
      () => fetch(`${api.base}/flags/ai_ga_enabled`, { method: 'PATCH', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json', 'if-match': `"${v}"` }, body: JSON.stringify({ rolloutPercentage: p }) }).then((r) => r.text()),
      flagAt(p),
    ),
  );
}
for (let i = 0; i < Math.max(10, Math.round(N / 10)); i++) {
  const p = i % 2 === 0 ? 45 : 46;
  const mark = stream.events.length;
  let readAt = 0;
  results['cli']!.push(
    await timeChange(
      () => run(process.execPath, [join(root, 'guardian/bin/guardian.js'), 'flags', 'set', 'ai_ga_enabled', '--percentage', String(p)], { env: { ...process.env, DATABASE_URL: databaseUrl }, cwd: root }),
      (e) => flagAt(p)(e) && (readAt ||= Date.now()) > 0,
    ),
  );
  const ev = stream.events.slice(mark).find(flagAt(p));
  if (ev && readAt) cliFromCommit.push(readAt - Date.parse((JSON.parse(ev.data) as { updatedAt: string }).updatedAt));
}
for (let i = 0; i < N; i++) {
  const flag = 'booking_agent_enabled';
  await api.sql.query(`update feature_flags set enabled = true, guard_state = 'watching' where name = $1`, [flag]);
  results['guardian rollback']!.push(
    await timeChange(
      () => api.store.rollback({ flag, action: 'disable', actor: 'guardian', idempotencyKey: `bench-${i}-${Date.now()}`, channels: [], ruleId: 'bench', reason: 'bench' }),
      (e) => e.event === 'rollback_event',
    ),
  );
}

console.log(`change → SSE client latency (ms), one change at a time, PostgreSQL LISTEN feed; goal p95 < 1000`);
for (const [way, xs] of Object.entries(results)) {
  console.log(`  ${way.padEnd(18)} n=${String(xs.length).padStart(4)}  p50 ${pct(xs, 50).toFixed(1).padStart(7)}  p95 ${pct(xs, 95).toFixed(1).padStart(7)}  max ${Math.max(...xs).toFixed(1).padStart(7)}`);
}
const all = Object.values(results).flat();
console.log(`  ${'all'.padEnd(18)} n=${String(all.length).padStart(4)}  p50 ${pct(all, 50).toFixed(1).padStart(7)}  p95 ${pct(all, 95).toFixed(1).padStart(7)}`);
console.log(
  `  ${'cli, from commit'.padEnd(18)} n=${String(cliFromCommit.length).padStart(4)}  p50 ${pct(cliFromCommit, 50).toFixed(1).padStart(7)}  p95 ${pct(cliFromCommit, 95).toFixed(1).padStart(7)}  (the cli row includes starting a Node process per change; this one starts at the change's own time in the database)`,
);

// Supabase in client mode: the admin API over PostgREST, its stream fed by Realtime (both doubles).
{
  const rest = await PostgrestDouble.start({ databaseUrl });
  const realtime = await RealtimeDouble.start({ databaseUrl, server: rest.httpServer });
  const serviceRoleKey = supabaseKey('service_role');
  const store = new SupabaseStore({ url: rest.url, serviceRoleKey });
  const hub = new ChangeHub({ heartbeatMs: 0 });
  const stopFeed = await pipeFeed(realtimeChangeFeed({ url: rest.url, serviceRoleKey }), hub, store);
  const app = new Hono();
  app.route(
    '/api/v1',
    createAdminApi({ store, auth: { adminToken: ADMIN_TOKEN, jwtSecret: JWT_SECRET, supabaseUrl: SUPABASE_URL }, hub, status: () => BASE_STATUS, limiter: new FailureLimiter({ perWindow: 1000 }), allowedOrigins: [] }),
  );
  const server: ServerType = await new Promise((resolve) => {
    const s = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(s));
  });
  const port = (server.address() as { port: number }).port;
  const sb = await openStream(`http://127.0.0.1:${port}/api/v1/stream`, ADMIN_TOKEN);
  await until(() => sb.comments.includes('connected'), 'the Supabase stream');
  const timeSb = async (act: () => Promise<unknown>, seen: (e: { event: string; data: string }) => boolean): Promise<number> => {
    const mark = sb.events.length;
    const t0 = performance.now();
    await act();
    await until(() => sb.events.slice(mark).some(seen), 'the event over Realtime');
    return performance.now() - t0;
  };
  const sbResults: Record<string, number[]> = { 'supabase: sql': [], 'supabase: rollback': [] };
  for (let i = 0; i < N; i++) {
    const p = i % 2 === 0 ? 47 : 48;
    sbResults['supabase: sql']!.push(await timeSb(() => api.sql.query(`update feature_flags set rollout_percentage = $1 where name = 'ai_ga_enabled'`, [p]), flagAt(p)));
  }
  for (let i = 0; i < N; i++) {
    const flag = 'session_agent_enabled';
    await api.sql.query(`update feature_flags set enabled = true, guard_state = 'watching' where name = $1`, [flag]);
    sbResults['supabase: rollback']!.push(
      await timeSb(
        () => store.rollback({ flag, action: 'disable', actor: 'guardian', idempotencyKey: `bench-sb-${i}-${Date.now()}`, channels: [], ruleId: 'bench', reason: 'bench' }),
        (e) => e.event === 'rollback_event',
      ),
    );
  }
  console.log(`change → SSE client latency (ms), Supabase client mode: Realtime feed through the Realtime protocol double (not hosted Realtime); goal p95 < 1000`);
  for (const [way, xs] of Object.entries(sbResults)) {
    console.log(`  ${way.padEnd(18)} n=${String(xs.length).padStart(4)}  p50 ${pct(xs, 50).toFixed(1).padStart(7)}  p95 ${pct(xs, 95).toFixed(1).padStart(7)}  max ${Math.max(...xs).toFixed(1).padStart(7)}`);
  }
  sb.close();
  await sb.ended;
  hub.close();
  await new Promise<void>((r) => server.close(() => r()));
  await stopFeed();
  await store.close();
  await realtime.stop();
  await rest.stop();
}

// A client away during 50 changes.
const lastId = stream.events.at(-1)!.id!;
stream.close();
await stream.ended;
for (let i = 0; i < 50; i++) await api.sql.query(`update feature_flags set description = $1 where name = 'ai_ga_enabled'`, [`away ${i}`]);
await until(() => api.hub.lastId >= Number(lastId) + 50, 'the 50 changes to reach the hub');
const back = await openStream(`${api.base}/stream`, ADMIN_TOKEN, lastId);
await until(() => back.events.length >= 50, 'the replay');
const got = back.events.filter((e) => e.data.includes('"away ')).length;
console.log(`reconnect with Last-Event-ID after 50 changes: ${got}/50 replayed${got === 50 ? ' (all)' : ' (MISSING SOME)'}`);
back.close();
await back.ended;

// 1,000 idle clients.
const gc = (globalThis as { gc?: () => void }).gc;
const mem = () => {
  gc?.();
  const m = process.memoryUsage();
  return { rss: m.rss, heap: m.heapUsed, external: m.external + m.arrayBuffers };
};
await until(() => api.hub.clients === 0, 'clients to leave');
const before = mem();
const port = Number(new URL(api.base).port);
const sockets: Socket[] = [];
for (let i = 0; i < 1000; i++) {
  const s = connect(port, '127.0.0.1');
  s.on('error', () => {});
  s.on('data', () => {});
  s.write(`GET /api/v1/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${ADMIN_TOKEN}\r\nAccept: text/event-stream\r\n\r\n`);
  sockets.push(s);
}
await until(() => api.hub.clients === 1000, '1000 clients', 60_000);
await new Promise((r) => setTimeout(r, 500));
const after = mem();
const mb = (b: number) => (b / 1048576).toFixed(1);
console.log(
  `1,000 idle SSE clients: +${mb(after.rss - before.rss)} MB RSS (heap +${mb(after.heap - before.heap)} MB, buffers +${mb(after.external - before.external)} MB), server and client sockets in one process${gc ? ', after gc' : ' (run with --expose-gc for steadier figures)'}; goal < 100 MB`,
);
for (const s of sockets) s.destroy();
await api.close();
