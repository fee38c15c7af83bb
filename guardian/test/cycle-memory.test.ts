/** The post-cycle collection (cycle/memory.ts): only after a large cycle, and it gives back what the cycle left behind. */
import { describe, expect, it } from 'vitest';

import { COLLECT_AFTER_PAIRS, collectAfterCycle } from '../src/cycle/memory.ts';

describe('collectAfterCycle', () => {
  it('leaves a small cycle to V8', () => {
    expect(collectAfterCycle(0)).toBe(false);
    expect(collectAfterCycle(COLLECT_AFTER_PAIRS - 1)).toBe(false);
  });

  it('after a large cycle collects what is no longer referenced', () => {
    // Garbage the size of a 10,000-flag cycle's leftovers (20,000 evidence-like objects), let go on return.
    const before = (() => {
      const garbage = Array.from({ length: 20_000 }, (_, i) => ({ flag: `scale_${i}`, reason: 'x'.repeat(200) + String(i), evidence: { polls: i, treatment: { total: i, errors: 1 } } }));
      expect(garbage).toHaveLength(20_000);
      return process.memoryUsage().heapUsed;
    })();
    expect(collectAfterCycle(COLLECT_AFTER_PAIRS)).toBe(true);
    // At least the 20,000 strings of 200+ characters are gone.
    expect(before - process.memoryUsage().heapUsed).toBeGreaterThan(20_000 * 200);
  });
});
