// Detection benchmark: simulated rollouts judged by the guardian's `decide` (the real code), side
// by side with the naive rule "flag-on error rate > 5%, checked every poll".
// Run: npm run bench -- detection   (seeded: the same figures every run; RUNS=… to change the count)
import { decide, type DecisionRule } from '../guardian/src/decide/decide.ts';
import type { HistoryPoint } from '../guardian/src/decide/types.ts';
import { RELATIVE_MIXTURE, relativeLogE, type RatioComponent } from '../guardian/src/decide/stats.ts';
import { BUILTIN_RULE_DEFAULTS, RelativeConditionSchema, RulesFileSchema } from '../guardian/src/rules/schema.ts';
import { rng } from '../guardian/src/random.ts';

/** Binomial(n, p) by inversion (n ≤ a few hundred here). */
function binomial(random: () => number, n: number, p: number): number {
  const q = 1 - p;
  let prob = q ** n;
  let cdf = prob;
  const u = random();
  let k = 0;
  while (u > cdf && k < n) {
    prob *= ((n - k) / (k + 1)) * (p / q);
    cdf += prob;
    k++;
  }
  return k;
}

const RUNS = Number(process.env.RUNS ?? 2000);
const POLLS_24H = 24 * 60;
const USERS_PER_MIN = 100;
const MIN = 60_000;

const base = { id: 'bench', flags: ['bench_flag'], window: 24 * 60 * MIN, min_users: 100, min_samples: 500 };
const absoluteRule = (consecutive: number): DecisionRule => ({ ...base, consecutive, condition: { kind: 'absolute', error_rate_above: 0.05, confidence: 0.95 } });
/** What a user gets who writes `relative: { max_increase: 0 }` and nothing else: the schema's defaults. */
const DEFAULT_ALPHA = RelativeConditionSchema.parse({ max_increase: 0 }).alpha;
const DEFAULT_CONSECUTIVE = BUILTIN_RULE_DEFAULTS.consecutive;
const relativeRule = (consecutive: number = DEFAULT_CONSECUTIVE, alpha: number = DEFAULT_ALPHA): DecisionRule => ({
  ...base,
  consecutive,
  condition: { kind: 'relative', max_increase: 0, alpha },
});
const DEFAULT_LABEL = `default rule (alpha ${DEFAULT_ALPHA}, consecutive ${DEFAULT_CONSECUTIVE})`;

interface Outcome {
  guardian: number | undefined; // poll index (1-based) of the first breach
  naiveCumulative: number | undefined;
  naiveLastPoll: number | undefined;
}

/** One rollout: every poll adds `USERS_PER_MIN` new flag-on users (and `offPerMin` flag-off ones); returns the first breach poll of each rule. */
function simulate(rule: DecisionRule, pOn: number, pOff: number, polls: number, random: () => number, offPerMin: number = USERS_PER_MIN): Outcome {
  const history: HistoryPoint[] = [];
  let tTotal = 0;
  let tErr = 0;
  let cTotal = 0;
  let cErr = 0;
  const out: Outcome = { guardian: undefined, naiveCumulative: undefined, naiveLastPoll: undefined };
  for (let i = 1; i <= polls; i++) {
    const newErr = binomial(random, USERS_PER_MIN, pOn);
    tTotal += USERS_PER_MIN;
    tErr += newErr;
    cTotal += offPerMin;
    cErr += binomial(random, offPerMin, pOff);
    history.push({ at: new Date(i * MIN), treatment: { total: tTotal, errors: tErr }, control: { total: cTotal, errors: cErr } });
    if (out.guardian === undefined && decide(rule, history, 'bench_flag', { bounds: false }).kind === 'breach') out.guardian = i;
    if (out.naiveCumulative === undefined && tErr / tTotal > 0.05) out.naiveCumulative = i;
    if (out.naiveLastPoll === undefined && newErr / USERS_PER_MIN > 0.05) out.naiveLastPoll = i;
    if (out.guardian !== undefined && out.naiveCumulative !== undefined && out.naiveLastPoll !== undefined) break;
  }
  return out;
}

