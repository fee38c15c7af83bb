/**
 * The ONE interface every guardian part uses to read and change state, whatever the backend:
 * PostgreSQL over `pg`, embedded PGlite (both {@link SqlStore}) or Supabase over PostgREST
 * ({@link SupabaseStore}). Every change that must be exactly-once (rollback, restore, flag edits
 * with their audit actor) is one SQL function call, so all backends behave the same.
 */
import type { HistoryPoint } from '../decide/types.ts';
import type { CohortCounts } from '../sources/types.ts';

/** `watching`: the guardian may act; `rolled_back`: it did and will not again; `locked`: never acted on. */
export type GuardState = 'watching' | 'rolled_back' | 'locked';

/** What a rule does on a breach. */
export type RollbackAction = 'disable' | 'step_back' | 'notify_only';

/** Kinds of rollback events (the `rollback_events.kind` column). */
export type EventKind = (typeof EVENT_KINDS)[number];

/** Every event kind, for argument validation. */
export const EVENT_KINDS = ['auto_rollback', 'manual_rollback', 'restore', 'dry_run', 'promote', 'plan_paused', 'plan_resumed', 'plan_aborted'] as const;

/** Notification channels an event can be sent to. */
export type Channel = 'slack' | 'email';

/**
 * A flag as the guardian sees it (database row plus its targets).
 *
 * @example
 * const flag = await store.getFlag('booking_agent_enabled');
 * if (flag?.guardState === 'watching') { ... }
 */
export interface Flag {
  readonly name: string;
  readonly description: string;
  readonly enabled: boolean;
  readonly rolloutPercentage: number;
  /** Null means the flag's own name. */
  readonly bucketGroup: string | null;
  /** Bumped by the database on every change (targets included). */
  readonly version: number;
  readonly updatedAt: Date;
  readonly updatedBy: string | null;
  readonly guardState: GuardState;
  readonly rollbackMessage: string | null;
  /** The flag's latest rollback was marked urgent (until a restore, or until it is turned back up). */
  readonly rollbackUrgent: boolean;
  /** When `enabled`/`rollout_percentage` last changed: counts are taken since then. */
  readonly stageStartedAt: Date;
  /** Target user ids, sorted. */
  readonly targets: readonly string[];
}

/**
 * A hand-made change of a flag (CLI `flags set`, admin API). Every field is optional; the
 * whole patch is one audited transaction.
 *
 * @example
 * await store.setFlag('booking_agent_enabled', { rolloutPercentage: 50, addTargets: ['u1'] }, 'alice');
 */
export interface FlagPatch {
  readonly enabled?: boolean;
  /** 0..100. */
  readonly rolloutPercentage?: number;
  /** Text shown to users after a rollback; `null` clears it. */
  readonly rollbackMessage?: string | null;
  /** `true` locks (the guardian never acts on it), `false` unlocks back to `watching`. */
  readonly lock?: boolean;
  readonly addTargets?: readonly string[];
  readonly removeTargets?: readonly string[];
}

/** The restorable state of a flag, as stored in events. */
export interface FlagState {
  readonly enabled: boolean;
  readonly rolloutPercentage: number;
  readonly targets: readonly string[];
  readonly guardState: GuardState;
  /** The flag's rollback message then (absent in events written before it was recorded, and in promotions). */
  readonly rollbackMessage?: string | null;
  /** The urgent mark then (absent like `rollbackMessage`). */
  readonly rollbackUrgent?: boolean;
}

/**
 * One row of the append-only `rollback_events` log.
 *
 * @example
 * const [latest] = await store.listEvents({ flag: 'booking_agent_enabled', limit: 1 });
 */
export interface RollbackEvent {
  /** Database id (bigint, as text). */
  readonly id: string;
  readonly flag: string;
  readonly kind: EventKind;
  readonly ruleId: string | null;
  readonly source: string | null;
  /** Null for restores. */
  readonly action: RollbackAction | null;
  readonly reason: string | null;
  readonly evidence: Readonly<Record<string, unknown>>;
  readonly previousState: FlagState;
  /** For `dry_run` events: the state the action would have produced. */
  readonly newState: FlagState;
  readonly actor: string;
  readonly idempotencyKey: string;
  readonly restoresEventId: string | null;
  readonly createdAt: Date;
}

