/**
 * The decision core: pure, synchronous, no I/O. `decide(rule, history, flag)` → `Verdict`.
 */
import type { Rule } from '../rules/schema.ts';
import { formatDuration } from '../rules/duration.ts';
import type { CohortCounts } from '../sources/types.ts';
import { betaBinomialLogE, betaBinomialLowerBound, mixtureLogE, relativeLogLRs, relativeLowerBound } from './stats.ts';
import type { CohortEvidence, Evidence, HistoryPoint, Verdict } from './types.ts';

/** The parts of a rule the decision reads (a resolved {@link Rule} fits). */
export type DecisionRule = Pick<Rule, 'id' | 'flags' | 'condition' | 'window' | 'min_users' | 'min_samples' | 'consecutive'>;

/** Options of {@link decide}. */
export interface DecideOptions {
  /** Compute the confidence bounds for the evidence (default true). Bounds never change the verdict's kind; benchmarks turn them off for speed. */
  readonly bounds?: boolean;
  /**
   * How many polls `history` stands for, when the caller passes only what decide reads of it (the
   * last `consecutive` polls of the current segment and the earlier segments' last polls, see the
   * store's `observationTail`); shown as the evidence's `polls`. Default `history.length`.
   */
  readonly polls?: number;
}

type PointState = 'breach' | 'clear' | 'insufficient' | 'invalid';

interface PointEval {
  readonly state: PointState;
  readonly why: string;
  /** ln of the combined statistic (see {@link decide}) at this point. */
  readonly logE?: number;
  /** Counts summed over the segments behind `logE` (the point's own when it has one segment). */
  readonly treatment?: CohortCounts;
  readonly control?: CohortCounts;
  /** Segments behind those counts, and the first one's start when known. */
  readonly segments?: number;
  readonly since?: Date;
}

/**
 * Prior weight of "the harm began in segment j" in the stage's combined test: 0.95 on the
 * segment that starts with the stage (a rollout's harm usually comes with more users), and
 * 0.05 / (j (j + 1)) on segment j ≥ 1 (a later regression: a deploy, a provider change).
 * They sum to 1.
 *
 * @example
 * segmentWeight(0); // 0.95
 * segmentWeight(1); // 0.025
 */
export function segmentWeight(j: number): number {
  return j === 0 ? 0.95 : 0.05 / (j * (j + 1));
}

/** Σ_{j > s} segmentWeight(j): the weight of the starts still to come after segment s. */
function laterWeight(s: number): number {
  return 0.05 / (s + 1);
}

function validCounts(c: CohortCounts | undefined): boolean {
  return c !== undefined && Number.isFinite(c.total) && Number.isFinite(c.errors) && c.total >= 0 && c.errors >= 0 && c.errors <= c.total;
}

function rate(c: CohortCounts): number {
  return c.total > 0 ? c.errors / c.total : 0;
}

function pct(x: number): string {
  const v = x * 100;
  return `${Math.abs(v) >= 10 || v === 0 ? v.toFixed(1) : v.toFixed(2)}%`;
}

function segmentOf(p: HistoryPoint): number {
  return p.segment ?? 0;
}

function add(a: CohortCounts | undefined, b: CohortCounts | undefined): CohortCounts | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return { total: a.total + b.total, errors: a.errors + b.errors };
}

/**
 * What a chain of segments accumulates for the rule's test: the per-ratio log likelihood ratios
 * (relative) or the pooled counts (absolute: the beta-binomial mixture of pooled counts is the
 * mixture of the products). Either way the statistic of the chain is a mixture of products —
 * one test on the chain's data taken together.
 */
type Acc = { readonly kind: 'relative'; logLRs: number[] } | { readonly kind: 'absolute'; errors: number; total: number };

/** A point's own contribution; undefined when its counts are not usable. */
function pointAcc(rule: DecisionRule, point: HistoryPoint): Acc | undefined {
  if (!validCounts(point.treatment)) return undefined;
  const t = point.treatment;
  const cond = rule.condition;
  if (cond.kind === 'absolute') return { kind: 'absolute', errors: t.errors, total: t.total };
  const c = point.control;
  if (c === undefined || !validCounts(c)) return undefined;
  return { kind: 'relative', logLRs: relativeLogLRs({ treatmentErrors: t.errors, treatmentTotal: t.total, controlErrors: c.errors, controlTotal: c.total }, cond.max_increase) };
}

