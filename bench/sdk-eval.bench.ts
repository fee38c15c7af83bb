// `npm run bench -- sdk-eval`: the same 1,000 flags × 100,000 users, sampled pairs, evaluated in
// one process by this SDK (server mode), unleash-client (gradualRolloutUserId strategy, offline
// bootstrap), @growthbook/growthbook (GrowthBookClient, local features, isOn) and posthog-node
// (local evaluation; definitions served by a local HTTP server standing in for PostHog's
// /flags/definitions endpoint). Prints the median ns/eval over batches per library and the ratios.
// Goal (DESIGN.md §5): ≤ 300 ns median and ≥ 3× faster than the fastest peer.
import { GrowthBookClient } from '@growthbook/growthbook';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PostHog } from 'posthog-node';
import { InMemStorageProvider, Unleash } from 'unleash-client';
import { createServerClient } from '../sdk/src/index.ts';
import type { FlagRecord } from '../sdk/src/index.ts';

const FLAGS = 1000;
const USERS = 100_000;
const PAIRS = Number(process.env['BENCH_PAIRS'] ?? 2_000_000);
const BATCH = 100_000;
const POSTHOG_PAIRS = Math.min(PAIRS, Number(process.env['BENCH_POSTHOG_PAIRS'] ?? 200_000));

// Deterministic data: a small LCG, no Math.random.
let seed = 42;
const rand = (n: number): number => {
  seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
  return seed % n;
};
const flagNames = Array.from({ length: FLAGS }, (_, i) => `flag_${i}`);
const percentages = flagNames.map(() => 1 + rand(99)); // 1..99: every evaluation hashes
const userIds = Array.from({ length: USERS }, (_, i) => `user-${i.toString(36)}-${(i * 7919) % 100_003}`);
const pairFlag = new Int32Array(PAIRS);
const pairUser = new Int32Array(PAIRS);
for (let i = 0; i < PAIRS; i++) {
  pairFlag[i] = rand(FLAGS);
  pairUser[i] = rand(USERS);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Runs `evalOne` over all pairs in batches; returns median ns/eval of the batches (first batch = warm-up). */
function measure(evalOne: (flag: string, user: string) => boolean, pairs = PAIRS): { ns: number; on: number } {
  const perBatch: number[] = [];
  let on = 0;
  for (let start = 0; start < pairs; start += BATCH) {
    const end = Math.min(pairs, start + BATCH);
    const t0 = process.hrtime.bigint();
    for (let i = start; i < end; i++) if (evalOne(flagNames[pairFlag[i]!]!, userIds[pairUser[i]!]!)) on++;
    const dt = Number(process.hrtime.bigint() - t0);
    perBatch.push(dt / (end - start));
  }
  return { ns: median(perBatch.length > 1 ? perBatch.slice(1) : perBatch), on };
}

async function measureAsync(evalOne: (flag: string, user: string) => Promise<boolean>, pairs: number): Promise<{ ns: number; on: number }> {
  const perBatch: number[] = [];
  let on = 0;
  const batch = 20_000;
  for (let start = 0; start < pairs; start += batch) {
    const end = Math.min(pairs, start + batch);
    const t0 = process.hrtime.bigint();
    for (let i = start; i < end; i++) if (await evalOne(flagNames[pairFlag[i]!]!, userIds[pairUser[i]!]!)) on++;
    perBatch.push(Number(process.hrtime.bigint() - t0) / (end - start));
  }
  return { ns: median(perBatch.length > 1 ? perBatch.slice(1) : perBatch), on };
}

// --- this SDK (server mode) -------------------------------------------------------------------
const records: FlagRecord[] = flagNames.map((name, i) => ({
  name, enabled: true, rolloutPercentage: percentages[i]!, bucketGroup: null, version: 1, guardState: 'watching', rollbackMessage: null, targets: [],
}));
const sdk = createServerClient({ transport: { loadAll: async () => records } });
await sdk.ready();

// --- unleash-client: offline bootstrap, no fetch ---------------------------------------------
const unleash = new Unleash({
  appName: 'bench',
  url: 'http://127.0.0.1:9/api/', // never contacted: disableAutoStart + bootstrap
  disableMetrics: true,
  disableAutoStart: true,
  refreshInterval: 0,
  storageProvider: new InMemStorageProvider(),
  bootstrap: {
    data: flagNames.map((name, i) => ({
      name, enabled: true, type: 'release', project: 'default', stale: false, impressionData: false,
      strategies: [{ name: 'gradualRolloutUserId', parameters: { percentage: String(percentages[i]), groupId: name }, constraints: [] }],
      variants: [],
    })),
  },
});
unleash.on('error', () => undefined);
unleash.on('warn', () => undefined);
await unleash.start();

// --- GrowthBook: GrowthBookClient (multi-user), local features --------------------------------
const gb = new GrowthBookClient({}).initSync({
  payload: {
    features: Object.fromEntries(flagNames.map((name, i) => [name, { defaultValue: false, rules: [{ force: true, coverage: percentages[i]! / 100, hashAttribute: 'id' }] }])),
  },
});

// --- posthog-node: local evaluation, definitions from a local stand-in --------------------------
const definitions = {
  flags: flagNames.map((key, i) => ({
    id: i + 1, name: key, key, active: true, deleted: false, ensure_experience_continuity: false,
    filters: { groups: [{ properties: [], rollout_percentage: percentages[i] }] },
  })),
  group_type_mapping: {},
  cohorts: {},
};
let definitionRequests = 0;
const phServer = createServer((req, res) => {
  if (req.url?.startsWith('/flags/definitions') || req.url?.startsWith('/api/feature_flag/local_evaluation')) {
    definitionRequests++;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(definitions));
  } else {
    res.writeHead(404).end('{}');
  }
});
await new Promise<void>((r) => phServer.listen(0, '127.0.0.1', r));
const posthog = new PostHog('phc_bench', {
  host: `http://127.0.0.1:${(phServer.address() as AddressInfo).port}`,
  personalApiKey: 'phx_bench',
  featureFlagsPollingInterval: 3_600_000,
  disableGeoip: true,
  flushAt: 1_000_000,
});
await posthog.waitForLocalEvaluationReady(10_000);

