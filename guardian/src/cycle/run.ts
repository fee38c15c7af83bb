/**
 * The guardian's one unit of work: poll sources → decide per rule and flag → act → persist.
 * Scheduling lives elsewhere (`scheduler.ts`); tests call this directly with an injected clock,
 * store, sources and logger.
 */
import { decide as defaultDecide } from '../decide/decide.ts';
import type { HistoryPoint, Verdict } from '../decide/types.ts';
import { isGuardianError } from '../errors.ts';
import { advancePlans, planReportJson, type GuardVerdict, type PlanReport } from '../plans/advance.ts';
import type { Plan } from '../plans/schema.ts';
import type { Rule, RulesConfig } from '../rules/schema.ts';
import { DEFAULT_STAGES } from '../rules/schema.ts';
import type { FlagObservation, FlagQuery, MetricSource, SourceReport } from '../sources/types.ts';
import { checkAgainstPrevious, checkObservation, type PreviousCounts } from '../sources/validate.ts';
import type { Channel, Flag, Observation, RuleState } from '../store/types.ts';
import type { CycleDeps, CycleReport, RuleFlagResult, SourceSummary } from './types.ts';

const DEFAULT_SOURCE_TIMEOUT_MS = 20_000;
const DEFAULT_RETENTION_MS = 7 * 86_400_000;

/**
 * The channels a rules file's `notify` section configures (a Slack webhook URL that is set, an
 * email recipient that is not empty). With the environment's settings (`env`), email counts only
 * when it can be delivered: a recipient, a sender (`notify.email.from` or EMAIL_FROM) and
 * SMTP_URL all set, as the notifier factory requires, so no outbox row is written for a channel
 * nobody will ever send.
 *
 * @example
 * channelsFromNotify(rules.notify); // ['slack', 'email']
 * channelsFromNotify(rules.notify, { smtpUrl: undefined, emailFrom: undefined }); // ['slack']
 */
export function channelsFromNotify(notify: RulesConfig['notify'], env?: { readonly smtpUrl?: string | undefined; readonly emailFrom?: string | undefined }): Channel[] {
  const out: Channel[] = [];
  if (notify.slack && notify.slack.webhook_url !== '') out.push('slack');
  const email = notify.email;
  if (email && email.to.some((a) => a !== '') && (env === undefined || (env.smtpUrl !== undefined && (email.from ?? env.emailFrom) !== undefined))) out.push('email');
  return out;
}

/**
 * The idempotency key of an automatic action: the same breach of the same rule on the same
 * flag version acts once, whichever replica or retry gets there.
 *
 * @example
 * idempotencyKey('booking-agent-errors', flag, false); // 'booking-agent-errors:booking_agent_enabled:7'
 */
export function idempotencyKey(ruleId: string, flag: Pick<Flag, 'name' | 'version'>, dryRun: boolean): string {
  return `${dryRun ? 'dry_run:' : ''}${ruleId}:${flag.name}:${flag.version}`;
}

function errorInfo(err: unknown): { code: string; message: string } {
  if (isGuardianError(err)) return { code: err.code, message: err.message };
  return { code: 'INTERNAL', message: err instanceof Error ? err.message : String(err) };
}

interface Watch {
  readonly rule: Rule;
  readonly flag: Flag;
}

/**
 * Runs one cycle and returns what it saw and did. Never throws for a bad source, rule or flag
 * (those become per-pair errors); a store that cannot be read at the start makes the report's
 * `errors` non-empty and nothing is judged.
 *
 * @example
 * const report = await runCycle({ now: () => new Date(), store, sources, rules, logger, signal });
 * for (const r of report.results) console.log(r.ruleId, r.flag, r.verdict?.kind, r.action, r.eventId);
 */
