/**
 * The guardian daemon: the one place where Node's side effects are wired (environment,
 * fetch, clock, timers, signals) and the parts are put together — configuration, logger,
 * rules, store, metric sources, notifiers with the outbox worker, blindness alerts, the cycle
 * scheduler with its replica lease.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';

import { configSecrets, loadConfig, type GuardianConfig } from './config.ts';
import { runLeasedCycle } from './cycle/leased.ts';
import { runCycle } from './cycle/run.ts';
import { Scheduler } from './cycle/scheduler.ts';
import type { CycleLogger, CycleReport } from './cycle/types.ts';
import { GuardianError } from './errors.ts';
import { createLogger, type Logger } from './logger.ts';
import { createNotifiers } from './notify/factory.ts';
import { SqlOutboxStore } from './notify/outbox-store.ts';
import { SupabaseOutboxStore } from './notify/outbox-supabase.ts';
import { BlindnessTracker } from './notify/blindness.ts';
import type { Channel, Notifier } from './notify/types.ts';
import { OutboxWorker } from './notify/worker.ts';
import { formatDuration } from './rules/duration.ts';
import { loadRulesFileOrThrow } from './rules/parse.ts';
import type { RulesConfig } from './rules/schema.ts';
import { createPosthogSource } from './sources/posthog.ts';
import { createSentrySource } from './sources/sentry.ts';
import type { MetricSource, SourceDeps } from './sources/types.ts';
import { createStore, pgliteDir } from './store/index.ts';
import { SqlStore } from './store/sql-store.ts';
import { SupabaseStore } from './store/supabase-store.ts';
import type { Store } from './store/types.ts';

/** Whether each kind of source is usable with the rules file's settings, and why not. */
export interface SourceStatus {
  readonly id: string;
  readonly configured: boolean;
  readonly detail: string;
}

/**
 * Builds the metric sources the rules file configures (a PostHog project id and key, a Sentry
 * org and token; empty values mean "not configured"), and says for each kind whether it is
 * usable. The builtin source needs the HTTP ingestion endpoint and is not built here.
 *
 * @example
 * const { sources, status } = buildSources(rules, { fetch, now: () => new Date(), sleep, logger });
 */
export function buildSources(rules: RulesConfig, deps: SourceDeps): { sources: Map<string, MetricSource>; status: SourceStatus[] } {
  const sources = new Map<string, MetricSource>();
  const status: SourceStatus[] = [];
  const lookback = (kind: string) => Math.max(0, ...rules.rules.filter((r) => r.source === kind).map((r) => r.window));
  const ph = rules.sources.posthog;
  if (ph && ph.api_key !== '' && ph.project_id !== '') {
    sources.set('posthog', createPosthogSource({ ...ph, lookbackMs: lookback('posthog') }, deps));
    status.push({ id: 'posthog', configured: true, detail: `${ph.host}, project ${ph.project_id}` });
  } else status.push({ id: 'posthog', configured: false, detail: 'sources.posthog needs project_id and api_key (POSTHOG_API_KEY)' });
  const se = rules.sources.sentry;
  if (se && se.token !== '' && se.org !== '') {
    sources.set('sentry', createSentrySource({ ...se, lookbackMs: lookback('sentry') }, deps));
    status.push({ id: 'sentry', configured: true, detail: `${se.base_url}, org ${se.org}` });
  } else status.push({ id: 'sentry', configured: false, detail: 'sources.sentry needs org and token (SENTRY_AUTH_TOKEN)' });
  status.push({ id: 'builtin', configured: false, detail: 'needs the HTTP ingestion endpoint (not wired yet)' });
  return { sources, status };
}

/** The outbox and blindness store that shares the guardian store's connection. */
function outboxFor(store: Store): SqlOutboxStore | SupabaseOutboxStore {
  if (store instanceof SqlStore) return new SqlOutboxStore(store.sql);
  if (store instanceof SupabaseStore) return new SupabaseOutboxStore(store.client);
  throw new GuardianError('CONFIG_INVALID', `no outbox for a ${store.kind} store`);
}

/**
 * What {@link startDaemon} and `guardian check` need from the process (injected in tests).
 *
 * @example
 * await startDaemon({ env: process.env, stdout: (t) => process.stdout.write(t) });
 */