function addAcc(into: Acc, more: Acc): void {
  if (into.kind === 'relative' && more.kind === 'relative') {
    for (let k = 0; k < into.logLRs.length; k++) into.logLRs[k]! += more.logLRs[k] ?? 0;
  } else if (into.kind === 'absolute' && more.kind === 'absolute') {
    into.errors += more.errors;
    into.total += more.total;
  }
}

function accLogE(rule: DecisionRule, acc: Acc): number {
  const cond = rule.condition;
  if (acc.kind === 'relative') return mixtureLogE(acc.logLRs);
  return acc.total > 0 && cond.kind === 'absolute' ? betaBinomialLogE(acc.errors, acc.total, cond.error_rate_above) : 0;
}

/** The last point of each earlier segment (its final counts), by segment index. */
type Finals = ReadonlyMap<number, HistoryPoint>;

function logSumExp(xs: readonly number[]): number {
  let max = -Infinity;
  for (const x of xs) if (x > max) max = x;
  if (max === -Infinity) return max;
  let sum = 0;
  for (const x of xs) sum += Math.exp(x - max);
  return max + Math.log(sum);
}

function evaluatePoint(rule: DecisionRule, point: HistoryPoint, finals: Finals): PointEval {
  const unit = point.unit ?? 'users';
  const min = unit === 'users' ? rule.min_users : rule.min_samples;
  const minName = unit === 'users' ? 'min_users' : 'min_samples';
  if (!validCounts(point.treatment)) return { state: 'invalid', why: 'the flag-on counts are not valid (negative, non-finite or errors above total)' };
  const cond = rule.condition;
  if (cond.kind === 'relative') {
    if (point.control !== undefined && !validCounts(point.control)) return { state: 'invalid', why: 'the flag-off counts are not valid (negative, non-finite or errors above total)' };
    if (point.control === undefined || point.control.total === 0) return { state: 'insufficient', why: 'no flag-off traffic to compare with' };
  }
  const acc = pointAcc(rule, point)!;
  const s = segmentOf(point);
  // Terms of the combined test: for each start j whose chain of segment finals up to s − 1 is
  // unbroken, weight(j) × the test on segments j..s taken together. A start with a missing
  // segment (an outage, pruned history) is dropped: that only lowers the statistic. Starts
  // still to come add their weight.
  const terms: number[] = [Math.log(segmentWeight(s)) + accLogE(rule, acc)];
  let best = { term: terms[0]!, from: s };
  let t: CohortCounts = point.treatment;
  let c: CohortCounts | undefined = point.control;
  let stageT: CohortCounts = point.treatment;
  let stageC: CohortCounts | undefined = point.control;
  let spanT = t;
  let spanC = c;
  let spanSince = point.since;
  let intact = true;
  for (let j = s - 1; j >= 0; j--) {
    const f = finals.get(j);
    const fAcc = f === undefined ? undefined : pointAcc(rule, f);
    if (f !== undefined && fAcc !== undefined) {
      stageT = add(stageT, f.treatment)!;
      stageC = add(stageC, f.control);
    }
    if (!intact || f === undefined || fAcc === undefined) {
      intact = false;
      continue;
    }
    addAcc(acc, fAcc);
    t = add(t, f.treatment)!;
    c = add(c, f.control);
    const term = Math.log(segmentWeight(j)) + accLogE(rule, acc);
    terms.push(term);
    if (term > best.term) {
      best = { term, from: j };
      spanT = t;
      spanC = c;
      spanSince = f.since;
    }
  }
  terms.push(Math.log(laterWeight(s)));
  const logE = logSumExp(terms);
  const segments = s - best.from + 1;
  const span = { treatment: spanT, ...(spanC ? { control: spanC } : {}), segments, ...(spanSince ? { since: spanSince } : {}) };
  if (stageT.total < min) return { state: 'insufficient', why: `${stageT.total} flag-on ${unit} so far, below ${minName} ${min}`, ...span };
  if (cond.kind === 'absolute') {
    const above = rate(spanT) > cond.error_rate_above;
    const breach = above && logE >= Math.log(1 / Number((1 - cond.confidence).toPrecision(12)));
    return { state: breach ? 'breach' : 'clear', why: '', logE, ...span };
  }
  if (stageC!.total < min) return { state: 'insufficient', why: `${stageC!.total} flag-off ${unit} so far, below ${minName} ${min}`, ...span };
  const above = rate(spanT) - rate(spanC!) > cond.max_increase;
  const breach = above && logE >= Math.log(1 / cond.alpha);
  return { state: breach ? 'breach' : 'clear', why: '', logE, ...span };
}