/** Status of a flag's release plan (`guardian_release_plans.status`). */
export type PlanStatus = 'active' | 'paused' | 'completed' | 'aborted' | 'stopped';

/**
 * The stored state of a release plan: the plan itself is in the rules file; whether it runs, and
 * the flag version it last saw or made, live in the database.
 *
 * @example
 * const [state] = await store.listPlanStates();
 * if (state?.status === 'paused') console.log(state.reason);
 */
export interface PlanState {
  readonly flag: string;
  readonly status: PlanStatus;
  readonly reason: string | null;
  /** The flag version the plan last saw or made: another one while `running` means a person changed the flag. */
  readonly flagVersion: number;
  /** The flag was enabled and watched at that version. */
  readonly running: boolean;
  /** The guardian's last assessment of the stage (a `PlanReport` as JSON), and when. */
  readonly lastReport: Readonly<Record<string, unknown>> | null;
  readonly assessedAt: Date | null;
  readonly updatedAt: Date;
  readonly updatedBy: string;
}

/**
 * Arguments of {@link Store.promote} (the SQL function `guardian_promote`).
 *
 * @example
 * await store.promote({ flag: 'ai_beta_users', from: 10, to: 50, expectedVersion: 7, final: false,
 *   evidence: { log_e_value: 4.1 }, actor: 'guardian', idempotencyKey: 'promote:ai_beta_users:7', channels: ['slack'] });
 */
export interface PromoteRequest {
  readonly flag: string;
  readonly from: number;
  readonly to: number;
  /** The flag version the decision was made on: another one refuses (STORE_CONFLICT). */
  readonly expectedVersion: number;
  /** The last stage of the plan: the plan completes. */
  readonly final: boolean;
  readonly evidence: Readonly<Record<string, unknown>>;
  readonly reason?: string;
  readonly actor: string;
  readonly idempotencyKey: string;
  readonly channels: readonly Channel[];
}

/**
 * Arguments of {@link Store.setPlanStatus} (`guardian_plan_set_status`): the plan takes the new
 * status at the flag's current version; with `event`, an event and its notifications are written.
 *
 * @example
 * await store.setPlanStatus({ flag: 'ai_beta_users', status: 'paused', reason: 'changed by alice', actor: 'guardian',
 *   event: { kind: 'plan_paused', idempotencyKey: 'plan_paused:ai_beta_users:8', channels: ['slack'] } });
 */
export interface PlanStatusRequest {
  readonly flag: string;
  readonly status: PlanStatus;
  readonly reason?: string;
  readonly actor: string;
  /** Refuse (STORE_CONFLICT) unless the plan is in one of these. */
  readonly expectedStatus?: readonly PlanStatus[];
  /** Refuse (STORE_CONFLICT) unless the plan still records this flag version (nobody moved it meanwhile). */
  readonly expectedFlagVersion?: number;
  readonly event?: {
    readonly kind: 'plan_paused' | 'plan_resumed' | 'plan_aborted';
    readonly idempotencyKey: string;
    readonly channels: readonly Channel[];
    readonly evidence?: Readonly<Record<string, unknown>>;
  };
}

/**
 * Arguments of {@link Store.rollback} (the SQL function `guardian_rollback`).
 *
 * @example
 * await store.rollback({ flag: 'booking_agent_enabled', action: 'disable', actor: 'guardian',
 *   idempotencyKey: 'booking-agent-errors:booking_agent_enabled:7', channels: ['slack'], reason: 'error rate 9% > 5%' });
 */
