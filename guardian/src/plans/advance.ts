/**
 * The release-plan step of a cycle: for each plan, after the rules have been judged, decide
 * whether its flag's current stage may be promoted, must wait, or the plan must pause or stop —
 * and do it through the store's exactly-once functions. Pure assessment ({@link assessStage})
 * is separate from acting ({@link advancePlans}) so tests and `guardian plans` can use it.
 *
 * Promotion needs all of: the stage's minimum time, its minimum flag-on users, no guard rule in
 * breach or without data this cycle, and the non-inferiority test (flag-on not worse than
 * flag-off by more than the plan's margin) at the plan's confidence over the whole stage. If
 * neither safety nor harm is shown by the stage's maximum time, the plan pauses and the team is
 * told. A change of the flag by anyone but the plan pauses it (the plan never fights a person);
 * a rollback stops it.
 */
import { segmentFinals } from '../decide/decide.ts';
import { mixtureLogE, nonInferiorityLogLRs, SAFETY_MIXTURE } from '../decide/stats.ts';
import type { HistoryPoint, VerdictKind } from '../decide/types.ts';
import { isGuardianError } from '../errors.ts';
import { formatDuration } from '../rules/duration.ts';
import type { Rule } from '../rules/schema.ts';
import type { CohortCounts } from '../sources/types.ts';
import type { Channel, Flag, PlanState, PlanStatus, Store } from '../store/types.ts';
import type { Plan, PlanStage } from './schema.ts';

/** What a guard rule said about the plan's flag this cycle. */
export interface GuardVerdict {
  readonly ruleId: string;
  readonly source: string;
  readonly kind: VerdictKind | 'skipped' | 'failed';
  readonly consecutive: number;
  readonly reason: string;
  /** ln of the harm test's statistic, when it ran. */
  readonly logE?: number;
  /** ln(1/alpha) of that rule. */
  readonly threshold?: number;
}

/** The safety (non-inferiority) evidence of a stage. */
export interface SafetyEvidence {
  readonly source: string;
  readonly unit: 'users' | 'events';
  /** Counts summed over the stage's segments. */
  readonly treatment: CohortCounts;
  readonly control: CohortCounts;
  readonly margin: number;
  readonly alpha: number;
  /** ln of the non-inferiority statistic over the stage; safe when ≥ ln(1/alpha). */
  readonly logE: number;
  readonly threshold: number;
  readonly safe: boolean;
}

/** How a plan's current stage stands (pure: no I/O). */
export interface StageAssessment {
  /** Index of the flag's percentage in the plan's stages; −1 when it is not a stage. */
  readonly index: number;
  readonly stage?: PlanStage;
  readonly next?: PlanStage;
  readonly timeInStageMs: number;
  readonly users: number;
  readonly safety?: SafetyEvidence;
  readonly harm: readonly GuardVerdict[];
  /** Every condition met: promote now. */
  readonly promote: boolean;
  /** Past the stage's max_time without promotion: pause. */
  readonly timedOut: boolean;
  /** The earliest time the stage could be promoted (its min_time), ISO. */
  readonly earliestAt?: string;
  /** Why it is not promoted (or why it is), in words. */
  readonly reason: string;
  /** What still stands in the way of a promotion, one item each (empty when it may be promoted). */
  readonly waitingFor: readonly string[];
}

const plural = (n: number, w: string): string => `${n} ${w}${n === 1 ? '' : 's'}`;

function pct(x: number): string {
  return `${(x * 100).toFixed(2)}%`;
}

/**
 * The safety evidence of a stage from one source's history of the flag (time-ordered points, each
 * tagged with its segment): the final counts of every segment plus the current one, taken
 * together (likelihood ratios multiply over disjoint segments, then mix).
 *
 * @example
 * safetyOf(history, 'posthog', plan); // { safe: true, logE: 4.2, … } or undefined without data
 */
