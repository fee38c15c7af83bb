// The TypeScript side of the evaluation contract (DESIGN.md §4): every shared vector
// (test/vectors/evaluation.json, expected values computed independently in Python), then the
// statistical and structural properties the design promises.
import { describe, expect, test } from 'vitest';

import { evaluationVectors } from '../../test/vectors/index.ts';
import { bucket, evaluate, type FlagDefinition } from '../src/core/evaluate.ts';
import { murmur3_32 } from '../src/core/murmur3.ts';
import { rng } from '../../guardian/src/random.ts';

const { murmur3, buckets, unleash, evaluations } = evaluationVectors;

/** `n` distinct user ids shaped like real ones (UUID-like hex), from a fixed seed. */
function userIds(n: number, seed: number): string[] {
  const next = rng(seed);
  const hex = (): string => Math.floor(next() * 0x100000000).toString(16).padStart(8, '0');
  return Array.from({ length: n }, (_, i) => `${hex()}-${hex()}-${i.toString(36)}`);
}

const flag = (over: Partial<FlagDefinition> & { name: string }): FlagDefinition => ({ enabled: true, rolloutPercentage: 0, ...over });

describe('shared vectors', () => {
  test('the vectors file has every kind of case', () => {
    expect(murmur3.length).toBeGreaterThanOrEqual(5);
    expect(buckets.length).toBeGreaterThanOrEqual(20);
    expect(unleash.length).toBeGreaterThanOrEqual(5);
    expect(evaluations.length).toBeGreaterThanOrEqual(15);
  });

  test.each(murmur3.map((v) => [v.source, v] as const))('murmur3 reference: %s', (_s, v) => {
    expect(murmur3_32(v.input, v.seed)).toBe(v.expected);
  });

  test.each(buckets.map((v) => [`${v.note} (${JSON.stringify(v.user_id).slice(0, 24)})`, v] as const))('bucket: %s', (_n, v) => {
    expect(murmur3_32(`${v.group}:${v.user_id}`, 0)).toBe(v.hash);
    expect(new TextEncoder().encode(`${v.group}:${v.user_id}`).length).toBe(v.bytes);
    expect(bucket(v.group, v.user_id)).toBe(v.expected);
  });

  test.each(unleash.map((v) => [v.source, v] as const))('Unleash example: %s', (_s, v) => {
    expect(bucket(v.group, v.user_id)).toBe(v.bucket);
    expect(v.percentage > 0 && bucket(v.group, v.user_id) <= v.percentage).toBe(v.expected_enabled);
  });

  test.each(evaluations.map((v) => [v.description, v] as const))('evaluate: %s', (_d, v) => {
    const def: FlagDefinition = {
      name: v.flag.name,
      enabled: v.flag.enabled,
      rolloutPercentage: v.flag.rollout_percentage,
      bucketGroup: v.flag.bucket_group,
      targets: v.flag.targets,
    };
    const got = evaluate(def, v.user_id);
    expect({ value: got.value, reason: got.reason }).toEqual(v.expected);
    // Targets given as a Set decide the same way as an array.
    const viaSet = evaluate({ ...def, targets: new Set(v.flag.targets) }, v.user_id);
    expect({ value: viaSet.value, reason: viaSet.reason }).toEqual(v.expected);
  });
});

describe('encoding', () => {
  test('a lone surrogate hashes as U+FFFD, as TextEncoder and PostgreSQL see it', () => {
    expect(bucket('g', 'a\ud800b')).toBe(bucket('g', 'a\ufffdb'));
    expect(bucket('g', '\udc00')).toBe(bucket('g', '\ufffd'));
  });

  test('hashing follows the UTF-8 bytes for 2,000 random Unicode strings', () => {
    // Compare with a byte-wise MurmurHash3 over TextEncoder's output (a second implementation).
    const next = rng(7);
    const reference = (bytes: Uint8Array): number => {
      let h = 0;
      const n = bytes.length - (bytes.length % 4);
      const mix = (k: number): number => Math.imul(((Math.imul(k, 0xcc9e2d51) << 15) | (Math.imul(k, 0xcc9e2d51) >>> 17)), 0x1b873593);
      for (let i = 0; i < n; i += 4) {
        h ^= mix(bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24));
        h = (h << 13) | (h >>> 19);
        h = (Math.imul(h, 5) + 0xe6546b64) | 0;
      }
      let k = 0;
      for (let j = bytes.length - 1; j >= n; j--) k = (k << 8) | bytes[j]!;
      if (bytes.length > n) h ^= mix(k);
      h ^= bytes.length;
      h ^= h >>> 16;
      h = Math.imul(h, 0x85ebca6b);
      h ^= h >>> 13;
      h = Math.imul(h, 0xc2b2ae35);
      h ^= h >>> 16;
      return h >>> 0;
    };
    const pools = [[0x20, 0x7e], [0xa0, 0x7ff], [0x800, 0xd7ff], [0xe000, 0xfffd], [0x10000, 0x10ffff]] as const;
    for (let i = 0; i < 2000; i++) {
      let s = '';
      const len = Math.floor(next() * 12);
      for (let j = 0; j < len; j++) {
        const [lo, hi] = pools[Math.floor(next() * pools.length)]!;
        s += String.fromCodePoint(lo + Math.floor(next() * (hi - lo + 1)));
      }
      expect(murmur3_32(s, 0)).toBe(reference(new TextEncoder().encode(s)));
    }
  });
});