export interface RollbackRequest {
  readonly flag: string;
  readonly action: RollbackAction;
  readonly actor: string;
  /** Same key = same act: a repeat returns the first event and changes nothing. */
  readonly idempotencyKey: string;
  /** One outbox row per channel. */
  readonly channels: readonly Channel[];
  readonly reason?: string;
  readonly ruleId?: string | null;
  readonly source?: string | null;
  readonly evidence?: Readonly<Record<string, unknown>>;
  /** Write a `dry_run` event and change nothing. */
  readonly dryRun?: boolean;
  /** Default `auto_rollback`. */
  readonly kind?: 'auto_rollback' | 'manual_rollback';
  /** Rollout stages for `step_back`; else the flag's history decides. */
  readonly stages?: readonly number[];
  /**
   * A rule's default rollback message: set on the flag for this rollback when the flag has none
   * of its own (a message a person set always wins); the restore puts back what was there.
   */
  readonly message?: string | null;
  /** Urgent: users must leave the feature at once (SDK clients ignore `holdUntil`). Default false. */
  readonly urgent?: boolean;
}

/**
 * Arguments of {@link Store.restore} (the SQL function `restore_flag`).
 *
 * @example
 * await store.restore({ target: 'booking_agent_enabled', actor: 'alice', idempotencyKey: randomUUID() });
 */
export interface RestoreRequest {
  /** A flag name (its latest rollback) or a rollback event id. */
  readonly target: string;
  readonly actor: string;
  readonly idempotencyKey: string;
  readonly reason?: string;
  /** Default: the channels the rollback itself notified. */
  readonly channels?: readonly Channel[];
}

/**
 * Filters of {@link Store.listEvents}; newest first.
 *
 * @example
 * await store.listEvents({ kind: 'auto_rollback', since: new Date(Date.now() - 86_400_000), limit: 20 });
 */
export interface EventQuery {
  readonly flag?: string;
  readonly kind?: EventKind;
  readonly since?: Date;
  /** Only events before this time. */
  readonly until?: Date;
  /** Only events of this rule. */
  readonly ruleId?: string;
  /** Only events by this actor. */
  readonly actor?: string;
  /** Cursor: only events with a smaller id (the last id of the previous page). */
  readonly beforeId?: string;
  /** Default 50, at most 1000. */
  readonly limit?: number;
}

/** Options of {@link Store.loadRuleState}. */
export interface RuleStateQuery {
  /** Read each pair's `lastEvidence` (default true); false leaves it null. */
  readonly evidence?: boolean;
}

/**
 * The persisted memory of one (rule, flag) pair.
 *
 * @example
 * const states = await store.loadRuleState();
 */
export interface RuleState {
  readonly ruleId: string;
  readonly flag: string;
  readonly consecutiveBreaches: number;
  readonly lastVerdict: string | null;
  readonly lastEvidence: Readonly<Record<string, unknown>> | null;
  readonly updatedAt: Date;
}

/**
 * One poll's counts for one flag from one source, cumulative since `since` (the start of the
 * poll's segment of the stage; default the stage start).
 *
 * @example
 * await store.appendObservations([{ source: 'sentry', flag: 'f', stageStartedAt, since, at, unit: 'events', treatment: { total: 900, errors: 12 } }]);
 */
export interface Observation {
  readonly source: string;
  readonly flag: string;
  readonly stageStartedAt: Date;
  /** Start of the span the counts cover (the segment's start); default `stageStartedAt`. */
  readonly since?: Date;
  readonly at: Date;
  readonly unit: 'users' | 'events';
  readonly treatment: CohortCounts;
  readonly control?: CohortCounts;
}

/** One flag's bounded history ({@link Store.observationTail}). */
export interface HistoryTail {
  /** Oldest first, without the left-out polls. */
  readonly points: HistoryPoint[];
  /** Polls of the current segment left out (older than the tail). */
  readonly omitted: number;
}

/**
 * Which observations to read back for one flag: those of its stage that `decide` needs — every
 * poll at or after `segmentSince` (the current segment) and the last poll of each earlier segment.
 *
 * @example
 * await store.observationTail('sentry', [{ flag: 'f', stageStartedAt, segmentSince }], 2);
 */
export interface HistoryQuery {
  readonly flag: string;
  readonly stageStartedAt: Date;
  readonly segmentSince: Date;
}

