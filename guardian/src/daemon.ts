/**
 * The guardian daemon: the one place where Node's side effects are wired (environment,
 * fetch, clock, timers, signals, file watching) and the parts are put together — configuration,
 * logger, rules (hot-reloaded), store, metric sources, notifiers with the outbox worker,
 * blindness alerts, the cycle scheduler with its replica lease, the HTTP server (/healthz,
 * /readyz, /metrics, POST /v1/exposures for the builtin source when GUARDIAN_INGEST_KEY is set,
 * and the OpenFeature Remote Evaluation Protocol under /ofrep/v1 when GUARDIAN_OFREP_KEY is set)
 * and error reporting to Sentry.
 */
import { randomUUID } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { hostname } from 'node:os';
import { basename, dirname, resolve } from 'node:path';

import { configSecrets, loadConfig, type GuardianConfig } from './config.ts';
import { confirmationFocus } from './cycle/confirm.ts';
import { runLeasedCycle } from './cycle/leased.ts';
import { collectAfterCycle } from './cycle/memory.ts';
import { channelsFromNotify, runCycle } from './cycle/run.ts';
import { Scheduler } from './cycle/scheduler.ts';
import type { CycleLogger, CycleReport } from './cycle/types.ts';
import { GuardianError } from './errors.ts';
import { createLogger, redactText, type Logger } from './logger.ts';
import { createNotifiers } from './notify/factory.ts';
import { SqlOutboxStore } from './notify/outbox-store.ts';
import { SupabaseOutboxStore } from './notify/outbox-supabase.ts';
import { BlindnessTracker } from './notify/blindness.ts';
import type { Channel, Notifier } from './notify/types.ts';
import { OutboxWorker } from './notify/worker.ts';
import { formatDuration } from './rules/duration.ts';
import { loadRulesFile, loadRulesFileOrThrow, type ParseRulesResult, type RulesProblem } from './rules/parse.ts';
import { CyclePriority } from './http/admission.ts';
import { createGuardianMetrics, recordCycleReport, type GuardianMetrics } from './http/metrics.ts';
import { startAdminApi, type AdminApiRunning } from './api/mount.ts';
import { createExposureIngestRoute, EXPOSURES_PATH } from './http/ingest.ts';
import { createOfrepRoute, OFREP_CONFIGURATION_PATH, OFREP_EVALUATE_PATH } from './http/ofrep.ts';
import { mountApp, startHttpServer, type HealthState, type HttpMount, type RunningHttpServer } from './http/server.ts';
import { createDashboardApp, DASHBOARD_PATH } from './http/dashboard.ts';
import { initTelemetry, noTelemetry, type Telemetry } from './telemetry.ts';
import { DEFAULT_CONFIRM_AFTER_MS, type RulesConfig } from './rules/schema.ts';
import { createBuiltinSource } from './sources/builtin.ts';
import { createPosthogSource } from './sources/posthog.ts';
import { createSentrySource } from './sources/sentry.ts';
import type { MetricSource, SourceDeps } from './sources/types.ts';
import { createStore, pgliteDir } from './store/index.ts';
import { SqlStore } from './store/sql-store.ts';
import { SupabaseStore } from './store/supabase-store.ts';
import type { Flag, Store } from './store/types.ts';

/** Whether each kind of source is usable with the rules file's settings, and why not. */
export interface SourceStatus {
  readonly id: string;
  readonly configured: boolean;
  readonly detail: string;
}

/**
 * What the builtin source needs beyond {@link SourceDeps}: the store its counts live in, and
 * whether this guardian accepts exposures (`GUARDIAN_INGEST_KEY` set, so POST /v1/exposures is on).
 */
export interface BuiltinSourceSetup {
  readonly store: Store;
  readonly ingestEnabled: boolean;
}

/**
 * Builds the metric sources the rules file configures (a PostHog project id and key, a Sentry
 * org and token; empty values mean "not configured"), and says for each kind whether it is
 * usable. The builtin source (counts the SDK reports at POST /v1/exposures, kept in the store)
 * is built when a rule uses it and `builtin.ingestEnabled` (GUARDIAN_INGEST_KEY is set).
 *
 * @example
 * const { sources, status } = buildSources(rules, { fetch, now: () => new Date(), sleep, logger }, { store, ingestEnabled: true });
 */