export interface DaemonOptions {
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Human-readable banner lines go here (the logger writes JSON lines to stdout). */
  readonly stdout: (text: string) => void;
  readonly fetch?: typeof fetch;
  readonly now?: () => Date;
  /** This replica's lease holder id. Default `<hostname>:<pid>:<random>`. */
  readonly holder?: string;
  /** Logger override (tests). Default pino JSON to stdout with redaction. */
  readonly logger?: Logger;
  /** Store override (tests); otherwise from the configuration. */
  readonly store?: Store;
  /** Source override (tests); otherwise from the rules file. */
  readonly sources?: ReadonlyMap<string, MetricSource>;
  /** Notifier override (tests); otherwise from the rules file and the environment. */
  readonly notifiers?: ReadonlyMap<Channel, Notifier>;
}

/** The parts put together, for `start` (scheduled) and `check` (one cycle). */
export interface GuardianParts {
  readonly config: GuardianConfig;
  readonly logger: Logger;
  readonly rules: RulesConfig;
  readonly store: Store;
  readonly sources: ReadonlyMap<string, MetricSource>;
  readonly sourceStatus: readonly SourceStatus[];
  readonly notifiers: ReadonlyMap<Channel, Notifier>;
  readonly outbox: OutboxWorker;
  readonly blindness: BlindnessTracker;
  readonly holder: string;
  readonly now: () => Date;
}

/**
 * Reads the configuration and the rules file and opens everything (throws `CONFIG_INVALID`,
 * `RULES_INVALID` or `STORE_UNREACHABLE` with a message that says what to do).
 *
 * @example
 * const parts = await assemble({ env: process.env, stdout });
 * const report = await runCycle({ ...cycleDeps(parts), signal: AbortSignal.timeout(60_000) });
 */
export async function assemble(opts: DaemonOptions): Promise<GuardianParts> {
  const config = loadConfig(opts.env);
  const secrets = new Set(configSecrets(config));
  const logger = opts.logger ?? createLogger({ level: config.logLevel, secrets });
  const { rules } = await loadRulesFileOrThrow(config.rulesFile, opts.env);
  if (rules.notify.slack?.webhook_url) secrets.add(rules.notify.slack.webhook_url);
  const now = opts.now ?? (() => new Date());
  const fetchFn = opts.fetch ?? globalThis.fetch;
  const built = opts.sources
    ? { sources: new Map(opts.sources), status: [...opts.sources.keys()].map((id) => ({ id, configured: true, detail: 'injected' })) }
    : buildSources(rules, { fetch: fetchFn, now, sleep: (ms) => new Promise((r) => setTimeout(r, ms)), logger: logger.child({ part: 'source' }) });
  const notifiers = opts.notifiers ?? createNotifiers(rules.notify, config, { fetch: fetchFn });
  const store = opts.store ?? (await createStore(config));
  const outboxStore = outboxFor(store);
  const holder = opts.holder ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  const outbox = new OutboxWorker({
    store: outboxStore,
    notifiers,
    logger: logger.child({ part: 'outbox' }),
    holder,
    ...(config.dashboardUrl ? { dashboardUrl: config.dashboardUrl } : {}),
    now,
  });
  const blindness = new BlindnessTracker({
    store: outboxStore,
    blindAfterMs: rules.blindness_after,
    channels: [...notifiers.keys()],
    logger: logger.child({ part: 'blindness' }),
  });
  return { config, logger, rules, store, sources: built.sources, sourceStatus: built.status, notifiers, outbox, blindness, holder, now };
}

/** The lines `guardian start` prints first: what it watches and where. */
export async function banner(parts: GuardianParts): Promise<string> {
  const { config, rules, store } = parts;
  const flags = await store.listFlags();
  const byName = new Map(flags.map((f) => [f.name, f]));
  const lines = [
    `Rollback Guardian — ${rules.rules.length} rule(s), polling every ${formatDuration(rules.interval)}${rules.dry_run || config.dryRun ? ', DRY RUN (no flag is changed)' : ''}`,
    `  state:   ${store.kind === 'pglite' ? `embedded database in ${pgliteDir(config.dataDir)} (GUARDIAN_DATA_DIR=${config.dataDir})` : `${store.kind} at ${store.location}`}`,
    `  rules:   ${config.rulesFile}`,
    `  http:    port ${config.port} on ${config.host} (TODO: HTTP server not wired yet)`,
    `  sources: ${parts.sourceStatus.map((s) => `${s.id} ${s.configured ? `configured (${s.detail})` : `not configured — ${s.detail}`}`).join('; ')}`,
    `  notify:  ${parts.notifiers.size ? [...parts.notifiers.keys()].join(', ') : 'no channel configured (events are still recorded)'}`,
  ];
  for (const rule of rules.rules) {
    const cond = rule.condition.kind === 'absolute' ? `error rate > ${rule.condition.error_rate_above}` : `+${rule.condition.max_increase} over flag-off`;
    const watched = rule.flags.map((name) => {
      const f = byName.get(name);
      return f ? `${name} (${f.enabled ? `on ${f.rolloutPercentage}%` : 'off'}, ${f.guardState})` : `${name} (MISSING in database)`;
    });
    const usable = parts.sources.has(rule.source) ? '' : ` [source ${rule.source} not configured: this rule sees no data]`;
    lines.push(`  rule ${rule.id}: ${cond} via ${rule.source} → ${rule.action}${rule.dry_run ? ' (dry run)' : ''}; flags ${watched.join(', ')}${usable}`);
  }
  return `${lines.join('\n')}\n`;
}