export function safetyOf(history: readonly HistoryPoint[], source: string, plan: Pick<Plan, 'margin' | 'alpha'>): SafetyEvidence | undefined {
  const last = history[history.length - 1];
  if (last === undefined || last.control === undefined) return undefined;
  const points = [...segmentFinals(history).values(), last];
  const logLRs = SAFETY_MIXTURE.map(() => 0);
  const t = { total: 0, errors: 0 };
  const c = { total: 0, errors: 0 };
  for (const p of points) {
    if (p.control === undefined) continue;
    const lr = nonInferiorityLogLRs({ treatmentErrors: p.treatment.errors, treatmentTotal: p.treatment.total, controlErrors: p.control.errors, controlTotal: p.control.total }, plan.margin);
    lr.forEach((v, k) => (logLRs[k]! += v));
    t.total += p.treatment.total;
    t.errors += p.treatment.errors;
    c.total += p.control.total;
    c.errors += p.control.errors;
  }
  const logE = mixtureLogE(logLRs, SAFETY_MIXTURE);
  const threshold = Math.log(1 / plan.alpha);
  return { source, unit: last.unit ?? 'users', treatment: t, control: c, margin: plan.margin, alpha: plan.alpha, logE, threshold, safe: logE >= threshold };
}

/**
 * Assesses a plan's current stage: whether it may be promoted now, must wait (and why), or has
 * run past its maximum time.
 *
 * @example
 * const a = assessStage(plan, flag, history, 'posthog', guards, new Date());
 * if (a.promote) await store.promote({ … });
 */
export function assessStage(plan: Plan, flag: Flag, history: readonly HistoryPoint[], source: string | undefined, harm: readonly GuardVerdict[], at: Date): StageAssessment {
  const index = plan.stages.findIndex((s) => s.percentage === flag.rolloutPercentage);
  const timeInStageMs = Math.max(0, at.getTime() - flag.stageStartedAt.getTime());
  const stage = plan.stages[index];
  const next = plan.stages[index + 1];
  const base = { index, timeInStageMs, harm, users: 0, promote: false, timedOut: false, waitingFor: [] };
  if (stage === undefined) {
    return { ...base, reason: `${flag.name} is at ${flag.rolloutPercentage}%, which is not a stage of its plan (${plan.stages.map((s) => `${s.percentage}%`).join(' → ')})` };
  }
  if (next === undefined) return { ...base, stage, reason: `${flag.name} is at its last stage (${stage.percentage}%): the plan is complete` };
  const safety = source === undefined ? undefined : safetyOf(history, source, plan);
  const users = safety?.treatment.total ?? 0;
  const earliestAt = new Date(flag.stageStartedAt.getTime() + stage.minTimeMs).toISOString();
  const timedOut = timeInStageMs >= stage.maxTimeMs;
  const common = { ...base, stage, next, users, earliestAt, timedOut, ...(safety ? { safety } : {}) };
  const blocking = harm.find((h) => h.kind === 'breach' || h.kind === 'no_data' || h.kind === 'failed' || h.kind === 'skipped');
  const building = harm.find((h) => h.kind === 'healthy' && h.consecutive > 0);
  const why: string[] = [];
  if (timeInStageMs < stage.minTimeMs) why.push(`${formatDuration(timeInStageMs)} in stage of min_time ${formatDuration(stage.minTimeMs)}`);
  if (users < stage.minUsers) why.push(`${users} flag-on users of min_users ${stage.minUsers}`);
  if (blocking) why.push(`guard rule ${blocking.ruleId} says ${blocking.kind}: never promote without a clean guard`);
  else if (building) why.push(`guard rule ${building.ruleId} met its breach condition at ${plural(building.consecutive, 'poll')}`);
  if (safety === undefined) why.push('no flag-on/flag-off counts yet for the safety test');
  else if (!safety.safe) {
    why.push(
      `not yet shown safe: flag-on ${pct(safety.treatment.total ? safety.treatment.errors / safety.treatment.total : 0)} vs flag-off ${pct(safety.control.total ? safety.control.errors / safety.control.total : 0)}, ` +
        `evidence ${Math.exp(safety.logE).toPrecision(3)} of ${Math.exp(safety.threshold).toPrecision(3)} needed (margin ${pct(safety.margin)}, confidence ${1 - safety.alpha})`,
    );
  }
  if (why.length === 0) {
    return {
      ...common,
      promote: true,
      reason:
        `${flag.name} is safe at ${stage.percentage}%: flag-on is not worse than flag-off by ${pct(plan.margin)} (evidence ${Math.exp(safety!.logE).toPrecision(3)} ≥ ${Math.exp(safety!.threshold).toPrecision(3)}, ` +
        `${users} flag-on users, ${formatDuration(timeInStageMs)} in stage): promote to ${next.percentage}%`,
    };
  }
  return { ...common, waitingFor: why, reason: `waiting at ${stage.percentage}%: ${why.join('; ')}` };
}