export function buildSources(rules: RulesConfig, deps: SourceDeps, builtin?: BuiltinSourceSetup): { sources: Map<string, MetricSource>; status: SourceStatus[] } {
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
  if (rules.rules.some((r) => r.source === 'builtin')) {
    if (builtin?.ingestEnabled) {
      sources.set('builtin', createBuiltinSource({ store: builtin.store, now: deps.now, logger: deps.logger, lookbackMs: lookback('builtin') }));
      status.push({ id: 'builtin', configured: true, detail: `SDK exposures at POST ${EXPOSURES_PATH}` });
    } else {
      status.push({ id: 'builtin', configured: false, detail: `set GUARDIAN_INGEST_KEY to accept SDK exposures at POST ${EXPOSURES_PATH}` });
    }
  }
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
  /** Where the default logger writes (tests capture lines). Default stdout. */
  readonly logDestination?: { write(line: string): unknown };
  /** Store override (tests); otherwise from the configuration. */
  readonly store?: Store;
  /** Source override (tests); otherwise from the rules file (and rebuilt on every reload). */
  readonly sources?: ReadonlyMap<string, MetricSource>;
  /** Notifier override (tests); otherwise from the rules file and the environment. */
  readonly notifiers?: ReadonlyMap<Channel, Notifier>;
  /** Error reporting override (tests); otherwise Sentry when `SENTRY_DSN` is set. */
  readonly telemetry?: Telemetry;
  /** Watch the rules file and reload it on change (default true for `start`). */
  readonly watchRules?: boolean;
  /** Outbox poll period (default 2 s). */
  readonly outboxIntervalMs?: number;
  /**
   * Embedded database: own the data folder and serve it to the CLI and other local processes on
   * a socket (store/embedded.ts). `startDaemon` defaults it to true; `check` leaves it off.
   */
  readonly serveEmbedded?: boolean;
}

/** What the rules file gives, swapped as a whole on every successful reload. */
interface LiveRules {
  readonly rules: RulesConfig;
  /** The resolved rules as JSON: a reload that resolves to the same rules changes nothing. */
  readonly key: string;
  readonly sources: ReadonlyMap<string, MetricSource>;
  readonly sourceStatus: readonly SourceStatus[];
  readonly notifiers: ReadonlyMap<Channel, Notifier>;
}

/** Outcome of a rules reload. */
export type ReloadResult =
  | { readonly ok: true; readonly changed: boolean; readonly rules: RulesConfig }
  | { readonly ok: false; readonly problems: readonly RulesProblem[] };

/**
 * The parts put together, for `start` (scheduled) and `check` (one cycle). `rules`, `sources`,
 * `sourceStatus` and `notifiers` always read the current (last good) rules file.
 */
export interface GuardianParts {
  readonly config: GuardianConfig;
  readonly logger: Logger;
  readonly rules: RulesConfig;
  readonly store: Store;
  readonly sources: ReadonlyMap<string, MetricSource>;
  readonly sourceStatus: readonly SourceStatus[];
  readonly notifiers: ReadonlyMap<Channel, Notifier>;
  readonly outbox: OutboxWorker;
  readonly outboxStore: SqlOutboxStore | SupabaseOutboxStore;
  readonly blindness: BlindnessTracker;
  readonly metrics: GuardianMetrics;
  readonly telemetry: Telemetry;
  readonly holder: string;
  readonly now: () => Date;
  /** Re-reads the rules file; on failure keeps the last good rules and returns every problem. */
  reloadRules(): Promise<ReloadResult>;
  /** The problems of the last failed reload (undefined once a reload succeeds). */
  readonly lastReloadError: readonly RulesProblem[] | undefined;
  /** Closes the notifiers and the store. */
  close(): Promise<void>;
}