function run(rule: DecisionRule, pOn: number, pOff: number, polls: number, runs: number, seed: number, offPerMin: number = USERS_PER_MIN): Outcome[] {
  const random = rng(seed);
  const outcomes: Outcome[] = [];
  for (let r = 0; r < runs; r++) outcomes.push(simulate(rule, pOn, pOff, polls, random, offPerMin));
  return outcomes;
}

/**
 * Trade-off curve of a relative-test mixture, free of alpha: per simulated stage, the highest
 * level its statistic held for DEFAULT_CONSECUTIVE polls in a row (with flag-on observed worse).
 * A stage breaches at alpha iff that level ≥ ln(1/alpha), so one pass gives every alpha.
 */
function bestRuns(mixture: readonly RatioComponent[], pOn: number, pOff: number, polls: number, runs: number, seed: number): number[] {
  const random = rng(seed);
  const out: number[] = [];
  for (let r = 0; r < runs; r++) {
    const c = { treatmentErrors: 0, treatmentTotal: 0, controlErrors: 0, controlTotal: 0 };
    const recent: number[] = [];
    let best = -Infinity;
    for (let i = 1; i <= polls; i++) {
      c.treatmentErrors += binomial(random, USERS_PER_MIN, pOn);
      c.controlErrors += binomial(random, USERS_PER_MIN, pOff);
      c.treatmentTotal += USERS_PER_MIN;
      c.controlTotal += USERS_PER_MIN;
      recent.push(c.treatmentErrors > c.controlErrors ? relativeLogE(c, 0, mixture) : -Infinity);
      if (recent.length > DEFAULT_CONSECUTIVE) recent.shift();
      if (recent.length === DEFAULT_CONSECUTIVE) best = Math.max(best, Math.min(...recent));
    }
    out.push(best);
  }
  return out;
}

const share = (xs: Outcome[], key: keyof Outcome): number => xs.filter((o) => o[key] !== undefined).length / xs.length;
const fmt = (x: number): string => `${(x * 100).toFixed(2)}%`;
function quantile(values: number[], q: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? Number.NaN;
}
function pollsLine(xs: Outcome[], key: keyof Outcome, cap: number): string {
  const v = xs.map((o) => o[key] ?? cap + 1);
  return `median ${quantile(v, 0.5)}, p95 ${quantile(v, 0.95)}, max ${Math.max(...v)}${v.some((x) => x > cap) ? ` (some never within ${cap})` : ''}`;
}
const verdict = (ok: boolean): string => (ok ? 'MET' : 'NOT MET');
const pad = (label: string): string => label.padEnd(70);

const started = performance.now();
console.log(`Detection benchmark: ${RUNS} simulated rollouts per scenario, ${USERS_PER_MIN} new users per arm per 1-minute poll, counts cumulative since the stage start.`);
console.log(
  `Guardian rules: absolute = error_rate_above 0.05, confidence 0.95 (beta-binomial mixture CS); relative = max_increase 0 with the schema defaults alpha ${DEFAULT_ALPHA}, consecutive ${DEFAULT_CONSECUTIVE} (rate-ratio mixture SPRT); min_users 100.`,
);
console.log("Naive rule: flag-on error rate > 5% at any poll, (a) on cumulative counts, (b) on the last poll's minute alone.\n");

