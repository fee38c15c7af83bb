// Release benchmark: simulated guarded releases 10% → 50% → 100%, judged by the guardian's real
// code (`assessStage` for promotion on evidence of safety, `decide` for harm), side by side with a
// fixed-time promotion schedule (what Argo Rollouts and Flagger users configure: promote every
// min_time unless the analysis fails) that uses the SAME harm rule, so only the promotion rule differs.
// Run: npm run bench -- release   (seeded: the same figures every run; RUNS=…, USERS_PER_MIN=…)
//
// Scenarios (flag-off error rate 1%): good (flag-on 1%), bad (2%), subtly bad (1.3%), and bad only
// from 50% on (1% at 10%, 2% at 50% and 100%). The plan's margin is 0.2 points, so 1.3% is bad.
import { decide, type DecisionRule } from '../guardian/src/decide/decide.ts';
import type { HistoryPoint } from '../guardian/src/decide/types.ts';
import { assessStage, type GuardVerdict } from '../guardian/src/plans/advance.ts';
import type { Plan } from '../guardian/src/plans/schema.ts';
import { rng } from '../guardian/src/random.ts';
import type { Flag } from '../guardian/src/store/types.ts';

const RUNS = Number(process.env.RUNS ?? 400);
/** Traffic levels (all users a minute), comma-separated: a small, a mid-sized and a large app. */
const TRAFFIC = (process.env.USERS_PER_MIN ?? '300,2000,10000').split(',').map(Number);
const MIN = 60_000;
const MIN_TIME = 60 * MIN;
const MAX_TIME = 24 * 60 * MIN;
const STAGES = [10, 50, 100];

const plan: Plan = {
  flag: 'bench_flag',
  stages: STAGES.map((percentage) => ({ percentage, minTimeMs: MIN_TIME, maxTimeMs: MAX_TIME, minUsers: 500 })),
  guard: ['harm'],
  onBreach: 'step_back',
  margin: 0.002,
  alpha: 0.05,
};
/** The guard rule: any increase, alpha 0.02 (the rules file's default), two polls in a row. */
const harmRule: DecisionRule = { id: 'harm', flags: ['bench_flag'], window: 7 * 24 * 60 * MIN, min_users: 100, min_samples: 500, consecutive: 2, condition: { kind: 'relative', max_increase: 0, alpha: 0.02 } };

/** Binomial(n, p) by geometric gaps: O(number of successes). */
function binomial(random: () => number, n: number, p: number): number {
  if (p <= 0) return 0;
  const logq = Math.log1p(-p);
  let k = 0;
  let pos = Math.floor(Math.log(1 - random()) / logq);
  while (pos < n) {
    k++;
    pos += Math.floor(Math.log(1 - random()) / logq) + 1;
  }
  return k;
}

interface Scenario {
  readonly name: string;
  readonly bad: boolean;
  readonly onRate: (pct: number) => number;
}
const SCENARIOS: readonly Scenario[] = [
  { name: 'good (1% vs 1%)', bad: false, onRate: () => 0.01 },
  { name: 'bad (2% vs 1%)', bad: true, onRate: () => 0.02 },
  { name: 'subtly bad (1.3% vs 1%)', bad: true, onRate: () => 0.013 },
  { name: 'bad only at 50% (1% → 2%)', bad: true, onRate: (pct) => (pct >= 50 ? 0.02 : 0.01) },
];

interface Outcome {
  /** Minutes to reach 100%, when it did. */
  readonly reachedAt?: number;
  readonly rolledBack: boolean;
  readonly paused: boolean;
  /** Flag-on user-minutes while the flag-on rate was worse than flag-off (a user a minute counts once a minute). */
  readonly exposedBad: number;
}

/** One release: a poll a minute; the strategy decides when to promote; the harm rule rolls back (step back, release over). */
function release(s: Scenario, strategy: 'guarded' | 'fixed', random: () => number, USERS_PER_MIN: number): Outcome {
  let stage = 0;
  let t = 0;
  let stageStart = 0;
  let history: HistoryPoint[] = [];
  const c = { on: 0, onErr: 0, off: 0, offErr: 0 };
  let exposedBad = 0;
  for (;;) {
    t++;
    const pct = STAGES[stage]!;
    const onNow = Math.round((USERS_PER_MIN * pct) / 100);
    const offNow = USERS_PER_MIN - onNow;
    const pOn = s.onRate(pct);
    if (pOn > 0.01) exposedBad += onNow;
    c.on += onNow;
    c.onErr += binomial(random, onNow, pOn);
    c.off += offNow;
    c.offErr += binomial(random, offNow, 0.01);
    if (pct === 100) return { reachedAt: t - 1, rolledBack: false, paused: false, exposedBad };
    const at = new Date(t * MIN);
    history.push({ at, treatment: { total: c.on, errors: c.onErr }, control: { total: c.off, errors: c.offErr } });
    const verdict = decide(harmRule, history, 'bench_flag', { bounds: false });
    if (verdict.kind === 'breach') return { rolledBack: true, paused: false, exposedBad };
    let promote: boolean;
    if (strategy === 'fixed') promote = (t - stageStart) * MIN >= MIN_TIME;
    else {
      const flag: Flag = {
        name: 'bench_flag', description: '', enabled: true, rolloutPercentage: pct, bucketGroup: null, version: stage + 1, updatedAt: at, updatedBy: 'bench',
        guardState: 'watching', rollbackMessage: null, rollbackUrgent: false, stageStartedAt: new Date(stageStart * MIN), targets: [],
      };
      const harm: GuardVerdict[] = [{ ruleId: 'harm', source: 'sim', kind: verdict.kind, consecutive: verdict.consecutive, reason: verdict.reason }];
      const a = assessStage(plan, flag, history, 'sim', harm, at);
      if (a.timedOut && !a.promote) return { rolledBack: false, paused: true, exposedBad };
      promote = a.promote;
    }
    if (promote) {
      stage++;
      stageStart = t;
      history = [];
      c.on = c.onErr = c.off = c.offErr = 0;
    }
  }
}

