/**
 * A small Prometheus registry (text exposition format 0.0.4): counters, gauges and histograms
 * with labels, escaping per the format (`\\`, `\"`, `\n` in label values; `\\`, `\n` in HELP).
 * Plus {@link createGuardianMetrics}: the guardian's own metrics, by name.
 */
import type { CycleReport } from '../cycle/types.ts';
import { GuardianError } from '../errors.ts';

/** The Content-Type of the exposition format this registry writes. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Label values by label name. */
export type Labels = Readonly<Record<string, string | number>>;

function escapeLabelValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

/** Formats a sample value: integers plainly, `+Inf`/`-Inf`/`NaN` as the format spells them. */
function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

function labelText(names: readonly string[], values: readonly string[], extra?: readonly [string, string]): string {
  const parts = names.map((n, i) => `${n}="${escapeLabelValue(values[i] ?? '')}"`);
  if (extra) parts.push(`${extra[0]}="${escapeLabelValue(extra[1])}"`);
  return parts.length === 0 ? '' : `{${parts.join(',')}}`;
}

abstract class Metric {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  abstract readonly type: 'counter' | 'gauge' | 'histogram';

  constructor(name: string, help: string, labelNames: readonly string[]) {
    if (!METRIC_NAME.test(name)) throw new GuardianError('BAD_ARGUMENT', `metric name "${name}" is not a valid Prometheus name ([a-zA-Z_:][a-zA-Z0-9_:]*)`);
    for (const l of labelNames) {
      if (!LABEL_NAME.test(l) || l.startsWith('__')) throw new GuardianError('BAD_ARGUMENT', `metric ${name}: label name "${l}" is not valid ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)`);
    }
    this.name = name;
    this.help = help;
    this.labelNames = labelNames;
  }

  /** Label values in `labelNames` order; an unknown or missing label is an error. */
  protected key(labels: Labels | undefined): string[] {
    const given = labels ?? {};
    for (const k of Object.keys(given)) {
      if (!this.labelNames.includes(k)) throw new GuardianError('BAD_ARGUMENT', `metric ${this.name}: unknown label "${k}" (labels: ${this.labelNames.join(', ') || 'none'})`);
    }
    return this.labelNames.map((n) => {
      const v = given[n];
      if (v === undefined) throw new GuardianError('BAD_ARGUMENT', `metric ${this.name}: label "${n}" is required`);
      return String(v);
    });
  }

  abstract render(): string[];
}

/**
 * A monotonically increasing count.
 *
 * @example
 * const c = registry.counter('guardian_cycles_total', 'Cycles run.');
 * c.inc();
 */
export class Counter extends Metric {
  readonly type = 'counter' as const;
  readonly #values = new Map<string, { labels: string[]; value: number }>();

  inc(labels?: Labels, by = 1): void {
    if (!(by >= 0)) throw new GuardianError('BAD_ARGUMENT', `counter ${this.name}: increment must be ≥ 0, got ${by}`);
    const values = this.key(labels);
    const k = JSON.stringify(values);
    const cur = this.#values.get(k);
    if (cur) cur.value += by;
    else this.#values.set(k, { labels: values, value: by });
  }

  /** Current value (0 when never incremented). */
  get(labels?: Labels): number {
    return this.#values.get(JSON.stringify(this.key(labels)))?.value ?? 0;
  }