/** What the plan step did for one plan this cycle. */
export type PlanAction = 'promoted' | 'would_promote' | 'paused' | 'stopped' | 'waiting' | 'completed' | 'inactive' | 'failed';

/** One plan's line in the cycle report. */
export interface PlanReport {
  readonly flag: string;
  readonly status: PlanStatus;
  readonly action: PlanAction;
  readonly reason: string;
  readonly percentage?: number;
  readonly nextPercentage?: number;
  readonly timeInStageMs?: number;
  readonly users?: number;
  readonly minUsers?: number;
  readonly earliestAt?: string;
  readonly safety?: SafetyEvidence;
  readonly harm?: readonly GuardVerdict[];
  readonly eventId?: string;
}

/** What {@link advancePlans} needs from the cycle. */
export interface PlanStepDeps {
  readonly at: Date;
  readonly plans: readonly Plan[];
  readonly rules: readonly Rule[];
  /** Flags as read at the start of the cycle. */
  readonly flags: ReadonlyMap<string, Flag>;
  /** This cycle's guard verdicts by `ruleId \0 flag`. */
  readonly verdicts: ReadonlyMap<string, GuardVerdict>;
  /** Source → flag → the stage's history (points tagged with their segment). */
  readonly histories: ReadonlyMap<string, ReadonlyMap<string, readonly HistoryPoint[]>>;
  /** Flags a rule rolled back this cycle, with the rule id. */
  readonly actedOn: ReadonlyMap<string, string>;
  readonly store: Store;
  readonly channels: readonly Channel[];
  readonly actor: string;
  readonly dryRun: boolean;
  readonly logger: { info(o: Record<string, unknown>, m: string): void; warn(o: Record<string, unknown>, m: string): void; error(o: Record<string, unknown>, m: string): void };
}

/** The source whose counts are the safety evidence: the first relative guard rule's. */
function safetySource(plan: Plan, rules: ReadonlyMap<string, Rule>): string | undefined {
  for (const id of plan.guard) {
    const r = rules.get(id);
    if (r?.condition.kind === 'relative') return r.source;
  }
  return undefined;
}

function errorMessage(err: unknown): string {
  return isGuardianError(err) ? `${err.code}: ${err.message}` : err instanceof Error ? err.message : String(err);
}

/**
 * Runs the plan step for every plan: promotes, pauses, stops or waits, through the store's
 * exactly-once functions. Never throws: a failure stays with its plan.
 *
 * @example
 * const reports = await advancePlans({ at, plans: rules.plans ?? [], rules: rules.rules, flags, verdicts, histories, actedOn, store, channels, actor: 'guardian', dryRun: false, logger });
 */
export async function advancePlans(deps: PlanStepDeps): Promise<PlanReport[]> {
  const ruleById = new Map(deps.rules.map((r) => [r.id, r]));
  let states: Map<string, PlanState>;
  try {
    states = new Map((await deps.store.listPlanStates()).map((s) => [s.flag, s]));
  } catch (err) {
    deps.logger.error({ err }, 'plans: cannot read plan states; no plan advances this cycle');
    return deps.plans.map((p) => ({ flag: p.flag, status: 'active', action: 'failed', reason: `cannot read plan state: ${errorMessage(err)}` }));
  }
  const out: PlanReport[] = [];
  for (const plan of deps.plans) {
    try {
      out.push(await advanceOne(plan, states.get(plan.flag), ruleById, deps));
    } catch (err) {
      deps.logger.error({ err, flag: plan.flag }, 'plans: the plan step failed for this flag; it is tried again next cycle');
      out.push({ flag: plan.flag, status: states.get(plan.flag)?.status ?? 'active', action: 'failed', reason: errorMessage(err) });
    }
  }
  return out;
}

async function advanceOne(plan: Plan, stored: PlanState | undefined, rules: ReadonlyMap<string, Rule>, deps: PlanStepDeps): Promise<PlanReport> {
  try {
    return await advanceChecked(plan, stored, rules, deps);
  } catch (err) {
    if (!isGuardianError(err, 'STORE_CONFLICT')) throw err;
    // Another replica (or a person) moved the flag or the plan between our reads and our write.
    deps.logger.info({ flag: plan.flag, err }, 'plans: the flag or plan moved on meanwhile; re-assessed next cycle');
    return { flag: plan.flag, status: stored?.status ?? 'active', action: 'waiting', reason: `not acted on: ${errorMessage(err)}; re-assessed next cycle` };
  }
}

