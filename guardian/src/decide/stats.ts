/**
 * Sequential statistics behind `decide`: both are test (super)martingales, so by Ville's
 * inequality the chance that they EVER exceed 1/alpha under the null is at most alpha —
 * however often they are checked. That is what makes polling every minute safe.
 *
 * - absolute: beta-binomial mixture martingale of the flag-on error rate (exact).
 * - relative: mixture over error-rate ratios of the likelihood ratio of "which arm did the
 *   errors land in" (no large-sample approximation: a supermartingale for Bernoulli users as
 *   long as the flag-on share of traffic is stable within a stage, as a stage's fixed rollout
 *   percentage keeps it).
 */

const LANCZOS = [
  0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905,
  -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
];

/** ln Γ(x) for x > 0 (Lanczos approximation, g = 7; relative error ≈ 1e-15). */
export function logGamma(x: number): number {
  if (x < 0.5) return Math.log(Math.PI / Math.abs(Math.sin(Math.PI * x))) - logGamma(1 - x);
  const z = x - 1;
  let a = LANCZOS[0]!;
  const t = z + 7.5;
  for (let i = 1; i < 9; i++) a += LANCZOS[i]! / (z + i);
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(a);
}

/** ln B(a, b). */
export function logBeta(a: number, b: number): number {
  return logGamma(a) + logGamma(b) - logGamma(a + b);
}