// 1. A/A false breaches over 24 h of 1-minute polls.
console.log('1. A/A (the flag does no harm): share of 24 h rollouts (1,440 polls) with a false breach. Goal ≤ 1%.');
const aaRel = run(relativeRule(), 0.02, 0.02, POLLS_24H, RUNS, 11);
const aaShare = share(aaRel, 'guardian');
console.log(`   ${pad(`relative, both arms 2%, ${DEFAULT_LABEL}:`)} guardian ${fmt(aaShare)} [${verdict(aaShare <= 0.01)}]   naive cumulative ${fmt(share(aaRel, 'naiveCumulative'))}   naive last-minute ${fmt(share(aaRel, 'naiveLastPoll'))}`);
const aaRel1 = run(relativeRule(1), 0.02, 0.02, POLLS_24H, RUNS, 12);
console.log(`   ${pad(`relative, both arms 2%, alpha ${DEFAULT_ALPHA}, consecutive 1:`)} guardian ${fmt(share(aaRel1, 'guardian'))} [${verdict(share(aaRel1, 'guardian') <= 0.01)}]`);
const aaRel05 = run(relativeRule(DEFAULT_CONSECUTIVE, 0.05), 0.02, 0.02, POLLS_24H, RUNS, 15);
console.log(`   ${pad(`relative, both arms 2%, alpha 0.05, consecutive ${DEFAULT_CONSECUTIVE}:`)} guardian ${fmt(share(aaRel05, 'guardian'))} [${verdict(share(aaRel05, 'guardian') <= 0.01)}]`);
const aaAbs = run(absoluteRule(2), 0.05, 0.05, POLLS_24H, RUNS, 13);
console.log(`   ${pad('absolute, flag-on exactly at 5% threshold, consecutive 2:')} guardian ${fmt(share(aaAbs, 'guardian'))} [${verdict(share(aaAbs, 'guardian') <= 0.01)}]   naive cumulative ${fmt(share(aaAbs, 'naiveCumulative'))}   naive last-minute ${fmt(share(aaAbs, 'naiveLastPoll'))}`);
const aaAbs3 = run(absoluteRule(2), 0.03, 0.03, POLLS_24H, RUNS, 14);
console.log(`   ${pad('absolute, flag-on at 3% (healthy), consecutive 2:')} guardian ${fmt(share(aaAbs3, 'guardian'))} [${verdict(share(aaAbs3, 'guardian') <= 0.01)}]   naive cumulative ${fmt(share(aaAbs3, 'naiveCumulative'))}   naive last-minute ${fmt(share(aaAbs3, 'naiveLastPoll'))}`);

// 2. Power: 1% → 2% detected by 3,700 users per arm (37 polls).
console.log('\n2. Power: flag-off 1%, flag-on 2%; share of rollouts with a breach by 3,700 users per arm (37 polls). Goal ≥ 80%.');
const pw = run(relativeRule(), 0.02, 0.01, 37, RUNS, 21);
const pwShare = share(pw, 'guardian');
const pw1 = run(relativeRule(1), 0.02, 0.01, 37, RUNS, 22);
const pw05 = run(relativeRule(DEFAULT_CONSECUTIVE, 0.05), 0.02, 0.01, 37, RUNS, 23);
console.log(`   ${pad(`relative, ${DEFAULT_LABEL}:`)} guardian ${fmt(pwShare)} [${verdict(pwShare >= 0.8)}]   naive cumulative ${fmt(share(pw, 'naiveCumulative'))}   naive last-minute ${fmt(share(pw, 'naiveLastPoll'))}`);
console.log(`   ${pad(`relative, alpha ${DEFAULT_ALPHA}, consecutive 1:`)} guardian ${fmt(share(pw1, 'guardian'))} [${verdict(share(pw1, 'guardian') >= 0.8)}]`);
console.log(`   ${pad(`relative, alpha 0.05, consecutive ${DEFAULT_CONSECUTIVE}:`)} guardian ${fmt(share(pw05, 'guardian'))} [${verdict(share(pw05, 'guardian') >= 0.8)}]`);
// The same goal at a 10% stage (ai_alpha_users): 3,700 flag-on users meet 33,300 flag-off ones.
const pw10 = run(relativeRule(), 0.02, 0.01, 37, RUNS, 27, 9 * USERS_PER_MIN);
const pw10aa = run(relativeRule(), 0.02, 0.02, POLLS_24H, Math.min(RUNS, 1000), 28, 9 * USERS_PER_MIN);
console.log(
  `   ${pad(`relative, ${DEFAULT_LABEL}, at a 10% stage (flag-off arm 9x larger):`)} guardian ${fmt(share(pw10, 'guardian'))} [${verdict(share(pw10, 'guardian') >= 0.8)}]   (A/A at that split over 24 h: ${fmt(share(pw10aa, 'guardian'))})`,
);
for (const [label, rule, seed] of [
  [DEFAULT_LABEL, relativeRule(), 24],
  [`alpha ${DEFAULT_ALPHA}, consecutive 1`, relativeRule(1), 25],
  [`alpha 0.05, consecutive ${DEFAULT_CONSECUTIVE}`, relativeRule(DEFAULT_CONSECUTIVE, 0.05), 26],
] as const) {
  const long = run(rule, 0.02, 0.01, 300, Math.min(RUNS, 1000), seed);
  const at80 = quantile(long.map((o) => o.guardian ?? 301), 0.8);
  console.log(`   users per arm by which 80% of rollouts breached (${label}): ${at80 > 300 ? 'more than 30,000' : (at80 * USERS_PER_MIN).toLocaleString('en-US')}`);
}

