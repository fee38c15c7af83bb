import type { CohortCounts } from '../sources/types.ts';

/**
 * One poll's counts for one flag, cumulative since the flag's current stage began.
 * `history` passed to `decide` is time-ordered (oldest first).
 */
export interface HistoryPoint {
  readonly at: Date;
  readonly treatment: CohortCounts;
  readonly control?: CohortCounts;
}

/**
 * - `breach`: the rule's condition holds (with `consecutive` satisfied): act.
 * - `healthy`: enough data and no breach.
 * - `insufficient_data`: data but below `min_users`/`min_samples`: never a breach.
 * - `no_data`: nothing to judge on (empty history, provider fault): never a breach.
 */
export type VerdictKind = 'breach' | 'healthy' | 'insufficient_data' | 'no_data';
