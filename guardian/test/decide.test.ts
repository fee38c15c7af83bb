import { describe, expect, it } from 'vitest';
import { decide, type DecisionRule } from '../src/decide/decide.ts';
import { betaBinomialLogE, betaBinomialLowerBound, logGamma, normalCdf, relativeLogE, relativeLowerBound } from '../src/decide/stats.ts';
import type { HistoryPoint } from '../src/decide/types.ts';

const absolute: DecisionRule = {
  id: 'agents-error-ceiling',
  flags: ['booking_agent_enabled'],
  condition: { kind: 'absolute', error_rate_above: 0.05, confidence: 0.95 },
  window: 600_000,
  min_users: 100,
  min_samples: 500,
  consecutive: 2,
};
const relative: DecisionRule = { ...absolute, id: 'ai-stage-regression', condition: { kind: 'relative', max_increase: 0.01, alpha: 0.05 } };

const at = (minute: number) => new Date(Date.UTC(2026, 0, 1, 10, minute));
function points(rows: readonly [number, number, number?, number?][], unit?: 'users' | 'events'): HistoryPoint[] {
  return rows.map(([t, e, ct, ce], i) => ({
    at: at(i + 1),
    treatment: { total: t, errors: e },
    ...(ct === undefined ? {} : { control: { total: ct, errors: ce ?? 0 } }),
    ...(unit ? { unit } : {}),
  }));
}

describe('statistics', () => {
  it('logGamma and normalCdf match known values', () => {
    expect(logGamma(1)).toBeCloseTo(0, 10);
    expect(logGamma(11)).toBeCloseTo(Math.log(3_628_800), 9);
    expect(logGamma(0.5)).toBeCloseTo(Math.log(Math.sqrt(Math.PI)), 9);
    expect(normalCdf(0)).toBeCloseTo(0.5, 7);
    expect(normalCdf(1.959964)).toBeCloseTo(0.975, 6);
    expect(normalCdf(-3)).toBeCloseTo(0.0013499, 6);
  });

  it('the beta-binomial mixture is a fair bet at p0 (its expectation under p0 is 1) and its bound is below the estimate', () => {
    // E[M_n] = sum_s C(n,s) p0^s (1-p0)^(n-s) M_n(s) = 1 exactly for a martingale with mean 1.
    const n = 40;
    const p0 = 0.05;
    let expectation = 0;
    for (let s = 0; s <= n; s++) {
      const logBinom = logGamma(n + 1) - logGamma(s + 1) - logGamma(n - s + 1);
      expectation += Math.exp(logBinom + s * Math.log(p0) + (n - s) * Math.log1p(-p0) + betaBinomialLogE(s, n, p0));
    }
    expect(expectation).toBeCloseTo(1, 9);
    const lb = betaBinomialLowerBound(20, 100, 0.05);
    expect(lb).toBeGreaterThan(0.05);
    expect(lb).toBeLessThan(0.2);
    expect(betaBinomialLogE(20, 100, lb)).toBeCloseTo(Math.log(20), 6);
    expect(betaBinomialLowerBound(0, 100, 0.05)).toBe(0);
  });

  it('the relative statistic grows with the observed increase and its lower bound is consistent with it', () => {
    const c = { treatmentErrors: 40, treatmentTotal: 400, controlErrors: 8, controlTotal: 400 };
    expect(relativeLogE(c, 0)).toBeGreaterThan(relativeLogE({ ...c, treatmentErrors: 20 }, 0));
    const lb = relativeLowerBound(c, 0.05);
    expect(lb).toBeGreaterThan(0);
    expect(lb).toBeLessThan(0.08);
    expect(relativeLogE(c, lb)).toBeCloseTo(Math.log(20), 4);
    // No increase → no evidence: the mixture stays below 1/alpha.
    expect(relativeLogE({ treatmentErrors: 8, treatmentTotal: 400, controlErrors: 8, controlTotal: 400 }, 0)).toBeLessThan(Math.log(20));
  });
});

