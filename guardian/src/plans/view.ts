/**
 * A release plan as people read it (`guardian plans`, `GET /api/v1/plans`): the plan from the rules
 * file, the flag's current stage and time in it, and what the guardian last saw of the stage (users,
 * the evidence for safety and for harm, its last action), from the plan's stored state.
 */
import type { Flag, PlanState, PlanStatus } from '../store/types.ts';
import type { Plan } from './schema.ts';

/**
 * One plan as `guardian plans --json` and the admin API show it.
 *
 * @example
 * const view = planView(plan, flag, state, new Date());
 * if (view.safety?.['safe'] === true) console.log(`${view.flag} is shown safe at ${view.percentage}%`);
 */
export interface PlanView {
  readonly flag: string;
  readonly status: PlanStatus | 'not started';
  readonly reason: string | null;
  readonly stages: readonly number[];
  readonly percentage: number | null;
  readonly enabled: boolean | null;
  readonly timeInStageMs: number | null;
  readonly users: number | null;
  readonly minUsers: number | null;
  readonly earliestPromotionAt: string | null;
  readonly safety: Record<string, unknown> | null;
  readonly harm: readonly Record<string, unknown>[];
  readonly assessedAt: string | null;
  readonly lastAction: string | null;
}

/** A finite number from stored JSON, else null. */
export function finiteOrNull(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

/**
 * The view of one plan now.
 *
 * @example
 * const view = planView(plan, flagsByName.get(plan.flag), statesByFlag.get(plan.flag), new Date());
 */
export function planView(plan: Plan, flag: Flag | undefined, state: PlanState | undefined, now: Date): PlanView {
  const r = state?.lastReport ?? null;
  const stage = plan.stages.find((s) => s.percentage === flag?.rolloutPercentage);
  const safety = r !== null && typeof r['safety'] === 'object' && r['safety'] !== null ? (r['safety'] as Record<string, unknown>) : null;
  const harm = r !== null && Array.isArray(r['harm']) ? (r['harm'] as Record<string, unknown>[]) : [];
  return {
    flag: plan.flag,
    status: state?.status ?? 'not started',
    reason: state?.reason ?? null,
    stages: plan.stages.map((s) => s.percentage),
    percentage: flag?.rolloutPercentage ?? null,
    enabled: flag?.enabled ?? null,
    timeInStageMs: flag ? Math.max(0, now.getTime() - flag.stageStartedAt.getTime()) : null,
    users: r === null ? null : finiteOrNull(r['users']),
    minUsers: stage?.minUsers ?? null,
    earliestPromotionAt: flag && stage && stage !== plan.stages[plan.stages.length - 1] ? new Date(flag.stageStartedAt.getTime() + stage.minTimeMs).toISOString() : null,
    safety,
    harm,
    assessedAt: state?.assessedAt?.toISOString() ?? null,
    lastAction: r === null ? null : typeof r['action'] === 'string' ? `${r['action']}: ${String(r['reason'] ?? '')}` : null,
  };
}

/**
 * A person's hand on a plan (`guardian plans pause|resume|abort`, `POST /api/v1/plans/{flag}/…`):
 * the status each sets, the statuses it may be set from, and the event kind that records it.
 *
 * @example
 * const { status, from, kind } = PLAN_CHANGES.pause; // 'paused', ['active'], 'plan_paused'
 */
export const PLAN_CHANGES = {
  pause: { status: 'paused', from: ['active'], kind: 'plan_paused' },
  resume: { status: 'active', from: ['paused', 'stopped'], kind: 'plan_resumed' },
  abort: { status: 'aborted', from: ['active', 'paused', 'stopped'], kind: 'plan_aborted' },
} as const satisfies Record<string, { status: PlanStatus; from: readonly PlanStatus[]; kind: 'plan_paused' | 'plan_resumed' | 'plan_aborted' }>;