describe('properties', () => {
  const ids = userIds(100_000, 42);

  test('determinism: the same user gets the same answer every time', () => {
    const f = flag({ name: 'det_flag', rolloutPercentage: 37 });
    for (const id of ids.slice(0, 2000)) {
      const first = evaluate(f, id);
      expect(evaluate(f, id)).toEqual(first);
      expect(evaluate({ ...f }, id).value).toBe(first.value);
    }
  });

  test('monotone: raising the percentage only adds users', () => {
    const sample = ids.slice(0, 5000);
    let previous = new Set<string>();
    for (let pct = 0; pct <= 100; pct++) {
      const on = new Set(sample.filter((id) => evaluate(flag({ name: 'mono_flag', rolloutPercentage: pct }), id).value));
      for (const id of previous) expect(on.has(id)).toBe(true);
      expect(on.size).toBeGreaterThanOrEqual(previous.size);
      previous = on;
    }
    expect(previous.size).toBe(sample.length);
  });

  test('every percentage 1..99 is within ±0.5 points over 100,000 ids', () => {
    const counts = new Array<number>(101).fill(0);
    for (const id of ids) counts[bucket('spread_flag', id)]!++;
    expect(counts[0]).toBe(0);
    let cumulative = 0;
    const worst = { pct: 0, delta: 0 };
    for (let pct = 1; pct <= 99; pct++) {
      cumulative += counts[pct]!;
      const share = (cumulative / ids.length) * 100;
      const delta = Math.abs(share - pct);
      if (delta > worst.delta) Object.assign(worst, { pct, delta });
      expect(delta, `percentage ${pct}: ${share.toFixed(3)}% of users`).toBeLessThanOrEqual(0.5);
    }
    // And evaluate() agrees with the bucket counts at a few stages.
    for (const pct of [1, 10, 25, 50, 99]) {
      const on = ids.filter((id) => evaluate(flag({ name: 'spread_flag', rolloutPercentage: pct }), id).value).length;
      expect(Math.abs((on / ids.length) * 100 - pct)).toBeLessThanOrEqual(0.5);
    }
    expect(worst.delta).toBeLessThanOrEqual(0.5);
  });

  test('flags in one bucket group nest: alpha 10% ⊂ beta 50% ⊂ GA 100%', () => {
    const alpha = flag({ name: 'ai_alpha_users', rolloutPercentage: 10, bucketGroup: 'ai_rollout' });
    const beta = flag({ name: 'ai_beta_users', rolloutPercentage: 50, bucketGroup: 'ai_rollout' });
    const ga = flag({ name: 'ai_ga_enabled', rolloutPercentage: 100, bucketGroup: 'ai_rollout' });
    let inAlpha = 0;
    for (const id of ids.slice(0, 20_000)) {
      const a = evaluate(alpha, id).value;
      const b = evaluate(beta, id).value;
      if (a) {
        inAlpha++;
        expect(b).toBe(true);
      }
      if (b) expect(evaluate(ga, id).value).toBe(true);
    }
    expect(inAlpha).toBeGreaterThan(1500);
  });

  test('independent groups: 50% ∩ 50% is 25% ± 1 point', () => {
    const a = flag({ name: 'indep_a', rolloutPercentage: 50 });
    const b = flag({ name: 'indep_b', rolloutPercentage: 50 });
    const both = ids.filter((id) => evaluate(a, id).value && evaluate(b, id).value).length;
    expect(Math.abs((both / ids.length) * 100 - 25)).toBeLessThanOrEqual(1);
  });

  test('bucket is an integer 1..100 for any input, the empty id included', () => {
    for (const id of ['', ...ids.slice(0, 1000)]) {
      const b = bucket('g', id);
      expect(Number.isInteger(b)).toBe(true);
      expect(b).toBeGreaterThanOrEqual(1);
      expect(b).toBeLessThanOrEqual(100);
    }
  });
});
