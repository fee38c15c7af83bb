/**
 * The guardian's Prometheus metrics on a prom-client registry (text exposition format 0.0.4),
 * with prom-client's default process metrics (`process_*`, `nodejs_*`) beside them. Each call of
 * {@link createGuardianMetrics} has its own registry (never prom-client's global one), so tests
 * and several servers in one process do not share counts.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

import type { CycleReport } from '../cycle/types.ts';
import type { PlanStatus } from '../store/types.ts';

/**
 * The guardian's metrics, registered on one registry.
 *
 * @example
 * const metrics = createGuardianMetrics();
 * metrics.cycles.inc({ result: 'ok' });
 * metrics.cycleDuration.observe(0.8);
 * metrics.verdicts.inc({ rule: 'booking-agent-errors', kind: 'healthy' });
 * const text = await metrics.registry.metrics();
 */
export interface GuardianMetrics {
  /** The prom-client registry `/metrics` renders (`registry.metrics()`, `registry.contentType`). */
  readonly registry: Registry;
  /** `guardian_cycles_total{result}`: cycles run (`ok`, `error`, `skipped`). */
  readonly cycles: Counter<'result'>;
  /** `guardian_cycle_duration_seconds`: cycle duration. */
  readonly cycleDuration: Histogram;
  /** `guardian_verdicts_total{rule,kind}`. */
  readonly verdicts: Counter<'rule' | 'kind'>;
  /** `guardian_rollbacks_total{flag,action}` (dry runs have action `dry_run:<action>`). */
  readonly rollbacks: Counter<'flag' | 'action'>;
  /** `guardian_plan_actions_total{flag,action}`: what release plans did (`promoted`, `completed`, `paused`, `stopped`, `would_promote`, `failed`). */
  readonly planActions: Counter<'flag' | 'action'>;
  /** `guardian_plan_stage_percentage{flag,status}`: each release plan's flag percentage, labelled with the plan's status. */
  readonly planStage: Gauge<'flag' | 'status'>;
  /**
   * `guardian_source_errors_total{source,error,reason}`: polls without data. A source-wide
   * failure counts once with `error` = its error code (`SOURCE_UNAVAILABLE`, …) and `reason=""`;
   * otherwise each distinct per-flag no-data reason (`rate_limited`, …) counts once with
   * `reason` = it and `error=""`. The two vocabularies never share a label.
   */
  readonly sourceErrors: Counter<'source' | 'error' | 'reason'>;
  /** `guardian_outbox_backlog{channel,status}`: undelivered notifications. */
  readonly outboxBacklog: Gauge<'channel' | 'status'>;
  /** `guardian_notifications_total{channel,outcome}`: delivery outcomes. */
  readonly notifications: Counter<'channel' | 'outcome'>;
  /** `guardian_last_cycle_timestamp_seconds`: end of the last cycle (Unix time). */
  readonly lastCycle: Gauge;
  /** `guardian_rules_reloads_total{result}`: rules file reloads (`ok`, `error`). */
  readonly rulesReloads: Counter<'result'>;
  /**
   * `guardian_exposures_total{result}`: exposures received at `POST /v1/exposures`: `accepted`
   * (recorded), `rejected` (in a request refused as invalid or too large), `failed` (the store failed).
   */
  readonly exposures: Counter<'result'>;
  /** `guardian_exposure_requests_total{status}`: requests to `POST /v1/exposures` by HTTP status. */
  readonly exposureRequests: Counter<'status'>;
  /**
   * `guardian_ofrep_requests_total{endpoint,status}`: requests to the OFREP endpoints by endpoint
   * (`evaluate`, `bulk`, `configuration`, `other`) and HTTP status.
   */
  readonly ofrepRequests: Counter<'endpoint' | 'status'>;
}

/** Options of {@link createGuardianMetrics}. */
export interface GuardianMetricsOptions {
  /** Default: a new registry. */
  readonly registry?: Registry;
  /** Read on every scrape to set `guardian_outbox_backlog` (for example `() => outboxStore.backlog()`); a failed read leaves the last values. */
  readonly backlog?: () => Promise<ReadonlyArray<{ channel: string; status: string; count: number }>>;
  /** Register prom-client's default process metrics. Default true. */
  readonly processMetrics?: boolean;
}

/**
 * Registers the guardian's metrics (and the default process metrics) on a registry. Pass
 * `backlog` to refresh `guardian_outbox_backlog` on every scrape.
 *
 * @example
 * const metrics = createGuardianMetrics({ backlog: () => outboxStore.backlog() });
 */
