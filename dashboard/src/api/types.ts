/**
 * The admin API's shapes (docs: /work/notes/admin-api-contract.md, served as OpenAPI 3.1 at
 * /api/v1/openapi.json). The dashboard reads nothing else.
 */
export type Role = 'viewer' | 'editor' | 'admin';
export type GuardState = 'watching' | 'rolled_back' | 'locked';

export interface Me {
  readonly actor: string;
  readonly role: Role;
  readonly via: 'supabase' | 'admin_token';
}

export interface Counts {
  readonly errors: number;
  readonly total: number;
  readonly unit: string;
}

export interface Verdict {
  readonly ruleId: string;
  /** null when the rule is no longer in the rules file. */
  readonly source: string | null;
  readonly verdict: string;
  readonly at: string;
  readonly summary: string;
  readonly treatment: Counts | null;
  readonly control: Counts | null;
  readonly threshold: number | null;
  readonly flag?: string;
}

export interface StateSnapshot {
  readonly enabled?: boolean;
  readonly rolloutPercentage?: number;
  readonly targets?: readonly string[] | { readonly count: number };
  readonly guardState?: GuardState;
  readonly [key: string]: unknown;
}

export interface Notification {
  readonly channel: string;
  readonly status: string;
  readonly attempts: number;
  readonly deliveredAt: string | null;
  readonly lastError: string | null;
}

export type EventKind = 'auto_rollback' | 'manual_rollback' | 'restore' | 'dry_run' | 'promote';

export interface RollbackEvent {
  readonly id: string;
  readonly flag: string;
  readonly kind: EventKind | string;
  readonly ruleId: string | null;
  readonly source: string | null;
  readonly action: string | null;
  readonly reason: string | null;
  readonly evidence: Readonly<Record<string, unknown>> | null;
  readonly previousState: StateSnapshot | null;
  readonly newState: StateSnapshot | null;
  readonly actor: string | null;
  readonly restoresEventId: string | null;
  readonly createdAt: string;
  readonly notifications?: readonly Notification[];
}

export interface Flag {
  readonly name: string;
  readonly description: string | null;
  readonly enabled: boolean;
  readonly rolloutPercentage: number;
  readonly bucketGroup: string | null;
  readonly version: number;
  readonly updatedAt: string;
  readonly updatedBy: string | null;
  readonly guardState: GuardState;
  readonly rollbackMessage: string | null;
  /** Rolled back and marked urgent: apps skip their safe-point hold (the save hook still runs). */
  readonly rollbackUrgent?: boolean;
  readonly stageStartedAt?: string | null;
  readonly targetCount?: number;
  readonly verdicts?: readonly Verdict[];
  readonly exposures?: { readonly on: number; readonly off: number; readonly since: string } | null;
  readonly lastRollback?: RollbackEvent | null;
}

/** The public fields a `flag` stream event carries (never targets). */
export interface FlagStreamEvent {
  readonly name: string;
  readonly version: number;
  readonly enabled: boolean;
  readonly rolloutPercentage: number;
  readonly bucketGroup: string | null;
  readonly guardState: GuardState;
  readonly rollbackMessage: string | null;
  readonly description?: string | null;
  readonly updatedAt?: string;
  readonly updatedBy?: string | null;
  readonly deleted?: true;
}

export interface RollbackStreamEvent {
  readonly id: string;
  readonly flag: string;
  readonly kind: string;
  readonly actor: string | null;
  readonly ruleId: string | null;
  readonly createdAt: string;
}

export interface UsagePoint {
  readonly t: string;
  readonly on: { readonly users: number; readonly errorUsers: number };
  readonly off: { readonly users: number; readonly errorUsers: number };
}

export interface Usage {
  readonly bucket: 'minute' | 'hour' | 'day';
  readonly since: string;
  readonly until: string;
  readonly series: readonly UsagePoint[];
  readonly judged: readonly { readonly t: string; readonly ruleId: string; readonly source: string; readonly treatment: Counts; readonly control: Counts | null }[];
  readonly thresholds: readonly { readonly ruleId: string; readonly kind: 'absolute' | 'relative' | string; readonly value: number }[];
  readonly changes: readonly { readonly at: string; readonly kind: string; readonly enabled: boolean | null; readonly rolloutPercentage: number | null; readonly actor: string | null; readonly eventId?: string | null }[];
}

export interface AuditChange {
  readonly id: string;
  readonly flag: string;
  readonly op: 'INSERT' | 'UPDATE' | 'DELETE' | 'TARGET_ADD' | 'TARGET_REMOVE';
  readonly actor: string | null;
  readonly at: string;
  readonly fields: readonly string[];
  readonly old: Readonly<Record<string, unknown>> | null;
  readonly new: Readonly<Record<string, unknown>> | null;
}

export interface GuardianStatus {
  readonly lastCycle: { readonly at: string; readonly durationMs: number; readonly ok: boolean } | null;
  readonly intervalMs: number;
  readonly dryRun: boolean;
  readonly sources: readonly { readonly id: string; readonly configured: boolean; readonly healthy: boolean; readonly blindSince: string | null; readonly detail: string }[];
  readonly rules: { readonly file: string; readonly count: number; readonly ids: readonly string[]; readonly loadedAt: string | null; readonly lastReloadError: string | null };
  readonly verdicts: readonly Verdict[];
}

export type PlanStatus = 'active' | 'paused' | 'completed' | 'aborted' | 'stopped' | 'not started';
export type PlanAction = 'pause' | 'resume' | 'abort';

/** A release plan as `GET /api/v1/plans` shows it (guardian/src/plans/view.ts). */
export interface PlanView {
  readonly flag: string;
  readonly status: PlanStatus;
  readonly reason: string | null;
  readonly stages: readonly number[];
  readonly percentage: number | null;
  readonly enabled: boolean | null;
  readonly timeInStageMs: number | null;
  readonly users: number | null;
  readonly minUsers: number | null;
  readonly earliestPromotionAt: string | null;
  /** The non-inferiority evidence of the stage (counts, margin, alpha, logE, threshold, safe). */
  readonly safety: Readonly<Record<string, unknown>> | null;
  /** One verdict per guard rule (ruleId, kind, reason, logE, threshold). */
  readonly harm: readonly Readonly<Record<string, unknown>>[];
  readonly assessedAt: string | null;
  readonly lastAction: string | null;
}

/** What the page learns before sign-in from /admin/config.json. */
export interface DashboardConfig {
  readonly apiBase: string;
  readonly supabaseUrl: string | null;
  readonly supabaseAnonKey: string | null;
}

export interface NewFlag {
  readonly name: string;
  readonly description?: string;
  readonly bucketGroup?: string | null;
}

export interface FlagPatch {
  readonly enabled?: boolean;
  readonly rolloutPercentage?: number;
  readonly rollbackMessage?: string | null;
  readonly description?: string;
  readonly locked?: boolean;
}