export async function runCycle(deps: CycleDeps): Promise<CycleReport> {
  const at = deps.now();
  const started = Date.now();
  const decide = deps.decide ?? defaultDecide;
  const globalDryRun = deps.rules.dry_run || deps.dryRun === true;
  const channels = deps.channels ?? channelsFromNotify(deps.rules.notify);
  const actor = deps.actor ?? 'guardian';
  const results: RuleFlagResult[] = [];
  const summaries: SourceSummary[] = [];
  const sourceReports: SourceReport[] = [];
  const errors: { code: string; message: string }[] = [];
  let plans: PlanReport[] = [];
  const finish = (): CycleReport => {
    const durationMs = Date.now() - started;
    deps.metrics?.cycle(durationMs, errors.length === 0);
    return { at, durationMs, ran: true, dryRun: globalDryRun, results, sources: summaries, sourceReports, errors, ...(plans.length > 0 ? { plans } : {}) };
  };

  let flags: Flag[];
  let states: RuleState[];
  try {
    // Only the counters of the rule state are read here (its evidence is written, never read back).
    [flags, states] = await Promise.all([deps.store.listFlags(), deps.store.loadRuleState({ evidence: false })]);
  } catch (err) {
    const info = errorInfo(err);
    errors.push(info);
    deps.logger.error({ err, code: info.code }, 'cycle: cannot read flags and rule state; nothing judged this cycle');
    return finish();
  }
  const flagByName = new Map(flags.map((f) => [f.name, f]));
  // Rule → flag → state: two lookups of existing strings instead of a key built per pair.
  const stateByRule = new Map<string, Map<string, RuleState>>();
  for (const s of states) {
    let byFlag = stateByRule.get(s.ruleId);
    if (!byFlag) stateByRule.set(s.ruleId, (byFlag = new Map()));
    byFlag.set(s.flag, s);
  }

  // Which (rule, flag) pairs are judged; the rest are reported as skipped.
  const watches: Watch[] = [];
  for (const rule of deps.rules.rules) {
    const focused = deps.focus?.get(rule.source);
    if (deps.focus !== undefined && focused === undefined) continue;
    for (const name of rule.flags) {
      if (focused !== undefined && !focused.has(name)) continue;
      const flag = flagByName.get(name);
      const skip = (why: string): void => {
        results.push({ ruleId: rule.id, flag: name, source: rule.source, action: 'skipped', skipped: why });
      };
      if (!flag) skip(`flag "${name}" does not exist in the database`);
      else if (flag.guardState !== 'watching') skip(`flag is ${flag.guardState}: the guardian does not act on it`);
      else if (!flag.enabled) skip('flag is disabled: no flag-on users to watch');
      else if (!deps.sources.has(rule.source)) skip(`source "${rule.source}" is not configured (see the rules file's sources and the environment)`);
      else watches.push({ rule, flag });
    }
  }

  // Poll each source ONCE for all of its flags, in parallel.
  const watchesBySource = groupBySource(watches);
  const polls = await Promise.all(
    [...watchesBySource].map(async ([sourceId, list]) => {
      const source = deps.sources.get(sourceId) as MetricSource;
      const segments = currentSegments(list, at);
      const queries = flagQueries(segments);
      const report = await pollSource(source, queries, deps, at);
      return { sourceId, segments, queries, report };
    }),
  );

  // What decide needs of each flag's current stage (one query per source): the last polls of the
  // current segment (as many as the longest breach run of the source's rules: this poll makes
  // the run's last), the last poll of each earlier segment, and how many polls were left out
  // (the evidence counts them). Read before this poll is stored, so the poll can be checked
  // against the last stored poll of its segment (sources/validate.ts).
  const histories = new Map<string, Map<string, HistoryPoint[]>>();
  const omitted = new Map<string, Map<string, number>>();
  for (const { sourceId, segments } of polls) {
    const queries = [...segments.values()].map((s) => ({ flag: s.flag.name, stageStartedAt: s.flag.stageStartedAt, segmentSince: s.since }));
    const found = new Map<string, HistoryPoint[]>();
    const left = new Map<string, number>();
    try {
      for (const [flag, t] of await deps.store.observationTail(sourceId, queries, tailOf(watchesBySource.get(sourceId) ?? []))) {
        found.set(flag, t.points);
        if (t.omitted > 0) left.set(flag, t.omitted);
      }
    } catch (err) {
      deps.logger.error({ err, source: sourceId }, 'cycle: could not read observation history');
    }
    histories.set(sourceId, found);
    omitted.set(sourceId, left);
  }

  const observations: Observation[] = [];
  const latestBySource = new Map<string, Map<string, FlagObservation>>();
  for (const { sourceId, segments, queries, report } of polls) {
    sourceReports.push(report);
    const latest = new Map<string, FlagObservation>();
    const noDataReasons: Record<string, string> = {};
    let ok = 0;
    for (const raw of report.observations) {
      const segment = segments.get(raw.flag);
      const obs = checkAgainstPrevious(checkObservation(raw), segment && lastOfSegment(histories.get(sourceId)?.get(raw.flag), segment.since));
      if (obs !== raw && obs.status === 'no_data') deps.logger.warn({ source: sourceId, flag: obs.flag, reason: obs.reason }, `cycle: ${sourceId} answer for ${obs.flag} rejected: ${obs.detail ?? obs.reason}`);
      latest.set(obs.flag, obs);
      const flag = flagByName.get(obs.flag);
      if (obs.status === 'ok' && flag) {
        ok++;
        observations.push({
          source: sourceId,
          flag: obs.flag,
          stageStartedAt: flag.stageStartedAt,
          since: segment?.since ?? flag.stageStartedAt,
          at,
          unit: obs.unit,
          treatment: obs.treatment,
          ...(obs.control ? { control: obs.control } : {}),
        });
      } else if (obs.status === 'no_data') {
        noDataReasons[obs.flag] = obs.reason;
        deps.metrics?.sourceError(sourceId, obs.reason);
      }
    }
    for (const q of queries) {
      if (!latest.has(q.flag)) {
        latest.set(q.flag, { flag: q.flag, status: 'no_data', reason: 'empty', detail: 'the source returned nothing for this flag' });
        noDataReasons[q.flag] = 'empty';
      }
    }
    latestBySource.set(sourceId, latest);
    summaries.push({
      source: sourceId,
      flags: queries.length,
      ok,
      noData: queries.length - ok,
      requests: report.requests,
      ...(report.error ? { error: report.error } : {}),
      noDataReasons,
    });
  }
  const record = deps.record !== false;
  let stored = !record;
  try {
    if (record) await deps.store.appendObservations(observations);
    stored = true;
  } catch (err) {
    const info = errorInfo(err);
    errors.push(info);
    deps.logger.error({ err, code: info.code }, 'cycle: could not store observations; judging on what is stored');
  }

  // This poll joins the history it was checked against (stored, or not recorded: a one-off look
  // judges on the stored history plus what it sees now); each point is tagged with its segment.
  for (const { sourceId, segments } of polls) {
    const found = histories.get(sourceId)!;
    if (stored) {
      for (const o of observations) {
        if (o.source !== sourceId) continue;
        const point: HistoryPoint = { at: o.at, unit: o.unit, treatment: o.treatment, ...(o.control ? { control: o.control } : {}), ...(o.since ? { since: o.since } : {}) };
        const list = found.get(o.flag);
        if (list) list.push(point);
        else found.set(o.flag, [point]);
      }
    }
    for (const { flag, window } of segments.values()) {
      const points = found.get(flag.name);
      if (points) found.set(flag.name, points.map((p) => ({ ...p, segment: segmentIndex(flag.stageStartedAt, window, p.since) })));
    }
  }

  const segmentsBySource = new Map(polls.map((p) => [p.sourceId, p.segments]));

  const planByFlag = new Map<string, Plan>((deps.rules.plans ?? []).map((p) => [p.flag, p]));

  // Decide and act, one (rule, flag) pair at a time; a failure stays with its pair.
  const newStates: Omit<RuleState, 'updatedAt'>[] = [];
  const actedOn = new Map<string, string>();
  for (const w of watches) {
    const { rule, flag } = w;
    const base = { ruleId: rule.id, flag: flag.name, source: rule.source };
    const log = { rule: rule.id, flag: flag.name, source: rule.source };
    const previous = stateByRule.get(rule.id)?.get(flag.name);
    const already = actedOn.get(flag.name);
    if (already !== undefined) {
      results.push({ ...base, action: 'skipped', skipped: `rule ${already} already rolled this flag back in this cycle` });
      continue;
    }
    const latest = latestBySource.get(rule.source)?.get(flag.name);
    let verdict: Verdict;
    try {
      if (latest?.status === 'no_data') {
        verdict = {
          kind: 'no_data',
          ruleId: rule.id,
          flag: flag.name,
          consecutive: previous?.consecutiveBreaches ?? 0,
          reason: `No data from ${rule.source} for ${flag.name} this cycle (${latest.reason}${latest.detail ? `: ${latest.detail}` : ''}); missing data is never a breach.`,
        };
      } else {
        // The segments are those the source was asked for: the longest window of the flag's rules on that source.
        const window = segmentsBySource.get(rule.source)?.get(flag.name)?.window ?? rule.window;
        const history = histories.get(rule.source)?.get(flag.name) ?? [];
        const left = omitted.get(rule.source)?.get(flag.name);
        verdict = decide(window === rule.window ? rule : { ...rule, window }, history, flag.name, left === undefined ? undefined : { polls: history.length + left });
      }
    } catch (err) {
      const info = errorInfo(err);
      deps.logger.error({ ...log, err }, 'cycle: rule failed to decide');
      results.push({ ...base, action: 'failed', error: info });
      continue;
    }
    deps.metrics?.verdict(rule.id, verdict.kind);
    // A pair its source did not ask this cycle (requests per cycle are bounded and flags take turns)
    // keeps its stored judgement, evidence and time: not being asked is no news about the flag.
    // Rewriting it as "no data" each cycle hid the last real verdict (at 10,000 Sentry-watched
    // flags, from all but a few) and wrote thousands of rows a cycle that said nothing.
    const unasked = latest?.status === 'no_data' && latest.reason === 'deferred' && previous !== undefined;
    if (!unasked) {
      newStates.push({
        ruleId: rule.id,
        flag: flag.name,
        consecutiveBreaches: verdict.consecutive,
        lastVerdict: verdict.kind,
        lastEvidence: verdict.evidence ? { ...verdict.evidence, reason: verdict.reason } : { reason: verdict.reason },
      });
    }
    const summary = { kind: verdict.kind, reason: verdict.reason, consecutive: verdict.consecutive, ...(verdict.evidence ? { evidence: verdict.evidence } : {}) };
    if (verdict.kind !== 'breach') {
      deps.logger.debug({ ...log, verdict: verdict.kind, consecutive: verdict.consecutive }, verdict.reason);
      results.push({ ...base, verdict: summary, action: 'none' });
      continue;
    }

    const dryRun = globalDryRun || rule.dry_run;
    // A guard rule of the flag's release plan acts as the plan says (its stages for step_back).
    const plan = planByFlag.get(flag.name);
    const guarded = plan !== undefined && plan.guard.includes(rule.id);
    const ruleAction = guarded ? plan.onBreach : rule.action;
    const stages = guarded ? plan.stages.map((st) => st.percentage) : (rule.stages ?? DEFAULT_STAGES);
    try {
      const event = await deps.store.rollback({
        flag: flag.name,
        action: ruleAction,
        ruleId: rule.id,
        source: rule.source,
        evidence: { ...(verdict.evidence ?? {}), rule: rule.id, consecutive: verdict.consecutive, flag_version: flag.version },
        actor,
        idempotencyKey: idempotencyKey(rule.id, flag, dryRun),
        channels,
        dryRun,
        reason: verdict.reason,
        kind: 'auto_rollback',
        ...(ruleAction === 'step_back' ? { stages } : {}),
        // The flag's own message wins; the rule's default is set only when it has none (in SQL, under the row lock).
        ...(rule.rollback_message !== undefined ? { message: rule.rollback_message } : {}),
        ...(rule.urgent === true ? { urgent: true } : {}),
      });
      deps.metrics?.action(rule.id, ruleAction, dryRun);
      if (!dryRun && ruleAction !== 'notify_only') actedOn.set(flag.name, rule.id);
      deps.logger.warn(
        { ...log, action: ruleAction, dryRun, eventId: event.id, previous: event.previousState, next: event.newState },
        dryRun ? `dry run: would ${ruleAction} ${flag.name}` : `${ruleAction} of ${flag.name}: ${verdict.reason}`,
      );
      results.push({ ...base, verdict: summary, action: dryRun ? 'dry_run' : 'acted', ruleAction, eventId: event.id });
    } catch (err) {
      const info = errorInfo(err);
      if (isGuardianError(err, 'STORE_CONFLICT')) {
        // Someone (a person, another rule on another replica) changed the flag's guard state first.
        deps.logger.info({ ...log, err }, 'cycle: breach, but the flag is no longer watched; not acting');
        results.push({ ...base, verdict: summary, action: 'skipped', skipped: info.message });
      } else {
        deps.logger.error({ ...log, err }, 'cycle: breach, but the rollback failed; it is retried next cycle with the same idempotency key');
        results.push({ ...base, verdict: summary, action: 'failed', ruleAction, error: info });
      }
    }
  }

  // Release plans: promote, wait, pause or stop, on what the rules just saw.
  if (planByFlag.size > 0) {
    plans = await advancePlans({
      at,
      plans: [...planByFlag.values()],
      rules: deps.rules.rules,
      flags: flagByName,
      verdicts: guardVerdicts(results),
      histories,
      actedOn,
      store: deps.store,
      channels,
      actor,
      dryRun: globalDryRun || deps.record === false,
      logger: deps.logger,
    });
    try {
      if (deps.record !== false) await deps.store.savePlanReports(plans.map((p) => ({ flag: p.flag, report: planReportJson(p) })), at);
    } catch (err) {
      deps.logger.warn({ err }, 'cycle: could not save the plans\' assessments');
    }
  }

  try {
    if (deps.record !== false) await deps.store.saveRuleState(newStates, at);
  } catch (err) {
    const info = errorInfo(err);
    errors.push(info);
    deps.logger.error({ err }, 'cycle: could not save rule state');
  }
  try {
    if (deps.focus === undefined) await deps.store.pruneObservations(new Date(at.getTime() - (deps.observationRetentionMs ?? DEFAULT_RETENTION_MS)));
  } catch (err) {
    deps.logger.warn({ err }, 'cycle: could not prune old observations');
  }
  return finish();
}

