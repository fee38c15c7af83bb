/**
 * Sequential statistics behind `decide`: both are test (super)martingales, so by Ville's
 * inequality the chance that they EVER exceed 1/alpha under the null is at most alpha —
 * however often they are checked. That is what makes polling every minute safe.
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

/** ln Φ(x), accurate in the far left tail too. */
function logNormalCdf(x: number): number {
  if (x > -30) return Math.log(Math.max(normalCdf(x), Number.MIN_VALUE));
  return -0.5 * x * x - Math.log(-x) - 0.5 * Math.log(2 * Math.PI);
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
  let lo = 0;
  let hi = errors / total;
  if (betaBinomialLogE(errors, total, hi, prior) >= target) return hi;
  for (let i = 0; i < 60; i++) {
    const mid = (lo + hi) / 2;
    if (mid <= 0) break;
    if (betaBinomialLogE(errors, total, mid, prior) >= target) lo = mid;
    else hi = mid;
  }
  return lo;
}

/** Mixing scales (prior standard deviations of the effect) of the relative test; averaged with equal weight. */
export const RELATIVE_MIXING_SD: readonly number[] = [0.01, 0.1];

/** Counts for the two-sample test. */
export interface TwoSample {
  readonly treatmentErrors: number;
  readonly treatmentTotal: number;
  readonly controlErrors: number;
  readonly controlTotal: number;
}

/** Smoothed variance of the rate difference (Jeffreys-style +½ errors, +1 total: never 0 with 0 errors). */
function diffVariance(c: TwoSample): number {
  const pt = (c.treatmentErrors + 0.5) / (c.treatmentTotal + 1);
  const pc = (c.controlErrors + 0.5) / (c.controlTotal + 1);
  return (pt * (1 - pt)) / c.treatmentTotal + (pc * (1 - pc)) / c.controlTotal;
}

/**
 * ln of the one-sided mixture SPRT statistic for H0: p_T − p_C ≤ margin (Johari et al. 2017,
 * "Peeking at A/B tests", with a half-normal mixing distribution so only increases count).
 * With Δ̂ the observed difference, V its variance, I = 1/V and S = (Δ̂ − margin)·I:
 *
 *   Λ_τ = 2 Φ(S τ / √(1 + I τ²)) / √(1 + I τ²) · exp(S² τ² / (2 (1 + I τ²)))
 *
 * = ∫ exp(θ S − θ² I / 2) over θ ~ half-normal(τ). In the Gaussian (large-sample) approximation
 * each exp(θS − θ²I/2), θ > 0, is a supermartingale under H0, so the mixture is too. Several
 * scales are averaged (still a supermartingale), which keeps power both for small effects
 * (τ = 0.01) and for sudden large jumps (τ = 0.1).
 *
 * @example
 * relativeLogE({ treatmentErrors: 40, treatmentTotal: 200, controlErrors: 10, controlTotal: 200 }, 0) > Math.log(20); // true
 */
export function relativeLogE(c: TwoSample, margin: number, scales: readonly number[] = RELATIVE_MIXING_SD): number {
  const v = diffVariance(c);
  const info = 1 / v;
  const diff = c.treatmentErrors / c.treatmentTotal - c.controlErrors / c.controlTotal - margin;
  const s = diff * info;
  const logs = scales.map((tau) => {
    const k = 1 + info * tau * tau;
    return Math.LN2 + logNormalCdf((s * tau) / Math.sqrt(k)) - 0.5 * Math.log(k) + (s * s * tau * tau) / (2 * k);
  });
  const max = Math.max(...logs);
  return max + Math.log(logs.reduce((acc, l) => acc + Math.exp(l - max), 0) / logs.length);
}

/**
 * Always-valid lower confidence bound of p_T − p_C: the smallest margin m whose test has not
 * rejected (relativeLogE(c, m) < ln(1/alpha)); the statistic decreases as m grows. Bisection.
 *
 * @example
 * relativeLowerBound({ treatmentErrors: 40, treatmentTotal: 200, controlErrors: 10, controlTotal: 200 }, 0.05); // ≈ 0.06
 */
export function relativeLowerBound(c: TwoSample, alpha: number, scales: readonly number[] = RELATIVE_MIXING_SD): number {
  const target = Math.log(1 / alpha);
  let hi = c.treatmentErrors / c.treatmentTotal - c.controlErrors / c.controlTotal;
  let lo = -1;
  if (relativeLogE(c, hi, scales) >= target) return hi;
  for (let i = 0; i < 60; i++) {
    const mid = (lo + hi) / 2;
    if (relativeLogE(c, mid, scales) >= target) lo = mid;
    else hi = mid;
  }
  return lo;
}
