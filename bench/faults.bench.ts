// The fault and abuse suite in its full form (test/faults, FAULTS_FULL=1): every hostile rules
// file through validate and a running guardian, 60 kill -9 trials of the outbox, and whatever
// other fault files test/faults holds. Each prints its figures as `FAULTS <suite> <name>: <value>`.
// Run: npm run bench -- faults   (same as npm run test:faults:full)
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const run = spawnSync(process.execPath, [fileURLToPath(new URL('../node_modules/vitest/vitest.mjs', import.meta.url)), 'run', 'test/faults'], {
  cwd: root,
  env: { ...process.env, FAULTS_FULL: '1' },
  stdio: 'inherit',
});
process.exit(run.status ?? 1);
