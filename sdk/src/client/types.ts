import type { EvaluationReason } from '../core/evaluate.ts';

/**
 * The guardian's view of a flag (DESIGN.md §6): `watching` (it may act), `rolled_back` (it
 * acted; only a person restores), `locked` (never acted on).
 *
 * @example
 * if (flag.guardState === 'rolled_back') showBanner(flag.rollbackMessage);
 */
export type GuardState = 'watching' | 'rolled_back' | 'locked';

/**
 * One row of `public.feature_flags` plus its targets, as server mode holds it.
 *
 * @example
 * const record: FlagRecord = { name: 'booking_agent_enabled', enabled: true, rolloutPercentage: 25,
 *   bucketGroup: null, version: 3, guardState: 'watching', rollbackMessage: null, targets: ['u-1'] };
 */
export interface FlagRecord {
  readonly name: string;
  readonly enabled: boolean;
  readonly rolloutPercentage: number;
  readonly bucketGroup: string | null;
  readonly version: number;
  readonly guardState: GuardState;
  readonly rollbackMessage: string | null;
  /**
   * The flag's rollback was marked urgent (`guardian rollback --urgent`, the admin API's
   * `urgent: true`, or a rule with `urgent: true`): clients ignore `holdUntil` for it. Absent = false.
   */
  readonly rollbackUrgent?: boolean;
  readonly description?: string | null;
  /** User ids on the flag's target list; absent when the transport cannot read them (client mode). */
  readonly targets?: readonly string[];
}

/**
 * One row of `get_my_flags()` / `evaluate_flags(user_id)`: a flag already evaluated for a user.
 *
 * @example
 * const mine: EvaluatedFlagRecord = { name: 'ai_ga_enabled', value: true, reason: 'SPLIT',
 *   version: 1, guardState: 'watching', rollbackMessage: null };
 */
export interface EvaluatedFlagRecord {
  readonly name: string;
  readonly value: boolean;
  readonly reason: EvaluationReason | string;
  readonly version: number;
  readonly guardState: GuardState;
  readonly rollbackMessage: string | null;
  /** The flag's rollback was marked urgent (see {@link FlagRecord.rollbackUrgent}). Absent = false. */
  readonly rollbackUrgent?: boolean;
}

/**
 * A change notification from the transport (a Realtime `postgres_changes` event or a
 * `LISTEN/NOTIFY` payload). `record` holds the new public fields (no targets); it is `null` on
 * DELETE or when the transport only knows the name.
 *
 * @example
 * const change: FlagChange = { type: 'UPDATE', name: 'booking_agent_enabled', version: 4, record: null };
 */
export interface FlagChange {
  readonly type: 'INSERT' | 'UPDATE' | 'DELETE';
  readonly name: string;
  /** The row's version after the change (`null` when unknown, e.g. a DELETE). */
  readonly version: number | null;
  readonly record: Omit<FlagRecord, 'targets'> | null;
  /**
   * The row's guard state when the transport knows it without the row (the postgres transport's
   * notifications): a client re-fetches a flag the guardian just rolled back sooner than the spread.
   */
  readonly guardState?: GuardState;
}

/**
 * What a change subscription reports: `live` once changes are flowing (after EVERY
 * (re)subscription: the client then re-fetches, since changes made while it was away are lost),
 * `down` when they are not (CHANNEL_ERROR, TIMED_OUT, CLOSED): the client polls until `live` again.
 *
 * @example
 * const status: SubscriptionStatus = 'live';
 */
export type SubscriptionStatus = 'live' | 'down';

/**
 * Receives what a subscription sees.
 *
 * @example
 * transport.subscribe({ change: (c) => console.log(c.name), status: (s, why) => console.log(s, why) });
 */
export interface ChangeListener {
  change(change: FlagChange): void;
  status(status: SubscriptionStatus, detail?: string): void;
}

/**
 * The only thing the SDK's clients know about where flags live. A transport loads flags, and may
 * stream changes. `./supabase` (supabase-js) and `./postgres` (pg) ship one each; tests can pass
 * an in-memory one. Methods reject (they never resolve with partial data) when the source fails.
 *
 * @example
 * const transport: FlagTransport = {
 *   loadAll: async () => [{ name: 'f', enabled: true, rolloutPercentage: 50, bucketGroup: null,
 *     version: 1, guardState: 'watching', rollbackMessage: null }],
 * };
 */
export interface FlagTransport {
  /** Server mode: every flag definition with its targets (service role). */
  loadAll?(signal?: AbortSignal): Promise<readonly FlagRecord[]>;
  /** Client mode: the signed-in user's evaluated flags (`get_my_flags()`). */
  loadMine?(signal?: AbortSignal): Promise<readonly EvaluatedFlagRecord[]>;
  /** Streams changes of `feature_flags`; returns the unsubscribe function. Absent: polling only. */
  subscribe?(listener: ChangeListener): () => void;
  /**
   * A cheap summary of every flag's version (e.g. a hash of `name:version` pairs). When present,
   * polling asks for it first and loads only when it changed (version-checked polling).
   */
  fingerprint?(signal?: AbortSignal): Promise<string>;
  /** Client mode: calls back with the new user id (or `null`) whenever the signed-in user changes. */
  onAuthChange?(callback: (userId: string | null) => void): () => void;
  /** Client mode: the signed-in user's id, used to key the persistent cache. */
  currentUserId?(): Promise<string | null>;
  /** Releases connections the transport opened itself. */
  close?(): Promise<void>;
}

