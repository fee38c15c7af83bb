/**
 * Builtin metric source: counts the SDK reports to the guardian itself (for setups with neither
 * Sentry nor PostHog). The ingestion endpoint (`POST /v1/exposures`, http/ingest.ts) writes them
 * to the `guardian_exposures` table; this source reads, in ONE store call per cycle for all its
 * flags, the distinct users per cohort (flag on / off) seen since each flag's `since` and those of
 * them who hit an error since then, leaving out the flag's target-list users (picked, not
 * randomised). The counts live in the database, so every replica sees the same ones. It also prunes old exposures (at most once per hour, after its counts).
 */
import { createHash } from 'node:crypto';

import type { Store } from '../store/types.ts';
import type { FlagObservation, FlagQuery, MetricSource, SourceLogger, SourceReport } from './types.ts';

/**
 * The hex SHA-256 of a user id (UTF-8): what `guardian_exposures.user_key` holds (no raw id is
 * stored), and how a flag's target list is left out of its counts.
 *
 * @example
 * exposureUserKey('u-1'); // '…64 hex digits…'
 */
export function exposureUserKey(userId: string): string {
  return createHash('sha256').update(userId, 'utf8').digest('hex');
}

/** How long exposures are kept by default: 7 days. */
export const DEFAULT_EXPOSURE_RETENTION_MS = 7 * 86_400_000;

/** How often the source prunes old exposures at most: once per hour. */
export const EXPOSURE_PRUNE_INTERVAL_MS = 3_600_000;

/**
 * What {@link createBuiltinSource} needs.
 *
 * @example
 * const deps: BuiltinSourceDeps = { store, now: () => new Date(), logger };
 */
export interface BuiltinSourceDeps {
  readonly store: Pick<Store, 'exposureCounts' | 'pruneExposures'>;
  readonly now: () => Date;
  readonly logger?: SourceLogger;
  /**
   * Exposures last seen longer ago than this are pruned (default 7 days; never less than
   * `lookbackMs`, so a rule's window is always covered).
   */
  readonly retentionMs?: number;
  /** The longest window of the rules on this source (their segments reach back this far). */
  readonly lookbackMs?: number;
}

/**
 * Creates the builtin source over the store. Never throws: a store failure makes every flag
 * `no_data` with reason `unavailable`.
 *
 * @example
 * const source = createBuiltinSource({ store, now: () => new Date() });
 * const report = await source.query([{ flag: 'ai_beta_users', since: stageStartedAt }], signal);
 */
export function createBuiltinSource(deps: BuiltinSourceDeps): MetricSource {
  const retentionMs = Math.max(deps.retentionMs ?? DEFAULT_EXPOSURE_RETENTION_MS, deps.lookbackMs ?? 0);
  let lastPruneAt: number | undefined;

  const prune = async (at: Date): Promise<void> => {
    if (lastPruneAt !== undefined && at.getTime() - lastPruneAt < EXPOSURE_PRUNE_INTERVAL_MS) return;
    lastPruneAt = at.getTime();
    try {
      const removed = await deps.store.pruneExposures(new Date(at.getTime() - retentionMs));
      if (removed > 0) deps.logger?.info({ source: 'builtin', removed }, `builtin: pruned ${removed} exposure(s) older than ${Math.round(retentionMs / 3_600_000)} h`);
    } catch (err) {
      deps.logger?.warn({ source: 'builtin', err }, 'builtin: pruning old exposures failed; trying again in an hour');
    }
  };

  return {
    id: 'builtin',
    async query(flags: readonly FlagQuery[], signal: AbortSignal): Promise<SourceReport> {
      const at = deps.now();
      if (signal.aborted) {
        return { source: 'builtin', at, observations: flags.map((f) => ({ flag: f.flag, status: 'no_data', reason: 'stopped' })), requests: 0 };
      }
      let counts: Awaited<ReturnType<Store['exposureCounts']>>;
      try {
        counts = await deps.store.exposureCounts(
          flags.map((f) => ({ flag: f.flag, since: f.since, ...(f.excludeUsers?.length ? { excludeUserKeys: f.excludeUsers.map(exposureUserKey) } : {}) })),
        );
      } catch (err) {
        const message = `the guardian's database did not answer: ${(err as Error).message}`;
        deps.logger?.warn({ source: 'builtin', err }, 'builtin: reading exposure counts failed');
        return {
          source: 'builtin',
          at,
          observations: flags.map((f) => ({ flag: f.flag, status: 'no_data', reason: 'unavailable', detail: message })),
          error: { code: 'unavailable', message },
          requests: 0,
        };
      }
      const observations = flags.map((f): FlagObservation => {
        const c = counts.get(f.flag);
        const on = c?.treatment ?? { total: 0, errors: 0 };
        const off = c?.control ?? { total: 0, errors: 0 };
        if (on.total === 0) return { flag: f.flag, status: 'no_data', reason: 'empty', detail: `no flag-on users reported since ${f.since.toISOString()}` };
        return off.total > 0 ? { flag: f.flag, status: 'ok', unit: 'users', treatment: on, control: off } : { flag: f.flag, status: 'ok', unit: 'users', treatment: on };
      });
      await prune(at);
      return { source: 'builtin', at, observations, requests: 0 };
    },
  };
}
