import { describe, expect, it } from 'vitest';
import { decide, type DecisionRule } from '../src/decide/decide.ts';
import { betaBinomialLogE, betaBinomialLowerBound, logGamma, normalCdf, RELATIVE_MIXTURE, relativeLogE, relativeLowerBound, type TwoSample } from '../src/decide/stats.ts';
import type { HistoryPoint } from '../src/decide/types.ts';
import { rng } from '../src/random.ts';

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

/** Binomial(n, p) probabilities 0..n. */
function binomialPmf(n: number, p: number): number[] {
  return Array.from({ length: n + 1 }, (_, k) => Math.exp(logGamma(n + 1) - logGamma(k + 1) - logGamma(n - k + 1) + k * Math.log(p) + (n - k) * Math.log1p(-p)));
}

/** E[exp(relativeLogE)] when the counts are Binomial(nT, pT) and Binomial(nC, pC), by exact enumeration. */
function expectedE(nT: number, pT: number, nC: number, pC: number, margin: number): number {
  const ft = binomialPmf(nT, pT);
  const fc = binomialPmf(nC, pC);
  let sum = 0;
  for (let t = 0; t <= nT; t++) for (let c = 0; c <= nC; c++) sum += ft[t]! * fc[c]! * Math.exp(relativeLogE({ treatmentErrors: t, treatmentTotal: nT, controlErrors: c, controlTotal: nC }, margin));
  return sum;
}

/** Share of simulated stages whose statistic EVER reaches ln(1/alpha), checked after every batch of users. */
function everCrosses(o: { runs: number; polls: number; perPollT: number; perPollC: number; pT: number; pC: number; margin: number; alpha: number; seed: number }): number {
  const random = rng(o.seed);
  const draw = (n: number, p: number): number => {
    let k = 0;
    for (let i = 0; i < n; i++) if (random() < p) k++;
    return k;
  };
  let crossed = 0;
  for (let r = 0; r < o.runs; r++) {
    const c: { treatmentErrors: number; treatmentTotal: number; controlErrors: number; controlTotal: number } = { treatmentErrors: 0, treatmentTotal: 0, controlErrors: 0, controlTotal: 0 };
    for (let i = 0; i < o.polls; i++) {
      c.treatmentErrors += draw(o.perPollT, o.pT);
      c.treatmentTotal += o.perPollT;
      c.controlErrors += draw(o.perPollC, o.pC);
      c.controlTotal += o.perPollC;
      if (relativeLogE(c, o.margin) >= Math.log(1 / o.alpha)) {
        crossed++;
        break;
      }
    }
  }
  return crossed / o.runs;
}