// Sanity: every library answers, and Unleash (same normalized hash) agrees with this SDK exactly.
let agree = 0;
const check = Math.min(PAIRS, 20_000);
for (let i = 0; i < check; i++) {
  const f = flagNames[pairFlag[i]!]!;
  const u = userIds[pairUser[i]!]!;
  if (sdk.isEnabled(f, u) === unleash.isEnabled(f, { userId: u })) agree++;
}

const results: { lib: string; ns: number; on: number; n: number }[] = [];
const run = (lib: string, fn: (f: string, u: string) => boolean): void => {
  const r = measure(fn);
  results.push({ lib, ...r, n: PAIRS });
};
run('rollback-guardian sdk', (f, u) => sdk.isEnabled(f, u));
run('unleash-client', (f, u) => unleash.isEnabled(f, { userId: u }));
run('@growthbook/growthbook', (f, u) => gb.isOn(f, { attributes: { id: u } }));
const ph = await measureAsync(async (f, u) => (await posthog.getFeatureFlag(f, u, { onlyEvaluateLocally: true, sendFeatureFlagEvents: false })) === true, POSTHOG_PAIRS);
results.push({ lib: 'posthog-node (local)', ...ph, n: POSTHOG_PAIRS });
// This SDK again at the end: JIT state and GC pressure from the peers must not flatter it.
run('rollback-guardian sdk (again)', (f, u) => sdk.isEnabled(f, u));

unleash.destroy();
await posthog.shutdown(1000).catch(() => undefined);
phServer.close();
await sdk.close();

const ours = Math.max(results[0]!.ns, results.at(-1)!.ns);
const peers = results.filter((r) => !r.lib.startsWith('rollback-guardian'));
const fastestPeer = peers.reduce((a, b) => (a.ns < b.ns ? a : b));
console.log(`${FLAGS} flags × ${USERS} users, ${PAIRS} sampled evaluations (posthog-node: ${POSTHOG_PAIRS}, awaited); node ${process.version}`);
console.log(`unleash-client agrees with this SDK on ${agree}/${check} sampled pairs (same normalized murmur3 hash); posthog definitions fetched ${definitionRequests}×`);
for (const r of results) {
  console.log(`${r.lib.padEnd(32)} ${r.ns.toFixed(1).padStart(8)} ns/eval median   on ${((100 * r.on) / r.n).toFixed(1)}%   ${r.lib.startsWith('rollback') ? '' : `(${(r.ns / ours).toFixed(1)}× ours)`}`);
}
const goalNs = ours <= 300;
const goalRatio = fastestPeer.ns / ours >= 3;
console.log(`goal ≤ 300 ns: ${goalNs ? 'met' : 'NOT met'} (${ours.toFixed(1)} ns, the slower of our two runs); goal ≥ 3× fastest peer (${fastestPeer.lib}): ${goalRatio ? 'met' : 'NOT met'} (${(fastestPeer.ns / ours).toFixed(1)}×)`);
process.exitCode = goalNs && goalRatio ? 0 : 1;