function quantile(xs: readonly number[], q: number): number | undefined {
  if (xs.length === 0) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

const fmtMin = (m: number | undefined): string => (m === undefined ? '-' : m >= 120 ? `${(m / 60).toFixed(1)} h` : `${m} min`);
const pctText = (n: number, d: number): string => `${((100 * n) / d).toFixed(1)}%`;

for (const USERS_PER_MIN of TRAFFIC) {
  console.log(`Release benchmark: ${RUNS} releases per scenario, ${USERS_PER_MIN} users/min, stages ${STAGES.join(' → ')}, min_time ${MIN_TIME / MIN} min, max_time ${MAX_TIME / 3_600_000} h`);
  console.log(`guarded plan: promote on non-inferiority (margin ${plan.margin * 100} points, confidence ${1 - plan.alpha}); fixed schedule: promote every ${MIN_TIME / MIN} min; both roll back on the same harm rule (relative, alpha 0.02, consecutive 2)\n`);
  const header = ['scenario', 'strategy', 'reached 100%', 'rolled back', 'paused', 'time to 100% p50 / p95', 'bad user-minutes p50 / p95'];
  const rows: string[][] = [];
  const summary: Record<string, Record<string, { reached: number; p50?: number }>> = {};
  let seed = 1;
  for (const s of SCENARIOS) {
    for (const strategy of ['guarded', 'fixed'] as const) {
      const random = rng(seed++);
      const outs = Array.from({ length: RUNS }, () => release(s, strategy, random, USERS_PER_MIN));
      const reached = outs.filter((o) => o.reachedAt !== undefined);
      const times = reached.map((o) => o.reachedAt!);
      const bad = outs.map((o) => o.exposedBad);
      rows.push([
        s.name,
        strategy,
        pctText(reached.length, RUNS),
        pctText(outs.filter((o) => o.rolledBack).length, RUNS),
        pctText(outs.filter((o) => o.paused).length, RUNS),
        `${fmtMin(quantile(times, 0.5))} / ${fmtMin(quantile(times, 0.95))}`,
        s.bad ? `${quantile(bad, 0.5)?.toLocaleString('en-US')} / ${quantile(bad, 0.95)?.toLocaleString('en-US')}` : '-',
      ]);
      (summary[s.name] ??= {})[strategy] = { reached: reached.length / RUNS, ...(quantile(times, 0.5) === undefined ? {} : { p50: quantile(times, 0.5)! }) };
    }
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  console.log(line(header));
  console.log(line(widths.map((w) => '-'.repeat(w))));
  for (const r of rows) console.log(line(r));

  console.log('\nGoals:');
  for (const s of SCENARIOS.filter((x) => x.bad)) {
    const g = summary[s.name]!['guarded']!.reached;
    console.log(`  ${s.name}: reaches 100% in ${(g * 100).toFixed(1)}% of guarded releases (goal ≤ alpha ${plan.alpha * 100}%): ${g <= plan.alpha ? 'met' : 'NOT met'}; fixed schedule ${(summary[s.name]!['fixed']!.reached * 100).toFixed(1)}%`);
  }
  const good = summary[SCENARIOS[0]!.name]!;
  console.log(
    `  good flag: median time to 100% guarded ${fmtMin(good['guarded']!.p50)} vs fixed ${fmtMin(good['fixed']!.p50)} (ratio ${good['guarded']!.p50 !== undefined && good['fixed']!.p50 !== undefined ? (good['guarded']!.p50 / good['fixed']!.p50).toFixed(2) : '-'}; goal ≤ 1.00, the fixed schedule's minimum): ` +
      `${good['guarded']!.p50 !== undefined && good['fixed']!.p50 !== undefined && good['guarded']!.p50 <= good['fixed']!.p50 ? 'met' : 'NOT met'}; reached 100% in ${(good['guarded']!.reached * 100).toFixed(1)}% of guarded releases`,
  );
  console.log("GrowthBook's safe rollouts ramp on a schedule and roll back on a significant guardrail regression: their promotion rule is the fixed schedule above (their own sequential test for harm was not reproduced here).");
  console.log('');
}
