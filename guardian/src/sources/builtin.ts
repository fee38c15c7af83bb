/**
 * Builtin metric source: counts the SDK reports to the guardian itself (for setups with neither
 * Sentry nor PostHog). The HTTP layer feeds a {@link BuiltinCounter}; the source reads distinct
 * users per cohort (flag on / off) and the distinct users among them who hit an error, since
 * each flag's stage start.
 */
import type { FlagObservation, FlagQuery, MetricSource, SourceReport } from './types.ts';

interface Seen {
  lastSeen: number;
  lastError: number;
}

/** Options of {@link BuiltinCounter}. */
export interface BuiltinCounterOptions {
  /** Forget users not seen for this long (default 24 h). */
  readonly retentionMs?: number;
  /** At most this many users per flag and cohort; the longest-unseen are dropped first (default 200 000). */
  readonly maxUsersPerCohort?: number;
  readonly now?: () => Date;
}

/**
 * In-process counts of flag exposures and errors per user.
 *
 * @example
 * const counter = new BuiltinCounter();
 * counter.record('booking_agent_enabled', 'user-1', true, false);
 * counter.record('booking_agent_enabled', 'user-1', true, true); // the same user hit an error
 */
export class BuiltinCounter {
  readonly #flags = new Map<string, { on: Map<string, Seen>; off: Map<string, Seen> }>();
  readonly #retentionMs: number;
  readonly #max: number;
  readonly #now: () => Date;

  constructor(options: BuiltinCounterOptions = {}) {
    this.#retentionMs = options.retentionMs ?? 86_400_000;
    this.#max = options.maxUsersPerCohort ?? 200_000;
    this.#now = options.now ?? (() => new Date());
  }

  /** Records that `userId` evaluated `flag` to `value`, and whether it then hit an error. `at` defaults to now. */
  record(flag: string, userId: string, value: boolean, error: boolean, at: Date = this.#now()): void {
    let entry = this.#flags.get(flag);
    if (!entry) {
      entry = { on: new Map(), off: new Map() };
      this.#flags.set(flag, entry);
    }
    const cohort = value ? entry.on : entry.off;
    const t = at.getTime();
    const seen = cohort.get(userId);
    if (seen) {
      // Re-insert to keep Map order = least recently seen first.
      cohort.delete(userId);
      cohort.set(userId, { lastSeen: Math.max(seen.lastSeen, t), lastError: error ? Math.max(seen.lastError, t) : seen.lastError });
    } else {
      cohort.set(userId, { lastSeen: t, lastError: error ? t : Number.NEGATIVE_INFINITY });
      if (cohort.size > this.#max) cohort.delete(cohort.keys().next().value!);
    }
  }

  /** Distinct users (and those with an error) per cohort seen at or after `since`. */
  counts(flag: string, since: Date): { on: { total: number; errors: number }; off: { total: number; errors: number } } {
    const entry = this.#flags.get(flag);
    const count = (m: Map<string, Seen> | undefined) => {
      let total = 0;
      let errors = 0;
      if (m) {
        for (const s of m.values()) {
          if (s.lastSeen >= since.getTime()) {
            total++;
            if (s.lastError >= since.getTime()) errors++;
          }
        }
      }
      return { total, errors };
    };
    return { on: count(entry?.on), off: count(entry?.off) };
  }

  /** Drops users not seen within the retention period. */
  prune(): void {
    const cutoff = this.#now().getTime() - this.#retentionMs;
    for (const entry of this.#flags.values()) {
      for (const m of [entry.on, entry.off]) for (const [id, s] of m) if (s.lastSeen < cutoff) m.delete(id);
    }
  }
}

/**
 * Creates the builtin source over a counter. Never throws.
 *
 * @example
 * const source = createBuiltinSource(counter, { now: () => new Date() });
 */
export function createBuiltinSource(counter: BuiltinCounter, deps: { readonly now: () => Date }): MetricSource {
  return {
    id: 'builtin',
    async query(flags: readonly FlagQuery[], _signal: AbortSignal): Promise<SourceReport> {
      const at = deps.now();
      counter.prune();
      const observations = flags.map((f): FlagObservation => {
        const { on, off } = counter.counts(f.flag, f.since);
        if (on.total === 0) return { flag: f.flag, status: 'no_data', reason: 'empty', detail: 'no flag-on users reported since the stage start' };
        return off.total > 0 ? { flag: f.flag, status: 'ok', unit: 'users', treatment: on, control: off } : { flag: f.flag, status: 'ok', unit: 'users', treatment: on };
      });
      return { source: 'builtin', at, observations, requests: 0 };
    },
  };
}