/**
 * One exposure for the builtin source: `userKey` saw `flag` evaluate to `cohort` at `at`, and
 * with `error` hit an error then. `userKey` is the hex SHA-256 of the user id ({@link exposureUserKey} in `sources/builtin.ts`
 * in `http/ingest.ts`); the database refuses anything else, so no raw id is ever stored.
 *
 * @example
 * await store.recordExposures([{ flag: 'ai_beta_users', cohort: true, userKey: sha256hex('u-1'), at: new Date(), error: false }]);
 */
export interface ExposureRecord {
  readonly flag: string;
  /** The value the user got: true = flag on (treatment), false = flag off (control). */
  readonly cohort: boolean;
  /** Hex SHA-256 of the user id (64 lowercase hex digits). */
  readonly userKey: string;
  readonly at: Date;
  readonly error: boolean;
}

/**
 * What {@link Store.exposureCounts} is asked about one flag: users seen at or after `since`.
 *
 * @example
 * await store.exposureCounts([{ flag: 'ai_beta_users', since: stageStartedAt }]);
 */
export interface ExposureQuery {
  readonly flag: string;
  readonly since: Date;
  /** User keys (hex SHA-256 of the ids) to leave out: the flag's target list. */
  readonly excludeUserKeys?: readonly string[];
}

/**
 * One flag's builtin counts: per cohort, the users seen since the query's `since` and those of
 * them with an error since then (zeros when nobody was seen).
 */
export interface ExposureCounts {
  /** Flag-on users. */
  readonly treatment: CohortCounts;
  /** Flag-off users. */
  readonly control: CohortCounts;
}

/**
 * A new flag ({@link Store.createFlag}): created off, at 0%.
 *
 * @example
 * await store.createFlag({ name: 'new_checkout', description: 'The new checkout' }, 'alice@example.com');
 */
export interface NewFlag {
  readonly name: string;
  readonly description?: string;
  readonly bucketGroup?: string | null;
}

/**
 * {@link FlagPatch} plus the description: what {@link Store.editFlag} may change.
 *
 * @example
 * await store.editFlag('new_checkout', 3, { description: 'v2', rolloutPercentage: 10 }, 'alice');
 */
export interface FlagEdit extends FlagPatch {
  readonly description?: string;
}

/**
 * A page of a flag's target ids ({@link Store.listTargets}), sorted.
 *
 * @example
 * const page = await store.listTargets('f', { search: 'u-', limit: 100 });
 */
export interface TargetPage {
  readonly targets: string[];
  /** How many targets match the search (all pages). */
  readonly total: number;
  /** The `after` of the next page, or null on the last. */
  readonly nextCursor: string | null;
}

/**
 * Which targets {@link Store.listTargets} returns.
 *
 * @example
 * await store.listTargets('f', { search: 'acme', after: 'u-100', limit: 50 });
 */
export interface TargetQuery {
  /** Substring (case-insensitive) the ids must contain. */
  readonly search?: string;
  /** Cursor: ids after this one. */
  readonly after?: string;
  /** Default 100, at most 1000. */
  readonly limit?: number;
}

/**
 * One row of the `flag_changes` audit log.
 *
 * @example
 * const [last] = await store.listChanges({ flag: 'f', limit: 1 });
 */
export interface FlagChange {
  readonly id: string;
  readonly flag: string;
  readonly op: 'insert' | 'update' | 'delete' | 'target_add' | 'target_remove';
  readonly actor: string;
  readonly at: Date;
  readonly oldRow: Readonly<Record<string, unknown>> | null;
  readonly newRow: Readonly<Record<string, unknown>> | null;
}

/**
 * Filters of {@link Store.listChanges}; newest first.
 *
 * @example
 * await store.listChanges({ actor: 'alice', since: new Date(Date.now() - 86_400_000) });
 */
export interface ChangeQuery {
  readonly flag?: string;
  readonly actor?: string;
  readonly since?: Date;
  readonly until?: Date;
  /** Cursor: only rows with a smaller id. */
  readonly beforeId?: string;
  /** Default 50, at most 1000. */
  readonly limit?: number;
}

/** Time bucket of {@link Store.flagUsage}. */
export type UsageBucket = 'minute' | 'hour' | 'day';