function cohort(c: CohortCounts): CohortEvidence {
  return { total: c.total, errors: c.errors, rate: rate(c) };
}

function evidenceFor(rule: DecisionRule, polls: number, last: HistoryPoint, ev: PointEval, bounds: boolean): Evidence {
  const cond = rule.condition;
  const unit = last.unit ?? 'users';
  const t = ev.treatment ?? last.treatment;
  const c = ev.control ?? (last.control && validCounts(last.control) ? last.control : undefined);
  const base = {
    unit,
    treatment: cohort(t),
    ...(c ? { control: cohort(c) } : {}),
    window: rule.window,
    polls,
    at: last.at.toISOString(),
    ...(ev.logE === undefined ? {} : { log_e_value: ev.logE }),
    ...(ev.segments === undefined ? {} : { segments: ev.segments }),
    ...(ev.since === undefined ? {} : { since: ev.since.toISOString() }),
  };
  if (cond.kind === 'absolute') {
    const alpha = Number((1 - cond.confidence).toPrecision(12));
    const lower = bounds && ev.logE !== undefined ? { lower_bound: betaBinomialLowerBound(t.errors, t.total, alpha) } : {};
    return { ...base, condition: 'absolute', threshold: cond.error_rate_above, alpha, statistic: 'beta_binomial_mixture_cs', ...lower };
  }
  const lower =
    bounds && ev.logE !== undefined && c !== undefined
      ? { lower_bound: relativeLowerBound({ treatmentErrors: t.errors, treatmentTotal: t.total, controlErrors: c.errors, controlTotal: c.total }, cond.alpha) }
      : {};
  return { ...base, condition: 'relative', max_increase: cond.max_increase, alpha: cond.alpha, statistic: 'rate_ratio_mixture_sprt', ...lower };
}

/**
 * The final point of each segment before the last point's, found by walking back from the
 * end (O(history) only when the stage has more than one segment; O(1) otherwise).
 */
export function segmentFinals(history: readonly HistoryPoint[]): Map<number, HistoryPoint> {
  const finals = new Map<number, HistoryPoint>();
  // Walking back in time, each segment below the lowest one found so far: its final is its last
  // point in time, and a later point with a lower index (a rules reload changed the window) does
  // not count as an earlier segment's final.
  let below = segmentOf(history[history.length - 1]!);
  for (let i = history.length - 1; i >= 0 && below > 0; i--) {
    const seg = segmentOf(history[i]!);
    if (seg < below) {
      finals.set(seg, history[i]!);
      below = seg;
    }
  }
  return finals;
}

/**
 * Decides one rule for one flag from its poll history (time-ordered; each point's counts are
 * cumulative since the start of its segment of the flag's current stage, see {@link HistoryPoint}).
 *
 * - `absolute`: breach when the flag-on rate's always-valid lower bound is above
 *   `error_rate_above`, i.e. the beta-binomial mixture martingale at the threshold,
 *   M_n = B(1 + S, 1 + n − S) / (p0^S (1 − p0)^(n − S)), reaches 1 / (1 − confidence)
 *   with p̂ > p0 (see `stats.ts`).
 * - `relative`: breach when the one-sided mixture SPRT of H0: p_on − p_off ≤ max_increase
 *   reaches 1/alpha: the likelihood ratio of where the errors land (flag-on or flag-off, given
 *   the traffic split) against "flag-on errs ρ times as often", mixed over ρ from 1.1 to 10
 *   (see `relativeLogE` in `stats.ts`), with no large-sample approximation (it assumes a
 *   stable traffic split within the stage).
 * - Segments: a stage older than the rule's window is counted in segments (the sources are
 *   never asked for more than one window at once). For each segment j the harm may have
 *   started in, the rule's test runs on segments j..now taken together (likelihood ratios
 *   multiply over disjoint data, then mix: as strong as one test on that data), and the
 *   combined statistic is Σ_j w_j × that test ({@link segmentWeight}, 0.95 on the stage start)
 *   plus the weight of starts still to come. A mixture of test martingales with weights
 *   summing to 1 is one, so the false-breach probability stays ≤ alpha (absolute:
 *   1 − confidence) over the whole stage, however often it is checked and however long it
 *   runs — counts that slid with the window would break that (a 1h sliding window gave 5.4%
 *   false breaches per day at alpha 0.02). A start whose chain misses a segment (an outage,
 *   pruned history) is left out, which only lowers the statistic.
 * - Fewer flag-on users than `min_users` (or events than `min_samples` when the source counts
 *   events; relative rules: in both cohorts) over the stage → `insufficient_data`. Empty
 *   history or invalid counts → `no_data`. A breach needs the last `consecutive` polls to
 *   breach each, and the rates over the segments behind the evidence to be on the wrong side.
 * - Cost: O(consecutive) in the first segment of a stage; O(history) after it.
 *
 * @example
 * const verdict = decide(rule, [
 *   { at: new Date('2026-01-01T10:01:00Z'), treatment: { total: 400, errors: 80 }, control: { total: 400, errors: 8 } },
 * ], 'booking_agent_enabled');
 * // verdict.kind === 'healthy' while fewer than rule.consecutive polls breached
 */
