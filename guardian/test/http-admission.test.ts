/**
 * Ingestion's bounds in isolation: the admission counter (concurrency and memory budget) and the
 * cycle's priority over ingestion's writes (a write waits while a cycle runs; writes go one at a
 * time; a hung cycle delays a write by at most maxYieldMs).
 */
import { describe, expect, it } from 'vitest';

import { Admission, CyclePriority } from '../src/http/admission.ts';

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve: () => void = () => {};
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe('Admission', () => {
  it('lets in at most maxConcurrent requests and at most the memory budget (one request always fits)', () => {
    const a = new Admission({ maxConcurrent: 2, memoryBudgetBytes: 1_000 });
    const big = a.tryEnter(5_000); // alone: in, though larger than the budget
    expect(big).toBeDefined();
    expect(a.tryEnter(10)).toBeUndefined(); // over the budget now
    big!.release();
    big!.release(); // idempotent
    expect(a.reservedBytes).toBe(0);
    const one = a.tryEnter(400)!;
    const two = a.tryEnter(400)!;
    expect(a.tryEnter(1)).toBeUndefined(); // concurrency
    two.release();
    expect(a.tryEnter(700)).toBeUndefined(); // 400 + 700 > 1000
    expect(a.tryEnter(600)).toBeDefined();
    one.release();
    expect(() => new Admission({ maxConcurrent: 0, memoryBudgetBytes: 1 })).toThrow(/at least 1/);
  });
});

describe('CyclePriority', () => {
  it('holds ingestion writes while a cycle runs and runs them one at a time', async () => {
    const p = new CyclePriority({ maxYieldMs: 60_000 });
    const cycle = deferred();
    const order: string[] = [];
    const running = p.during(async () => {
      order.push('cycle start');
      await cycle.promise;
      order.push('cycle end');
    });
    expect(p.cycleRunning).toBe(true);
    let inside = 0;
    let most = 0;
    const write = (name: string) =>
      p.turn(async () => {
        inside += 1;
        most = Math.max(most, inside);
        order.push(name);
        await new Promise((r) => setImmediate(r));
        inside -= 1;
        return name;
      });
    const writes = [write('w1'), write('w2'), write('w3')];
    // Nothing was written while the cycle holds the store.
    await new Promise((r) => setImmediate(r));
    expect(order).toEqual(['cycle start']);
    cycle.resolve();
    await running;
    expect(await Promise.all(writes)).toEqual(['w1', 'w2', 'w3']);
    expect(order).toEqual(['cycle start', 'cycle end', 'w1', 'w2', 'w3']);
    expect(most).toBe(1);
  });

  it('a failing write does not block the next, and a hung cycle delays writes by at most maxYieldMs', async () => {
    const p = new CyclePriority({ maxYieldMs: 20 });
    await expect(p.turn(async () => Promise.reject(new Error('db down')))).rejects.toThrow('db down');
    const hung = deferred();
    const cycle = p.during(() => hung.promise);
    // The write proceeds although the cycle has not ended (waited for the condition, not the clock).
    await expect(p.turn(async () => 'written')).resolves.toBe('written');
    expect(p.cycleRunning).toBe(true);
    hung.resolve();
    await cycle;
    expect(p.cycleRunning).toBe(false);
  });
});
