/**
 * Internal: database rows (snake_case, bigint as text or number, timestamps as Date or text)
 * to the store's types, and database errors to GuardianError codes. Shared by both backends.
 */
import { GuardianError } from '../errors.ts';
import { MAX_USER_ID_LENGTH } from './limits.ts';
import type { Channel, EventKind, EventNotification, Flag, FlagChange, FlagEdit, FlagPatch, FlagState, GuardState, PlanState, PlanStatus, PlanStatusRequest, PromoteRequest, RollbackAction, RollbackEvent, RuleState, SourceHealth } from './types.ts';

type Row = Record<string, unknown>;

function str(v: unknown): string {
  return typeof v === 'string' ? v : v === null || v === undefined ? '' : String(v);
}
function strOrNull(v: unknown): string | null {
  return v === null || v === undefined ? null : String(v);
}
/** A timestamp as pg parses it (Date), as JSON has it (text), or as epoch milliseconds (number: cheaper to read in bulk). */
function date(v: unknown): Date {
  return v instanceof Date ? v : typeof v === 'number' ? new Date(v) : new Date(str(v));
}
function obj(v: unknown): Record<string, unknown> {
  if (typeof v === 'string') {
    try {
      return obj(JSON.parse(v) as unknown);
    } catch {
      return {};
    }
  }
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

/** A feature_flags row plus its target ids. */
export function toFlag(row: Row, targets: readonly string[]): Flag {
  return {
    name: str(row['name']),
    description: str(row['description']),
    enabled: row['enabled'] === true,
    rolloutPercentage: Number(row['rollout_percentage']),
    bucketGroup: strOrNull(row['bucket_group']),
    version: Number(row['version']),
    updatedAt: date(row['updated_at']),
    updatedBy: strOrNull(row['updated_by']),
    guardState: str(row['guard_state']) as GuardState,
    rollbackMessage: strOrNull(row['rollback_message']),
    rollbackUrgent: row['rollback_urgent'] === true,
    stageStartedAt: date(row['stage_started_at']),
    targets: [...targets].sort(),
  };
}

function toFlagState(v: unknown): FlagState {
  const o = obj(v);
  const targets = Array.isArray(o['targets']) ? (o['targets'] as unknown[]).map(str) : [];
  return {
    enabled: o['enabled'] === true,
    rolloutPercentage: Number(o['rollout_percentage'] ?? 0),
    targets,
    guardState: (str(o['guard_state']) || 'watching') as GuardState,
    ...('rollback_message' in o ? { rollbackMessage: strOrNull(o['rollback_message']) } : {}),
    ...('rollback_urgent' in o ? { rollbackUrgent: o['rollback_urgent'] === true } : {}),
  };
}

/** A rollback_events row. */
export function toEvent(row: Row): RollbackEvent {
  return {
    id: str(row['id']),
    flag: str(row['flag_name']),
    kind: str(row['kind']) as EventKind,
    ruleId: strOrNull(row['rule_id']),
    source: strOrNull(row['source']),
    action: strOrNull(row['action']) as RollbackAction | null,
    reason: strOrNull(row['reason']),
    evidence: obj(row['evidence']),
    previousState: toFlagState(row['previous_state']),
    newState: toFlagState(row['new_state']),
    actor: str(row['actor']),
    idempotencyKey: str(row['idempotency_key']),
    restoresEventId: strOrNull(row['restores_event_id']),
    createdAt: date(row['created_at']),
  };
}

/** A guardian_rule_state row. */
export function toRuleState(row: Row): RuleState {
  const evidence = row['last_evidence'];
  return {
    ruleId: str(row['rule_id']),
    flag: str(row['flag_name']),
    consecutiveBreaches: Number(row['consecutive_breaches'] ?? 0),
    lastVerdict: strOrNull(row['last_verdict']),
    lastEvidence: evidence === null || evidence === undefined ? null : obj(evidence),
    updatedAt: date(row['updated_at']),
  };
}

/** The jsonb patch `guardian_set_flag` takes (snake_case keys; absent = unchanged). */
export function patchToJson(patch: FlagPatch): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (patch.enabled !== undefined) out['enabled'] = patch.enabled;
  if (patch.rolloutPercentage !== undefined) out['rollout_percentage'] = patch.rolloutPercentage;
  if (patch.rollbackMessage !== undefined) out['rollback_message'] = patch.rollbackMessage;
  if (patch.lock !== undefined) out['lock'] = patch.lock;
  if (patch.addTargets !== undefined) out['add_targets'] = [...patch.addTargets];
  if (patch.removeTargets !== undefined) out['remove_targets'] = [...patch.removeTargets];
  return out;
}