/** The cycle's dependencies from the parts. */
export function cycleDeps(parts: GuardianParts) {
  return {
    now: parts.now,
    store: parts.store,
    sources: parts.sources,
    rules: parts.rules,
    logger: parts.logger.child({ part: 'cycle' }) as unknown as CycleLogger,
    dryRun: parts.config.dryRun,
    // Outbox rows only for channels that can deliver (createNotifiers refuses a half-configured one).
    channels: [...parts.notifiers.keys()],
  };
}

/**
 * A running guardian.
 *
 * @example
 * const daemon = await startDaemon({ env: process.env, stdout });
 * process.once('SIGTERM', () => void daemon.stop());
 * await daemon.stopped;
 */
export interface Daemon {
  readonly parts: GuardianParts;
  /** One leased cycle now (also what each tick runs). */
  runOnce(): Promise<CycleReport>;
  /** Stops ticking, lets the cycle in flight finish, stops the outbox worker, releases the lease, closes the store. */
  stop(): Promise<void>;
  /** Resolves once stopped. */
  readonly stopped: Promise<void>;
}

/**
 * Starts the guardian: prints the banner, starts the outbox worker and the cycle scheduler.
 *
 * @example
 * const daemon = await startDaemon({ env: process.env, stdout: (t) => process.stdout.write(t) });
 */
export async function startDaemon(opts: DaemonOptions): Promise<Daemon> {
  const parts = await assemble(opts);
  const { logger, rules, store, outbox, blindness } = parts;
  opts.stdout(await banner(parts));
  const shutdown = new AbortController();
  const deps = cycleDeps(parts);
  const runOnce = async (): Promise<CycleReport> => {
    const signal = AbortSignal.any([shutdown.signal, AbortSignal.timeout(Math.max(rules.interval * 3, 30_000))]);
    const report = await runLeasedCycle({ ...deps, signal, holder: parts.holder, leaseTtlMs: rules.interval });
    if (report.ran) {
      await blindness.observe(report.sourceReports);
      const acted = report.results.filter((r) => r.action === 'acted' || r.action === 'dry_run').length;
      logger.info(
        { durationMs: report.durationMs, results: report.results.length, acted, errors: report.errors.length },
        `cycle done: ${report.results.length} rule/flag pair(s), ${acted} action(s)`,
      );
      if (acted > 0) outbox.kick();
    }
    return report;
  };
  const scheduler = new Scheduler({
    intervalMs: rules.interval,
    logger: logger.child({ part: 'scheduler' }) as unknown as CycleLogger,
    run: async () => {
      await runOnce();
    },
  });
  // TODO(ops): start the HTTP server (/healthz, /readyz, /metrics) and rules hot reload here once guardian/src/http/ lands.
  outbox.start();
  scheduler.start();
  let resolveStopped: () => void = () => {};
  const stopped = new Promise<void>((r) => (resolveStopped = r));
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      logger.info({}, 'guardian: stopping (finishing the cycle in flight)');
      await scheduler.stop();
      await outbox.stop();
      await store.releaseLease('cycle', parts.holder).catch(() => {});
      await store.close().catch(() => {});
      logger.info({}, 'guardian: stopped');
      logger.flush?.();
      resolveStopped();
    })();
    return stopping;
  };
  // Run the first cycle now rather than at the first tick.
  void scheduler.tick();
  return { parts, runOnce, stop, stopped };
}

/** Exported for `check`: one unleased cycle with the parts. */
export function runOneCycle(parts: GuardianParts, dryRun: boolean, signal: AbortSignal): Promise<CycleReport> {
  return runCycle({ ...cycleDeps(parts), dryRun: parts.config.dryRun || dryRun, signal });
}
