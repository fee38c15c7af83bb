/**
 * A full garbage collection after a large cycle. At 10,000 flags a cycle allocates about 160 MB of
 * objects, most short-lived (V8's sampling heap profiler), and the process then waits for the next
 * interval, but the Sentry source's paced background requests keep it from ever looking idle to V8,
 * so V8's memory reducer does not run: measured on the real daemon at 10,000 flags, RSS grew
 * 272 → 434 MB over six 30 s cycles before V8 shrank it. Collecting once the cycle is over costs
 * tens of milliseconds an interval and keeps the heap near what is live. Small setups (fewer pairs)
 * are left to V8.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** Judged (rule, flag) pairs from which a cycle is followed by a collection. */
export const COLLECT_AFTER_PAIRS = 1_000;

let collect: (() => void) | null | undefined;

/**
 * Collects garbage when the cycle judged at least {@link COLLECT_AFTER_PAIRS} pairs. Returns
 * whether it did (false where the runtime refuses, e.g. flags frozen by an embedder).
 *
 * @example
 * collectAfterCycle(report.results.length);
 */
export function collectAfterCycle(pairs: number): boolean {
  if (pairs < COLLECT_AFTER_PAIRS) return false;
  if (collect === undefined) {
    try {
      // --expose-gc applies to contexts made after it: one small context hands out V8's gc.
      setFlagsFromString('--expose-gc');
      const gc: unknown = runInNewContext('gc');
      collect = typeof gc === 'function' ? (gc as () => void) : null;
    } catch {
      collect = null;
    }
  }
  collect?.();
  return collect !== null;
}
