import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['sdk/test/**/*.test.ts', 'guardian/test/**/*.test.ts', 'supabase/test/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Database tests each create their own throwaway database, so files may run in parallel.
    fileParallelism: true,
    maxWorkers: 2,
  },
});