// 3. Polls to detect a jump 5% → 20% at 100 users/min.
console.log('\n3. Polls to detect a 5% → 20% jump (flag-on 20%, flag-off 5%, 100 users/min per arm), counted from the stage start. Goal: median ≤ 2 polls with the default rule.');
const jumpRuns = Math.min(RUNS, 1000);
const jAbs1 = run(absoluteRule(1), 0.2, 0.05, 60, jumpRuns, 31);
const jRel1 = run(relativeRule(1), 0.2, 0.05, 60, jumpRuns, 32);
const jAbs2 = run(absoluteRule(2), 0.2, 0.05, 60, jumpRuns, 33);
const jRel = run(relativeRule(), 0.2, 0.05, 60, jumpRuns, 34);
const pollsOf = (xs: Outcome[]): number[] => xs.map((o) => o.guardian ?? 61);
const jumpMedian = quantile(pollsOf(jRel), 0.5);
console.log(`   ${pad(`relative, ${DEFAULT_LABEL}:`)} guardian ${pollsLine(jRel, 'guardian', 60)} [${verdict(jumpMedian <= 2)} at median]`);
console.log(`   ${pad(`relative, alpha ${DEFAULT_ALPHA}, consecutive 1:`)} guardian ${pollsLine(jRel1, 'guardian', 60)}`);
console.log(`   ${pad('absolute, consecutive 1:')} guardian ${pollsLine(jAbs1, 'guardian', 60)} [${verdict(quantile(pollsOf(jAbs1), 0.95) <= 2)} at p95]   naive cumulative ${pollsLine(jAbs1, 'naiveCumulative', 60)}`);
console.log(`   ${pad('absolute, consecutive 2:')} guardian ${pollsLine(jAbs2, 'guardian', 60)}`);

// 4. The trade-off behind 1 and 2, on 4× as many stages (no alpha picked from the noise of one sample).
const frontierRuns = 4 * RUNS;
const alphasShown = [DEFAULT_ALPHA, 0.025, 0.03, 0.035];
console.log(`\n4. Trade-off (statistic only, max_increase 0, consecutive ${DEFAULT_CONSECUTIVE}, ${frontierRuns} stages each): A/A over 24 h / power at 3,700 users per arm, by alpha.`);
for (const [label, mixture, seed] of [
  ['default mixture (ratios 1.1-10)', RELATIVE_MIXTURE, 41],
  ['ratio 2 only (knows the true effect, no weight for jumps)', [{ ratio: 2, weight: 1 }], 43],
] as const) {
  const aaLevels = bestRuns(mixture, 0.02, 0.02, POLLS_24H, frontierRuns, seed);
  const pwLevels = bestRuns(mixture, 0.02, 0.01, 37, frontierRuns, seed + 1);
  const at = (levels: number[], alpha: number): string => fmt(levels.filter((x) => x >= Math.log(1 / alpha)).length / levels.length);
  console.log(`   ${label}:\n      ${alphasShown.map((a) => `alpha ${a}: ${at(aaLevels, a)} / ${at(pwLevels, a)}`).join('   ')}`);
}