async function advanceChecked(plan: Plan, stored: PlanState | undefined, rules: ReadonlyMap<string, Rule>, deps: PlanStepDeps): Promise<PlanReport> {
  let flag = deps.flags.get(plan.flag);
  if (!flag) return { flag: plan.flag, status: stored?.status ?? 'active', action: 'inactive', reason: `flag ${plan.flag} does not exist in the database` };
  const state = stored ?? (await deps.store.syncPlan(plan.flag, deps.actor));
  const base = { flag: plan.flag, percentage: flag.rolloutPercentage };
  if (state.status !== 'active') {
    return { ...base, status: state.status, action: 'inactive', reason: state.reason ?? `the plan is ${state.status}` };
  }

  // A rule rolled the flag back (this cycle or earlier): the plan stops; the rollback alerted.
  const rolledBy = deps.actedOn.get(plan.flag);
  if (rolledBy !== undefined || flag.guardState === 'rolled_back') {
    const reason = rolledBy !== undefined ? `rolled back by rule ${rolledBy}: the release stops (restore and resume it by hand)` : `${plan.flag} is rolled back: the release stops`;
    const { plan: s } = await deps.store.setPlanStatus({ flag: plan.flag, status: 'stopped', reason, actor: deps.actor, expectedStatus: ['active'] });
    deps.logger.warn({ flag: plan.flag }, `plan stopped: ${reason}`);
    return { ...base, status: s.status, action: 'stopped', reason };
  }

  // The flags were read at the start of the cycle; a racing replica's promotion may be newer.
  if (state.flagVersion > flag.version) flag = (await deps.store.getFlag(plan.flag)) ?? flag;
  const running = flag.enabled && flag.guardState === 'watching';
  if (state.flagVersion !== flag.version) {
    if (state.running) {
      // Someone else changed the flag while the plan ran: pause, never fight a person.
      const reason =
        `${plan.flag} was changed by ${flag.updatedBy ?? 'someone'} (version ${state.flagVersion} → ${flag.version}) while its release plan ran: ` +
        `the plan is paused and never fights a person; \`guardian plans resume ${plan.flag}\` continues from the flag's current state`;
      return { ...base, ...(await pausePlan(deps, plan, flag, { cause: 'manual_change', reason, evidence: { from_version: state.flagVersion, to_version: flag.version }, expectedFlagVersion: state.flagVersion })) };
    }
    // Waiting for its first enable (or a lock to lift): adopt the change.
    await deps.store.setPlanStatus({ flag: plan.flag, status: 'active', reason: '', actor: deps.actor, expectedStatus: ['active'], expectedFlagVersion: state.flagVersion });
  }
  if (!running) {
    const why = !flag.enabled ? `${plan.flag} is disabled: enable it at the plan's first stage (${plan.stages[0]!.percentage}%) to start the release` : `${plan.flag} is ${flag.guardState}: the plan waits`;
    return { ...base, status: 'active', action: 'waiting', reason: why };
  }

  const harm = plan.guard.map((id): GuardVerdict => deps.verdicts.get(`${id}\u0000${plan.flag}`) ?? { ruleId: id, source: rules.get(id)?.source ?? '?', kind: 'skipped', consecutive: 0, reason: 'not judged this cycle' });
  const source = safetySource(plan, rules);
  const history = source === undefined ? [] : (deps.histories.get(source)?.get(plan.flag) ?? []);
  const a = assessStage(plan, flag, history, source, harm, deps.at);
  const report = {
    ...base,
    status: 'active' as const,
    ...(a.next ? { nextPercentage: a.next.percentage } : {}),
    timeInStageMs: a.timeInStageMs,
    users: a.users,
    ...(a.stage ? { minUsers: a.stage.minUsers } : {}),
    ...(a.earliestAt ? { earliestAt: a.earliestAt } : {}),
    ...(a.safety ? { safety: a.safety } : {}),
    harm,
  };
  if (a.index === -1) {
    return { ...report, ...(await pausePlan(deps, plan, flag, { cause: 'not_a_stage', reason: a.reason, evidence: { percentage: flag.rolloutPercentage } })) };
  }
  if (a.next === undefined) {
    const { plan: s } = await deps.store.setPlanStatus({ flag: plan.flag, status: 'completed', reason: 'reached its last stage', actor: deps.actor, expectedStatus: ['active'] });
    return { ...report, status: s.status, action: 'completed', reason: a.reason };
  }
  const evidence = planEvidence(plan, a);
  if (a.promote) {
    if (deps.dryRun) return { ...report, action: 'would_promote', reason: `dry run: ${a.reason}` };
    const final = a.index + 1 === plan.stages.length - 1;
    {
      const event = await deps.store.promote({
        flag: plan.flag,
        from: a.stage!.percentage,
        to: a.next.percentage,
        expectedVersion: flag.version,
        final,
        evidence,
        reason: a.reason,
        actor: deps.actor,
        idempotencyKey: `promote:${plan.flag}:${flag.version}:${a.stage!.percentage}`,
        channels: deps.channels,
      });
      deps.logger.info({ flag: plan.flag, eventId: event.id, from: a.stage!.percentage, to: a.next.percentage }, `plan: ${a.reason}`);
      return { ...report, status: final ? 'completed' : 'active', action: final ? 'completed' : 'promoted', reason: a.reason, eventId: event.id, percentage: a.next.percentage };
    }
  }
  if (a.timedOut) {
    const reason = `${plan.flag} spent ${formatDuration(a.timeInStageMs)} at ${a.stage!.percentage}% (max_time ${formatDuration(a.stage!.maxTimeMs)}) without evidence either way — ${a.waitingFor.join('; ')}. The plan is paused: it never promotes on a hunch; \`guardian plans resume ${plan.flag}\` gives the stage another max_time`;
    return { ...report, ...(await pausePlan(deps, plan, flag, { cause: 'max_time', reason, evidence })) };
  }
  return { ...report, action: 'waiting', reason: a.reason };
}