/**
 * One flag's usage ({@link Store.flagUsage}, SQL `guardian_flag_usage`).
 *
 * @example
 * const u = await store.flagUsage('f', 'hour', since, until);
 */
export interface FlagUsage {
  readonly series: { t: string; on: { users: number; errorUsers: number }; off: { users: number; errorUsers: number } }[];
  readonly judged: {
    t: string;
    source: string;
    unit: 'users' | 'events';
    stageStartedAt: string;
    since: string;
    treatment: { errors: number; total: number; unit: 'users' | 'events' };
    control: { errors: number; total: number; unit: 'users' | 'events' } | null;
  }[];
  readonly changes: { at: string; kind: 'change' | EventKind | 'promote'; enabled: boolean | null; rolloutPercentage: number | null; actor: string; eventId: string | null }[];
}

/**
 * One metric source's health row (`guardian_source_health`).
 *
 * @example
 * for (const h of await store.sourceHealth()) console.log(h.source, h.blindSince);
 */
export interface SourceHealth {
  readonly source: string;
  readonly lastOkAt: Date | null;
  readonly blindSince: Date | null;
  readonly lastError: string | null;
}

/**
 * One outbox row of an event: where its notification stands.
 *
 * @example
 * const byEvent = await store.eventNotifications(['12']);
 */
export interface EventNotification {
  readonly eventId: string;
  readonly channel: Channel;
  readonly status: 'pending' | 'delivering' | 'delivered' | 'failed';
  readonly attempts: number;
  readonly deliveredAt: Date | null;
  readonly lastError: string | null;
}

/**
 * The admin API's additions to {@link Store} (flag create/delete, version-checked edits, paged
 * reads). Every write is one audited SQL function call whose actor is the caller.
 */
export interface AdminStore {
  /** Creates a flag, off at 0% (`guardian_create_flag`); a taken name is STORE_CONFLICT. */
  createFlag(flag: NewFlag, actor: string): Promise<Flag>;
  /** Edits the flag only while it is at `expectedVersion` (`guardian_edit_flag`); else VERSION_CONFLICT and nothing written. */
  editFlag(name: string, expectedVersion: number, edit: FlagEdit, actor: string): Promise<Flag>;
  /** Deletes a disabled flag at `expectedVersion` (`guardian_delete_flag`). */
  deleteFlag(name: string, expectedVersion: number, actor: string): Promise<void>;
  /** A page of the flag's targets (NOT_FOUND for an unknown flag). */
  listTargets(flag: string, query?: TargetQuery): Promise<TargetPage>;
  /** The audit log, newest first. */
  listChanges(query?: ChangeQuery): Promise<FlagChange[]>;
  /** Usage analytics of one flag (NOT_FOUND for a flag that never existed). */
  flagUsage(flag: string, bucket: UsageBucket, since: Date, until: Date): Promise<FlagUsage>;
  /** Every source's health row. */
  sourceHealth(): Promise<SourceHealth[]>;
  /** The outbox rows of these events, per event id (every asked id is in the map). */
  eventNotifications(eventIds: readonly string[]): Promise<Map<string, EventNotification[]>>;
}

/**
 * The guardian's state behind one interface (see the module comment). Errors are
 * `GuardianError`s: `NOT_FOUND`, `STORE_CONFLICT`, `BAD_ARGUMENT`, `STORE_UNREACHABLE`,
 * `STORE_FAILED`.
 *
 * @example
 * const store = await createStore(loadConfig(process.env));
 * for (const flag of await store.listFlags()) console.log(flag.name, flag.enabled);
 * await store.close();
 */