// 5. Stages longer than the window. The sources are asked for at most one window at once, so a
// long stage is counted in segments (counts restart every window) and decide combines them
// (see decide.ts). Simulated here the way the cycle feeds decide (every poll of the current
// segment, the last poll of each earlier one), with the rules file's default 1h window; and,
// for contrast, the counts sliding with the window, as the guardian did before segments.
interface LongStage {
  readonly firstBreach: number | undefined;
}
function longStage(
  rule: DecisionRule,
  windowPolls: number,
  pOn: (poll: number) => number,
  pOff: number | ((poll: number) => number),
  mode: 'segments' | 'sliding',
  random: () => number,
  perMin: number = USERS_PER_MIN,
): LongStage {
  const onErr: number[] = [];
  const offErr: number[] = [];
  const finals: HistoryPoint[] = [];
  let current: HistoryPoint[] = [];
  let on = 0;
  let off = 0;
  for (let i = 1; i <= POLLS_24H; i++) {
    onErr.push(binomial(random, perMin, pOn(i)));
    offErr.push(binomial(random, perMin, typeof pOff === 'number' ? pOff : pOff(i)));
    const segment = Math.floor((i - 1) / windowPolls);
    if (mode === 'segments' && current.length > 0 && current[0]!.segment !== segment) {
      finals.push(current.at(-1)!);
      current = [];
      on = 0;
      off = 0;
    }
    on += onErr[i - 1]!;
    off += offErr[i - 1]!;
    if (mode === 'sliding' && i > windowPolls) {
      on -= onErr[i - 1 - windowPolls]!;
      off -= offErr[i - 1 - windowPolls]!;
    }
    const n = (mode === 'sliding' ? Math.min(i, windowPolls) : i - segment * windowPolls) * perMin;
    current.push({ at: new Date(i * MIN), ...(mode === 'segments' ? { segment } : {}), treatment: { total: n, errors: on }, control: { total: n, errors: off } });
    if (mode === 'sliding' && current.length > rule.consecutive) current.shift();
    if (decide(rule, [...finals, ...current], 'bench_flag', { bounds: false }).kind === 'breach') return { firstBreach: i };
  }
  return { firstBreach: undefined };
}
const longRuns = Math.max(200, Math.round(RUNS / 2));
const hourRule: DecisionRule = { ...relativeRule(), window: 60 * MIN };
const longAA = (mode: 'segments' | 'sliding', seed: number): number => {
  const random = rng(seed);
  let breaches = 0;
  for (let r = 0; r < longRuns; r++) if (longStage(hourRule, 60, () => 0.02, 0.02, mode, random).firstBreach !== undefined) breaches++;
  return breaches / longRuns;
};
const segAA = longAA('segments', 51);
const slideAA = longAA('sliding', 52);
console.log(`\n5. Stages longer than the window (window 1h, the rules file's default; ${longRuns} runs of 24 h, both arms 2%):`);
console.log(`   ${pad('A/A, counted in segments and combined (the guardian):')} ${fmt(segAA)} [${verdict(segAA <= 0.01)}]`);
console.log(`   ${pad('A/A, counts sliding with the window (before segments):')} ${fmt(slideAA)} [${verdict(slideAA <= 0.01)}]`);
const lateRuns = Math.min(RUNS, 500);
for (const [label, startPoll, pBad] of [
  ['2% → 20% starting 10 h 20 min into the stage', 620, 0.2],
  ['1% → 2% starting 10 h 20 min into the stage', 620, 0.02],
] as const) {
  const random = rng(53 + startPoll + pBad);
  const base = pBad === 0.2 ? 0.02 : 0.01;
  const delays = Array.from({ length: lateRuns }, () => {
    const out = longStage(hourRule, 60, (poll) => (poll > startPoll ? pBad : base), base, 'segments', random);
    return out.firstBreach === undefined ? Infinity : out.firstBreach - startPoll;
  });
  const late = delays.filter((d) => d > 0); // stages with no false breach before the regression
  const fin = late.filter((d) => Number.isFinite(d));
  console.log(
    `   ${pad(`late regression, ${label}:`)} caught within the day in ${fmt(fin.length / late.length)}; polls after it starts: median ${quantile(late, 0.5)}, p95 ${quantile(late, 0.95)}` +
      ` (${lateRuns - late.length} of ${lateRuns} stages breached falsely before it)`,
  );
}

