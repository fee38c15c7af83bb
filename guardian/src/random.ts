/**
 * A small seeded pseudo-random generator (mulberry32): the same sequence for the same seed, so
 * the demo, the benchmarks and the property tests see the same numbers on every run. Not for
 * anything that needs unpredictability.
 *
 * @example
 * const random = rng(7);
 * random(); // a number in [0, 1), the same one every run
 */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