/** Standard normal CDF Φ(x) (erfc by Chebyshev fit, |relative error| < 1.2e-7). */
export function normalCdf(x: number): number {
  const z = Math.abs(x) / Math.SQRT2;
  const t = 1 / (1 + 0.5 * z);
  const erfc =
    t *
    Math.exp(
      -z * z -
        1.26551223 +
        t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return x >= 0 ? 1 - erfc / 2 : erfc / 2;
}

/** Beta prior of the absolute test's mixture: Beta(1, 1) (uniform over the error rate). */
export const BETA_PRIOR = { a: 1, b: 1 } as const;

/**
 * ln of the beta-binomial mixture martingale for "error rate = p0" after `errors` of `total`:
 *
 *   M_n(p0) = B(a + S, b + n − S) / B(a, b) / (p0^S · (1 − p0)^(n − S)),
 *
 * the likelihood ratio of Bernoulli(p) against Bernoulli(p0) averaged over p ~ Beta(a, b)
 * (Robbins' method of mixtures; Howard et al. 2021, "Time-uniform, nonparametric, nonasymptotic
 * confidence sequences"). Under p = p0 it is a nonnegative martingale with mean 1.
 *
 * @example
 * betaBinomialLogE(20, 100, 0.05) > Math.log(1 / 0.05); // true: 20% observed is far above 5%
 */
export function betaBinomialLogE(errors: number, total: number, p0: number, prior: { a: number; b: number } = BETA_PRIOR): number {
  const s = errors;
  const f = total - errors;
  return logBeta(prior.a + s, prior.b + f) - logBeta(prior.a, prior.b) - s * Math.log(p0) - f * Math.log1p(-p0);
}

/**
 * Always-valid lower confidence bound of a Bernoulli rate: the smallest p with
 * M_n(p) < 1/alpha (the set {p : M_n(p) < 1/alpha} is a (1 − alpha) confidence sequence,
 * an interval because ln M_n(p) is convex in p). Found by bisection on [0, p̂].
 *
 * @example
 * betaBinomialLowerBound(20, 100, 0.05); // ≈ 0.10
 */
export function betaBinomialLowerBound(errors: number, total: number, alpha: number, prior: { a: number; b: number } = BETA_PRIOR): number {
  if (total <= 0 || errors <= 0) return 0;
  const target = Math.log(1 / alpha);
  // betaBinomialLogE(errors, total, p, prior) with its p-free part computed once (the same
  // operations in the same order, so the same value to the last bit at every p).
  const s = errors;
  const f = total - errors;
  const fixed = logBeta(prior.a + s, prior.b + f) - logBeta(prior.a, prior.b);
  const logE = (p: number): number => fixed - s * Math.log(p) - f * Math.log1p(-p);
  let lo = 0;
  let hi = errors / total;
  if (logE(hi) >= target) return hi;
  for (let i = 0; i < 60; i++) {
    const mid = (lo + hi) / 2;
    if (mid <= 0) break;
    if (logE(mid) >= target) lo = mid;
    else hi = mid;
  }
  return lo;
}

/** One component of the relative test's mixture: an alternative flag-on/flag-off error-rate ratio and its prior weight. */
export interface RatioComponent {
  /** Alternative rate ratio ρ > 1: the flag-on error rate is ρ times the allowed one (flag-off rate + margin). */
  readonly ratio: number;
  /** Prior weight of this ratio; the weights of a mixture sum to at most 1. */
  readonly weight: number;
}

/**
 * The relative test's prior over how much worse flag-on is, as error-rate ratios, 1.1×…10×:
 * - 40% on a doubling, 10% on 1.5×, 20% on 3×: the regressions worth a rollback;
 * - 5% each on 1.1× and 1.25×: a small regression that persists is still caught (a component
 *   only gains when the true ratio is above about half-way to it in log terms, so without them
 *   a 1.2× regression would never be; with them, 2% → 2.4% at 100 users/min is caught within
 *   24 h);
 * - 10% each on 5× and 10×: with 3×, a sudden breakage (5% → 20%) is caught within two polls.
 * Weights chosen by simulation (bench/detection.bench.ts); they sum to 1.
 */
export const RELATIVE_MIXTURE: readonly RatioComponent[] = Object.freeze([
  { ratio: 1.1, weight: 0.05 },
  { ratio: 1.25, weight: 0.05 },
  { ratio: 1.5, weight: 0.1 },
  { ratio: 2, weight: 0.4 },
  { ratio: 3, weight: 0.2 },
  { ratio: 5, weight: 0.1 },
  { ratio: 10, weight: 0.1 },
]);

/** Counts for the two-sample test. */
export interface TwoSample {
  readonly treatmentErrors: number;
  readonly treatmentTotal: number;
  readonly controlErrors: number;
  readonly controlTotal: number;
}

/**
 * ln of the one-sided mixture SPRT statistic for H0: p_T − p_C ≤ margin (flag-on no worse than
 * flag-off by more than `margin`, as a rate difference).
 *
 * Idea (the conditional test for two Poisson rates): given how many errors there are, under
 * p_T = p_C each error lands in the flag-on arm with probability π0 = n_T / (n_T + n_C) —
 * whatever the common rate, so the unknown base rate cancels. Against "flag-on rate is ρ times
 * flag-off" it lands there with π1 = ρ n_T / (ρ n_T + n_C). With X_T, X_C the error counts and
 * m = X_T + X_C, the likelihood ratio is
 *
 *   LR_ρ = (π1/π0)^X_T · ((1 − π1)/(1 − π0))^X_C = ρ^X_T · ((n_T + n_C) / (ρ n_T + n_C))^m,
 *
 * and the statistic is Σ_k w_k LR_ρk over {@link RELATIVE_MIXTURE}. Each LR_ρ = exp(a X_T − b X_C)
 * has expectation exactly 1 when the counts are independent Poisson with equal rates, ≤ 1 when
 * p_T < p_C (one-sided: only flag-on worse raises it), and ≤ 1 for binomial counts too (a
 * Bernoulli's exponential moment is below the Poisson's), so with a stable traffic split it is
 * a supermartingale over polls under H0, without any large-sample approximation.
 *
 * The margin: for margin δ > 0, the flag-off count is raised by its allowed share, X_C + n_C δ
 * (the expected count of an extra Poisson(n_C δ) arm, which would make the test exact; by
 * Jensen the deterministic shift only lowers the statistic); for δ < 0 (used by the lower
 * bound) the flag-on count is raised by n_T |δ| the same way.
 *
 * @example
 * relativeLogE({ treatmentErrors: 40, treatmentTotal: 200, controlErrors: 10, controlTotal: 200 }, 0) > Math.log(1 / 0.02); // true
 * relativeLogE({ treatmentErrors: 10, treatmentTotal: 200, controlErrors: 10, controlTotal: 200 }, 0) < 0; // true: no increase, no evidence
 */
export function relativeLogE(c: TwoSample, margin: number, mixture: readonly RatioComponent[] = RELATIVE_MIXTURE): number {
  if (mixture.length === 0 || !(c.treatmentTotal > 0 && c.controlTotal > 0)) return 0;
  return mixtureLogE(relativeLogLRs(c, margin, mixture), mixture);
}

/**
 * The log likelihood ratios ln LR_ρ of {@link relativeLogE}, one per mixture component (without
 * the weights). Summing them over disjoint spans of data (segments of a stage) gives the ratios
 * on the spans taken together, which {@link mixtureLogE} then mixes: a mixture of products,
 * as efficient as one test on all the data. All zeros when a cohort is empty (no evidence).
 *
 * @example
 * relativeLogLRs({ treatmentErrors: 40, treatmentTotal: 200, controlErrors: 10, controlTotal: 200 }, 0).length; // RELATIVE_MIXTURE.length
 */
export function relativeLogLRs(c: TwoSample, margin: number, mixture: readonly RatioComponent[] = RELATIVE_MIXTURE): number[] {
  const nT = c.treatmentTotal;
  const nC = c.controlTotal;
  if (!(nT > 0 && nC > 0)) return mixture.map(() => 0);
  const xT = c.treatmentErrors + nT * Math.max(0, -margin);
  const xC = c.controlErrors + nC * Math.max(0, margin);
  const m = xT + xC;
  const share = nT / (nT + nC);
  return mixture.map(({ ratio }) => xT * Math.log(ratio) - m * Math.log1p((ratio - 1) * share));
}

/**
 * ln Σ_k w_k exp(logLR_k): the mixture of per-component log likelihood ratios (see
 * {@link relativeLogLRs}); −∞ only if every component is.
 *
 * @example
 * mixtureLogE([0, 0], [{ ratio: 2, weight: 0.5 }, { ratio: 3, weight: 0.5 }]); // 0
 */
export function mixtureLogE(logLRs: readonly number[], mixture: readonly RatioComponent[] = RELATIVE_MIXTURE): number {
  // Two passes over the components instead of an array of the weighted logs (no allocation):
  // each term is computed the same way both times, and summed in the same order.
  let max = -Infinity;
  for (let k = 0; k < mixture.length; k++) {
    const l = Math.log(mixture[k]!.weight) + (logLRs[k] ?? 0);
    if (l > max) max = l;
  }
  if (max === -Infinity) return max;
  let sum = 0;
  for (let k = 0; k < mixture.length; k++) sum = sum + Math.exp(Math.log(mixture[k]!.weight) + (logLRs[k] ?? 0) - max);
  return max + Math.log(sum);
}

/**
 * {@link relativeLogE} of fixed counts as a function of the margin, for the bisection of
 * {@link relativeLowerBound}: what does not depend on the margin (the logs of the ratios and
 * weights, ln(1 + (ρ − 1) share)) is computed once. Each evaluation does the same floating-point
 * operations in the same order as {@link relativeLogE}, so it returns the same value to the last
 * bit; it only skips the recomputation and the two arrays per evaluation.
 */
function relativeLogEOfMargin(c: TwoSample, mixture: readonly RatioComponent[]): (margin: number) => number {
  const nT = c.treatmentTotal;
  const nC = c.controlTotal;
  if (mixture.length === 0 || !(nT > 0 && nC > 0)) return () => 0;
  const share = nT / (nT + nC);
  const n = mixture.length;
  const logRatio = new Float64Array(n);
  const logShare = new Float64Array(n);
  const logWeight = new Float64Array(n);
  const terms = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    const { ratio, weight } = mixture[k]!;
    logRatio[k] = Math.log(ratio);
    logShare[k] = Math.log1p((ratio - 1) * share);
    logWeight[k] = Math.log(weight);
  }
  return (margin) => {
    const xT = c.treatmentErrors + nT * Math.max(0, -margin);
    const xC = c.controlErrors + nC * Math.max(0, margin);
    const m = xT + xC;
    let max = -Infinity;
    for (let k = 0; k < n; k++) {
      const l = logWeight[k]! + (xT * logRatio[k]! - m * logShare[k]!);
      terms[k] = l;
      if (l > max) max = l;
    }
    if (max === -Infinity) return max;
    let sum = 0;
    for (let k = 0; k < n; k++) sum = sum + Math.exp(terms[k]! - max);
    return max + Math.log(sum);
  };
}

