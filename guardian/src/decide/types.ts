import type { CohortCounts } from '../sources/types.ts';

/**
 * One poll's counts for one flag, cumulative since the start of its segment of the flag's
 * current stage. `history` passed to `decide` is time-ordered (oldest first).
 *
 * A stage is counted in segments of the rule's `window` (the longest span a source is asked
 * for): segment 0 starts at the stage start, segment k at stage start + k × window. Without
 * `segment`, a point belongs to segment 0 (counts since the stage start).
 */
export interface HistoryPoint {
  readonly at: Date;
  readonly treatment: CohortCounts;
  readonly control?: CohortCounts;
  /** What `total` counts (from the source's observation). Default `users`. */
  readonly unit?: 'users' | 'events';
  /** Index of the segment these counts cover (0 = since the stage start). Default 0. */
  readonly segment?: number;
  /** When that segment began (shown in evidence). Default: unknown (the stage start). */
  readonly since?: Date;
}

/**
 * - `breach`: the rule's condition holds (with `consecutive` satisfied): act.
 * - `healthy`: enough data and no breach (also when the condition holds at fewer than `consecutive` polls in a row).
 * - `insufficient_data`: data but below `min_users`/`min_samples`: never a breach.
 * - `no_data`: nothing to judge on (empty history, provider fault): never a breach.
 */
export type VerdictKind = 'breach' | 'healthy' | 'insufficient_data' | 'no_data';

/** Counts and rate of one cohort, as shown in events and alerts. */
export interface CohortEvidence {
  readonly total: number;
  readonly errors: number;
  /** errors / total (0 when total is 0). */
  readonly rate: number;
}

/**
 * Name of the sequential statistic behind a verdict: `beta_binomial_mixture_cs` (absolute),
 * `rate_ratio_mixture_sprt` (relative). `half_normal_mixture_sprt` is the relative statistic of
 * earlier versions, still found in stored events.
 */
export type StatisticName = 'beta_binomial_mixture_cs' | 'rate_ratio_mixture_sprt' | 'half_normal_mixture_sprt';

/** Why a verdict was reached: the numbers, JSON-serialisable (stored with the event, shown in Slack). */
export interface Evidence {
  readonly unit: 'users' | 'events';
  readonly treatment: CohortEvidence;
  readonly control?: CohortEvidence;
  readonly condition: 'absolute' | 'relative';
  /** absolute: the error-rate threshold. */
  readonly threshold?: number;
  /** relative: the allowed increase of the rate over control. */
  readonly max_increase?: number;
  /** Bound on the false-breach probability over the whole stage (absolute: 1 - confidence). */
  readonly alpha: number;
  readonly statistic: StatisticName;
  /**
   * absolute: always-valid lower confidence bound of the flag-on error rate;
   * relative: always-valid lower confidence bound of (flag-on rate − flag-off rate).
   * Breach requires it to be above `threshold` / `max_increase`.
   */
  readonly lower_bound?: number;
  /** log of the test martingale (e-value) at the threshold; breach when ≥ log(1/alpha). */
  readonly log_e_value?: number;
  /**
   * Segments of the stage behind the evidence (1 while the stage is younger than its window):
   * the counts are summed over them, and `log_e_value` combines their tests (see `decide`).
   */
  readonly segments?: number;
  /** ISO time the counts in this evidence start from (the first of those segments), when known. */
  readonly since?: string;
  /** Segment length of the rule (the longest span asked of a source at once), in ms. */
  readonly window: number;
  /** Number of polls in the history. */
  readonly polls: number;
  /** ISO time of the last poll. */
  readonly at: string;
}

/**
 * The decision for one rule and one flag at one poll.
 *
 * @example
 * const v: Verdict = decide(rule, history, 'booking_agent_enabled');
 * if (v.kind === 'breach') console.log(v.reason, v.evidence.lower_bound);
 */
export interface Verdict {
  readonly kind: VerdictKind;
  readonly ruleId: string;
  readonly flag: string;
  /** A human sentence: what was seen and why this verdict. */
  readonly reason: string;
  /** Polls in a row, at the end of the history, whose condition held (capped at the rule's `consecutive`). */
  readonly consecutive: number;
  /** Absent for `no_data` with an empty history. */
  readonly evidence?: Evidence;
}