// An incident that hits everyone (a provider outage: both arms 2% → 10% for an hour, 3 h into the
// stage) is not the flag's fault: the relative rule must not roll back; a naive threshold does.
{
  const runs = Math.min(RUNS, 500);
  const random = rng(62);
  const spike = (poll: number): number => (poll > 180 && poll <= 240 ? 0.1 : 0.02);
  let guardian = 0;
  let naive = 0;
  for (let r = 0; r < runs; r++) {
    if (longStage(hourRule, 60, spike, spike, 'segments', random).firstBreach !== undefined) guardian++;
    // The naive rule on the same kind of stage: flag-on error rate > 5% over the last poll's minute.
    let tripped = false;
    for (let i = 1; i <= POLLS_24H && !tripped; i++) if (binomial(random, USERS_PER_MIN, spike(i)) / USERS_PER_MIN > 0.05) tripped = true;
    if (tripped) naive++;
  }
  console.log(
    `   ${pad('A/A with an outage hitting both arms (2% → 10% for 1 h, 3 h in):')} guardian ${fmt(guardian / runs)} [${guardian / runs <= DEFAULT_ALPHA ? 'within' : 'ABOVE'} its alpha ${DEFAULT_ALPHA}]   naive last-minute ${fmt(naive / runs)}`,
  );
}

// Low traffic, harm from the stage start: short segments lose nothing against one long window,
// because each start's test runs on its segments taken together (a mixture of products).
{
  const runs = Math.min(RUNS, 500);
  const line = (windowPolls: number, seed: number): string => {
    const random = rng(seed);
    const rule: DecisionRule = { ...relativeRule(), window: windowPolls * MIN };
    const polls = Array.from({ length: runs }, () => longStage(rule, windowPolls, () => 0.04, 0.02, 'segments', random, 10).firstBreach ?? Infinity);
    return `median ${quantile(polls, 0.5)}, p95 ${quantile(polls, 0.95)} polls (caught within 24 h: ${fmt(polls.filter(Number.isFinite).length / runs)})`;
  };
  console.log(`   ${pad('2% → 4% from the stage start at 10 users/min per arm, window 1h:')} ${line(60, 61)}`);
  console.log(`   ${pad('the same with window 24h (one segment):')} ${line(POLLS_24H, 61)}`);
}