/**
 * Pauses a plan and tells the team, once per cause and flag version (the event's idempotency key):
 * a person's change, a percentage that is not a stage, or a stage past its max_time.
 */
async function pausePlan(
  deps: PlanStepDeps,
  plan: Plan,
  flag: Flag,
  pause: { readonly cause: string; readonly reason: string; readonly evidence: Readonly<Record<string, unknown>>; readonly expectedFlagVersion?: number },
): Promise<Pick<PlanReport, 'status' | 'action' | 'reason' | 'eventId'>> {
  const { plan: s, event } = await deps.store.setPlanStatus({
    flag: plan.flag,
    status: 'paused',
    reason: pause.reason,
    actor: deps.actor,
    expectedStatus: ['active'],
    ...(pause.expectedFlagVersion === undefined ? {} : { expectedFlagVersion: pause.expectedFlagVersion }),
    event: { kind: 'plan_paused', idempotencyKey: `plan_paused:${plan.flag}:${flag.version}:${pause.cause}`, channels: deps.channels, evidence: { ...pause.evidence, cause: pause.cause } },
  });
  deps.logger.warn({ flag: plan.flag, eventId: event?.id }, `plan paused: ${pause.reason}`);
  return { status: s.status, action: 'paused', reason: pause.reason, ...(event ? { eventId: event.id } : {}) };
}

/** The evidence stored with a promote or pause event (JSON, shown in alerts). */
function planEvidence(plan: Plan, a: StageAssessment): Record<string, unknown> {
  const s = a.safety;
  return {
    condition: 'non_inferiority',
    statistic: 'rate_ratio_mixture_sprt',
    stage: a.stage?.percentage,
    next_stage: a.next?.percentage,
    time_in_stage_ms: a.timeInStageMs,
    min_time_ms: a.stage?.minTimeMs,
    min_users: a.stage?.minUsers,
    margin: plan.margin,
    alpha: plan.alpha,
    ...(s
      ? {
          source: s.source,
          unit: s.unit,
          treatment: { total: s.treatment.total, errors: s.treatment.errors, rate: s.treatment.total ? s.treatment.errors / s.treatment.total : 0 },
          control: { total: s.control.total, errors: s.control.errors, rate: s.control.total ? s.control.errors / s.control.total : 0 },
          log_e_value: s.logE,
        }
      : {}),
    guards: a.harm.map((h) => ({ rule: h.ruleId, verdict: h.kind, consecutive: h.consecutive })),
  };
}

/**
 * A plan report as stored JSON (what `guardian plans` and the admin API read back).
 *
 * @example
 * await store.savePlanReports(reports.map((r) => ({ flag: r.flag, report: planReportJson(r) })), at);
 */
export function planReportJson(r: PlanReport): Record<string, unknown> {
  return JSON.parse(JSON.stringify(r)) as Record<string, unknown>;
}
