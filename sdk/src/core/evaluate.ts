import { murmur3_32 } from './murmur3.ts';

/**
 * A flag definition as stored in `public.feature_flags` (plus its targets, which only
 * server-mode clients can read).
 *
 * @example
 * const flag: FlagDefinition = { name: 'ai_beta_users', enabled: true, rolloutPercentage: 50, bucketGroup: 'ai_rollout' };
 */
export interface FlagDefinition {
  /** Flag name, `^[a-z][a-z0-9_]{1,63}$`. */
  readonly name: string;
  /** Master switch: `false` turns the flag off for everyone, targets included. */
  readonly enabled: boolean;
  /** Integer 0..100: the share of users (by bucket) who get the flag. */
  readonly rolloutPercentage: number;
  /** Users in the same group share buckets, so their cohorts nest. `null` means the flag's own name. */
  readonly bucketGroup?: string | null;
  /** User ids that get the flag whatever their bucket (server mode only). */
  readonly targets?: ReadonlySet<string> | readonly string[];
  /** Row version, bumped on every change. */
  readonly version?: number;
}

/**
 * Why an evaluation gave its value. The names follow OpenFeature's resolution reasons.
 *
 * @example
 * if (result.reason === 'TARGETING_MATCH') console.log('user is on the target list');
 */
export type EvaluationReason = 'FLAG_NOT_FOUND' | 'DISABLED' | 'TARGETING_MATCH' | 'SPLIT' | 'ERROR';

/**
 * The result of one evaluation: never thrown, always a value and the reason for it.
 *
 * @example
 * const { value, reason } = evaluate(flag, 'user-42');
 */
export interface EvaluationResult {
  readonly value: boolean;
  readonly reason: EvaluationReason;
  /** Set only when `reason` is `ERROR`: a stable code saying what was wrong with the input. */
  readonly errorCode?: 'INVALID_USER_ID' | 'INVALID_FLAG';
  /** The user's bucket (1..100) when a percentage rollout decided the value. */
  readonly bucket?: number;
}

/**
 * The user's bucket in a group: `murmur3_x86_32(utf8(group + ":" + userId), 0) % 100 + 1`,
 * an integer 1..100. Identical to Unleash's normalized hash and to SQL `flag_bucket()`.
 *
 * @example
 * bucket('ai_rollout', 'user-42'); // 1..100, the same everywhere
 */
export function bucket(bucketGroup: string, userId: string): number {
  return (murmur3_32(`${bucketGroup}:${userId}`, 0) % 100) + 1;
}

const NOT_FOUND: EvaluationResult = Object.freeze({ value: false, reason: 'FLAG_NOT_FOUND' });
const DISABLED: EvaluationResult = Object.freeze({ value: false, reason: 'DISABLED' });
const TARGETED: EvaluationResult = Object.freeze({ value: true, reason: 'TARGETING_MATCH' });
const BAD_USER: EvaluationResult = Object.freeze({ value: false, reason: 'ERROR', errorCode: 'INVALID_USER_ID' });
const BAD_FLAG: EvaluationResult = Object.freeze({ value: false, reason: 'ERROR', errorCode: 'INVALID_FLAG' });

function isTargeted(targets: FlagDefinition['targets'], userId: string): boolean {
  if (targets === undefined) return false;
  if (Array.isArray(targets)) return targets.includes(userId);
  return (targets as ReadonlySet<string>).has(userId);
}

/**
 * Evaluates one flag for one user, following DESIGN.md §4 exactly:
 * missing flag → off (`FLAG_NOT_FOUND`); `enabled = false` → off (`DISABLED`);
 * user in the targets → on (`TARGETING_MATCH`); else on when
 * `rolloutPercentage > 0 && bucket <= rolloutPercentage` (`SPLIT`).
 * Never throws: a non-string or empty user id (`INVALID_USER_ID`) or a malformed definition
 * (`INVALID_FLAG`) gives `false` with reason `ERROR`, as SQL's `evaluate_flags` and OFREP do.
 *
 * @example
 * evaluate({ name: 'ai_alpha_users', enabled: true, rolloutPercentage: 10, bucketGroup: 'ai_rollout' }, 'user-42');
 * // → { value: true | false, reason: 'SPLIT', bucket: n }
 */
export function evaluate(flag: FlagDefinition | null | undefined, userId: string): EvaluationResult {
  if (flag === null || flag === undefined) return NOT_FOUND;
  if (typeof flag !== 'object' || typeof flag.name !== 'string') return BAD_FLAG;
  if (flag.enabled !== true) return DISABLED;
  // An empty id is no user: every such caller would share one bucket (DESIGN.md §4).
  if (typeof userId !== 'string' || userId === '') return BAD_USER;
  if (isTargeted(flag.targets, userId)) return TARGETED;
  const pct = flag.rolloutPercentage;
  if (typeof pct !== 'number' || !Number.isInteger(pct) || pct < 0 || pct > 100) return BAD_FLAG;
  const b = bucket(flag.bucketGroup ?? flag.name, userId);
  return { value: pct > 0 && b <= pct, reason: 'SPLIT', bucket: b };
}
