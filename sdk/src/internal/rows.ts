import { SdkError } from '../client/errors.ts';
import type { EvaluatedFlagRecord, FlagRecord, GuardState } from '../client/types.ts';

/** Columns of `feature_flags` the SDK reads (the public ones). */
export const FLAG_COLUMNS = 'name,description,enabled,rollout_percentage,bucket_group,version,guard_state,rollback_message,rollback_urgent';

const GUARD_STATES: readonly string[] = ['watching', 'rolled_back', 'locked'];

function num(v: unknown): number | null {
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  // bigint columns may arrive as strings (pg, some PostgREST settings).
  if (typeof v === 'string' && /^-?\d+$/.test(v)) return Number(v);
  return null;
}

/** A guard state as the database spells it, or `undefined` for anything else. */
export function parseGuardState(v: unknown): GuardState | undefined {
  return typeof v === 'string' && GUARD_STATES.includes(v) ? (v as GuardState) : undefined;
}

function guard(v: unknown): GuardState {
  return parseGuardState(v) ?? 'watching';
}

/**
 * Parses a `feature_flags` row (snake_case, as PostgREST, pg and Realtime send it). Throws
 * `TRANSPORT_FAILED` naming the column when the row is not shaped like one.
 */
export function parseFlagRow(row: unknown, where: string): Omit<FlagRecord, 'targets'> {
  if (row === null || typeof row !== 'object') throw new SdkError('TRANSPORT_FAILED', `${where}: expected a feature_flags row object, got ${JSON.stringify(row)}`);
  const r = row as Record<string, unknown>;
  const fail = (col: string, want: string): never => {
    throw new SdkError('TRANSPORT_FAILED', `${where}: column ${col} must be ${want}; got ${JSON.stringify(r[col])} (is the SDK reading the feature_flags table of this project's migrations?)`);
  };
  const name = typeof r['name'] === 'string' ? r['name'] : fail('name', 'a string');
  const enabled = typeof r['enabled'] === 'boolean' ? r['enabled'] : fail('enabled', 'a boolean');
  const pct = num(r['rollout_percentage']) ?? fail('rollout_percentage', 'an integer 0..100');
  const version = num(r['version']) ?? fail('version', 'an integer');
  const group = r['bucket_group'];
  return {
    name,
    enabled,
    rolloutPercentage: pct,
    bucketGroup: typeof group === 'string' ? group : null,
    version,
    guardState: guard(r['guard_state']),
    rollbackMessage: typeof r['rollback_message'] === 'string' ? r['rollback_message'] : null,
    rollbackUrgent: r['rollback_urgent'] === true,
    description: typeof r['description'] === 'string' ? r['description'] : null,
  };
}

/** Parses a row of `get_my_flags()` / `evaluate_flags()`. */
export function parseEvaluatedRow(row: unknown, where: string): EvaluatedFlagRecord {
  if (row === null || typeof row !== 'object') throw new SdkError('TRANSPORT_FAILED', `${where}: expected a row object, got ${JSON.stringify(row)}`);
  const r = row as Record<string, unknown>;
  const fail = (col: string, want: string): never => {
    throw new SdkError('TRANSPORT_FAILED', `${where}: column ${col} must be ${want}; got ${JSON.stringify(r[col])}`);
  };
  return {
    name: typeof r['name'] === 'string' ? r['name'] : fail('name', 'a string'),
    value: typeof r['value'] === 'boolean' ? r['value'] : fail('value', 'a boolean'),
    reason: typeof r['reason'] === 'string' ? r['reason'] : 'UNKNOWN',
    version: num(r['version']) ?? fail('version', 'an integer'),
    guardState: guard(r['guard_state']),
    rollbackMessage: typeof r['rollback_message'] === 'string' ? r['rollback_message'] : null,
    rollbackUrgent: r['rollback_urgent'] === true,
  };
}

/** Groups `flag_targets` rows into the flag records. */
export function attachTargets(flags: readonly Omit<FlagRecord, 'targets'>[], targets: readonly { flag_name: string; user_id: string }[]): FlagRecord[] {
  const byFlag = new Map<string, string[]>();
  for (const t of targets) {
    let list = byFlag.get(t.flag_name);
    if (!list) byFlag.set(t.flag_name, (list = []));
    list.push(t.user_id);
  }
  return flags.map((f) => ({ ...f, targets: byFlag.get(f.name) ?? [] }));
}