/**
 * A tiny logger interface (pino, console and most loggers fit). The SDK defaults to a no-op.
 *
 * @example
 * createServerClient({ transport, logger: console });
 */
export interface SdkLogger {
  debug?(obj: unknown, msg?: string): void;
  info?(obj: unknown, msg?: string): void;
  warn(obj: unknown, msg?: string): void;
  error(obj: unknown, msg?: string): void;
}

/**
 * Timers the clients use, injectable so tests can drive them. Defaults to the global ones.
 *
 * @example
 * const timers: Timers = { setTimeout: (fn, ms) => setTimeout(fn, ms), clearTimeout: (h) => clearTimeout(h as number) };
 */
export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/**
 * Persistent storage for client mode's last-known flags: `localStorage`, React Native's
 * `AsyncStorage`, or anything with the same two methods (sync or async).
 *
 * @example
 * createBrowserClient({ transport, storage: window.localStorage });
 */
export interface StorageAdapter {
  getItem(key: string): string | null | Promise<string | null>;
  setItem(key: string, value: string): void | Promise<void>;
}

/**
 * The outcome of one evaluation through a client: never thrown.
 * `reason` is `DEFAULT` when the caller's default was returned because the client had nothing
 * better (not ready, or the flag is unknown: then `errorCode` says why).
 *
 * @example
 * const d = client.evaluate('booking_agent_enabled', 'user-42', false);
 * if (d.errorCode === 'FLAG_NOT_FOUND') console.warn('typo in flag name?');
 */
export interface FlagEvaluation {
  readonly flag: string;
  readonly value: boolean;
  readonly reason: EvaluationReason | 'DEFAULT' | 'CACHED' | string;
  readonly errorCode?: 'FLAG_NOT_FOUND' | 'PROVIDER_NOT_READY' | 'INVALID_USER_ID' | 'INVALID_FLAG' | 'INVALID_ARGUMENT';
  /** The flag row's version the answer came from, when known. */
  readonly version?: number;
  /** The flag's rollback message (plain text) when the flag is rolled back, else absent. */
  readonly rollbackMessage?: string;
  /** `true` when the flag is rolled back and that rollback was marked urgent, else absent. */
  readonly rollbackUrgent?: true;
}

/**
 * Lifecycle of a client: `NOT_READY` until the first load (or a cache hit), `READY`, `STALE`
 * (serving last-known values after a failed refresh), `ERROR` (the first load failed and nothing
 * is cached: evaluations return defaults).
 *
 * @example
 * if (client.status === 'READY') render();
 */
export type ClientStatus = 'NOT_READY' | 'READY' | 'STALE' | 'ERROR';

/**
 * What {@link RollbackListener}s receive, BEFORE the flag's new (off) value is applied: the app may
 * save the user's work (return a promise: the switch waits for it, at most the client's
 * `rollbackHoldMs`, default 2 s, never more than 10 s) and may keep the old value until a safe
 * point with `holdUntil(promise)` (at most `safePointMaxMs`), unless the rollback is `urgent`
 * (then `holdUntil` is ignored). `message` is the flag's rollback message, plain text.
 *
 * @example
 * client.onRollback(async (e) => {
 *   await saveDraft();                         // the switch waits (bounded) for this
 *   if (bookingInProgress) e.holdUntil(bookingFinished); // keeps the old UI until the booking is done
 *   toast(e.message ?? `${e.flag} is turned off for now`);
 * });
 */
export interface RollbackEvent {
  readonly flag: string;
  /** The flag's rollback message (plain text, never HTML), or `null`. */
  readonly message: string | null;
  readonly version: number;
  /**
   * The rollback is urgent: an operator or a rule marked it (`guardian rollback --urgent`, the admin
   * API's `urgent: true`, `urgent: true` on the rule), or the app lists the flag in `urgentFlags`.
   * `holdUntil` is ignored; the save hook still runs within `rollbackHoldMs`.
   */
  readonly urgent: boolean;
  /**
   * Keeps the old value until `safePoint` settles (bounded by the client's `safePointMaxMs`).
   * Ignored (with a warning to the logger) when the rollback is urgent or the value was already
   * switched.
   */
  holdUntil(safePoint: PromiseLike<unknown>): void;
}

/**
 * Called when a rollback reaches the client, before the new value is applied: `flag` was on (for
 * this user in client mode) and is now off with `guard_state = 'rolled_back'`. May return a
 * promise (e.g. saving a draft); the value switches when it settles or the hold bound passes.
 *
 * @example
 * client.onRollback(({ flag, message }) => toast(message ?? `${flag} was turned off`));
 */
export type RollbackListener = (event: RollbackEvent) => unknown;

/**
 * Called with each evaluation a client serves; what the Sentry and PostHog adapters and the
 * exposure reporter hook. `reason` says why the user got `value` (`SPLIT`: by the rollout
 * percentage; `TARGETING_MATCH`: on the target list; `DISABLED`, `ERROR` with the default,
 * `CACHED` in client mode before a refresh).
 *
 * @example
 * client.onEvaluation((flag, value, userId, reason) => console.log(flag, value, reason));
 */
export type EvaluationListener = (flag: string, value: boolean, userId: string | null, reason: FlagEvaluation['reason']) => void;