describe('relative statistic: a test martingale (false breach ≤ alpha however often checked)', () => {
  it('its mixture weights sum to 1 and every alternative is "flag-on worse" (ratio > 1)', () => {
    expect(RELATIVE_MIXTURE.reduce((a, m) => a + m.weight, 0)).toBeCloseTo(1, 12);
    for (const m of RELATIVE_MIXTURE) expect(m.ratio).toBeGreaterThan(1);
  });

  it('is a fair bet given the error total: E = 1 exactly when each error lands flag-on with probability n_T / (n_T + n_C)', () => {
    for (const [nT, nC, m] of [
      [100, 100, 30],
      [300, 700, 120],
      [900, 100, 7],
    ] as const) {
      const f = binomialPmf(m, nT / (nT + nC));
      let e = 0;
      for (let x = 0; x <= m; x++) e += f[x]! * Math.exp(relativeLogE({ treatmentErrors: x, treatmentTotal: nT, controlErrors: m - x, controlTotal: nC }, 0));
      expect(e).toBeCloseTo(1, 9);
    }
  });

  it('has expectation ≤ 1 for Bernoulli users under H0: equal rates, flag-on better, and exactly at the margin', () => {
    for (const [nT, nC] of [
      [60, 40],
      [30, 90],
    ] as const) {
      for (const p of [0.02, 0.1, 0.3]) {
        const equal = expectedE(nT, p, nC, p, 0);
        expect(equal).toBeLessThanOrEqual(1 + 1e-9);
        expect(expectedE(nT, p / 2, nC, p, 0)).toBeLessThan(equal); // one-sided: flag-on better is even less evidence
        expect(expectedE(nT, p + 0.05, nC, p, 0.05)).toBeLessThanOrEqual(1 + 1e-9); // at the margin boundary
        expect(expectedE(nT, p + 0.03, nC, p, 0.05)).toBeLessThanOrEqual(1 + 1e-9); // inside the margin
      }
    }
    // Not vacuous: for rare errors, the case it is built for, it is nearly a fair bet (at high error rates it is conservative).
    expect(expectedE(60, 0.02, 40, 0.02, 0)).toBeGreaterThan(0.99);
    // A small regression that persists is caught with enough data (2% → 2.4%, 100,000 users per arm)...
    expect(relativeLogE({ treatmentErrors: 2400, treatmentTotal: 100_000, controlErrors: 2000, controlTotal: 100_000 }, 0)).toBeGreaterThan(Math.log(1000));
    // ...and the same counts as a rate difference within a one-point margin are no evidence.
    expect(relativeLogE({ treatmentErrors: 2400, treatmentTotal: 100_000, controlErrors: 2000, controlTotal: 100_000 }, 0.01)).toBeLessThan(0);
    // Under the alternative it grows: a real increase is a winning bet.
    expect(expectedE(60, 0.2, 40, 0.1, 0)).toBeGreaterThan(1);
  });

  it('checked after every batch of users for a long stage, it crosses 1/alpha in at most alpha of A/A stages', () => {
    // 600 looks per stage: equal split at 2%, a 30/70 split at 5%, and at the margin boundary.
    const aa = everCrosses({ runs: 600, polls: 600, perPollT: 50, perPollC: 50, pT: 0.02, pC: 0.02, margin: 0, alpha: 0.05, seed: 1 });
    expect(aa).toBeLessThanOrEqual(0.05);
    const skewed = everCrosses({ runs: 400, polls: 400, perPollT: 30, perPollC: 70, pT: 0.05, pC: 0.05, margin: 0, alpha: 0.05, seed: 2 });
    expect(skewed).toBeLessThanOrEqual(0.05);
    const margin = everCrosses({ runs: 400, polls: 400, perPollT: 50, perPollC: 50, pT: 0.03, pC: 0.02, margin: 0.01, alpha: 0.05, seed: 3 });
    expect(margin).toBeLessThanOrEqual(0.05);
    // ...while a doubling of the rate is found in most stages within 40 looks.
    expect(everCrosses({ runs: 200, polls: 40, perPollT: 100, perPollC: 100, pT: 0.02, pC: 0.01, margin: 0, alpha: 0.02, seed: 4 })).toBeGreaterThan(0.6);
  });

  it('is one-sided and respects the margin: it decreases as the margin grows, and flag-on better gives no evidence whatever the volume', () => {
    const c: TwoSample = { treatmentErrors: 80, treatmentTotal: 2000, controlErrors: 40, controlTotal: 2000 };
    const margins = [-0.02, -0.01, 0, 0.005, 0.01, 0.02];
    const values = margins.map((m) => relativeLogE(c, m));
    for (let i = 1; i < values.length; i++) expect(values[i]!).toBeLessThan(values[i - 1]!);
    expect(relativeLogE({ treatmentErrors: 1_000, treatmentTotal: 100_000, controlErrors: 3_000, controlTotal: 100_000 }, 0)).toBeLessThan(0);
    expect(relativeLowerBound({ treatmentErrors: 1_000, treatmentTotal: 100_000, controlErrors: 3_000, controlTotal: 100_000 }, 0.02)).toBeLessThan(-0.015);
    // The bound is always-valid and below the observed difference; more data at the same rates tightens it.
    const lb = relativeLowerBound(c, 0.02);
    const lb10 = relativeLowerBound({ treatmentErrors: 800, treatmentTotal: 20_000, controlErrors: 400, controlTotal: 20_000 }, 0.02);
    expect(lb).toBeLessThan(0.02);
    expect(lb10).toBeGreaterThan(lb);
    expect(lb10).toBeLessThan(0.02);
    expect(relativeLogE(c, lb)).toBeCloseTo(Math.log(50), 4);
  });

  it('copes with no errors at all and with empty cohorts (no evidence, never NaN)', () => {
    expect(relativeLogE({ treatmentErrors: 0, treatmentTotal: 500, controlErrors: 0, controlTotal: 500 }, 0)).toBeCloseTo(0, 12);
    expect(relativeLogE({ treatmentErrors: 0, treatmentTotal: 0, controlErrors: 0, controlTotal: 500 }, 0)).toBe(0);
    expect(Number.isFinite(relativeLowerBound({ treatmentErrors: 0, treatmentTotal: 500, controlErrors: 0, controlTotal: 500 }, 0.02))).toBe(true);
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
    expect(v.evidence).toMatchObject({ condition: 'relative', max_increase: 0.01, alpha: 0.05, statistic: 'rate_ratio_mixture_sprt' });
    expect(v.evidence?.control).toEqual({ total: 800, errors: 16, rate: 0.02 });
    expect(v.evidence?.lower_bound).toBeGreaterThan(0.01);
    // Same rates in both cohorts: healthy, whatever the volume.
    expect(decide(relative, points([[5000, 100, 5000, 100], [10_000, 200, 10_000, 200]])).kind).toBe('healthy');
    // An increase within the allowed margin is not a breach.
    expect(decide(relative, points([[20_000, 500, 20_000, 400], [40_000, 1000, 40_000, 800]])).kind).toBe('healthy');
    // Exactly at the margin, however much data: never a breach; clearly above it: a breach.
    expect(decide(relative, points([[1e6, 30_000, 1e6, 20_000], [2e6, 60_000, 2e6, 40_000]])).kind).toBe('healthy');
    expect(decide(relative, points([[20_000, 800, 20_000, 400], [40_000, 1600, 40_000, 800]])).kind).toBe('breach');
    // Flag-on better than flag-off: never a breach (one-sided).
    expect(decide({ ...relative, condition: { kind: 'relative', max_increase: 0, alpha: 0.4 } }, points([[50_000, 500, 50_000, 1500], [60_000, 600, 60_000, 1800]])).kind).toBe('healthy');
  });

  it('relative, default-like settings (max_increase 0, alpha 0.02, consecutive 2): a doubling at 3,700 users per arm and a 5% → 20% jump in two polls', () => {
    const rule: DecisionRule = { ...relative, condition: { kind: 'relative', max_increase: 0, alpha: 0.02 } };
    const doubling = decide(rule, points([[3600, 72, 3600, 36], [3700, 74, 3700, 37]]));
    expect(doubling.kind).toBe('breach');
    expect(doubling.evidence).toMatchObject({ statistic: 'rate_ratio_mixture_sprt', alpha: 0.02, max_increase: 0 });
    expect(doubling.evidence?.log_e_value).toBeGreaterThan(Math.log(50));
    expect(doubling.evidence?.lower_bound).toBeGreaterThan(0);
    expect(doubling.reason).toMatch(/flag-on 2\.00% \(74\/3700\) vs flag-off 1\.00% \(37\/3700 users\), increase lower bound/);
    expect(decide(rule, points([[100, 20, 100, 5], [200, 40, 200, 10]])).kind).toBe('breach');
    // The same counts split evenly: no evidence.
    expect(decide(rule, points([[3600, 54, 3600, 54], [3700, 56, 3700, 55]])).kind).toBe('healthy');
  });

  it('invalid counts (a provider fault) are no_data, never a breach', () => {
    expect(decide(absolute, points([[100, 150], [100, 150]])).kind).toBe('no_data');
    expect(decide(absolute, points([[Number.NaN, 1]])).kind).toBe('no_data');
    expect(decide(relative, points([[400, 80, 400, -1]])).kind).toBe('no_data');
    expect(decide(relative, points([[400, 80, 400, Number.NaN]])).kind).toBe('no_data');
    expect(decide(relative, points([[400, 80, 400, 500]])).kind).toBe('no_data');
    // A breach run broken by a bad poll starts again: bad data never counts towards `consecutive`.
    expect(decide(relative, points([[400, 80, 400, 8], [500, 100, 500, -3], [600, 120, 600, 12]])).kind).toBe('healthy');
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

/**
 * A stage judged the way the cycle does: counts restart with each segment of `segmentPolls`
 * polls, and decide sees what the store returns (every poll of the current segment, the last
 * poll of each earlier one). `pOn(poll)` is the flag-on error rate at that poll.
 */
function segmentedStage(o: {
  rule: DecisionRule;
  polls: number;
  segmentPolls: number;
  perPoll: number;
  pOn: (poll: number) => number;
  pOff: number;
  random: () => number;
}): { firstBreach: number | undefined; last: ReturnType<typeof decide> | undefined } {
  const draw = (n: number, p: number): number => {
    let k = 0;
    for (let i = 0; i < n; i++) if (o.random() < p) k++;
    return k;
  };
  const stage = at(0).getTime();
  const finals: HistoryPoint[] = [];
  let current: HistoryPoint[] = [];
  const t = { total: 0, errors: 0 };
  const c = { total: 0, errors: 0 };
  let last: ReturnType<typeof decide> | undefined;
  for (let poll = 1; poll <= o.polls; poll++) {
    const segment = Math.floor((poll - 1) / o.segmentPolls);
    if (current.length > 0 && current[0]!.segment !== segment) {
      finals.push(current.at(-1)!);
      current = [];
      t.total = t.errors = c.total = c.errors = 0;
    }
    t.total += o.perPoll;
    t.errors += draw(o.perPoll, o.pOn(poll));
    c.total += o.perPoll;
    c.errors += draw(o.perPoll, o.pOff);
    const since = new Date(stage + segment * o.segmentPolls * 60_000);
    current.push({ at: new Date(stage + poll * 60_000), segment, since, treatment: { ...t }, control: { ...c } });
    last = decide(o.rule, [...finals, ...current], 'ai_beta_users', { bounds: false });
    if (last.kind === 'breach') return { firstBreach: poll, last };
  }
  return { firstBreach: undefined, last };
}

describe('decide over a stage counted in segments (the window)', () => {
  const rule: DecisionRule = { ...relative, window: 3_600_000, condition: { kind: 'relative', max_increase: 0, alpha: 0.05 } };

  it('A/A for 24 h of 1-minute polls in 1h segments: false breaches stay within alpha (counts that slid with the window did not)', () => {
    const random = rng(71);
    let breaches = 0;
    const runs = 200;
    for (let r = 0; r < runs; r++) {
      if (segmentedStage({ rule, polls: 24 * 60, segmentPolls: 60, perPoll: 50, pOn: () => 0.02, pOff: 0.02, random }).firstBreach !== undefined) breaches++;
    }
    expect(breaches / runs).toBeLessThanOrEqual(0.05);
  }, 120_000); // 200 simulated days of cycles: CPU-bound, seconds alone, far more on a loaded machine

  it('a regression that starts late in a long stage is caught within minutes, with the evidence of the segments behind it', () => {
    const random = rng(72);
    const delays: number[] = [];
    for (let r = 0; r < 20; r++) {
      const out = segmentedStage({ rule, polls: 11 * 60, segmentPolls: 60, perPoll: 100, pOn: (poll) => (poll > 10 * 60 + 20 ? 0.2 : 0.02), pOff: 0.02, random });
      expect(out.firstBreach).toBeDefined();
      expect(out.firstBreach!).toBeGreaterThan(10 * 60 + 20);
      delays.push(out.firstBreach! - (10 * 60 + 20));
      expect(out.last?.evidence?.segments).toBe(1);
      expect(out.last?.evidence?.since).toBe(new Date(at(0).getTime() + 10 * 3_600_000).toISOString());
    }
    // Measured: median 5 polls, at most 7 (from the stage start the same jump takes 2: a late
    // start carries a smaller prior weight, and the segment's first 20 quiet minutes dilute it).
    expect([...delays].sort((a, b) => a - b)[10]).toBeLessThanOrEqual(6);
    expect(Math.max(...delays)).toBeLessThanOrEqual(9);
  });

  it('a regression from the stage start at low traffic is caught across segments: the evidence of each hour adds up', () => {
    const random = rng(73);
    let caughtAfterFirstSegment = 0;
    let multi = 0;
    for (let r = 0; r < 20; r++) {
      // 10 users per minute per arm, 2% → 6%: about 12 vs 36 errors per hour, too few for one hour alone.
      const out = segmentedStage({ rule, polls: 12 * 60, segmentPolls: 60, perPoll: 10, pOn: () => 0.06, pOff: 0.02, random });
      expect(out.firstBreach).toBeDefined();
      if (out.firstBreach! > 60) caughtAfterFirstSegment++;
      if ((out.last?.evidence?.segments ?? 1) > 1) multi++;
    }
    expect(caughtAfterFirstSegment).toBeGreaterThan(0);
    expect(multi).toBeGreaterThan(0);
  });

  it('a missing segment (an outage, pruned history) drops the evidence from before it instead of treating the gap as neutral', () => {
    const seg = (segment: number, minute: number, tErr: number, cErr: number, total = 2000): HistoryPoint => ({
      at: at(minute),
      segment,
      since: at(segment * 10),
      treatment: { total, errors: tErr },
      control: { total, errors: cErr },
    });
    const strong = seg(0, 9, 80, 20); // segment 0 ended with strong evidence of harm
    const neutral1 = seg(1, 19, 40, 40);
    const now = [seg(2, 21, 20, 20, 1000), seg(2, 22, 21, 20, 1050)];
    const r10: DecisionRule = { ...rule, window: 600_000 };
    // With segment 1 present the chain from segment 0 carries its evidence...
    const chained = decide(r10, [strong, neutral1, ...now]);
    expect(chained.kind).toBe('breach');
    expect(chained.evidence?.segments).toBe(3);
    expect(chained.evidence?.treatment).toEqual({ total: 2000 + 2000 + 1050, errors: 80 + 40 + 21, rate: (80 + 40 + 21) / 5050 });
    expect(chained.reason).toMatch(/over the last 3 segments of the stage/);
    // ...without it the evidence of segment 0 cannot be used: only the fresh segment counts.
    const gap = decide(r10, [strong, ...now]);
    expect(gap.kind).toBe('healthy');
    expect(gap.evidence?.segments).toBe(1);
    expect(gap.evidence?.log_e_value).toBeLessThan(0);
  });

  it('min_users counts the whole stage: a new segment does not send the verdict back to insufficient_data', () => {
    const h: HistoryPoint[] = [
      { at: at(9), segment: 0, treatment: { total: 500, errors: 10 }, control: { total: 500, errors: 10 } },
      { at: at(11), segment: 1, treatment: { total: 20, errors: 0 }, control: { total: 20, errors: 0 } },
    ];
    expect(decide({ ...rule, min_users: 100 }, h).kind).toBe('healthy');
    expect(decide({ ...rule, min_users: 600 }, h).kind).toBe('insufficient_data');
  });
});