  render(): string[] {
    if (this.labelNames.length === 0 && this.#values.size === 0) return [`${this.name} 0`];
    return [...this.#values.values()].map((v) => `${this.name}${labelText(this.labelNames, v.labels)} ${formatValue(v.value)}`);
  }
}

/**
 * A value that goes up and down.
 *
 * @example
 * const g = registry.gauge('guardian_outbox_backlog', 'Undelivered notifications.', ['channel']);
 * g.set({ channel: 'slack' }, 3);
 */
export class Gauge extends Metric {
  readonly type = 'gauge' as const;
  readonly #values = new Map<string, { labels: string[]; value: number }>();

  set(labels: Labels | undefined, value: number): void {
    const values = this.key(labels);
    this.#values.set(JSON.stringify(values), { labels: values, value });
  }

  inc(labels?: Labels, by = 1): void {
    const values = this.key(labels);
    const k = JSON.stringify(values);
    const cur = this.#values.get(k);
    this.#values.set(k, { labels: values, value: (cur?.value ?? 0) + by });
  }

  /** Forgets every labelled value (before re-setting them all from a fresh reading). */
  reset(): void {
    this.#values.clear();
  }

  get(labels?: Labels): number | undefined {
    return this.#values.get(JSON.stringify(this.key(labels)))?.value;
  }

  render(): string[] {
    if (this.labelNames.length === 0 && this.#values.size === 0) return [`${this.name} 0`];
    return [...this.#values.values()].map((v) => `${this.name}${labelText(this.labelNames, v.labels)} ${formatValue(v.value)}`);
  }
}

/** Default histogram buckets (seconds), from Prometheus client libraries' defaults. */
export const DEFAULT_BUCKETS: readonly number[] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * Observations in cumulative buckets, with `_sum` and `_count`.
 *
 * @example
 * const h = registry.histogram('guardian_cycle_duration_seconds', 'Cycle duration.', [], [0.1, 1, 10]);
 * h.observe(undefined, 0.42);
 */
export class Histogram extends Metric {
  readonly type = 'histogram' as const;
  readonly buckets: readonly number[];
  readonly #values = new Map<string, { labels: string[]; counts: number[]; sum: number; count: number }>();

  constructor(name: string, help: string, labelNames: readonly string[], buckets: readonly number[] = DEFAULT_BUCKETS) {
    super(name, help, labelNames);
    if (labelNames.includes('le')) throw new GuardianError('BAD_ARGUMENT', `histogram ${name}: "le" is reserved`);
    const sorted = [...new Set(buckets.filter((b) => Number.isFinite(b)))].sort((a, b) => a - b);
    if (sorted.length === 0) throw new GuardianError('BAD_ARGUMENT', `histogram ${name}: needs at least one finite bucket`);
    this.buckets = sorted;
  }

  observe(labels: Labels | undefined, value: number): void {
    const values = this.key(labels);
    const k = JSON.stringify(values);
    let cur = this.#values.get(k);
    if (!cur) {
      cur = { labels: values, counts: this.buckets.map(() => 0), sum: 0, count: 0 };
      this.#values.set(k, cur);
    }
    for (let i = 0; i < this.buckets.length; i++) if (value <= this.buckets[i]!) cur.counts[i]! += 1;
    cur.sum += value;
    cur.count += 1;
  }

  render(): string[] {
    const series = [...this.#values.values()];
    if (this.labelNames.length === 0 && series.length === 0) series.push({ labels: [], counts: this.buckets.map(() => 0), sum: 0, count: 0 });
    const out: string[] = [];
    for (const s of series) {
      this.buckets.forEach((b, i) => out.push(`${this.name}_bucket${labelText(this.labelNames, s.labels, ['le', formatValue(b)])} ${s.counts[i]}`));
      out.push(`${this.name}_bucket${labelText(this.labelNames, s.labels, ['le', '+Inf'])} ${s.count}`);
      out.push(`${this.name}_sum${labelText(this.labelNames, s.labels)} ${formatValue(s.sum)}`);
      out.push(`${this.name}_count${labelText(this.labelNames, s.labels)} ${s.count}`);
    }
    return out;
  }
}

/**
 * The registry: creates metrics (once per name) and renders them all.
 *
 * @example
 * const registry = new Metrics();
 * registry.counter('jobs_total', 'Jobs done.', ['kind']).inc({ kind: 'a' });
 * const text = await registry.render();
 */
export class Metrics {
  readonly #metrics = new Map<string, Metric>();
  readonly #collectors: Array<() => void | Promise<void>> = [];

  #add<M extends Metric>(metric: M): M {
    const existing = this.#metrics.get(metric.name);
    if (existing) {
      if (existing.type !== metric.type || existing.labelNames.join() !== metric.labelNames.join()) {
        throw new GuardianError('BAD_ARGUMENT', `metric ${metric.name} is already registered as a ${existing.type} with labels [${existing.labelNames.join(', ')}]`);
      }
      return existing as M;
    }
    this.#metrics.set(metric.name, metric);
    return metric;
  }

  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    return this.#add(new Counter(name, help, labelNames));
  }

  gauge(name: string, help: string, labelNames: readonly string[] = []): Gauge {
    return this.#add(new Gauge(name, help, labelNames));
  }

  histogram(name: string, help: string, labelNames: readonly string[] = [], buckets?: readonly number[]): Histogram {
    return this.#add(new Histogram(name, help, labelNames, buckets));
  }

  /** Runs before every render (refresh gauges from a query). A failing collector leaves its gauges as they were. */
  onCollect(collect: () => void | Promise<void>): void {
    this.#collectors.push(collect);
  }

  /** The text exposition (format 0.0.4), ending with a newline. */
  async render(): Promise<string> {
    await Promise.allSettled(this.#collectors.map(async (c) => c()));
    const lines: string[] = [];
    for (const m of this.#metrics.values()) {
      lines.push(`# HELP ${m.name} ${escapeHelp(m.help)}`, `# TYPE ${m.name} ${m.type}`, ...m.render());
    }
    return `${lines.join('\n')}\n`;
  }
}

/**
 * The guardian's metrics, registered on one registry.
 *
 * @example
 * const metrics = createGuardianMetrics(new Metrics());
 * metrics.cycles.inc();
 * metrics.cycleDuration.observe(undefined, 0.8);
 * metrics.verdicts.inc({ rule: 'booking-agent-errors', kind: 'healthy' });
 */
export interface GuardianMetrics {
  readonly registry: Metrics;
  /** `guardian_cycles_total{result}`: cycles run (`ok`, `error`). */
  readonly cycles: Counter;
  /** `guardian_cycle_duration_seconds`: cycle duration. */
  readonly cycleDuration: Histogram;
  /** `guardian_verdicts_total{rule,kind}`. */
  readonly verdicts: Counter;
  /** `guardian_rollbacks_total{flag,action}` (dry runs have action `dry_run:<action>`). */
  readonly rollbacks: Counter;
  /** `guardian_source_errors_total{source,kind}`: polls without data, by reason. */
  readonly sourceErrors: Counter;
  /** `guardian_outbox_backlog{channel,status}`: undelivered notifications. */
  readonly outboxBacklog: Gauge;
  /** `guardian_notifications_total{channel,outcome}`: delivery outcomes. */
  readonly notifications: Counter;
  /** `guardian_last_cycle_timestamp_seconds`: end of the last cycle (Unix time). */
  readonly lastCycle: Gauge;
  /** `guardian_rules_reloads_total{result}`: rules file reloads (`ok`, `error`). */
  readonly rulesReloads: Counter;
  /**
   * `guardian_exposures_total{result}`: exposures received at `POST /v1/exposures`: `accepted`
   * (recorded), `rejected` (in a request refused as invalid or too large), `failed` (the store failed).
   */
  readonly exposures: Counter;
  /** `guardian_exposure_requests_total{status}`: requests to `POST /v1/exposures` by HTTP status. */
  readonly exposureRequests: Counter;
  /**
   * `guardian_ofrep_requests_total{endpoint,status}`: requests to the OFREP endpoints by endpoint
   * (`evaluate`, `bulk`, `configuration`, `other`) and HTTP status.
   */
  readonly ofrepRequests: Counter;
}

/**
 * Registers the guardian's metrics. Pass `backlog` to refresh `guardian_outbox_backlog` on every
 * scrape (for example `() => outbox.backlog()`).
 *
 * @example
 * const metrics = createGuardianMetrics(new Metrics(), { backlog: () => outboxStore.backlog() });
 */
export function createGuardianMetrics(
  registry: Metrics = new Metrics(),
  options: { backlog?: () => Promise<ReadonlyArray<{ channel: string; status: string; count: number }>> } = {},
): GuardianMetrics {
  const m: GuardianMetrics = {
    registry,
    cycles: registry.counter('guardian_cycles_total', 'Guardian cycles run, by result (ok, error).', ['result']),
    cycleDuration: registry.histogram('guardian_cycle_duration_seconds', 'Duration of one guardian cycle (poll, decide, act).', [], [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60]),
    verdicts: registry.counter('guardian_verdicts_total', 'Verdicts per rule and kind (breach, healthy, insufficient_data, no_data).', ['rule', 'kind']),
    rollbacks: registry.counter('guardian_rollbacks_total', 'Rollbacks per flag and action (dry runs: dry_run:<action>).', ['flag', 'action']),
    sourceErrors: registry.counter('guardian_source_errors_total', 'Source polls that gave no data, per source and reason.', ['source', 'kind']),
    outboxBacklog: registry.gauge('guardian_outbox_backlog', 'Notifications not yet delivered, per channel and status (pending, delivering, failed).', ['channel', 'status']),
    notifications: registry.counter('guardian_notifications_total', 'Notification delivery outcomes per channel (delivered, retry, failed, lost_lock).', ['channel', 'outcome']),
    lastCycle: registry.gauge('guardian_last_cycle_timestamp_seconds', 'Unix time at which the last cycle ended.'),
    rulesReloads: registry.counter('guardian_rules_reloads_total', 'Rules file reloads by result (ok, error: the last good rules stay in force).', ['result']),
    exposures: registry.counter('guardian_exposures_total', 'Exposures received at POST /v1/exposures, by result (accepted, rejected: refused request, failed: the store failed).', ['result']),
    exposureRequests: registry.counter('guardian_exposure_requests_total', 'Requests to POST /v1/exposures by HTTP status.', ['status']),
    ofrepRequests: registry.counter('guardian_ofrep_requests_total', 'Requests to the OFREP endpoints (/ofrep/v1/...) by endpoint (evaluate, bulk, configuration, other) and HTTP status.', ['endpoint', 'status']),
  };
  const backlog = options.backlog;
  if (backlog) {
    registry.onCollect(async () => {
      const rows = await backlog();
      m.outboxBacklog.reset();
      for (const channel of ['slack', 'email']) for (const status of ['pending', 'delivering', 'failed']) m.outboxBacklog.set({ channel, status }, 0);
      for (const r of rows) m.outboxBacklog.set({ channel: r.channel, status: r.status }, r.count);
    });
  }
  return m;
}

/**
 * Records one cycle's report: `guardian_cycles_total`, `guardian_cycle_duration_seconds`,
 * `guardian_verdicts_total`, `guardian_rollbacks_total`, `guardian_source_errors_total` and
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
  m.cycleDuration.observe(undefined, report.durationMs / 1000);
  m.lastCycle.set(undefined, (report.at.getTime() + report.durationMs) / 1000);
  for (const r of report.results) {
    if (r.verdict) m.verdicts.inc({ rule: r.ruleId, kind: r.verdict.kind });
    if ((r.action === 'acted' || r.action === 'dry_run') && r.ruleAction !== undefined) {
      m.rollbacks.inc({ flag: r.flag, action: r.action === 'dry_run' ? `dry_run:${r.ruleAction}` : r.ruleAction });
    }
  }
  for (const s of report.sources) {
    // One count per poll and kind: a source-wide failure by its code, else each distinct per-flag reason ('empty' is no error).
    if (s.error) m.sourceErrors.inc({ source: s.source, kind: s.error.code });
    else for (const reason of new Set(Object.values(s.noDataReasons))) if (reason !== 'empty') m.sourceErrors.inc({ source: s.source, kind: reason });
  }
}
