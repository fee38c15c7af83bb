// Prints how many database tests ran (files named *.db.test.ts: they run on the real PostgreSQL,
// and on PGlite where they say so) from vitest's JSON report, so CI output shows that they were
// executed and not skipped. Exits 1 when none ran or any was skipped. Usage: node scripts/test-summary.ts REPORT.json
import { readFileSync } from 'node:fs';

interface Assertion {
  readonly status: string;
}
interface FileResult {
  readonly name: string;
  readonly assertionResults: readonly Assertion[];
}
const path = process.argv[2];
if (path === undefined) {
  console.error('usage: node scripts/test-summary.ts REPORT.json');
  process.exit(2);
}
const report = JSON.parse(readFileSync(path, 'utf8')) as { testResults: readonly FileResult[] };
const db = report.testResults.filter((f) => f.name.endsWith('.db.test.ts'));
const count = (status: string) => db.reduce((n, f) => n + f.assertionResults.filter((a) => a.status === status).length, 0);
const passed = count('passed');
const failed = count('failed');
const skipped = count('skipped') + count('pending') + count('todo');
console.log(`test: database tests: ${passed} passed, ${failed} failed, ${skipped} skipped in ${db.length} files (*.db.test.ts, real PostgreSQL on 127.0.0.1:5432)`);
if (db.length === 0 || passed === 0 || skipped > 0) {
  console.error('test: FAILED: database tests must run, never be skipped');
  process.exit(1);
}
