/**
 * The fault suite's shared pieces: its two forms (bounded in `npm test`, full with
 * `FAULTS_FULL=1`), and `figure()`, which prints each measured figure on one line
 * (`FAULTS <suite> <name>: <value>`) and appends it as JSON to `FAULTS_REPORT` when that is set.
 */
import { appendFileSync } from 'node:fs';

/** True for the full form (`FAULTS_FULL=1 npm run test:faults` or `npm run bench -- faults`). */
export const FULL = process.env['FAULTS_FULL'] === '1';

/**
 * `bounded` in the CI form, `full` in the full form.
 *
 * @example
 * const trials = scale(8, 50);
 */
export function scale(bounded: number, full: number): number {
  return FULL ? full : bounded;
}

/**
 * Prints one figure on its own line and records it in `FAULTS_REPORT` (JSON lines) if set.
 *
 * @example
 * figure('outbox-crash', 'slack duplicates', 0, { trials: 50 });
 */
export function figure(suite: string, name: string, value: number | string, extra: Record<string, unknown> = {}): void {
  const details = Object.entries(extra)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  process.stdout.write(`FAULTS ${suite} ${name}: ${value}${details === '' ? '' : ` (${details})`}\n`);
  const report = process.env['FAULTS_REPORT'];
  if (report) appendFileSync(report, `${JSON.stringify({ suite, name, value, form: FULL ? 'full' : 'bounded', ...extra })}\n`);
}
