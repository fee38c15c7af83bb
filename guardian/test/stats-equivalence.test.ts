/**
 * The confidence bounds and the mixture, made cheaper (no arrays per evaluation, the parts that
 * do not depend on the bisected value computed once), must return the same numbers to the last
 * bit as the straightforward versions they replaced, which are kept here as the reference.
 */
import { describe, expect, it } from 'vitest';

import { betaBinomialLogE, betaBinomialLowerBound, mixtureLogE, RELATIVE_MIXTURE, relativeLogE, relativeLowerBound, SAFETY_MIXTURE, type RatioComponent, type TwoSample } from '../src/decide/stats.ts';
import { rng } from '../src/random.ts';

// ---- the reference: the versions before the speed work, verbatim ------------------------------

function refMixtureLogE(logLRs: readonly number[], mixture: readonly RatioComponent[] = RELATIVE_MIXTURE): number {
  let max = -Infinity;
  const logs = mixture.map(({ weight }, k) => {
    const l = Math.log(weight) + (logLRs[k] ?? 0);
    if (l > max) max = l;
    return l;
  });
  if (max === -Infinity) return max;
  return max + Math.log(logs.reduce((acc, l) => acc + Math.exp(l - max), 0));
}

function refRelativeLogLRs(c: TwoSample, margin: number, mixture: readonly RatioComponent[] = RELATIVE_MIXTURE): number[] {
  const nT = c.treatmentTotal;
  const nC = c.controlTotal;
  if (!(nT > 0 && nC > 0)) return mixture.map(() => 0);
  const xT = c.treatmentErrors + nT * Math.max(0, -margin);
  const xC = c.controlErrors + nC * Math.max(0, margin);
  const m = xT + xC;
  const share = nT / (nT + nC);
  return mixture.map(({ ratio }) => xT * Math.log(ratio) - m * Math.log1p((ratio - 1) * share));
}

function refRelativeLogE(c: TwoSample, margin: number, mixture: readonly RatioComponent[] = RELATIVE_MIXTURE): number {
  if (mixture.length === 0 || !(c.treatmentTotal > 0 && c.controlTotal > 0)) return 0;
  return refMixtureLogE(refRelativeLogLRs(c, margin, mixture), mixture);
}

function refRelativeLowerBound(c: TwoSample, alpha: number, mixture: readonly RatioComponent[] = RELATIVE_MIXTURE): number {
  const target = Math.log(1 / alpha);
  let hi = c.treatmentErrors / c.treatmentTotal - c.controlErrors / c.controlTotal;
  let lo = -1;
  if (refRelativeLogE(c, hi, mixture) >= target) return hi;
  if (refRelativeLogE(c, lo, mixture) < target) return lo;
  for (let i = 0; i < 60; i++) {
    const mid = (lo + hi) / 2;
    if (refRelativeLogE(c, mid, mixture) >= target) lo = mid;
    else hi = mid;
  }
  return lo;
}

function refBetaBinomialLowerBound(errors: number, total: number, alpha: number): number {
  if (total <= 0 || errors <= 0) return 0;
  const target = Math.log(1 / alpha);
  let lo = 0;
  let hi = errors / total;
  if (betaBinomialLogE(errors, total, hi) >= target) return hi;
  for (let i = 0; i < 60; i++) {
    const mid = (lo + hi) / 2;
    if (mid <= 0) break;
    if (betaBinomialLogE(errors, total, mid) >= target) lo = mid;
    else hi = mid;
  }
  return lo;
}

// ---- inputs ----------------------------------------------------------------------------------

/** Counts from tiny to huge, rates from 0 to high, and the edge cases (empty cohorts, no errors, all errors). */
function samples(n: number): TwoSample[] {
  const r = rng(20_261_203);
  const out: TwoSample[] = [
    { treatmentErrors: 0, treatmentTotal: 0, controlErrors: 0, controlTotal: 0 },
    { treatmentErrors: 0, treatmentTotal: 100, controlErrors: 0, controlTotal: 0 },
    { treatmentErrors: 5, treatmentTotal: 100, controlErrors: 0, controlTotal: 100 },
    { treatmentErrors: 100, treatmentTotal: 100, controlErrors: 0, controlTotal: 100 },
    { treatmentErrors: 0, treatmentTotal: 100, controlErrors: 100, controlTotal: 100 },
  ];
  for (let i = 0; i < n; i++) {
    const scale = 10 ** (1 + Math.floor(r() * 6));
    const nT = Math.floor(r() * scale) + 1;
    const nC = Math.floor(r() * scale) + 1;
    const pC = r() * 0.1;
    const pT = pC * (0.5 + r() * 4);
    out.push({ treatmentErrors: Math.min(nT, Math.round(nT * pT)), treatmentTotal: nT, controlErrors: Math.min(nC, Math.round(nC * pC)), controlTotal: nC });
  }
  return out;
}

describe('the cheaper statistics return the same numbers as before, to the last bit', () => {
  const inputs = samples(3000);

  it('relativeLowerBound at several alphas and both mixtures', () => {
    let differ = 0;
    for (const c of inputs) {
      for (const alpha of [0.02, 0.05, 0.001]) {
        if (!Object.is(relativeLowerBound(c, alpha), refRelativeLowerBound(c, alpha))) differ++;
        if (!Object.is(relativeLowerBound(c, alpha, SAFETY_MIXTURE), refRelativeLowerBound(c, alpha, SAFETY_MIXTURE))) differ++;
      }
    }
    expect(differ).toBe(0);
  });

  it('relativeLogE and mixtureLogE at margins across the range', () => {
    let differ = 0;
    for (const c of inputs) {
      for (const margin of [-0.5, -0.01, 0, 0.005, 0.01, 0.2]) {
        if (!Object.is(relativeLogE(c, margin), refRelativeLogE(c, margin))) differ++;
        const lrs = refRelativeLogLRs(c, margin);
        if (!Object.is(mixtureLogE(lrs), refMixtureLogE(lrs))) differ++;
        if (!Object.is(mixtureLogE(lrs, SAFETY_MIXTURE), refMixtureLogE(lrs, SAFETY_MIXTURE))) differ++;
      }
    }
    expect(mixtureLogE([-Infinity, -Infinity], [{ ratio: 2, weight: 0.5 }, { ratio: 3, weight: 0.5 }])).toBe(-Infinity);
    expect(differ).toBe(0);
  });

  it('betaBinomialLowerBound at several alphas', () => {
    let differ = 0;
    for (const c of inputs) {
      for (const alpha of [0.05, 0.01, 0.001]) {
        if (!Object.is(betaBinomialLowerBound(c.treatmentErrors, c.treatmentTotal, alpha), refBetaBinomialLowerBound(c.treatmentErrors, c.treatmentTotal, alpha))) differ++;
      }
    }
    expect(differ).toBe(0);
  });
});