function describeProblems(problems: readonly RulesProblem[]): string {
  return problems.map((p) => `${p.path}: ${p.message}`).join('; ');
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
  let telemetry: Telemetry = opts.telemetry ?? noTelemetry;
  const logger =
    opts.logger ??
    createLogger({
      level: config.logLevel,
      secrets,
      ...(opts.logDestination ? { destination: opts.logDestination } : {}),
      onError: (obj, msg) => {
        const err = obj['err'];
        telemetry.captureError(err instanceof Error ? err : new Error(msg || 'guardian error'), { msg, ...obj, err: undefined });
      },
    });
  if (opts.telemetry === undefined) telemetry = initTelemetry({ dsn: config.sentryDsn, secrets });
  const rulesPath = config.rulesFile;
  const first = await loadRulesFileOrThrow(rulesPath, opts.env);
  const now = opts.now ?? (() => new Date());
  const fetchFn = opts.fetch ?? globalThis.fetch;
  const sourceDeps: SourceDeps = { fetch: fetchFn, now, sleep: (ms) => new Promise((r) => setTimeout(r, ms)), logger: logger.child({ part: 'source' }) };

  const store: Store = opts.store ?? (await createStore(config, { serve: opts.serveEmbedded === true }));
  const build = (rules: RulesConfig): LiveRules => {
    if (rules.notify.slack?.webhook_url) secrets.add(rules.notify.slack.webhook_url);
    for (const s of [rules.sources.posthog?.api_key, rules.sources.sentry?.token]) if (s) secrets.add(s);
    const built = opts.sources
      ? { sources: new Map(opts.sources), status: [...opts.sources.keys()].map((id) => ({ id, configured: true, detail: 'injected' })) }
      : buildSources(rules, sourceDeps, { store, ingestEnabled: config.ingestKey !== undefined });
    const notifiers = opts.notifiers ?? createNotifiers(rules.notify, config, { fetch: fetchFn });
    return { rules, key: JSON.stringify(rules), sources: built.sources, sourceStatus: built.status, notifiers };
  };
  let live: LiveRules;
  try {
    live = build(first.rules);
  } catch (err) {
    if (!opts.store) await store.close().catch(() => {});
    throw err;
  }
  let lastReloadError: readonly RulesProblem[] | undefined;

  const outboxStore = outboxFor(store);
  const holder = opts.holder ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  const metrics = createGuardianMetrics({
    backlog: async () => (await outboxStore.backlog()).map((b) => ({ channel: b.channel, status: b.status, count: b.count })),
  });
  const outbox = new OutboxWorker({
    store: outboxStore,
    notifiers: () => live.notifiers,
    logger: logger.child({ part: 'outbox' }),
    holder,
    ...(config.dashboardUrl ? { dashboardUrl: config.dashboardUrl } : {}),
    ...(opts.outboxIntervalMs !== undefined ? { intervalMs: opts.outboxIntervalMs } : {}),
    redact: (t) => redactText(t, secrets),
    onOutcome: (channel, outcome) => metrics.notifications.inc({ channel, outcome }),
    now,
  });
  const blindness = new BlindnessTracker({
    store: outboxStore,
    blindAfterMs: () => live.rules.blindness_after,
    channels: () => [...live.notifiers.keys()],
    logger: logger.child({ part: 'blindness' }),
  });

  const rulesLog = logger.child({ part: 'rules', file: rulesPath });
  const reloadRules = async (): Promise<ReloadResult> => {
    // loadRulesFile never throws; a throw here would be a bug, and a bug must not end the daemon.
    const result = await loadRulesFile(rulesPath, opts.env).catch(
      (err: unknown): ParseRulesResult => ({ ok: false, problems: [{ path: '(file)', message: `could not be loaded: ${(err as Error).message}` }] }),
    );
    // Editors write a file in several steps (several watch events): the same rules change nothing.
    if (result.ok && JSON.stringify(result.rules) === live.key && lastReloadError === undefined) return { ok: true, changed: false, rules: live.rules };
    let problems: readonly RulesProblem[] | undefined = result.ok ? undefined : result.problems;
    let next: LiveRules | undefined;
    if (result.ok) {
      try {
        next = build(result.rules);
      } catch (err) {
        const details = (err as GuardianError).details?.['problems'];
        problems = Array.isArray(details) ? (details as RulesProblem[]) : [{ path: '(file)', message: (err as Error).message }];
      }
    }
    if (problems !== undefined || next === undefined) {
      lastReloadError = problems ?? [];
      metrics.rulesReloads.inc({ result: 'error' });
      rulesLog.error({ problems: lastReloadError }, `rules reload failed; keeping the last good rules: ${describeProblems(lastReloadError)}`);
      return { ok: false, problems: lastReloadError };
    }
    const old = live;
    live = next;
    lastReloadError = undefined;
    metrics.rulesReloads.inc({ result: 'ok' });
    rulesLog.info({ rules: next.rules.rules.map((r) => r.id), interval: next.rules.interval }, `rules reloaded: ${next.rules.rules.length} rule(s)`);
    if (!opts.notifiers) {
      // Sends in flight on the old notifiers finish first (each is bounded by the worker's send timeout).
      const olds = [...old.notifiers.values()];
      setTimeout(() => {
        for (const n of olds) void n.close?.().catch(() => {});
      }, 30_000).unref();
    }
    return { ok: true, changed: true, rules: next.rules };
  };

  return {
    config,
    logger,
    get rules() {
      return live.rules;
    },
    store,
    get sources() {
      return live.sources;
    },
    get sourceStatus() {
      return live.sourceStatus;
    },
    get notifiers() {
      return live.notifiers;
    },
    outbox,
    outboxStore,
    blindness,
    metrics,
    telemetry,
    holder,
    now,
    reloadRules,
    get lastReloadError() {
      return lastReloadError;
    },
    async close() {
      for (const n of live.notifiers.values()) await n.close?.().catch(() => {});
      await store.close().catch(() => {});
    },
  };
}

