/**
 * Types of the guardian cycle: what it needs (injected once by the daemon or a test) and the
 * report it returns of what it saw and did.
 */
import type { DecideOptions } from '../decide/decide.ts';
import type { Evidence, HistoryPoint, Verdict, VerdictKind } from '../decide/types.ts';
import type { PlanReport } from '../plans/advance.ts';
import type { Rule, RulesConfig } from '../rules/schema.ts';
import type { MetricSource, SourceReport } from '../sources/types.ts';
import type { Channel, Store } from '../store/types.ts';

/**
 * The logging the cycle does: a pino logger fits (structured object first, then the message).
 *
 * @example
 * const logger: CycleLogger = pino();
 */
export interface CycleLogger {
  debug(obj: Record<string, unknown>, msg: string): void;
  info(obj: Record<string, unknown>, msg: string): void;
  warn(obj: Record<string, unknown>, msg: string): void;
  error(obj: Record<string, unknown>, msg: string): void;
}

/**
 * Counters the cycle feeds (the daemon adapts the HTTP server's Prometheus registry to this).
 *
 * @example
 * const metrics: CycleMetrics = { cycle() {}, verdict() {}, action() {}, sourceError() {} };
 */
export interface CycleMetrics {
  /** One finished cycle: duration and whether it completed without a cycle-wide error. */
  cycle(durationMs: number, ok: boolean): void;
  verdict(ruleId: string, kind: VerdictKind): void;
  /** An action taken on a breach (`disable`, `step_back`, `notify_only`), dry run or not. */
  action(ruleId: string, action: string, dryRun: boolean): void;
  /** A source poll that gave no data (`reason`: its stable code). */
  sourceError(source: string, reason: string): void;
}

/** The decision function (the detection engineer's `decide`). */
export type DecideFn = (rule: Rule, history: readonly HistoryPoint[], flag: string, options?: DecideOptions) => Verdict;

/**
 * What {@link runCycle} needs. Side effects only through these.
 *
 * @example
 * await runCycle({ now: () => new Date(), store, sources, rules, logger, signal: AbortSignal.timeout(50_000) });
 */
export interface CycleDeps {
  readonly now: () => Date;
  readonly store: Store;
  /** Source id (`posthog`, `sentry`, `builtin`) → source. Rules whose source is missing report `no_data`. */
  readonly sources: ReadonlyMap<string, MetricSource>;
  readonly rules: RulesConfig;
  readonly logger: CycleLogger;
  /** Aborts source polls (shutdown, cycle deadline). */
  readonly signal: AbortSignal;
  readonly metrics?: CycleMetrics;
  /** Default: the guardian's `decide`. */
  readonly decide?: DecideFn;
  /** Global dry run from the environment (`GUARDIAN_DRY_RUN`), on top of the rules file's. */
  readonly dryRun?: boolean;
  /** Channels that get outbox rows. Default: those the rules file's `notify` configures. */
  readonly channels?: readonly Channel[];
  /** Actor recorded on events and in the audit log. Default `guardian`. */
  readonly actor?: string;
  /** Per-source poll deadline. Default 20 s. */
  readonly sourceTimeoutMs?: number;
  /**
   * A confirmation cycle: judge only these flags of these sources (source id → flag names), the
   * pairs whose condition held at fewer than `consecutive` polls in a row (see `confirm.ts`).
   * Other pairs are neither polled nor reported. Default: every watched pair.
   */
  readonly focus?: ReadonlyMap<string, ReadonlySet<string>>;
  /** Observations older than this are pruned each cycle. Default 7 days. */
  readonly observationRetentionMs?: number;
  /**
   * Record this cycle's observations and rule state (default true). A one-off look
   * (`guardian check --once --dry-run`) passes false: it judges on the stored history plus what
   * it sees now, and stores nothing, so it never brings a real rollback closer.
   */
  readonly record?: boolean;
}

/** What happened for one (rule, flag) pair. */
export type CycleAction =
  /** No breach (or nothing to judge): nothing done. */
  | 'none'
  /** Breach: the flag was rolled back (disable / step_back) or a notify_only event written. */
  | 'acted'
  /** Breach in dry-run: a dry_run event was written, the flag untouched. */
  | 'dry_run'
  /** Not judged: the flag is rolled back, locked, disabled, missing or already acted on this cycle. */
  | 'skipped'
  /** Something failed for this pair (see `error`); the others went on. */
  | 'failed';

/**
 * One (rule, flag) line of the report.
 *
 * @example
 * for (const r of report.results) console.log(r.ruleId, r.flag, r.verdict?.kind, r.action);
 */
export interface RuleFlagResult {
  readonly ruleId: string;
  readonly flag: string;
  readonly source: string;
  readonly verdict?: {
    readonly kind: VerdictKind;
    readonly reason: string;
    readonly consecutive: number;
    readonly evidence?: Evidence;
  };
  readonly action: CycleAction;
  /** The rule's action when one was taken (`disable`, `step_back`, `notify_only`). */
  readonly ruleAction?: string;
  readonly eventId?: string;
  /** Why the pair was skipped. */
  readonly skipped?: string;
  readonly error?: { readonly code: string; readonly message: string };
}

/** One source's poll in the report. */
export interface SourceSummary {
  readonly source: string;
  readonly flags: number;
  readonly ok: number;
  readonly noData: number;
  readonly requests: number;
  readonly error?: { readonly code: string; readonly message: string };
  /** Per flag: no_data reasons (`rate_limited`, `unavailable`, …). */
  readonly noDataReasons: Readonly<Record<string, string>>;
}

/**
 * What one cycle saw and did.
 *
 * @example
 * const report = await runCycle(deps);
 * if (report.results.some((r) => r.action === 'acted')) console.log('rolled back');
 */
export interface CycleReport {
  readonly at: Date;
  readonly durationMs: number;
  /** False when the cycle did not run (another replica holds the lease). */
  readonly ran: boolean;
  /** Why it did not run. */
  readonly notRunReason?: string;
  readonly dryRun: boolean;
  readonly results: readonly RuleFlagResult[];
  readonly sources: readonly SourceSummary[];
  /** The raw poll of each source (the daemon feeds them to the blindness tracker). */
  readonly sourceReports: readonly SourceReport[];
  /** Cycle-wide failures (store unreachable, …); per-pair errors are in `results`. */
  readonly errors: readonly { readonly code: string; readonly message: string }[];
  /** What each release plan did this cycle (absent when the rules file has none). */
  readonly plans?: readonly PlanReport[];
}
