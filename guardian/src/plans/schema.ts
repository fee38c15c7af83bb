/**
 * Release plans in the rules file (`plans:`): the guardian walks a flag through its stages
 * (e.g. 10 → 50 → 100) by itself, promoting a stage only on evidence of safety. The schema lives
 * with the rest of the rules file's (`PlanInputSchema` in rules/schema.ts); this is the resolved shape.
 *
 * @example
 * plans:
 *   - flag: ai_beta_users
 *     stages: [10, 50, 100]
 *     min_time: 1h
 *     max_time: 24h
 *     min_users: 500
 *     guard: [ai-stage-regression]
 *     on_breach: step_back
 *     margin: 0.005
 */

/** A resolved stage: every field present, durations in ms. */
export interface PlanStage {
  readonly percentage: number;
  readonly minTimeMs: number;
  readonly maxTimeMs: number;
  readonly minUsers: number;
}

/** A resolved plan: what the guardian runs. */
export interface Plan {
  readonly flag: string;
  readonly stages: readonly PlanStage[];
  readonly guard: readonly string[];
  readonly onBreach: 'disable' | 'step_back';
  readonly margin: number;
  /** 1 − confidence. */
  readonly alpha: number;
  readonly expectedUsersPerMinute?: number;
}