/** The lines `guardian start` prints first: what it watches and where. */
/** How the admin API is reached, for the banner. */
function adminAuthWords(config: GuardianConfig): string {
  const ways = [
    ...(config.adminToken !== undefined ? ['GUARDIAN_ADMIN_TOKEN'] : []),
    ...(config.jwtSecret !== undefined || config.supabase !== undefined ? ['Supabase Auth tokens'] : []),
  ];
  const stream = config.store === 'supabase' ? '; the change stream is fed by Supabase Realtime (feature_flags, rollback_events)' : '';
  return `${ways.length ? `sign in with ${ways.join(' or ')}` : 'closed: set GUARDIAN_ADMIN_TOKEN or SUPABASE_JWT_SECRET to use it'}${stream}`;
}

export async function banner(parts: GuardianParts, http?: RunningHttpServer): Promise<string> {
  const { config, rules, store } = parts;
  const flags = await store.listFlags();
  const byName = new Map(flags.map((f) => [f.name, f]));
  const lines = [
    `Rollback Guardian — ${rules.rules.length} rule(s), polling every ${formatDuration(rules.interval)}${rules.dry_run || config.dryRun ? ', DRY RUN (no flag is changed)' : ''}`,
    `  state:   ${store.kind === 'pglite' ? `embedded database in ${pgliteDir(config.dataDir)} (GUARDIAN_DATA_DIR=${config.dataDir}; set DATABASE_URL or SUPABASE_URL to use yours)` : `${store.kind} at ${store.location}`}`,
    `  rules:   ${config.rulesFile} (reloaded on change)`,
    http
      ? `  http:    ${http.url}/healthz, ${http.url}/readyz, ${http.url}/metrics${config.ingestKey !== undefined ? `, POST ${http.url}${EXPOSURES_PATH} (SDK exposures)` : ''}`
      : `  http:    not started`,
    ...(http && config.ofrepKey !== undefined
      ? [`  ofrep:   OpenFeature remote evaluation at POST ${http.url}${OFREP_EVALUATE_PATH}/{key} and ${OFREP_EVALUATE_PATH} (bulk), GET ${http.url}${OFREP_CONFIGURATION_PATH} (key: GUARDIAN_OFREP_KEY)`]
      : []),
    ...(http ? [`  api:     ${http.url}/api/v1 (OpenAPI at /api/v1/openapi.json, changes at /api/v1/stream); ${adminAuthWords(config)}`] : []),
    ...(http
      ? [`  admin:   dashboard at ${http.url}${DASHBOARD_PATH}/ (sign in with GUARDIAN_ADMIN_TOKEN${config.supabaseAuth ? ' or a Supabase Auth account' : config.adminToken === undefined ? ', which is not set' : ''})`]
      : []),
    `  sources: ${parts.sourceStatus.map((s) => `${s.id} ${s.configured ? `configured (${s.detail})` : `not configured — ${s.detail}`}`).join('; ')}`,
    `  notify:  ${parts.notifiers.size ? [...parts.notifiers.keys()].join(', ') : 'no channel configured (events are still recorded; set SLACK_WEBHOOK_URL, or SMTP_URL + EMAIL_FROM + GUARDIAN_ONCALL_EMAIL)'}`,
    `  errors:  ${parts.telemetry.enabled ? 'reported to Sentry (SENTRY_DSN)' : 'logged only (set SENTRY_DSN to report them to Sentry)'}`,
  ];
  if (parts.sources.size === 0) {
    lines.push(
      '  tip:     no source is configured yet; `npm run guardian -- demo` plays a whole incident on a throwaway database; without Sentry or PostHog, set GUARDIAN_INGEST_KEY and use `source: builtin` (README)',
    );
  }
  for (const rule of rules.rules) {
    const cond = rule.condition.kind === 'absolute' ? `error rate > ${rule.condition.error_rate_above}` : `+${rule.condition.max_increase} over flag-off`;
    const usable = parts.sources.has(rule.source) ? '' : ` [source ${rule.source} not configured: this rule sees no data]`;
    lines.push(`  rule ${rule.id}: ${cond} via ${rule.source} → ${rule.action}${rule.dry_run ? ' (dry run)' : ''}; flags ${watchedFlags(rule.flags, byName)}${usable}`);
  }
  return `${lines.join('\n')}\n`;
}