/**
 * How many of the current segment's last polls a source's history read keeps: the longest breach
 * run (`consecutive`) of its rules, whose last poll is this cycle's (at least 1: the last stored
 * poll, which this poll is checked against).
 */
function tailOf(watches: readonly Watch[]): number {
  let tail = 1;
  for (const w of watches) if (w.rule.consecutive > tail) tail = w.rule.consecutive;
  return tail;
}

/** The watches of each source, in order: one pass, appended in place (linear in the watches). */
function groupBySource(watches: readonly Watch[]): Map<string, Watch[]> {
  const bySource = new Map<string, Watch[]>();
  for (const w of watches) {
    const list = bySource.get(w.rule.source);
    if (list) list.push(w);
    else bySource.set(w.rule.source, [w]);
  }
  return bySource;
}

/**
 * Start of the segment of a stage that `at` falls in: stage start + k × window, k ≥ 0.
 *
 * @example
 * segmentStart(new Date('2026-01-01T10:00Z'), 3_600_000, new Date('2026-01-01T12:30Z')); // 12:00
 */
export function segmentStart(stageStartedAt: Date, window: number, at: Date): Date {
  const age = at.getTime() - stageStartedAt.getTime();
  if (!(window > 0) || age <= 0) return stageStartedAt;
  return new Date(stageStartedAt.getTime() + Math.floor(age / window) * window);
}

