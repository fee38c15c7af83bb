/**
 * Blindness: when a metric source gives no data for longer than the rules file's
 * `blindness_after`, the guardian cannot protect the flags it watches through that source, so it
 * says so: ONE 'blindness' alert per blind spell and ONE 'recovery' when data returns, persisted
 * in `guardian_source_health` and enqueued in the outbox atomically (`guardian_source_observe`),
 * so restarts and several replicas never repeat them.
 *
 * A poll "gave data" when the source did not fail as a whole and at least one flag came back
 * `ok`, or every flag came back `empty` (the provider answered; there was simply no traffic).
 * Rate limits, timeouts, auth and other provider faults on every flag count as no data.
 *
 * Per flag too: while its source gives data, a watched flag whose own answers are unusable
 * (every query for it fails, or its answer is refused) for longer than `blindness_after` raises
 * ONE alert naming the flag and the reason, and ONE recovery, kept under the health key
 * `flag:<flag>@<source>` (see {@link flagHealthKey}). While the whole source is blind, the
 * source's alert speaks for its flags and their per-flag state is left as it was.
 */
import type { SourceReport } from '../sources/types.ts';
import type { BlindnessStore, SourceTransition } from './outbox-store.ts';
import type { Channel } from './types.ts';
import type { WorkerLogger } from './worker.ts';

/** Options of {@link BlindnessTracker}. */
export interface BlindnessTrackerOptions {
  readonly store: BlindnessStore;
  /** `blindness_after` in ms (a function: read at every cycle, for hot-reloaded rules). */
  readonly blindAfterMs: number | (() => number);
  /** Channels that get the alerts (a function: read at every cycle). */
  readonly channels: readonly Channel[] | (() => readonly Channel[]);
  readonly logger: WorkerLogger;
  /** Count polls where every flag was `empty` as blind too (no traffic looks like a broken SDK tag). Default false. */
  readonly emptyIsBlind?: boolean;
}

/** One source's outcome in {@link BlindnessTracker.observe}. */
export interface BlindnessResult extends SourceTransition {
  readonly source: string;
  /** Whether this poll gave data. */
  readonly ok: boolean;
  /** Why not. */
  readonly error?: string;
}

/**
 * Whether a source's poll gave data, and if not, why (for `last_error` and the alert).
 *
 * @example
 * sourceSawData(report); // { ok: false, error: 'rate_limited on 3 flags' }
 */
export function sourceSawData(report: SourceReport, emptyIsBlind = false): { ok: boolean; error?: string } {
  if (report.error) return { ok: false, error: `${report.error.code}: ${report.error.message}` };
  if (report.observations.length === 0) return { ok: true };
  let empty = 0;
  const reasons = new Map<string, number>();
  for (const o of report.observations) {
    if (o.status === 'ok') return { ok: true };
    if (o.reason === 'empty') empty += 1;
    reasons.set(o.reason, (reasons.get(o.reason) ?? 0) + 1);
  }
  if (empty === report.observations.length && !emptyIsBlind) return { ok: true };
  const firstDetail = report.observations.find((o) => o.status === 'no_data' && o.detail !== undefined && o.reason !== 'empty');
  const summary = [...reasons].map(([reason, n]) => `${reason} on ${n} flag${n === 1 ? '' : 's'}`).join(', ');
  return { ok: false, error: firstDetail && firstDetail.status === 'no_data' ? `${summary} (${firstDetail.detail})` : summary };
}

/**
 * The health key of one watched flag on one source, stored in `guardian_source_health.source`
 * and the alert payload's `source`: `flag:<flag>@<source>`.
 *
 * @example
 * flagHealthKey('sentry', 'booking_agent_enabled'); // 'flag:booking_agent_enabled@sentry'
 */
export function flagHealthKey(source: string, flag: string): string {
  return `flag:${flag}@${source}`;
}

/**
 * Reads a {@link flagHealthKey} back (undefined for a plain source id).
 *
 * @example
 * parseFlagHealthKey('flag:booking_agent_enabled@sentry'); // { flag: 'booking_agent_enabled', source: 'sentry' }
 */
export function parseFlagHealthKey(key: string): { flag: string; source: string } | undefined {
  const m = /^flag:([^@]+)@(.+)$/.exec(key);
  return m ? { flag: m[1]!, source: m[2]! } : undefined;
}