/** Flags a banner line names one by one; a longer list is summed up after them (10,000 flags are one rule's list at scale). */
const BANNER_FLAGS = 10;

/**
 * A rule's flags for the banner: each with its state, or the first {@link BANNER_FLAGS} and counts of
 * the rest (missing ones always named, up to 5).
 *
 * @example
 * watchedFlags(['booking_agent_enabled'], flagsByName); // "booking_agent_enabled (on 25%, watching)"
 */
export function watchedFlags(names: readonly string[], byName: ReadonlyMap<string, Flag>): string {
  const describe = (name: string): string => {
    const f = byName.get(name);
    return f ? `${name} (${f.enabled ? `on ${f.rolloutPercentage}%` : 'off'}, ${f.guardState})` : `${name} (MISSING in database)`;
  };
  if (names.length <= BANNER_FLAGS + 2) return names.map(describe).join(', ');
  const rest = names.slice(BANNER_FLAGS);
  const onOff = new Map<string, number>();
  const guard = new Map<string, number>();
  const missing: string[] = [];
  const bump = (m: Map<string, number>, key: string) => m.set(key, (m.get(key) ?? 0) + 1);
  for (const name of rest) {
    const f = byName.get(name);
    if (!f) missing.push(name);
    else {
      bump(onOff, f.enabled ? 'on' : 'off');
      bump(guard, f.guardState);
    }
  }
  const count = (m: Map<string, number>) => [...m].map(([key, n]) => `${n.toLocaleString('en-US')} ${key}`).join(', ');
  const parts = [count(onOff), count(guard)].filter((p) => p !== '');
  if (missing.length > 0) parts.push(`${missing.length.toLocaleString('en-US')} MISSING in database (${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', …' : ''})`);
  return `${names.slice(0, BANNER_FLAGS).map(describe).join(', ')} and ${rest.length.toLocaleString('en-US')} more: ${parts.join('; ')}`;
}

/** The cycle's dependencies from the parts (read anew for every cycle: hot-reloaded rules apply at the next cycle). */
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
  /** The HTTP server (/healthz, /readyz, /metrics, and the exposure and OFREP routes when enabled). */
  readonly http: RunningHttpServer;
  /** One leased cycle now (also what each tick runs). */
  runOnce(): Promise<CycleReport>;
  /** Re-reads the rules file now (also done on file change and on SIGHUP). */
  reloadRules(): Promise<ReloadResult>;
  /** End of the last cycle attempt (run, or skipped because another replica holds the lease). */
  readonly lastCycleAt: Date | null;
  /** Stops ticking, lets the cycle in flight finish, stops the outbox worker and the HTTP server, releases the lease, closes the store. */
  stop(): Promise<void>;
  /** Resolves once stopped. */
  readonly stopped: Promise<void>;
}

/**
 * Watches the rules file (its folder, since editors replace files by rename) and calls
 * `onChange` after writes settle.
 */
function watchRulesFile(path: string, onChange: () => void, log: Logger): FSWatcher | undefined {
  const file = basename(path);
  let timer: NodeJS.Timeout | undefined;
  try {
    const w = watch(dirname(resolve(path)), { persistent: false }, (_event, name) => {
      if (name !== null && name !== file) return;
      if (timer) clearTimeout(timer);
      timer = setTimeout(onChange, 150);
    });
    w.on('error', (err) => log.warn({ err }, 'rules: watching the file failed; reload with SIGHUP'));
    return w;
  } catch (err) {
    log.warn({ err }, 'rules: cannot watch the file; reload with SIGHUP');
    return undefined;
  }
}

