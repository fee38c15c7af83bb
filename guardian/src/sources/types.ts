/**
 * The contract between metric sources (PostHog, Sentry, builtin) and the cycle.
 * A source is asked ONCE per cycle for ALL the flags it watches and never throws past
 * its boundary: every fault becomes a per-flag `no_data` (or a source-wide `error`).
 */

/** Exposed users (or events, where the source cannot count users) and those with ≥ 1 error. */
export interface CohortCounts {
  readonly total: number;
  readonly errors: number;
}

/** What a source is asked about one flag: the flag and when its current stage began. */
export interface FlagQuery {
  /** A validated flag name (`^[a-z][a-z0-9_]{1,63}$`). */
  readonly flag: string;
  /** Start of the current segment of the flag's stage: the stage start (last change of `enabled`/`rollout_percentage`), or a whole number of windows after it when the stage is older than the window. Counts are cumulative since then. */
  readonly since: Date;
  /**
   * The flag's target list when its rules on this source are all relative: users who get it on
   * because they were picked (staff, testers), not by the rollout percentage. A comparison needs
   * randomised cohorts, so sources that can identify users leave these out of both (PostHog by
   * `distinct_id`, builtin by user key). Empty or absent: none.
   */
  readonly excludeUsers?: readonly string[];
}

/** One flag's counts at one poll: flag on = treatment, flag off = control. */
export type FlagObservation =
  | {
      readonly flag: string;
      readonly status: 'ok';
      /** Whether `total` counts users (`users`) or events (`events`). */
      readonly unit: 'users' | 'events';
      readonly treatment: CohortCounts;
      /** Absent when the source saw no flag-off traffic. */
      readonly control?: CohortCounts;
    }
  | {
      readonly flag: string;
      readonly status: 'no_data';
      /**
       * Stable reason code: `rate_limited`, `unavailable`, `timeout`, `bad_response`, `auth`,
       * `bad_query`, `empty` (no flag-on traffic seen), `stopped`, `not_configured` (credentials
       * empty), `deferred` (not polled this cycle: requests per cycle are bounded, flags rotate).
       */
      readonly reason: string;
      readonly detail?: string;
    };

/** What one poll of a source returns. */
export interface SourceReport {
  readonly source: string;
  readonly at: Date;
  readonly observations: readonly FlagObservation[];
  /** Set when the whole source failed (every flag is then `no_data`). */
  readonly error?: { readonly code: string; readonly message: string };
  /** Number of HTTP requests this poll made (bounded per cycle). */
  readonly requests: number;
}

/**
 * A metric source: one implementation per file (posthog.ts, sentry.ts, builtin.ts).
 *
 * @example
 * const report = await source.query([{ flag: 'booking_agent_enabled', since }], AbortSignal.timeout(20_000));
 */
export interface MetricSource {
  readonly id: string;
  query(flags: readonly FlagQuery[], signal: AbortSignal): Promise<SourceReport>;
}

/** Tiny logger interface (pino-compatible): `logger.warn({ err, flag }, 'message')`. */
export interface SourceLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/**
 * Side effects a source uses, injected once (Node defaults are wired in the entry point).
 *
 * @example
 * const deps: SourceDeps = { fetch: globalThis.fetch, now: () => new Date(), sleep: (ms) => new Promise((r) => setTimeout(r, ms)), logger };
 */
export interface SourceDeps {
  readonly fetch: typeof globalThis.fetch;
  readonly now: () => Date;
  readonly sleep: (ms: number) => Promise<void>;
  readonly logger: SourceLogger;
}