/** Whether one flag's observation is usable data, and if not, why. */
function flagSawData(o: SourceReport['observations'][number], emptyIsBlind: boolean): { ok: boolean; error?: string } {
  if (o.status === 'ok') return { ok: true };
  if (o.reason === 'empty' && !emptyIsBlind) return { ok: true };
  return { ok: false, error: o.detail !== undefined ? `${o.reason} (${o.detail})` : o.reason };
}

/**
 * Feeds each cycle's source reports into the persisted per-source health and raises the
 * blindness/recovery alerts through the outbox.
 *
 * @example
 * const blindness = new BlindnessTracker({ store: outbox, blindAfterMs: () => rules.blindness_after, channels: () => [...notifiers.keys()], logger });
 * const report = await runCycle(deps);
 * await blindness.observe(sourceReports);
 */
export class BlindnessTracker {
  readonly #store: BlindnessStore;
  readonly #after: () => number;
  readonly #channels: () => readonly Channel[];
  readonly #logger: WorkerLogger;
  readonly #emptyIsBlind: boolean;

  constructor(options: BlindnessTrackerOptions) {
    this.#store = options.store;
    const after = options.blindAfterMs;
    this.#after = typeof after === 'function' ? after : () => after;
    const channels = options.channels;
    this.#channels = typeof channels === 'function' ? channels : () => channels;
    this.#logger = options.logger;
    this.#emptyIsBlind = options.emptyIsBlind ?? false;
  }

  /**
   * Records one poll per report. One source's store failure is logged and skipped; the others
   * are still recorded.
   */
  async observe(reports: readonly SourceReport[]): Promise<BlindnessResult[]> {
    const out: BlindnessResult[] = [];
    const blindAfterMs = this.#after();
    const channels = this.#channels();
    for (const report of reports) {
      const seen = sourceSawData(report, this.#emptyIsBlind);
      try {
        const t = await this.#store.observeSource({
          source: report.source,
          at: report.at,
          ok: seen.ok,
          ...(seen.error !== undefined ? { error: seen.error } : {}),
          blindAfterMs,
          channels,
        });
        const log = { source: report.source, blindSince: t.blindSince?.toISOString() ?? null, alerts: t.alertsWritten };
        if (t.transition === 'blind') this.#logger.error({ ...log, error: seen.error }, `guardian is blind: no data from ${report.source}; blindness alert enqueued`);
        else if (t.transition === 'recovered') this.#logger.info(log, `data from ${report.source} is back; recovery alert enqueued`);
        else if (t.transition === 'failing') this.#logger.warn({ ...log, error: seen.error }, `no data from ${report.source} this cycle`);
        out.push({ ...t, source: report.source, ok: seen.ok, ...(seen.error !== undefined ? { error: seen.error } : {}) });
      } catch (err) {
        this.#logger.error({ source: report.source, err: { message: (err as Error).message } }, 'could not record source health');
      }
      if (seen.ok) out.push(...(await this.#observeFlags(report, blindAfterMs, channels)));
    }
    return out;
  }

  /** Per-flag health while the source itself gives data (results carry the flag's health key as `source`). */
  async #observeFlags(report: SourceReport, blindAfterMs: number, channels: readonly Channel[]): Promise<BlindnessResult[]> {
    const out: BlindnessResult[] = [];
    for (const o of report.observations) {
      const key = flagHealthKey(report.source, o.flag);
      const seen = flagSawData(o, this.#emptyIsBlind);
      try {
        const t = await this.#store.observeSource({ source: key, at: report.at, ok: seen.ok, ...(seen.error !== undefined ? { error: seen.error } : {}), blindAfterMs, channels });
        const log = { source: report.source, flag: o.flag, blindSince: t.blindSince?.toISOString() ?? null, alerts: t.alertsWritten };
        if (t.transition === 'blind') this.#logger.error({ ...log, error: seen.error }, `guardian is blind on ${o.flag}: no usable data from ${report.source}; blindness alert enqueued`);
        else if (t.transition === 'recovered') this.#logger.info(log, `data for ${o.flag} from ${report.source} is back; recovery alert enqueued`);
        out.push({ ...t, source: key, ok: seen.ok, ...(seen.error !== undefined ? { error: seen.error } : {}) });
      } catch (err) {
        this.#logger.error({ source: report.source, flag: o.flag, err: { message: (err as Error).message } }, 'could not record flag health');
      }
    }
    return out;
  }
}