/** The jsonb patch `guardian_edit_flag` takes: {@link patchToJson} plus `description`. */
export function editToJson(edit: FlagEdit): Record<string, unknown> {
  return { ...patchToJson(edit), ...(edit.description !== undefined ? { description: edit.description } : {}) };
}

/** A flag_changes row. */
export function toChange(row: Row): FlagChange {
  const oldRow = row['old_row'];
  const newRow = row['new_row'];
  return {
    id: str(row['id']),
    flag: str(row['flag_name']),
    op: str(row['op']) as FlagChange['op'],
    actor: str(row['actor']),
    at: date(row['at']),
    oldRow: oldRow === null || oldRow === undefined ? null : obj(oldRow),
    newRow: newRow === null || newRow === undefined ? null : obj(newRow),
  };
}

/** A guardian_source_health row. */
export function toSourceHealth(row: Row): SourceHealth {
  const d = (v: unknown): Date | null => (v === null || v === undefined ? null : date(v));
  return { source: str(row['source']), lastOkAt: d(row['last_ok_at']), blindSince: d(row['blind_since']), lastError: strOrNull(row['last_error']) };
}

/** A notification_outbox row. */
export function toNotification(row: Row): EventNotification {
  return {
    eventId: str(row['event_id']),
    channel: str(row['channel']) as Channel,
    status: str(row['status']) as EventNotification['status'],
    attempts: Number(row['attempts'] ?? 0),
    deliveredAt: row['delivered_at'] === null || row['delivered_at'] === undefined ? null : date(row['delivered_at']),
    lastError: strOrNull(row['last_error']),
  };
}

/** Outbox rows grouped by event id, every asked id present. */
export function notificationsByEvent(ids: readonly string[], rows: readonly Row[]): Map<string, EventNotification[]> {
  const out = new Map<string, EventNotification[]>(ids.map((id) => [id, []]));
  for (const r of rows) out.get(str(r['event_id']))?.push(toNotification(r));
  return out;
}

/** Network-level failures: the database is not there (Node socket codes). */
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE']);
/** node-postgres connection failures that carry no code, only these words. */
const NETWORK_MESSAGES = /^(Connection terminated unexpectedly|Connection terminated due to connection timeout|timeout exceeded when trying to connect)/;

/**
 * Maps a database error (pg, PGlite or PostgREST: all carry the SQLSTATE as `code`) to a
 * GuardianError with a stable code. `what` names the operation for the message.
 */