/**
 * Always-valid lower confidence bound of p_T − p_C: the smallest margin δ whose test has not
 * rejected (relativeLogE(c, δ) < ln(1/alpha)); the statistic decreases as δ grows, so the set of
 * margins not rejected is an interval and bisection finds its end. −1 when the data reject no
 * margin at all (too little data to say anything).
 *
 * @example
 * relativeLowerBound({ treatmentErrors: 40, treatmentTotal: 200, controlErrors: 10, controlTotal: 200 }, 0.02); // ≈ 0.04
 */
export function relativeLowerBound(c: TwoSample, alpha: number, mixture: readonly RatioComponent[] = RELATIVE_MIXTURE): number {
  const target = Math.log(1 / alpha);
  const logE = relativeLogEOfMargin(c, mixture);
  let hi = c.treatmentErrors / c.treatmentTotal - c.controlErrors / c.controlTotal;
  let lo = -1;
  if (logE(hi) >= target) return hi;
  if (logE(lo) < target) return lo;
  for (let i = 0; i < 60; i++) {
    const mid = (lo + hi) / 2;
    if (logE(mid) >= target) lo = mid;
    else hi = mid;
  }
  return lo;
}

/**
 * The release plans' safety test's prior over how much BETTER than the allowed rate flag-on is,
 * as ratios below 1 of the flag-on error rate to (flag-off rate + margin): a flag as good as
 * flag-off sits at p_C / (p_C + margin), e.g. 0.67 for 1% with a margin of half a point.
 * Weights sum to 1.
 */
