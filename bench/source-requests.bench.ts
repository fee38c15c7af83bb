// Requests and query sizes of the metric sources at 10 … 30,000 flags: the real PostHog and
// Sentry sources against provider-shaped fakes (healthy answers, no latency), on a virtual clock.
// PostHog: queries per cycle, HogQL bytes per query, flags answered per cycle. Sentry: requests
// per cycle and the oldest flag's age since it was last judged, over enough cycles to go round.
// Run: npm run bench -- source-requests   (INTERVAL_S=… cycle interval, default 60; SIZES=10,100)
import { createPosthogSource } from '../guardian/src/sources/posthog.ts';
import { createSentrySource } from '../guardian/src/sources/sentry.ts';
import type { FlagQuery, SourceDeps } from '../guardian/src/sources/types.ts';

const INTERVAL_MS = Number(process.env.INTERVAL_S ?? 60) * 1000;
const SIZES = (process.env.SIZES ?? '10,100,1000,10000,30000').split(',').map(Number);
const START = Date.parse('2026-01-01T12:00:00Z');

function flagsOf(n: number, since: Date): FlagQuery[] {
  return Array.from({ length: n }, (_, i) => ({ flag: `flag_${String(i).padStart(5, '0')}`, since }));
}

function clockDeps(fetch: typeof globalThis.fetch) {
  const clock = { t: START };
  const deps: SourceDeps = {
    fetch,
    now: () => new Date(clock.t),
    sleep: async (ms) => {
      clock.t += ms;
    },
    logger: { debug() {}, info() {}, warn() {}, error() {} },
  };
  return { clock, deps };
}

async function posthog(n: number) {
  const sizes: number[] = [];
  const fetch: typeof globalThis.fetch = async (_input, init) => {
    const hogql = (JSON.parse(String(init?.body)) as { query: { query: string } }).query.query;
    sizes.push(Buffer.byteLength(hogql, 'utf8'));
    const names = [...hogql.matchAll(/flag = '(flag_\d{5})', properties/g)].map((m) => m[1]!);
    const results = names.flatMap((f) => [
      [f, 'true', 500, 5],
      [f, 'false', 500, 5],
    ]);
    return new Response(JSON.stringify({ columns: ['flag', 'variant', 'users', 'error_users'], types: [], results, hasMore: false }), { status: 200, headers: { 'content-type': 'application/json' } });
  };
  const { clock, deps } = clockDeps(fetch);
  const source = createPosthogSource({ host: 'https://posthog.bench', project_id: '1', api_key: 'k' }, deps);
  const flags = flagsOf(n, new Date(START - 600_000));
  const lastOk = new Map<string, number>();
  let cycles = 0;
  let requests = 0;
  let wall = 0;
  // Enough cycles for every flag to be answered once (rotation), at most 20.
  while (lastOk.size < n && cycles < 20) {
    clock.t = START + cycles * INTERVAL_MS;
    const t0 = performance.now();
    const r = await source.query(flags, AbortSignal.timeout(60_000));
    wall += performance.now() - t0;
    requests += r.requests;
    for (const o of r.observations) if (o.status === 'ok') lastOk.set(o.flag, clock.t);
    cycles++;
  }
  return {
    queriesPerCycle: requests / cycles,
    maxQueryKiB: Math.max(...sizes) / 1024,
    totalKiBPerCycle: sizes.reduce((a, b) => a + b, 0) / cycles / 1024,
    cyclesToCoverAll: lastOk.size === n ? cycles : Infinity,
    msPerCycle: wall / cycles,
  };
}

async function sentry(n: number) {
  let inFlight = 0;
  let calls = 0;
  const fetch: typeof globalThis.fetch = async (input) => {
    calls++;
    inFlight++;
    try {
      const u = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
      const tag = u.searchParams.getAll('field')[0]!;
      const errors = u.searchParams.get('dataset') === 'errors';
      const data = ['true', 'false'].map((v) => ({ [tag]: v, 'count_unique(user)': errors ? 5 : 500, 'count()': errors ? 9 : 2500 }));
      return new Response(JSON.stringify({ data, meta: { fields: { [tag]: 'string', 'count_unique(user)': 'integer', 'count()': 'integer' } } }), { status: 200, headers: { 'content-type': 'application/json' } });
    } finally {
      inFlight--;
    }
  };
  const { clock, deps } = clockDeps(fetch);
  const source = createSentrySource({ base_url: 'https://sentry.bench', org: 'acme', project: [1], token: 't', max_requests_per_cycle: 600, concurrency: 3 }, deps);
  const flags = flagsOf(n, new Date(START - 600_000));
  const lastOk = new Map<string, number>();
  const perCycle: number[] = [];
  let maxAge = 0;
  const cycles = Math.min(60, Math.max(8, Math.ceil(n / 300) + 6));
  for (let c = 0; c < cycles; c++) {
    clock.t = Math.max(clock.t, START + c * INTERVAL_MS);
    const r = await source.query(flags, AbortSignal.timeout(60_000));
    perCycle.push(r.requests);
    for (const o of r.observations) if (o.status === 'ok') lastOk.set(o.flag, clock.t);
    // The background polls run until the next cycle (virtual time: their waits move the clock).
    let idle = 0;
    let seen = calls;
    while (idle < 50) {
      await new Promise((resolve) => setImmediate(resolve));
      if (calls === seen && inFlight === 0) idle++;
      else {
        idle = 0;
        seen = calls;
      }
    }
    if (c >= cycles / 2) for (const f of flags) maxAge = Math.max(maxAge, clock.t - (lastOk.get(f.flag) ?? START - Infinity));
  }
  const steady = perCycle.slice(Math.floor(perCycle.length / 2));
  // Where the run was too short to go round: the time one round takes at the request rate and
  // the per-cycle bound (2 requests a flag, 10 requests/s, 600 requests a cycle).
  const roundS = Math.max((n * 2) / 10, Math.ceil(n / 300) * (INTERVAL_MS / 1000));
  return { requestsPerCycle: steady.reduce((a, b) => a + b, 0) / steady.length, judged: lastOk.size, oldestAgeS: lastOk.size === n ? maxAge / 1000 : Infinity, roundS };
}

console.log(`source requests at scale (cycle interval ${INTERVAL_MS / 1000} s; fakes answer at once; virtual clock)`);
console.log('| flags | PostHog queries/cycle | largest query | HogQL per cycle | cycles to answer every flag | PostHog ms/cycle | Sentry requests/cycle | Sentry flags judged in the run | oldest Sentry judgement |');
console.log('|---|---|---|---|---|---|---|---|---|');
for (const n of SIZES) {
  const p = await posthog(n);
  const s = await sentry(n);
  console.log(
    `| ${n.toLocaleString('en')} | ${p.queriesPerCycle.toFixed(1)} | ${p.maxQueryKiB.toFixed(1)} KiB | ${p.totalKiBPerCycle.toFixed(0)} KiB | ${p.cyclesToCoverAll} | ${p.msPerCycle.toFixed(0)} | ${s.requestsPerCycle.toFixed(0)} | ${s.judged.toLocaleString('en')} | ${Number.isFinite(s.oldestAgeS) ? `${s.oldestAgeS.toFixed(0)} s` : `one round takes ≈ ${s.roundS.toFixed(0)} s`} |`,
  );
}