export function decide(rule: DecisionRule, history: readonly HistoryPoint[], flag: string = rule.flags[0] ?? '', options: DecideOptions = {}): Verdict {
  const bounds = options.bounds ?? true;
  const last = history[history.length - 1];
  const window = formatDuration(rule.window);
  if (last === undefined) {
    return { kind: 'no_data', ruleId: rule.id, flag, consecutive: 0, reason: `No data for ${flag} yet in this stage (window ${window}): nothing to judge, never a breach.` };
  }
  const finals = segmentFinals(history);
  const ev = evaluatePoint(rule, last, finals);
  const evidence = evidenceFor(rule, options.polls ?? history.length, last, ev, bounds);
  if (ev.state === 'invalid') {
    return { kind: 'no_data', ruleId: rule.id, flag, consecutive: 0, reason: `No usable data for ${flag}: ${ev.why}.`, evidence };
  }
  if (ev.state === 'insufficient') {
    return { kind: 'insufficient_data', ruleId: rule.id, flag, consecutive: 0, reason: `Not enough data for ${flag} yet: ${ev.why}.`, evidence };
  }
  let run = ev.state === 'breach' ? 1 : 0;
  if (run === 1) {
    for (let i = history.length - 2; i >= 0 && run < rule.consecutive; i--) {
      if (evaluatePoint(rule, history[i]!, finals).state !== 'breach') break;
      run++;
    }
  }
  const t = evidence.treatment;
  const cond = rule.condition;
  const unit = last.unit ?? 'users';
  const lb = evidence.lower_bound;
  const span = (evidence.segments ?? 1) > 1 ? ` over the last ${evidence.segments} segments of the stage` : '';
  let what: string;
  if (cond.kind === 'absolute') {
    what =
      `${flag} flag-on error rate ${pct(rate(t))} (${t.errors}/${t.total} ${unit})` +
      (lb === undefined ? '' : `, lower ${Math.round(cond.confidence * 100)}% bound ${pct(lb)}`) +
      ` vs threshold ${pct(cond.error_rate_above)}`;
  } else {
    const c = evidence.control!;
    what =
      `${flag} flag-on ${pct(rate(t))} (${t.errors}/${t.total}) vs flag-off ${pct(rate(c))} (${c.errors}/${c.total} ${unit})` +
      (lb === undefined ? '' : `, increase lower bound ${pct(lb)}`) +
      ` vs allowed ${pct(cond.max_increase)} (alpha ${cond.alpha})`;
  }
  what += span;
  if (run >= rule.consecutive) {
    return { kind: 'breach', ruleId: rule.id, flag, consecutive: run, reason: `Breach: ${what}; ${run} poll${run === 1 ? '' : 's'} in a row (window ${window}).`, evidence };
  }
  if (run > 0) {
    return {
      kind: 'healthy',
      ruleId: rule.id,
      flag,
      consecutive: run,
      reason: `Condition met at ${run} of ${rule.consecutive} polls in a row needed: ${what}.`,
      evidence,
    };
  }
  return { kind: 'healthy', ruleId: rule.id, flag, consecutive: 0, reason: `Healthy: ${what}.`, evidence };
}
