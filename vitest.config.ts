import { defineConfig } from 'vitest/config';

// In the repository, `@rollback-guardian/sdk` resolves to its TypeScript sources through the
// exports map's `@rollback-guardian/source` condition (tsconfig's customConditions says the same),
// so tests never run against a stale build; the packed tarball (dist/) is tested on its own in
// sdk/test/packaging.test.ts and the examples.
const SOURCE = '@rollback-guardian/source';

export default defineConfig({
  resolve: { conditions: [SOURCE, 'module', 'browser', 'development|production'] },
  ssr: { resolve: { conditions: [SOURCE, 'module', 'node', 'development|production'] } },
  test: {
    include: ['sdk/test/**/*.test.ts', 'guardian/test/**/*.test.ts', 'supabase/test/**/*.test.ts', 'test/**/*.test.ts', 'examples/*/test/**/*.test.ts'],
    // A bound for a hung test, not a speed goal: the suite must pass on a loaded two-core machine.
    testTimeout: 60_000,
    // expect.poll waits for a condition; its default of 1 s is a speed goal a loaded machine misses.
    expect: { poll: { timeout: 15_000 } },
    hookTimeout: 120_000,
    // Database tests each create their own throwaway database, so files may run in parallel.
    fileParallelism: true,
    maxWorkers: 2,
  },
});