export function createGuardianMetrics(options: GuardianMetricsOptions = {}): GuardianMetrics {
  const registry = options.registry ?? new Registry();
  const registers = [registry];
  const backlog = options.backlog;
  const outboxBacklog = new Gauge({
    name: 'guardian_outbox_backlog',
    help: 'Notifications not yet delivered, per channel and status (pending, delivering, failed, unconfirmed).',
    labelNames: ['channel', 'status'] as const,
    registers,
    async collect() {
      if (!backlog) return;
      let rows: Awaited<ReturnType<typeof backlog>>;
      try {
        rows = await backlog();
      } catch {
        return; // the last values stay
      }
      this.reset();
      for (const channel of ['slack', 'email']) for (const status of ['pending', 'delivering', 'failed', 'unconfirmed']) this.set({ channel, status }, 0);
      for (const r of rows) this.set({ channel: r.channel, status: r.status }, r.count);
    },
  });
  const m: GuardianMetrics = {
    registry,
    cycles: new Counter({ name: 'guardian_cycles_total', help: 'Guardian cycles run, by result (ok, error, skipped).', labelNames: ['result'] as const, registers }),
    cycleDuration: new Histogram({ name: 'guardian_cycle_duration_seconds', help: 'Duration of one guardian cycle (poll, decide, act).', buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60], registers }),
    verdicts: new Counter({ name: 'guardian_verdicts_total', help: 'Verdicts per rule and kind (breach, healthy, insufficient_data, no_data).', labelNames: ['rule', 'kind'] as const, registers }),
    rollbacks: new Counter({ name: 'guardian_rollbacks_total', help: 'Rollbacks per flag and action (dry runs: dry_run:<action>).', labelNames: ['flag', 'action'] as const, registers }),
    planActions: new Counter({ name: 'guardian_plan_actions_total', help: 'Release plan actions per flag (promoted, completed, paused, stopped, would_promote, failed).', labelNames: ['flag', 'action'] as const, registers }),
    planStage: new Gauge({ name: 'guardian_plan_stage_percentage', help: 'Rollout percentage of each release plan\'s flag, labelled with the plan\'s status.', labelNames: ['flag', 'status'] as const, registers }),
    sourceErrors: new Counter({
      name: 'guardian_source_errors_total',
      help: 'Source polls that gave no data, per source: a source-wide failure by its error code (error), else each per-flag no-data reason (reason).',
      labelNames: ['source', 'error', 'reason'] as const,
      registers,
    }),
    outboxBacklog,
    notifications: new Counter({ name: 'guardian_notifications_total', help: 'Notification delivery outcomes per channel (delivered, retry, failed, lost_lock).', labelNames: ['channel', 'outcome'] as const, registers }),
    lastCycle: new Gauge({ name: 'guardian_last_cycle_timestamp_seconds', help: 'Unix time at which the last cycle ended.', registers }),
    rulesReloads: new Counter({ name: 'guardian_rules_reloads_total', help: 'Rules file reloads by result (ok, error: the last good rules stay in force).', labelNames: ['result'] as const, registers }),
    exposures: new Counter({
      name: 'guardian_exposures_total',
      help: 'Exposures received at POST /v1/exposures, by result (accepted, rejected: refused request, failed: the store failed).',
      labelNames: ['result'] as const,
      registers,
    }),
    exposureRequests: new Counter({ name: 'guardian_exposure_requests_total', help: 'Requests to POST /v1/exposures by HTTP status.', labelNames: ['status'] as const, registers }),
    ofrepRequests: new Counter({
      name: 'guardian_ofrep_requests_total',
      help: 'Requests to the OFREP endpoints (/ofrep/v1/...) by endpoint (evaluate, bulk, configuration, other) and HTTP status.',
      labelNames: ['endpoint', 'status'] as const,
      registers,
    }),
  };
  if (options.processMetrics !== false) collectDefaultMetrics({ register: registry });
  return m;
}

/** Release plan statuses: a plan's stage gauge carries one at a time. */
const PLAN_STATUSES: readonly PlanStatus[] = ['active', 'paused', 'completed', 'aborted', 'stopped'];

/**
 * Records one cycle's report: `guardian_cycles_total`, `guardian_cycle_duration_seconds`,
 * `guardian_verdicts_total`, `guardian_rollbacks_total`, `guardian_source_errors_total`,
 * `guardian_plan_actions_total`, `guardian_plan_stage_percentage` and
 * `guardian_last_cycle_timestamp_seconds`. Call it once per cycle (the daemon does, after
 * `runCycle`); a cycle that did not run (lease held elsewhere) only counts as `skipped`.
 *
 * @example
 * const report = await runCycle(deps);
 * recordCycleReport(metrics, report);
 */
export function recordCycleReport(m: GuardianMetrics, report: CycleReport): void {
  if (!report.ran) {
    m.cycles.inc({ result: 'skipped' });
    return;
  }
  m.cycles.inc({ result: report.errors.length === 0 ? 'ok' : 'error' });
  m.cycleDuration.observe(report.durationMs / 1000);
  m.lastCycle.set((report.at.getTime() + report.durationMs) / 1000);
  for (const r of report.results) {
    if (r.verdict) m.verdicts.inc({ rule: r.ruleId, kind: r.verdict.kind });
    if ((r.action === 'acted' || r.action === 'dry_run') && r.ruleAction !== undefined) {
      m.rollbacks.inc({ flag: r.flag, action: r.action === 'dry_run' ? `dry_run:${r.ruleAction}` : r.ruleAction });
    }
  }
  for (const p of report.plans ?? []) {
    if (p.action !== 'waiting' && p.action !== 'inactive') m.planActions.inc({ flag: p.flag, action: p.action });
    if (p.percentage !== undefined) {
      for (const status of PLAN_STATUSES) if (status !== p.status) m.planStage.remove({ flag: p.flag, status });
      m.planStage.set({ flag: p.flag, status: p.status }, p.percentage);
    }
  }
  for (const s of report.sources) {
    // One count per poll: a source-wide failure by its error code, else each distinct per-flag reason ('empty' is no error).
    if (s.error) m.sourceErrors.inc({ source: s.source, error: s.error.code, reason: '' });
    else for (const reason of new Set(Object.values(s.noDataReasons))) if (reason !== 'empty') m.sourceErrors.inc({ source: s.source, error: '', reason });
  }
}
