/**
 * The decision core: pure, synchronous, no I/O. `decide(rule, history, flag)` → `Verdict`.
 */
import type { Rule } from '../rules/schema.ts';
import { formatDuration } from '../rules/duration.ts';
import type { CohortCounts } from '../sources/types.ts';
import { betaBinomialLogE, betaBinomialLowerBound, relativeLogE, relativeLowerBound } from './stats.ts';
import type { CohortEvidence, Evidence, HistoryPoint, Verdict } from './types.ts';

/** The parts of a rule the decision reads (a resolved {@link Rule} fits). */
export type DecisionRule = Pick<Rule, 'id' | 'flags' | 'condition' | 'window' | 'min_users' | 'min_samples' | 'consecutive'>;

/** Options of {@link decide}. */
export interface DecideOptions {
  /** Compute the confidence bounds for the evidence (default true). Bounds never change the verdict's kind; benchmarks turn them off for speed. */
  readonly bounds?: boolean;
}

type PointState = 'breach' | 'clear' | 'insufficient' | 'invalid';

interface PointEval {
  readonly state: PointState;
  readonly why: string;
  readonly logE?: number;
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

function evaluatePoint(rule: DecisionRule, point: HistoryPoint): PointEval {
  const unit = point.unit ?? 'users';
  const min = unit === 'users' ? rule.min_users : rule.min_samples;
  const minName = unit === 'users' ? 'min_users' : 'min_samples';
  if (!validCounts(point.treatment)) return { state: 'invalid', why: 'the flag-on counts are not valid (negative, non-finite or errors above total)' };
  const t = point.treatment;
  if (t.total < min) return { state: 'insufficient', why: `${t.total} flag-on ${unit} so far, below ${minName} ${min}` };
  const cond = rule.condition;
  if (cond.kind === 'absolute') {
    const logE = betaBinomialLogE(t.errors, t.total, cond.error_rate_above);
    const above = t.errors / t.total > cond.error_rate_above;
    const breach = above && logE >= Math.log(1 / Number((1 - cond.confidence).toPrecision(12)));
    return { state: breach ? 'breach' : 'clear', why: '', logE };
  }
  if (point.control !== undefined && !validCounts(point.control)) return { state: 'invalid', why: 'the flag-off counts are not valid (negative, non-finite or errors above total)' };
  const c = point.control;
  if (c === undefined || c.total === 0) return { state: 'insufficient', why: 'no flag-off traffic to compare with' };
  if (c.total < min) return { state: 'insufficient', why: `${c.total} flag-off ${unit} so far, below ${minName} ${min}` };
  const counts = { treatmentErrors: t.errors, treatmentTotal: t.total, controlErrors: c.errors, controlTotal: c.total };
  const logE = relativeLogE(counts, cond.max_increase);
  const above = rate(t) - rate(c) > cond.max_increase;
  const breach = above && logE >= Math.log(1 / cond.alpha);
  return { state: breach ? 'breach' : 'clear', why: '', logE };
}

function cohort(c: CohortCounts): CohortEvidence {
  return { total: c.total, errors: c.errors, rate: rate(c) };
}

function evidenceFor(rule: DecisionRule, history: readonly HistoryPoint[], last: HistoryPoint, ev: PointEval, bounds: boolean): Evidence {
  const cond = rule.condition;
  const unit = last.unit ?? 'users';
  const base = {
    unit,
    treatment: cohort(last.treatment),
    ...(last.control && validCounts(last.control) ? { control: cohort(last.control) } : {}),
    window: rule.window,
    polls: history.length,
    at: last.at.toISOString(),
    ...(ev.logE === undefined ? {} : { log_e_value: ev.logE }),
  };
  if (cond.kind === 'absolute') {
    const alpha = Number((1 - cond.confidence).toPrecision(12));
    const lower = bounds && ev.logE !== undefined ? { lower_bound: betaBinomialLowerBound(last.treatment.errors, last.treatment.total, alpha) } : {};
    return { ...base, condition: 'absolute', threshold: cond.error_rate_above, alpha, statistic: 'beta_binomial_mixture_cs', ...lower };
  }
  const c = last.control;
  const lower =
    bounds && ev.logE !== undefined && c !== undefined
      ? { lower_bound: relativeLowerBound({ treatmentErrors: last.treatment.errors, treatmentTotal: last.treatment.total, controlErrors: c.errors, controlTotal: c.total }, cond.alpha) }
      : {};
  return { ...base, condition: 'relative', max_increase: cond.max_increase, alpha: cond.alpha, statistic: 'rate_ratio_mixture_sprt', ...lower };
}

/**
 * Decides one rule for one flag from its poll history (time-ordered, cumulative counts since
 * the flag's current stage began, already bounded by the rule's window).
 *
 * - `absolute`: breach when the flag-on rate's always-valid lower bound is above
 *   `error_rate_above`, i.e. the beta-binomial mixture martingale at the threshold,
 *   M_n = B(1 + S, 1 + n − S) / (p0^S (1 − p0)^(n − S)), reaches 1 / (1 − confidence)
 *   with p̂ > p0 (see `stats.ts`). False-breach probability over the whole stage ≤ 1 − confidence.
 * - `relative`: breach when the one-sided mixture SPRT of H0: p_on − p_off ≤ max_increase
 *   reaches 1/alpha: the likelihood ratio of where the errors land (flag-on or flag-off, given
 *   the traffic split) against "flag-on errs ρ times as often", mixed over ρ from 1.1 to 10
 *   (see `relativeLogE` in `stats.ts`). False-breach probability ≤ alpha however often it is
 *   checked, with no large-sample approximation (it assumes a stable traffic split within the
 *   stage).
 * - Fewer flag-on users than `min_users` (or events than `min_samples` when the source counts
 *   events; relative rules: in both cohorts) → `insufficient_data`. Empty history or invalid
 *   counts → `no_data`. A breach needs the last `consecutive` polls to breach each.
 * - Looks at most `consecutive` points back: O(consecutive), whatever the history length.
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
  const ev = evaluatePoint(rule, last);
  const evidence = evidenceFor(rule, history, last, ev, bounds);
  if (ev.state === 'invalid') {
    return { kind: 'no_data', ruleId: rule.id, flag, consecutive: 0, reason: `No usable data for ${flag}: ${ev.why}.`, evidence };
  }
  if (ev.state === 'insufficient') {
    return { kind: 'insufficient_data', ruleId: rule.id, flag, consecutive: 0, reason: `Not enough data for ${flag} yet: ${ev.why}.`, evidence };
  }
  let run = ev.state === 'breach' ? 1 : 0;
  if (run === 1) {
    for (let i = history.length - 2; i >= 0 && run < rule.consecutive; i--) {
      if (evaluatePoint(rule, history[i]!).state !== 'breach') break;
      run++;
    }
  }
  const t = last.treatment;
  const cond = rule.condition;
  const unit = last.unit ?? 'users';
  const lb = evidence.lower_bound;
  let what: string;
  if (cond.kind === 'absolute') {
    what =
      `${flag} flag-on error rate ${pct(rate(t))} (${t.errors}/${t.total} ${unit})` +
      (lb === undefined ? '' : `, lower ${Math.round(cond.confidence * 100)}% bound ${pct(lb)}`) +
      ` vs threshold ${pct(cond.error_rate_above)}`;
  } else {
    const c = last.control!;
    what =
      `${flag} flag-on ${pct(rate(t))} (${t.errors}/${t.total}) vs flag-off ${pct(rate(c))} (${c.errors}/${c.total} ${unit})` +
      (lb === undefined ? '' : `, increase lower bound ${pct(lb)}`) +
      ` vs allowed ${pct(cond.max_increase)} (alpha ${cond.alpha})`;
  }
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