/**
 * Starts the guardian: HTTP server, banner, outbox worker, rules watcher and the cycle
 * scheduler (first cycle right away).
 *
 * @example
 * const daemon = await startDaemon({ env: process.env, stdout: (t) => process.stdout.write(t) });
 */
export async function startDaemon(opts: DaemonOptions): Promise<Daemon> {
  const parts = await assemble({ serveEmbedded: true, ...opts });
  const { logger, store, outbox, blindness, metrics, config } = parts;
  let lastCycleAt: Date | null = null;
  let lastCycle: { at: Date; durationMs: number; ok: boolean } | null = null;
  let rulesLoadedAt: Date = parts.now();
  let http: RunningHttpServer;
  let admin: AdminApiRunning | undefined;
  // Cycles come first: exposure ingestion's writes wait while one runs (http/admission.ts).
  const priority = new CyclePriority();
  const health = async (): Promise<HealthState> => ({
    database: await store.ping().then(
      () => ({ ok: true }),
      (err: unknown) => ({ ok: false, error: (err as Error).message }),
    ),
    rules:
      parts.lastReloadError === undefined
        ? { loaded: true }
        : // The last good rules still run: ready, but say why the edit was refused.
          { loaded: true, error: `last reload failed, running the previous rules: ${describeProblems(parts.lastReloadError)}` },
    lastCycleAt,
    cycleIntervalMs: parts.rules.interval,
  });
  try {
    const httpLogger = logger.child({ part: 'http' });
    // The admin API (/api/v1, its change stream) reads the daemon's state through this snapshot.
    admin = await startAdminApi({
      config,
      store,
      logger: logger.child({ part: 'api' }),
      status: () => ({
        lastCycle,
        intervalMs: parts.rules.interval,
        dryRun: config.dryRun || parts.rules.dry_run,
        sources: parts.sourceStatus,
        rulesFile: config.rulesFile,
        rules: parts.rules.rules,
        rulesLoadedAt,
        lastReloadError: parts.lastReloadError === undefined ? null : describeProblems(parts.lastReloadError),
        channels: channelsFromNotify(parts.rules.notify),
        plans: parts.rules.plans ?? [],
      }),
    });
    // Everything served beside /healthz, /readyz and /metrics: one Hono sub-app per mount.
    const mounts: HttpMount[] = [
      ...admin.mounts,
      createExposureIngestRoute({ store, ingestKey: config.ingestKey, logger: httpLogger, metrics, now: parts.now, priority }),
      // The cache's clock is the real one: a test's frozen `now` must not freeze the flag definitions.
      createOfrepRoute({ store, apiKey: config.ofrepKey, logger: httpLogger, metrics }),
      // The dashboard's static files (dashboard/dist, built by `npm ci`'s prepare) at /admin.
      mountApp(DASHBOARD_PATH, createDashboardApp(config.supabaseAuth ? { supabaseUrl: config.supabaseAuth.url, supabaseAnonKey: config.supabaseAuth.anonKey } : {})),
    ];
    http = await startHttpServer({ port: config.port, host: config.host, health, metrics, logger: httpLogger, mounts });
  } catch (err) {
    await admin?.close();
    await parts.close();
    const code = (err as NodeJS.ErrnoException).code;
    // Blame the setting that is wrong: an address this machine does not have is HOST's fault, a taken or forbidden port is PORT's.
    const hostFault = code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EAI_NONAME';
    const fix = hostFault
      ? `HOST=${config.host} is not an address of this machine: set HOST to one (0.0.0.0: every interface, 127.0.0.1: this machine only)`
      : `PORT=${config.port} cannot be used${code === 'EACCES' ? ' (ports below 1024 need privileges)' : ''}: set PORT to a free port (0 picks one)`;
    throw new GuardianError('CONFIG_INVALID', `cannot listen on ${config.host}:${config.port}${code ? ` (${code})` : ''}: ${fix}`, { cause: err });
  }
  const shutdown = new AbortController();
  const runOnce = async (focus?: ReadonlyMap<string, ReadonlySet<string>>): Promise<CycleReport> => {
    const rules = parts.rules;
    const signal = AbortSignal.any([shutdown.signal, AbortSignal.timeout(Math.max(rules.interval * 3, 30_000))]);
    const report = await priority.during(() =>
      runLeasedCycle({ ...cycleDeps(parts), signal, holder: parts.holder, leaseTtlMs: rules.interval, ...(focus ? { focus } : {}) }),
    );
    scheduleConfirmation(report);
    recordCycleReport(metrics, report);
    lastCycleAt = parts.now();
    if (report.ran) lastCycle = { at: lastCycleAt, durationMs: report.durationMs, ok: report.errors.length === 0 };
    if (report.ran) {
      await blindness.observe(report.sourceReports);
      const acted = report.results.filter((r) => r.action === 'acted' || r.action === 'dry_run').length;
      logger.info(
        { durationMs: report.durationMs, results: report.results.length, acted, errors: report.errors.length },
        `cycle done: ${report.results.length} rule/flag pair(s), ${acted} action(s)`,
      );
      if (acted > 0) outbox.kick();
      // Once this report is let go too (the caller drops it).
      const pairs = report.results.length;
      setImmediate(() => collectAfterCycle(pairs));
    }
    return report;
  };
  const makeScheduler = (intervalMs: number) =>
    new Scheduler({
      intervalMs,
      logger: logger.child({ part: 'scheduler' }) as unknown as CycleLogger,
      run: async () => {
        await runOnce();
      },
    });
  let scheduler = makeScheduler(parts.rules.interval);
  /** A first breaching poll is confirmed `confirm_after` later, not a whole interval later (confirm.ts). */
  function scheduleConfirmation(report: CycleReport): void {
    const focus = confirmationFocus(report);
    const delay = parts.rules.confirm_after ?? DEFAULT_CONFIRM_AFTER_MS;
    if (focus === undefined || delay >= parts.rules.interval || stopping !== undefined) return;
    logger.info({ delayMs: delay, flags: [...focus].map(([source, flags]) => `${source}:${[...flags].join(',')}`) }, 'cycle: condition met once; confirming soon');
    scheduler.soon(delay, async () => {
      await runOnce(focus);
    });
  }
  let stopping: Promise<void> | undefined;

  const reloadRules = async (): Promise<ReloadResult> => {
    const before = parts.rules.interval;
    const result = await parts.reloadRules();
    if (result.ok && result.changed) rulesLoadedAt = parts.now();
    if (result.ok && result.changed && result.rules.interval !== before && stopping === undefined) {
      logger.info({ from: before, to: result.rules.interval }, 'rules: interval changed; rescheduling');
      const old = scheduler;
      scheduler = makeScheduler(result.rules.interval);
      await old.stop();
      if (stopping === undefined) scheduler.start();
    }
    return result;
  };
  // A watched edit or SIGHUP never ends the daemon: whatever a reload throws is logged, the last good rules keep running.
  const reloadSafely = () => void reloadRules().catch((err: unknown) => logger.error({ err }, 'rules reload failed; keeping the last good rules'));
  const watcher = opts.watchRules === false ? undefined : watchRulesFile(config.rulesFile, reloadSafely, logger);
  const onHup = reloadSafely;
  process.on('SIGHUP', onHup);
  // The banner is the sign that the guardian is up (people and tests wait for it): print it only once
  // an edit of the rules file and SIGHUP are heard, so a change made right after it is never missed.
  opts.stdout(await banner(parts, http));

  outbox.start();
  scheduler.start();
  let resolveStopped: () => void = () => {};
  const stopped = new Promise<void>((r) => (resolveStopped = r));
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      logger.info({}, 'guardian: stopping (finishing the cycle in flight)');
      watcher?.close();
      process.off('SIGHUP', onHup);
      await scheduler.stop();
      await outbox.stop();
      await admin?.close();
      await http.close().catch(() => {});
      await store.releaseLease('cycle', parts.holder).catch(() => {});
      await parts.close();
      await parts.telemetry.flush();
      logger.info({}, 'guardian: stopped');
      logger.flush?.();
      resolveStopped();
    })();
    return stopping;
  };
  // Run the first cycle now rather than at the first tick.
  void scheduler.tick();
  return {
    parts,
    http,
    runOnce,
    reloadRules,
    get lastCycleAt() {
      return lastCycleAt;
    },
    stop,
    stopped,
  };
}

/**
 * Exported for `check`: one unleased cycle with the parts. A dry run records no observation and
 * no rule state, so a look never counts towards a real rollback's consecutive breaches.
 */
export function runOneCycle(parts: GuardianParts, dryRun: boolean, signal: AbortSignal): Promise<CycleReport> {
  return runCycle({ ...cycleDeps(parts), dryRun: parts.config.dryRun || dryRun, signal, record: !dryRun });
}