describe('decide', () => {
  it('no history → no_data, never a breach', () => {
    const v = decide(absolute, [], 'booking_agent_enabled');
    expect(v).toMatchObject({ kind: 'no_data', ruleId: 'agents-error-ceiling', flag: 'booking_agent_enabled', consecutive: 0 });
    expect(v.evidence).toBeUndefined();
  });

  it('below min_users → insufficient_data even at a 100% error rate (a handful of errors never rolls back)', () => {
    const v = decide(absolute, points([[50, 50], [99, 99]]));
    expect(v.kind).toBe('insufficient_data');
    expect(v.reason).toContain('99 flag-on users so far, below min_users 100');
  });

  it('uses min_samples when the source counts events', () => {
    expect(decide(absolute, points([[400, 200], [450, 225]], 'events')).kind).toBe('insufficient_data');
    expect(decide(absolute, points([[600, 300], [700, 350]], 'events')).kind).toBe('breach');
  });

  it('absolute: breach needs the lower bound above the threshold at `consecutive` polls in a row', () => {
    const one = decide(absolute, points([[200, 40]]));
    expect(one.kind).toBe('healthy');
    expect(one.consecutive).toBe(1);
    expect(one.reason).toContain('1 of 2 polls in a row');
    const two = decide(absolute, points([[200, 40], [300, 60]]));
    expect(two.kind).toBe('breach');
    expect(two.consecutive).toBe(2);
    expect(two.evidence).toMatchObject({ unit: 'users', condition: 'absolute', threshold: 0.05, alpha: 0.05, statistic: 'beta_binomial_mixture_cs', polls: 2, window: 600_000, at: at(2).toISOString() });
    expect(two.evidence?.treatment).toEqual({ total: 300, errors: 60, rate: 0.2 });
    expect(two.evidence?.lower_bound).toBeGreaterThan(0.05);
    expect(two.reason).toMatch(/^Breach: booking_agent_enabled flag-on error rate 20\.0% \(60\/300 users\)/);
    // JSON-serialisable: survives a round trip unchanged.
    expect(JSON.parse(JSON.stringify(two))).toEqual(two);
  });

  it('absolute: an observed rate just above the threshold on little data is not a breach', () => {
    const v = decide({ ...absolute, consecutive: 1 }, points([[200, 12]]));
    expect(v.kind).toBe('healthy');
    expect(v.evidence?.lower_bound).toBeLessThan(0.05);
  });

  it('a non-breaching poll breaks the run', () => {
    const v = decide(absolute, points([[200, 40], [2000, 100], [2200, 160]]));
    expect(v.kind).toBe('healthy');
    expect(v.consecutive).toBe(1);
  });

  it('relative: compares flag-on with flag-off, needs control traffic', () => {
    expect(decide(relative, points([[400, 80]])).kind).toBe('insufficient_data');
    expect(decide(relative, points([[400, 80]])).reason).toContain('no flag-off traffic');
    expect(decide(relative, points([[400, 80, 50, 1]])).reason).toContain('50 flag-off users so far, below min_users 100');
    const v = decide(relative, points([[400, 60, 400, 8], [800, 120, 800, 16]]));
    expect(v.kind).toBe('breach');
    expect(v.evidence).toMatchObject({ condition: 'relative', max_increase: 0.01, alpha: 0.05, statistic: 'half_normal_mixture_sprt' });
    expect(v.evidence?.control).toEqual({ total: 800, errors: 16, rate: 0.02 });
    expect(v.evidence?.lower_bound).toBeGreaterThan(0.01);
    // Same rates in both cohorts: healthy, whatever the volume.
    expect(decide(relative, points([[5000, 100, 5000, 100], [10_000, 200, 10_000, 200]])).kind).toBe('healthy');
    // An increase within the allowed margin is not a breach.
    expect(decide(relative, points([[20_000, 500, 20_000, 400], [40_000, 1000, 40_000, 800]])).kind).toBe('healthy');
  });

  it('invalid counts (a provider fault) are no_data, never a breach', () => {
    expect(decide(absolute, points([[100, 150], [100, 150]])).kind).toBe('no_data');
    expect(decide(absolute, points([[Number.NaN, 1]])).kind).toBe('no_data');
    expect(decide(relative, points([[400, 80, 400, -1]])).kind).toBe('no_data');
  });

  it('looks only at the last `consecutive` points: a long history costs the same', () => {
    const long = Array.from({ length: 100_000 }, (_, i): HistoryPoint => ({ at: new Date(i * 60_000), treatment: { total: 100 + i, errors: 1 } }));
    const start = performance.now();
    for (let i = 0; i < 1000; i++) decide(absolute, long, 'booking_agent_enabled', { bounds: false });
    expect(performance.now() - start).toBeLessThan(1000);
  });

  it('bounds: false gives the same verdict kind without the bound', () => {
    const h = points([[200, 40], [300, 60]]);
    const fast = decide(absolute, h, 'booking_agent_enabled', { bounds: false });
    expect(fast.kind).toBe(decide(absolute, h).kind);
    expect(fast.evidence?.lower_bound).toBeUndefined();
  });
});