// 6. The shipped schedule (rules/guardian.yaml): polls every `interval` (30 s), and after a poll where
// the condition held but fewer than `consecutive` polls in a row did, one more poll
// `confirm_after` (10 s) later instead of a whole interval later (guardian/src/cycle/confirm.ts).
// Users arrive at the same 100 per minute per arm, so a poll sees 50 new users per arm and a
// confirmation about 17. Before: 1-minute polls, the second breach one interval later.
interface Schedule {
  readonly label: string;
  readonly intervalS: number;
  readonly confirmS: number | undefined;
}
const SHIPPED = RulesFileSchema.parse({ rules: [{ id: 'x', flags: ['x_flag'] }] });
const schedules: readonly Schedule[] = [
  { label: 'before: 1m polls, consecutive 2 (second poll 1 interval later)', intervalS: 60, confirmS: undefined },
  { label: `after: ${SHIPPED.interval / 1000}s polls + ${SHIPPED.confirm_after / 1000}s confirmation, consecutive ${DEFAULT_CONSECUTIVE}`, intervalS: SHIPPED.interval / 1000, confirmS: SHIPPED.confirm_after / 1000 },
];
/** Seconds from the stage start to the first breach under a schedule, or undefined within `horizonS`. */
function firstBreachS(rule: DecisionRule, schedule: Schedule, pOn: number, pOff: number, horizonS: number, random: () => number): number | undefined {
  const history: HistoryPoint[] = [];
  let users = 0;
  let tErr = 0;
  let cErr = 0;
  let at = schedule.intervalS;
  while (at <= horizonS) {
    const now = Math.floor((USERS_PER_MIN * at) / 60);
    tErr += binomial(random, now - users, pOn);
    cErr += binomial(random, now - users, pOff);
    users = now;
    history.push({ at: new Date(at * 1000), treatment: { total: users, errors: tErr }, control: { total: users, errors: cErr } });
    const v = decide(rule, history, 'bench_flag', { bounds: false });
    if (v.kind === 'breach') return at;
    at = schedule.confirmS !== undefined && v.consecutive > 0 ? at + schedule.confirmS : (Math.floor(at / schedule.intervalS) + 1) * schedule.intervalS;
  }
  return undefined;
}
{
  const runs = Math.min(RUNS, 1000);
  console.log(`\n6. The poll schedule, before and after (${RUNS} stages for the default-alpha A/A, ${runs} for the rest; 100 users/min per arm; the decision core unchanged):`);
  for (const schedule of schedules) {
    const share = (rule: DecisionRule, pOn: number, pOff: number, horizonS: number, n: number, seed: number): number => {
      const random = rng(seed);
      let hits = 0;
      for (let r = 0; r < n; r++) if (firstBreachS(rule, schedule, pOn, pOff, horizonS, random) !== undefined) hits++;
      return hits / n;
    };
    const aa = share(relativeRule(), 0.02, 0.02, 86_400, RUNS, 71);
    const aa05 = share(relativeRule(DEFAULT_CONSECUTIVE, 0.05), 0.02, 0.02, 86_400, runs, 72);
    const aaAbsolute = share(absoluteRule(DEFAULT_CONSECUTIVE), 0.05, 0.05, 86_400, runs, 73);
    const power05 = share(relativeRule(DEFAULT_CONSECUTIVE, 0.05), 0.02, 0.01, 37 * 60, runs, 74);
    const power = share(relativeRule(), 0.02, 0.01, 37 * 60, runs, 75);
    const random = rng(76);
    const jump = Array.from({ length: runs }, () => firstBreachS(relativeRule(), schedule, 0.2, 0.05, 3600, random) ?? Infinity);
    const jumpAbs = Array.from({ length: runs }, () => firstBreachS(absoluteRule(DEFAULT_CONSECUTIVE), schedule, 0.2, 0.05, 3600, random) ?? Infinity);
    console.log(`   ${schedule.label}:`);
    console.log(
      `      A/A 24 h: relative alpha ${DEFAULT_ALPHA} ${fmt(aa)} [${verdict(aa <= 0.01)} ≤ 1%]   relative alpha 0.05 ${fmt(aa05)} [${aa05 <= 0.05 ? 'within' : 'ABOVE'} alpha]   absolute at the 5% threshold ${fmt(aaAbsolute)} [${aaAbsolute <= 0.05 ? 'within' : 'ABOVE'} 1 - confidence]`,
    );
    console.log(`      power by 3,700 users per arm: alpha 0.05 ${fmt(power05)} [${verdict(power05 >= 0.8)}]   alpha ${DEFAULT_ALPHA} ${fmt(power)}`);
    console.log(
      `      5% → 20% from the stage start, seconds to the breach: relative median ${quantile(jump, 0.5)}, p95 ${quantile(jump, 0.95)}   absolute median ${quantile(jumpAbs, 0.5)}, p95 ${quantile(jumpAbs, 0.95)}`,
    );
  }
}

console.log(
  `\nSummary, one configuration (${DEFAULT_LABEL}, max_increase 0): A/A ${fmt(aaShare)} [${verdict(aaShare <= 0.01)}]   power ${fmt(pwShare)} [${verdict(pwShare >= 0.8)}]   jump median ${jumpMedian} polls [${verdict(jumpMedian <= 2)}]` +
    `   | naive "flag-on > 5%" (cumulative): A/A ${fmt(share(aaRel, 'naiveCumulative'))}, power ${fmt(share(pw, 'naiveCumulative'))}, jump median ${quantile(jRel.map((o) => o.naiveCumulative ?? 61), 0.5)} polls`,
);
console.log(`\nDone in ${((performance.now() - started) / 1000).toFixed(1)} s.`);