export interface Store extends AdminStore {
  /** Which backend: `pg`, `pglite` or `supabase`. */
  readonly kind: 'pg' | 'pglite' | 'supabase' | 'api';
  /** Where the data lives, safe to print (no password). */
  readonly location: string;
  /** Resolves when the backend answers; throws `STORE_UNREACHABLE` otherwise. */
  ping(): Promise<void>;
  listFlags(): Promise<Flag[]>;
  getFlag(name: string): Promise<Flag | undefined>;
  /** One audited change (`guardian_set_flag`); returns the flag after it. */
  setFlag(name: string, patch: FlagPatch, actor: string): Promise<Flag>;
  addTarget(flag: string, userId: string, actor: string): Promise<Flag>;
  removeTarget(flag: string, userId: string, actor: string): Promise<Flag>;
  lock(flag: string, actor: string): Promise<Flag>;
  unlock(flag: string, actor: string): Promise<Flag>;
  /** The atomic, idempotent rollback (`guardian_rollback`). */
  rollback(req: RollbackRequest): Promise<RollbackEvent>;
  /**
   * The stage `step_back` would move the flag to (`guardian_previous_stage`): the highest of
   * `stages` below `current`, else of the flag's own history; undefined when there is none (a
   * step back would then disable the flag).
   */
  previousStage(flag: string, current: number, stages?: readonly number[]): Promise<number | undefined>;
  /** Puts a flag back as before its latest (or the given) rollback (`restore_flag`). */
  restore(req: RestoreRequest): Promise<RollbackEvent>;
  listEvents(query?: EventQuery): Promise<RollbackEvent[]>;
  getEvent(id: string): Promise<RollbackEvent | undefined>;
  /**
   * Every (rule, flag) pair's state. With `{ evidence: false }` the states come without their
   * stored evidence (`lastEvidence` null): the cycle reads only the counters, and at thousands
   * of flags the evidence documents are most of the read.
   */
  loadRuleState(options?: RuleStateQuery): Promise<RuleState[]>;
  saveRuleState(states: readonly Omit<RuleState, 'updatedAt'>[], at: Date): Promise<void>;
  appendObservations(observations: readonly Observation[]): Promise<void>;
  /**
   * Per flag, what decide reads of the observations of its stage described by {@link HistoryQuery}
   * (`guardian_observation_tail`), oldest first, each with its `since`: the last `tail` polls of
   * the current segment (every one when a poll there was counted under another segmentation), the
   * last poll of each earlier segment, and how many polls of the current segment were left out.
   * The cycle's read at scale; a `tail` at least the segment's poll count reads every poll of it.
   */
  observationTail(source: string, queries: readonly HistoryQuery[], tail: number): Promise<Map<string, HistoryTail>>;
  /** Removes observations older than `before` (bounded storage). Returns how many. */
  pruneObservations(before: Date): Promise<number>;
  /**
   * Upserts a batch of exposures in one SQL call (`guardian_record_exposures`): all or nothing;
   * `first_seen` kept, `last_seen` and `last_error_at` the greatest. Returns the rows touched.
   */
  recordExposures(batch: readonly ExposureRecord[]): Promise<number>;
  /** Per flag (every queried flag is in the map), users per cohort seen since its `since` and those with an error since then (`guardian_exposure_counts`). */
  exposureCounts(queries: readonly ExposureQuery[]): Promise<Map<string, ExposureCounts>>;
  /** Removes exposures last seen before `before` (bounded storage). Returns how many. */
  pruneExposures(before: Date): Promise<number>;
  /** Takes or renews a lease for `ttlMs` (`guardian_try_lease`); true when held. */
  tryLease(name: string, holder: string, ttlMs: number): Promise<boolean>;
  releaseLease(name: string, holder: string): Promise<void>;
  /** Every stored release-plan state (`guardian_release_plans`). */
  listPlanStates(): Promise<PlanState[]>;
  /** The plan state of a flag, created (active, at the flag's version) when missing (`guardian_plan_sync`). */
  syncPlan(flag: string, actor: string): Promise<PlanState>;
  /** Sets a plan's status, with an event and notifications when asked (`guardian_plan_set_status`). */
  setPlanStatus(req: PlanStatusRequest): Promise<{ plan: PlanState; event?: RollbackEvent }>;
  /** Keeps each plan's latest assessment (what `guardian plans` shows); plans without a row are skipped. */
  savePlanReports(reports: readonly { readonly flag: string; readonly report: Readonly<Record<string, unknown>> }[], at: Date): Promise<void>;
  /** The atomic, idempotent promotion to the next stage (`guardian_promote`). */
  promote(req: PromoteRequest): Promise<RollbackEvent>;
  close(): Promise<void>;
}
