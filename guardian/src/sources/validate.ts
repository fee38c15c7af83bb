/**
 * Provider answers are data to check, not facts to trust. These checks turn an answer that
 * cannot be true into "no data" for that flag, with a stable reason code, never into a breach:
 *
 * - `bad_count`: a count is not a finite whole number ≥ 0 (`null`, a string, 1.5, -1, 1e999, …).
 *   A missing count is never read as 0.
 * - `errors_above_total`: more users (or events) with an error than users (or events) in all.
 * - `duplicate_rows`: two rows for one (flag, cohort): which one is true is unknowable, so
 *   neither is used (never "first row wins").
 * - `counts_backwards`: a cumulative count went down within one segment of a stage (compared
 *   with the last stored poll of the same segment; see {@link checkAgainstPrevious}).
 * - `unit_changed`: the same segment was counted in users, then in events (or back): a source
 *   never switches unit silently.
 * - `unit_mismatch` / `no_user_traffic` / `no_user_errors` (Sentry): traffic and errors could not
 *   both be counted in users.
 */
import type { CohortCounts, FlagObservation } from './types.ts';

/** The no-data reason codes of answers that broke a rule of the data (see the module comment). */
export const INVALID_DATA_REASONS = ['bad_count', 'errors_above_total', 'duplicate_rows', 'counts_backwards', 'unit_changed', 'unit_mismatch', 'no_user_traffic', 'no_user_errors'] as const;

/** One of {@link INVALID_DATA_REASONS}. */
export type InvalidDataReason = (typeof INVALID_DATA_REASONS)[number];

/**
 * Whether a value is a count: a finite whole number ≥ 0 that JSON carried exactly.
 *
 * @example
 * isCount(12); // true
 * isCount(null); // false: a missing count is not 0
 */
export function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/**
 * Why a cohort's counts are impossible, or undefined when they are fine.
 *
 * @example
 * cohortProblem({ total: 10, errors: 11 }, 'flag-on'); // { reason: 'errors_above_total', detail: '…' }
 */
export function cohortProblem(c: CohortCounts, cohort: string): { reason: InvalidDataReason; detail: string } | undefined {
  if (!isCount(c.total) || !isCount(c.errors)) return { reason: 'bad_count', detail: `${cohort} counts are not whole numbers ≥ 0 (total ${String(c.total)}, errors ${String(c.errors)})` };
  if (c.errors > c.total) return { reason: 'errors_above_total', detail: `${cohort}: ${c.errors} with errors out of ${c.total} in all; errors cannot exceed the total` };
  return undefined;
}

/**
 * Checks an `ok` observation's own counts (whole numbers, errors ≤ total, per cohort); an
 * impossible answer becomes `no_data` with the reason. Other observations pass through.
 *
 * @example
 * checkObservation({ flag: 'f', status: 'ok', unit: 'users', treatment: { total: 5, errors: 9 } }); // no_data errors_above_total
 */
export function checkObservation(obs: FlagObservation): FlagObservation {
  if (obs.status !== 'ok') return obs;
  const problem = cohortProblem(obs.treatment, 'flag-on') ?? (obs.control ? cohortProblem(obs.control, 'flag-off') : undefined);
  return problem ? { flag: obs.flag, status: 'no_data', reason: problem.reason, detail: problem.detail } : obs;
}

/**
 * How far a count may dip between polls without being "backwards": 0 up to 65,536, then 1%.
 * Both providers count users with ClickHouse's `uniq`, exact up to 65,536 distinct values and an
 * adaptive-sampling estimate above, which can dip slightly as values are added.
 */
export function estimateSlack(count: number): number {
  return count > 65_536 ? Math.ceil(count * 0.01) : 0;
}

/** The counts of the last stored poll of a segment, as {@link checkAgainstPrevious} reads them. */
export interface PreviousCounts {
  readonly unit?: 'users' | 'events';
  readonly treatment: CohortCounts;
  readonly control?: CohortCounts;
}

/**
 * Checks an `ok` observation against the last stored poll of the SAME segment (same flag,
 * source, stage and segment start): counts are cumulative since the segment start, so none may
 * go down, and the unit may not change. Anything else becomes `no_data` (`counts_backwards`,
 * `unit_changed`). With no previous poll of the segment, the observation passes.
 *
 * Why the stored poll and not the previous answer: a rejected answer is never stored, so a
 * lying provider cannot lower the baseline by repeating its lie.
 *
 * @example
 * checkAgainstPrevious(obs, { unit: 'users', treatment: { total: 900, errors: 9 } });
 */
export function checkAgainstPrevious(obs: FlagObservation, previous: PreviousCounts | undefined): FlagObservation {
  if (obs.status !== 'ok' || previous === undefined) return obs;
  const prevUnit = previous.unit ?? 'users';
  if (prevUnit !== obs.unit) {
    return { flag: obs.flag, status: 'no_data', reason: 'unit_changed', detail: `this segment was counted in ${prevUnit}, now in ${obs.unit}; a source never switches unit within a segment` };
  }
  const back = (now: CohortCounts | undefined, before: CohortCounts | undefined, cohort: string): string | undefined => {
    if (before === undefined) return undefined;
    const n = now ?? { total: 0, errors: 0 };
    if (n.total < before.total - estimateSlack(before.total) || n.errors < before.errors - estimateSlack(before.errors)) return `${cohort} went from ${before.errors}/${before.total} to ${n.errors}/${n.total}`;
    return undefined;
  };
  const why = back(obs.treatment, previous.treatment, 'flag-on') ?? back(obs.control, previous.control, 'flag-off');
  return why
    ? { flag: obs.flag, status: 'no_data', reason: 'counts_backwards', detail: `cumulative counts went backwards within the segment (${why}); the answer is not used` }
    : obs;
}