/** The last stored poll of the segment that starts at `since` (undefined when there is none). */
function lastOfSegment(points: readonly HistoryPoint[] | undefined, since: Date): PreviousCounts | undefined {
  if (!points) return undefined;
  for (let i = points.length - 1; i >= 0; i--) {
    const p = points[i]!;
    if (p.since !== undefined && p.since.getTime() === since.getTime()) return p;
  }
  return undefined;
}

/**
 * Which segment a span starting at `since` is (0 when unknown: rows from before segments).
 *
 * @example
 * segmentIndex(new Date('2026-01-01T10:00Z'), 3_600_000, new Date('2026-01-01T12:00Z')); // 2
 */
export function segmentIndex(stageStartedAt: Date, window: number, since: Date | undefined): number {
  if (since === undefined || !(window > 0)) return 0;
  return Math.max(0, Math.round((since.getTime() - stageStartedAt.getTime()) / window));
}

/** A watched flag's current segment on one source: the flag, the segment length and its start. */
interface Segment {
  readonly flag: Flag;
  /** The longest window of the flag's rules on this source. */
  readonly window: number;
  readonly since: Date;
  /** Every rule on the flag and source is relative. */
  readonly relativeOnly: boolean;
}

/** Per flag of one source's watches: its segment now (the longest window of its rules there). */
function currentSegments(list: readonly Watch[], at: Date): Map<string, Segment> {
  const byFlag = new Map<string, { flag: Flag; window: number; relativeOnly: boolean }>();
  for (const w of list) {
    const prev = byFlag.get(w.flag.name);
    const relative = w.rule.condition.kind === 'relative';
    if (prev) {
      prev.window = Math.max(prev.window, w.rule.window);
      prev.relativeOnly = prev.relativeOnly && relative;
    } else byFlag.set(w.flag.name, { flag: w.flag, window: Math.max(0, w.rule.window), relativeOnly: relative });
  }
  const out = new Map<string, Segment>();
  for (const [name, s] of byFlag) out.set(name, { flag: s.flag, window: s.window, relativeOnly: s.relativeOnly, since: segmentStart(s.flag.stageStartedAt, s.window, at) });
  return out;
}