export function storeError(err: unknown, what: string): GuardianError {
  if (err instanceof GuardianError) return err;
  const e = (err ?? {}) as { code?: unknown; message?: unknown; details?: unknown; hint?: unknown };
  const code = typeof e.code === 'string' ? e.code : '';
  const raw = typeof e.message === 'string' && e.message !== '' ? e.message : String(err);
  const message = raw.replace(/^(guardian_rollback|restore_flag|guardian_set_flag|guardian_edit_flag|guardian_create_flag|guardian_delete_flag|guardian_flag_usage|guardian_try_lease|guardian_enqueue_notifications): /, '');
  if (code === 'P0002') return new GuardianError('NOT_FOUND', message, { cause: err });
  if (code === 'RG412') return new GuardianError('VERSION_CONFLICT', message, { cause: err });
  if (code === '55000' || code === '23505' || code === '40001' || code === '40P01') return new GuardianError('STORE_CONFLICT', `${what}: ${message}`, { cause: err });
  const constraint = (err as { constraint?: unknown }).constraint;
  if (code === '23514' && (constraint === 'flag_targets_user_id_not_empty' || message.includes('flag_targets_user_id_not_empty'))) {
    return new GuardianError('BAD_ARGUMENT', `${what}: a target user id must be 1 to ${MAX_USER_ID_LENGTH} characters`, { cause: err });
  }
  if (code === '22023' || code === '23514' || code === '22P02' || code === '23503' || code === '22003') {
    return new GuardianError('BAD_ARGUMENT', `${what}: ${message}`, { cause: err });
  }
  if (NETWORK_CODES.has(code) || (code === '' && NETWORK_MESSAGES.test(raw)) || code.startsWith('08') || code.startsWith('28') || code === '3D000' || code === '57P01' || code === '57P03') {
    return new GuardianError('STORE_UNREACHABLE', `${what}: the database is unreachable (${message}). Check DATABASE_URL / SUPABASE_URL and that the database is running.`, {
      cause: err,
    });
  }
  if (code === '42883' || code === '42P01') {
    return new GuardianError('STORE_FAILED', `${what}: ${message}. The database schema is missing or old: apply the migrations (DATABASE_URL=… npm run db:migrate; add -- --shim on plain PostgreSQL, never on Supabase).`, { cause: err });
  }
  return new GuardianError('STORE_FAILED', `${what}: ${message}`, { cause: err });
}

/** A guardian_release_plans row (also the `plan` of guardian_plan_set_status's JSON). */
export function toPlanState(row: Row): PlanState {
  return {
    flag: str(row['flag_name']),
    status: str(row['status']) as PlanStatus,
    reason: strOrNull(row['reason']),
    flagVersion: Number(row['flag_version']),
    running: row['running'] === true,
    lastReport: row['last_report'] === null || row['last_report'] === undefined ? null : obj(row['last_report']),
    assessedAt: row['assessed_at'] === null || row['assessed_at'] === undefined ? null : date(row['assessed_at']),
    updatedAt: date(row['updated_at']),
    updatedBy: str(row['updated_by']),
  };
}

/** guardian_plan_set_status's JSON answer: the plan row and the event (null when none). */
export function toPlanStatusResult(v: unknown): { plan: PlanState; event?: RollbackEvent } {
  const o = obj(v);
  const event = o['event'];
  return { plan: toPlanState(obj(o['plan'])), ...(event === null || event === undefined ? {} : { event: toEvent(obj(event)) }) };
}

/** The named arguments of `guardian_promote` for a {@link PromoteRequest}. */
export function promoteArgs(req: PromoteRequest): Record<string, unknown> {
  return {
    p_flag: req.flag,
    p_from: req.from,
    p_to: req.to,
    p_expected_version: req.expectedVersion,
    p_final: req.final,
    p_evidence: req.evidence,
    p_reason: req.reason ?? null,
    p_actor: req.actor,
    p_idempotency_key: req.idempotencyKey,
    p_channels: [...req.channels],
  };
}

/** The named arguments of `guardian_plan_set_status` for a {@link PlanStatusRequest}. */
export function planStatusArgs(req: PlanStatusRequest): Record<string, unknown> {
  return {
    p_flag: req.flag,
    p_status: req.status,
    p_reason: req.reason ?? null,
    p_actor: req.actor,
    p_expected_status: req.expectedStatus ? [...req.expectedStatus] : null,
    p_event_kind: req.event?.kind ?? null,
    p_idempotency_key: req.event?.idempotencyKey ?? null,
    p_channels: req.event ? [...req.event.channels] : null,
    p_evidence: req.event?.evidence ?? {},
    p_expected_flag_version: req.expectedFlagVersion ?? null,
  };
}
