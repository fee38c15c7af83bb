/**
 * Provider faults through every source, driving the real cycle (runCycle with the sources the
 * daemon builds, buildSources, against a real store on PostgreSQL): random faults of every kind,
 * targeted faults repeated poll after poll on one flag, and floods from a few users. The world
 * behind the fakes is healthy (about 1% errors on both sides, rules at 5% and +1 point), so every
 * breach verdict is a rollback caused by a fault. Global dry run keeps flags watched so the count
 * covers the whole run. Goal: 0.
 *
 * Bounded (CI, `npm test`): ≥ 1,000 random faults plus every kind targeted 3 polls in a row.
 * Full: FAULTS_FULL=1 (≥ 10,000 random faults). Prints its figures (`FAULTS providers …`, figures.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { runCycle } from '../../guardian/src/cycle/run.ts';
import { buildSources } from '../../guardian/src/daemon.ts';
import { rng } from '../../guardian/src/random.ts';
import { exposureUserKey } from '../../guardian/src/sources/builtin.ts';
import type { SourceDeps } from '../../guardian/src/sources/types.ts';
import { SqlStore } from '../../guardian/src/store/sql-store.ts';
import { MemoryLogger, rulesFrom } from '../../guardian/test/cycle-helpers.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { figure, FULL, scale } from './figures.ts';
import { BUILTIN_FAULTS, FaultSchedule, HonestWorld, POSTHOG_FAULTS, posthogFetch, SENTRY_FAULTS, sentryFetch, FaultLedger } from './provider-faults.ts';

const RANDOM_FAULTS = scale(1_000, 10_000);
const names = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}_flag_${String(i).padStart(2, '0')}`);
const SENTRY_FLAGS = names('s', 10);
const POSTHOG_FLAGS = names('p', 10);
const BUILTIN_FLAGS = names('b', 4);

const rules = rulesFrom(`
interval: 1m
dry_run: true
defaults: { min_users: 100, consecutive: 2, window: 1h }
sources:
  sentry: { base_url: "https://sentry.faults.test", org: acme, project: [1], token: sntrys_fault, max_requests_per_second: 30 }
  posthog: { host: "https://posthog.faults.test", project_id: "1", api_key: phx_fault }
rules:
${(
  [
    ['sentry', SENTRY_FLAGS],
    ['posthog', POSTHOG_FLAGS],
    ['builtin', BUILTIN_FLAGS],
  ] as const
)
  .map(
    ([source, flags]) => `  - id: ${source}-ceiling
    flags: [${flags.join(', ')}]
    source: ${source}
    condition: { absolute: { error_rate_above: 0.05 } }
    action: disable
  - id: ${source}-regression
    flags: [${flags.join(', ')}]
    source: ${source}
    condition: { relative: { max_increase: 0.01 } }
    action: step_back`,
  )
  .join('\n')}
`);

function countBy(keys: readonly string[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const k of keys) m.set(k, (m.get(k) ?? 0) + 1);
  return m;
}

interface Figures {
  cycles: number;
  randomFaults: number;
  targetedFaults: number;
  floods: number;
  byKind: Map<string, number>;
  breaches: { cycle: number; rule: string; flag: string; fault: string | undefined; reason: string }[];
  noData: Map<string, number>;
}

describe('provider faults never cause a rollback', () => {
  let db: TestDatabase;
  let store: SqlStore;

  beforeAll(async () => {
    db = await createTestDatabase();
    store = new SqlStore({ sql: db.sql, kind: 'pg', location: db.name });
    const all = [...SENTRY_FLAGS, ...POSTHOG_FLAGS, ...BUILTIN_FLAGS];
    await db.sql.query(`insert into public.feature_flags (name, enabled, rollout_percentage) select unnest($1::text[]), true, 50`, [all]);
  });
  afterAll(async () => {
    await db?.drop();
  });

  it(`${RANDOM_FAULTS.toLocaleString('en')} random faults of every kind, targeted repeats and floods: 0 rollbacks`, { timeout: FULL ? 3_600_000 : 600_000 }, async () => {
    const random = rng(20261203);
    const clock = { t: Date.now() + 1_000 };
    const world = new HonestWorld(120);
    const sentryLedger = new FaultLedger();
    const posthogLedger = new FaultLedger();
    const sentrySchedule = new FaultSchedule(SENTRY_FAULTS, random, 0.5);
    const posthogSchedule = new FaultSchedule(POSTHOG_FAULTS, random, 0.5);
    let sentryPlan = new Map<string, (typeof SENTRY_FAULTS)[number]>();
    let posthogPlan = new Map<string, (typeof POSTHOG_FAULTS)[number]>();
    // A fault counts once per flag and poll, when its answer was actually sent.
    const delivered = new Set<string>();
    let cycle = 0;
    const deliver = (provider: string, flag: string, kind: string | undefined) => {
      if (kind !== undefined) delivered.add(`${cycle}:${provider}:${flag}:${kind}`);
      return kind;
    };
    const sentry = sentryFetch(world, () => clock.t, (flag) => deliver('sentry', flag, sentryPlan.get(flag)) as (typeof SENTRY_FAULTS)[number] | undefined, sentryLedger);
    const posthog = posthogFetch(world, () => clock.t, (flag) => deliver('posthog', flag, posthogPlan.get(flag)) as (typeof POSTHOG_FAULTS)[number] | undefined, posthogLedger);
    const deps: SourceDeps = {
      fetch: async (input, init) => {
        const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
        return url.startsWith('https://sentry.faults.test') ? sentry(input, init) : posthog(input, init);
      },
      now: () => new Date(clock.t),
      sleep: async (ms) => {
        clock.t += ms;
      },
      logger: { debug() {}, info() {}, warn() {}, error() {} },
    };
    const { sources } = buildSources(rules, deps, { store, ingestEnabled: true });
    expect([...sources.keys()].sort()).toEqual(['builtin', 'posthog', 'sentry']);
    const logger = new MemoryLogger();

    const figures: Figures = { cycles: 0, randomFaults: 0, targetedFaults: 0, floods: 0, byKind: new Map(), breaches: [], noData: new Map() };
    // Targeted: every kind, on one flag, 3 polls in a row (consecutive is 2), round robin.
    const targets: { provider: 'sentry' | 'posthog'; kind: string }[] = [
      ...SENTRY_FAULTS.map((kind) => ({ provider: 'sentry' as const, kind })),
      ...POSTHOG_FAULTS.map((kind) => ({ provider: 'posthog' as const, kind })),
    ];
    const targetedKeys = new Set<string>();
    let builtinUsers = 0;

    const recordBuiltin = async (at: Date, flood: boolean) => {
      // Honest traffic: 120 new users a minute per cohort, about 1% with an error…
      const batch: { flag: string; cohort: boolean; userKey: string; at: Date; error: boolean }[] = [];
      for (const flag of BUILTIN_FLAGS) {
        for (const cohort of [true, false]) {
          for (let i = 0; i < 120; i++) {
            const n = builtinUsers++;
            batch.push({ flag, cohort, userKey: exposureUserKey(`u-${n}`), at, error: n % 100 === 0 });
          }
          // …and, when flooding, 3 users report 500 errors each on the flag-on side.
          if (flood && cohort) for (let u = 0; u < 3; u++) for (let k = 0; k < 500; k++) batch.push({ flag, cohort, userKey: exposureUserKey(`flooder-${flag}-${u}`), at, error: true });
        }
      }
      await store.recordExposures(batch);
    };

    while (figures.randomFaults < RANDOM_FAULTS || targets.length > 0) {
      cycle++;
      const at = new Date(clock.t);
      // Start targeted repeats on flags that are free, once the flags have enough users to be judged.
      for (const provider of cycle >= 10 ? (['sentry', 'posthog'] as const) : []) {
        const schedule = provider === 'sentry' ? sentrySchedule : posthogSchedule;
        for (const flag of provider === 'sentry' ? SENTRY_FLAGS : POSTHOG_FLAGS) {
          if ((schedule.targeted.get(flag)?.left ?? 0) > 0) continue;
          const i = targets.findIndex((t) => t.provider === provider);
          if (i < 0) break;
          const [t] = targets.splice(i, 1);
          (schedule as FaultSchedule<string>).target(flag, t!.kind, 3);
          targetedKeys.add(`${provider}:${flag}:${t!.kind}`);
        }
      }
      sentryPlan = sentrySchedule.decide(SENTRY_FLAGS);
      posthogPlan = posthogSchedule.decide(POSTHOG_FLAGS);
      const flood = random() < 0.3;
      await recordBuiltin(at, flood);
      if (flood) figures.floods += BUILTIN_FLAGS.length;

      const before = delivered.size;
      const report = await runCycle({ now: () => new Date(clock.t), store, sources, rules, logger, signal: new AbortController().signal });
      expect(report.errors).toEqual([]);
      for (const key of [...delivered].slice(before)) {
        const [, provider, flag, kind] = key.split(':');
        figures.byKind.set(`${provider}:${kind}`, (figures.byKind.get(`${provider}:${kind}`) ?? 0) + 1);
        if (targetedKeys.has(`${provider}:${flag}:${kind}`) && (provider === 'sentry' ? sentrySchedule : posthogSchedule).targeted.get(flag!)?.kind === kind) figures.targetedFaults++;
        else figures.randomFaults++;
      }
      for (const s of report.sources) for (const reason of Object.values(s.noDataReasons)) figures.noData.set(`${s.source}:${reason}`, (figures.noData.get(`${s.source}:${reason}`) ?? 0) + 1);
      for (const r of report.results) {
        if (r.verdict?.kind !== 'breach') continue;
        const fault = r.source === 'sentry' ? sentryPlan.get(r.flag) : r.source === 'posthog' ? posthogPlan.get(r.flag) : flood ? 'user_flood' : undefined;
        figures.breaches.push({ cycle, rule: r.ruleId, flag: r.flag, fault, reason: r.verdict.reason });
      }
      figures.cycles = cycle;
      clock.t += 60_000;
    }

    const kinds = [...figures.byKind].sort(([a], [b]) => a.localeCompare(b));
    const causes = [...countBy(figures.breaches.map((b) => `${b.rule.split('-')[0]}:${b.fault ?? 'after an earlier fault'}`))].map(([k, n]) => `${k} ${n}`).join(', ');
    figure('providers', 'rollbacks caused by provider faults and floods', figures.breaches.length, {
      cycles: figures.cycles,
      random_faults: figures.randomFaults,
      targeted_repeats: figures.targetedFaults,
      floods: figures.floods,
      sentry_requests: sentryLedger.requests,
      posthog_requests: posthogLedger.requests,
      ...(causes ? { causes } : {}),
    });
    figure('providers', 'faults by kind', kinds.map(([k, n]) => `${k} ${n}`).join(', '));
    figure('providers', 'no data by reason', [...figures.noData].sort(([a], [b]) => a.localeCompare(b)).map(([k, n]) => `${k} ${n}`).join(', '));
    for (const b of figures.breaches.slice(0, 10)) figure('providers', 'breach', `cycle ${b.cycle} ${b.rule} ${b.flag} (fault ${b.fault ?? 'none'}): ${b.reason}`);
    // Every kind was delivered, and a targeted repeat of each.
    for (const k of SENTRY_FAULTS) expect(figures.byKind.get(`sentry:${k}`) ?? 0, `sentry:${k}`).toBeGreaterThan(0);
    for (const k of POSTHOG_FAULTS) expect(figures.byKind.get(`posthog:${k}`) ?? 0, `posthog:${k}`).toBeGreaterThan(0);
    expect(BUILTIN_FAULTS).toEqual(['user_flood']);
    expect(figures.floods).toBeGreaterThan(0);
    expect(figures.randomFaults).toBeGreaterThanOrEqual(RANDOM_FAULTS);
    // The honest data got through too: faults did not simply blind everything.
    expect([...figures.noData.keys()].length).toBeGreaterThan(0);
    expect(figures.breaches).toEqual([]);
  });
});