export const SAFETY_MIXTURE: readonly RatioComponent[] = Object.freeze([
  { ratio: 0.9, weight: 0.2 },
  { ratio: 0.8, weight: 0.3 },
  { ratio: 0.67, weight: 0.3 },
  { ratio: 0.5, weight: 0.2 },
]);

/**
 * The log likelihood ratios of the non-inferiority side of the relative test, one per
 * {@link SAFETY_MIXTURE} component: evidence against H0: p_T − p_C ≥ margin ("flag-on is worse
 * than flag-off by the margin or more"). It is {@link relativeLogLRs} with ratios below 1: under
 * H0's boundary, the flag-off count raised by n_C × margin makes both arms' rates equal, and
 * LR_ρ = ρ^X_T · ((n_T + n_C)/(ρ n_T + n_C))^m has expectation ≤ 1 there (the deterministic
 * shift is below the Poisson arm it stands for, by Jensen) and lower still when flag-on is worse
 * (ρ · (n_T + n_C)/(ρ n_T + n_C) < 1 for ρ < 1). So the mixture is a test supermartingale under
 * H0 and, by Ville's inequality, reaches 1/alpha with probability at most alpha however often it
 * is checked: the same always-valid guarantee as the harm side, pointing the other way.
 * Summed over disjoint segments and mixed with {@link mixtureLogE}, like the harm side.
 *
 * @example
 * const safe = mixtureLogE(nonInferiorityLogLRs({ treatmentErrors: 100, treatmentTotal: 10_000, controlErrors: 100, controlTotal: 10_000 }, 0.005), SAFETY_MIXTURE);
 * safe > Math.log(1 / 0.05); // true: 1% vs 1% at 10,000 users each is not worse by half a point
 */
export function nonInferiorityLogLRs(c: TwoSample, margin: number): number[] {
  return relativeLogLRs(c, Math.max(0, margin), SAFETY_MIXTURE);
}
