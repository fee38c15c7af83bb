// SQL evaluation latency (`npm run bench -- sql-eval`): on a throwaway database with the seed,
// times is_feature_enabled and evaluate_flags from prepared statements over one connection
// (client-observed, round trip included) and prints p50/p99 against the targets: 0.2 ms for
// is_feature_enabled p99 and 1 ms for evaluate_flags p99.
//
// The calls of every kind are interleaved (one of each in turn), so they all see the same
// machine load; `select 1` is timed the same way as the round-trip floor, and the server-side
// cost per evaluation (no round trip) is measured inside one statement. PGlite figures follow
// for reference (no target). BENCH_CALLS overrides the 5,000 calls per kind.
import pg from 'pg';

import { createTestDatabase, createTestPglite } from '../test/helpers/db.ts';
import type { SqlClient } from '../guardian/src/store/sql.ts';

const CALLS = Math.max(100, Math.min(100_000, Number(process.env['BENCH_CALLS'] ?? 5000)));
const WARMUP = 300;
const TARGETS: Readonly<Record<string, number>> = { is_feature_enabled: 0.2, evaluate_flags: 1 };
const FLAGS = ['ai_alpha_users', 'ai_beta_users', 'ai_ga_enabled', 'booking_agent_enabled', 'session_agent_enabled', 'insights_agent_enabled', 'followup_agent_enabled'];

interface Kind {
  readonly label: string;
  readonly target?: string;
  readonly text: string;
  readonly values: (i: number) => unknown[];
}

const user = (i: number): string => `bench-user-${i}-${(i * 2654435761) % 4294967296}`;

const KINDS: readonly Kind[] = [
  { label: 'is_feature_enabled (seed flags, round robin)', target: 'is_feature_enabled', text: 'select public.is_feature_enabled($1, $2) as on', values: (i) => [FLAGS[i % FLAGS.length], user(i)] },
  { label: 'is_feature_enabled (50% split: always hashes)', target: 'is_feature_enabled', text: 'select public.is_feature_enabled($1, $2) as on', values: (i) => ['ai_beta_users', user(i)] },
  { label: 'evaluate_flags (7 seed flags)', target: 'evaluate_flags', text: 'select * from public.evaluate_flags($1)', values: (i) => [user(i)] },
  { label: 'round-trip floor: select 1', text: 'select 1', values: () => [] },
];

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** Runs every kind `calls` times, interleaved; returns the sorted latencies (ms) per kind. */
async function measure(calls: number, run: (k: Kind, name: string, i: number) => Promise<unknown>): Promise<number[][]> {
  const out = KINDS.map(() => [] as number[]);
  for (let i = -WARMUP; i < calls; i++) {
    for (let k = 0; k < KINDS.length; k++) {
      const t0 = process.hrtime.bigint();
      await run(KINDS[k]!, `k${k}`, i + WARMUP);
      if (i >= 0) out[k]!.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
  }
  for (const a of out) a.sort((x, y) => x - y);
  return out;
}

function report(title: string, results: number[][], withTargets: boolean): { missed: string[] } {
  console.log(title);
  const floor = percentile(results[KINDS.length - 1]!, 50);
  const missed: string[] = [];
  KINDS.forEach((k, idx) => {
    const a = results[idx]!;
    const p50 = percentile(a, 50);
    const p99 = percentile(a, 99);
    const target = k.target === undefined ? undefined : TARGETS[k.target];
    let verdict = '';
    if (withTargets && target !== undefined) {
      verdict = `  target p99 ≤ ${target} ms: ${p99 <= target ? 'MET' : 'MISSED'} (p99/target ${(p99 / target).toFixed(2)})`;
      if (p99 > target) missed.push(k.label);
    }
    const net = k.target === undefined ? '' : `  (p50 − floor ${(p50 - floor).toFixed(3)} ms)`;
    console.log(`  ${k.label.padEnd(46)} p50 ${p50.toFixed(3)} ms  p99 ${p99.toFixed(3)} ms  max ${a[a.length - 1]!.toFixed(3)} ms${net}${verdict}`);
  });
  return { missed };
}

async function serverSide(sql: SqlClient, n: number): Promise<string> {
  const t0 = process.hrtime.bigint();
  await sql.query("select count(*) filter (where public.is_feature_enabled('ai_beta_users', 'srv-' || g)) from generate_series(1, $1::int) g", [n]);
  const ife = Number(process.hrtime.bigint() - t0) / 1e3 / n;
  const t1 = process.hrtime.bigint();
  await sql.query("select count(*) filter (where public.flag_bucket('ai_rollout', 'srv-' || g) <= 50) from generate_series(1, $1::int) g", [n]);
  const fb = Number(process.hrtime.bigint() - t1) / 1e3 / n;
  return `  server side, ${n} calls in one statement: is_feature_enabled ${ife.toFixed(2)} µs each, flag_bucket ${fb.toFixed(2)} µs each`;
}

const db = await createTestDatabase({ seed: true });
const client = new pg.Client({ connectionString: db.url });
let missed: string[] | undefined;
try {
  await client.connect();
  const { rows } = await client.query<{ v: string }>('select current_setting($$server_version$$) as v');
  const results = await measure(CALLS, (k, name, i) => client.query({ name, text: k.text, values: k.values(i) }));
  ({ missed } = report(`PostgreSQL ${rows[0]!.v}: ${CALLS} calls per kind (after ${WARMUP} warm-up), interleaved, one connection, prepared statements`, results, true));
  console.log(await serverSide(db.sql, 20_000));
} finally {
  await client.end();
  await db.drop();
}

const lite = await createTestPglite({ seed: true });
try {
  const calls = Math.min(CALLS, 2000);
  const results = await measure(calls, (k, _name, i) => lite.sql.query(k.text, k.values(i)));
  report(`PGlite (in-process WebAssembly, reference only): ${calls} calls per kind`, results, false);
  console.log(await serverSide(lite.sql, 5_000));
} finally {
  await lite.drop();
}

const load = (await import('node:os')).loadavg()[0]!;
console.log(`load average (1 min) at the end: ${load.toFixed(2)} on ${(await import('node:os')).availableParallelism()} cores`);
if (missed !== undefined && missed.length > 0) console.log(`sql-eval: target missed by: ${missed.join('; ')} — compare with the round-trip floor above: on a loaded machine the floor itself takes most of the budget`);