/**
 * One query per flag: since = the start of its current segment; its target list to leave out when
 * its rules there are all relative (a comparison needs randomised cohorts, but an absolute ceiling
 * is about every flag-on user, and a flag on for its targets only must still be watched).
 */
function flagQueries(segments: ReadonlyMap<string, Segment>): FlagQuery[] {
  return [...segments.values()].map((s) => ({
    flag: s.flag.name,
    since: s.since,
    ...(s.relativeOnly && s.flag.targets.length > 0 ? { excludeUsers: s.flag.targets } : {}),
  }));
}

/** Polls a source with a deadline; a source that throws (it should not) becomes all `no_data`. */
async function pollSource(source: MetricSource, queries: readonly FlagQuery[], deps: CycleDeps, at: Date): Promise<SourceReport> {
  const signal = AbortSignal.any([deps.signal, AbortSignal.timeout(deps.sourceTimeoutMs ?? DEFAULT_SOURCE_TIMEOUT_MS)]);
  try {
    return await source.query(queries, signal);
  } catch (err) {
    const info = isGuardianError(err) ? { code: err.code, message: err.message } : { code: 'SOURCE_UNAVAILABLE', message: err instanceof Error ? err.message : String(err) };
    deps.logger.error({ source: source.id, err }, 'cycle: source failed outside its boundary; every flag is no_data this cycle');
    return {
      source: source.id,
      at,
      requests: 0,
      error: info,
      observations: queries.map((q) => ({ flag: q.flag, status: 'no_data' as const, reason: 'unavailable', detail: info.message })),
    };
  }
}

/** This cycle's verdict of every (rule, flag) pair, as the plan step reads them. */
function guardVerdicts(results: readonly RuleFlagResult[]): Map<string, GuardVerdict> {
  const out = new Map<string, GuardVerdict>();
  for (const r of results) {
    const v = r.verdict;
    const alpha = v?.evidence?.alpha;
    out.set(`${r.ruleId}\u0000${r.flag}`, {
      ruleId: r.ruleId,
      source: r.source,
      kind: v?.kind ?? (r.action === 'failed' ? 'failed' : 'skipped'),
      consecutive: v?.consecutive ?? 0,
      reason: v?.reason ?? r.skipped ?? r.error?.message ?? '',
      ...(v?.evidence?.log_e_value === undefined ? {} : { logE: v.evidence.log_e_value }),
      ...(alpha === undefined ? {} : { threshold: Math.log(1 / alpha) }),
    });
  }
  return out;
}
