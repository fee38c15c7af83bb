/**
 * {@link Store} over a {@link SqlClient}: PostgreSQL through `pg` (`DATABASE_URL`) and the
 * embedded PGlite share this one implementation. Exactly-once changes go through the SQL
 * functions of `supabase/migrations/2025112502*` (guardian_rollback, restore_flag,
 * guardian_set_flag, guardian_try_lease); everything else is plain parameterised SQL.
 */
import type { HistoryPoint } from '../decide/types.ts';
import type { SqlClient } from './sql.ts';
import { editToJson, notificationsByEvent, patchToJson, planStatusArgs, promoteArgs, storeError, toChange, toEvent, toFlag, toPlanState, toPlanStatusResult, toRuleState, toSourceHealth } from './rows.ts';
import type {
  ChangeQuery,
  EventNotification,
  EventQuery,
  FlagChange,
  FlagEdit,
  FlagUsage,
  NewFlag,
  SourceHealth,
  TargetPage,
  TargetQuery,
  UsageBucket,
  ExposureCounts,
  ExposureQuery,
  ExposureRecord,
  Flag,
  FlagPatch,
  HistoryQuery,
  HistoryTail,
  Observation,
  PlanState,
  PlanStatusRequest,
  PromoteRequest,
  RestoreRequest,
  RollbackEvent,
  RollbackRequest,
  RuleState,
  RuleStateQuery,
  Store,
} from './types.ts';

type Row = Record<string, unknown>;

/** A timestamp column read as epoch milliseconds (rows.ts takes numbers): every cycle reads one per flag and rule, and text dates cost a regex each. */
function epochMs(column: string, as: string = column): string {
  return `floor(extract(epoch from ${column}) * 1000)::float8 as ${as}`;
}
/** The feature_flags columns {@link toFlag} reads. */
const FLAG_COLUMNS = `name, description, enabled, rollout_percentage, bucket_group, version, ${epochMs('updated_at')}, updated_by, guard_state, rollback_message, rollback_urgent, ${epochMs('stage_started_at')}`;

/** An observation's counts as numbers (float8 holds every count exactly), not bigint text to convert. */
const COUNT_COLUMNS = 'treatment_total::float8 as treatment_total, treatment_errors::float8 as treatment_errors, control_total::float8 as control_total, control_errors::float8 as control_errors';
/** The columns of a history read that {@link historyPointFromEpochRow} takes. */
const HISTORY_COLUMNS = `flag_name, ${epochMs('since', 'since_ms')}, ${epochMs('at', 'at_ms')}, unit, ${COUNT_COLUMNS}`;

/**
 * Characters of JSON per statement of the cycle's bulk writes (about 96 KB). Below V8's large-object
 * size (128 KB), so a statement's text is an ordinary young string that dies with its statement:
 * at 10,000 flags a cycle writes about 12 MB of rule state, and in 600 KB statements their texts
 * ended every cycle as 7 MB of V8's large-object space, at the moment RSS peaks.
 */
export const WRITE_CHUNK_CHARS = 96_000;
/** Default and maximum page size of {@link Store.listEvents}. */
export const DEFAULT_EVENT_LIMIT = 50;
export const MAX_EVENT_LIMIT = 1000;
/** Default and maximum page size of {@link Store.listTargets}. */
export const DEFAULT_TARGET_LIMIT = 100;
export const MAX_TARGET_LIMIT = 1000;

/** A page size clamped to 1..max (default `dflt`). */
export function pageLimit(limit: number | undefined, dflt: number, max: number): number {
  return Math.min(Math.max(1, Math.trunc(limit ?? dflt)), max);
}

/** A bigint id cursor, or undefined when it is not one (a bad cursor reads from the start of nothing: see callers). */
export function idCursor(id: string | undefined): string | undefined {
  return id !== undefined && /^\d{1,19}$/.test(id) ? id : undefined;
}

/** The LIKE pattern of a substring search (wildcards in the search are literal). */
export function likePattern(search: string): string {
  return `%${search.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/**
 * Options of {@link SqlStore}.
 *
 * @example
 * new SqlStore({ sql: pgSqlClient(pool), kind: 'pg', location: 'postgres://db:5432/app' });
 */
export interface SqlStoreOptions {
  readonly sql: SqlClient;
  readonly kind: 'pg' | 'pglite';
  /** Where the data lives, safe to print (no password). */
  readonly location: string;
}

/**
 * The SQL backend of {@link Store}.
 *
 * @example
 * const store = new SqlStore({ sql: pgliteSqlClient(await PGlite.create()), kind: 'pglite', location: 'memory' });
 * const flags = await store.listFlags();
 */
export class SqlStore implements Store {
  readonly kind: 'pg' | 'pglite';
  readonly location: string;
  readonly #sql: SqlClient;

  constructor(opts: SqlStoreOptions) {
    this.#sql = opts.sql;
    this.kind = opts.kind;
    this.location = opts.location;
  }

  /** The SQL client underneath (the outbox worker shares it). */
  get sql(): SqlClient {
    return this.#sql;
  }

  async #q(what: string, text: string, params: readonly unknown[] = []): Promise<Row[]> {
    try {
      return (await this.#sql.query<Row>(text, params)).rows;
    } catch (err) {
      throw storeError(err, what);
    }
  }

  async ping(): Promise<void> {
    await this.#q('ping', 'select 1 as ok');
  }

  async listFlags(): Promise<Flag[]> {
    const [flags, targets] = await Promise.all([
      this.#q('list flags', `select ${FLAG_COLUMNS} from public.feature_flags order by name`),
      this.#q('list targets', 'select flag_name, user_id from public.flag_targets order by flag_name, user_id'),
    ]);
    const byFlag = new Map<string, string[]>();
    for (const t of targets) {
      const name = String(t['flag_name']);
      const list = byFlag.get(name) ?? [];
      list.push(String(t['user_id']));
      byFlag.set(name, list);
    }
    return flags.map((f) => toFlag(f, byFlag.get(String(f['name'])) ?? []));
  }

  async getFlag(name: string): Promise<Flag | undefined> {
    const [flags, targets] = await Promise.all([
      this.#q('get flag', `select ${FLAG_COLUMNS} from public.feature_flags where name = $1`, [name]),
      this.#q('get targets', 'select user_id from public.flag_targets where flag_name = $1 order by user_id', [name]),
    ]);
    const row = flags[0];
    return row ? toFlag(row, targets.map((t) => String(t['user_id']))) : undefined;
  }

  async setFlag(name: string, patch: FlagPatch, actor: string): Promise<Flag> {
    await this.#q(`set flag "${name}"`, 'select name from public.guardian_set_flag($1, $2::jsonb, $3)', [name, JSON.stringify(patchToJson(patch)), actor]);
    const flag = await this.getFlag(name);
    if (!flag) throw storeError({ code: 'P0002', message: `flag "${name}" does not exist` }, 'set flag');
    return flag;
  }

  addTarget(flag: string, userId: string, actor: string): Promise<Flag> {
    return this.setFlag(flag, { addTargets: [userId] }, actor);
  }

  removeTarget(flag: string, userId: string, actor: string): Promise<Flag> {
    return this.setFlag(flag, { removeTargets: [userId] }, actor);
  }

  lock(flag: string, actor: string): Promise<Flag> {
    return this.setFlag(flag, { lock: true }, actor);
  }

  unlock(flag: string, actor: string): Promise<Flag> {
    return this.setFlag(flag, { lock: false }, actor);
  }

  async rollback(req: RollbackRequest): Promise<RollbackEvent> {
    const rows = await this.#q(
      `rollback of flag "${req.flag}"`,
      `select * from public.guardian_rollback(
         p_flag => $1, p_action => $2, p_rule_id => $3, p_source => $4, p_evidence => $5::jsonb,
         p_actor => $6, p_idempotency_key => $7, p_channels => $8::text[], p_dry_run => $9,
         p_reason => $10, p_kind => $11, p_stages => $12::integer[], p_message => $13, p_urgent => $14)`,
      [
        req.flag,
        req.action,
        req.ruleId ?? null,
        req.source ?? null,
        JSON.stringify(req.evidence ?? {}),
        req.actor,
        req.idempotencyKey,
        [...req.channels],
        req.dryRun === true,
        req.reason ?? null,
        req.kind ?? 'auto_rollback',
        req.stages ? [...req.stages] : null,
        req.message ?? null,
        req.urgent === true,
      ],
    );
    return toEvent(rows[0] ?? {});
  }

  async previousStage(flag: string, current: number, stages?: readonly number[]): Promise<number | undefined> {
    const rows = await this.#q(`previous stage of flag "${flag}"`, 'select public.guardian_previous_stage($1, $2, $3::integer[]) as stage', [flag, current, stages ? [...stages] : null]);
    const stage = rows[0]?.['stage'];
    return stage === null || stage === undefined ? undefined : Number(stage);
  }

  async restore(req: RestoreRequest): Promise<RollbackEvent> {
    const rows = await this.#q(
      `restore of "${req.target}"`,
      `select * from public.restore_flag(p_flag_or_event => $1, p_actor => $2, p_reason => $3, p_idempotency_key => $4, p_channels => $5::text[])`,
      [req.target, req.actor, req.reason ?? null, req.idempotencyKey, req.channels ? [...req.channels] : null],
    );
    return toEvent(rows[0] ?? {});
  }

  async listEvents(query: EventQuery = {}): Promise<RollbackEvent[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (query.flag !== undefined) {
      params.push(query.flag);
      where.push(`flag_name = $${params.length}`);
    }
    if (query.kind !== undefined) {
      params.push(query.kind);
      where.push(`kind = $${params.length}`);
    }
    if (query.since !== undefined) {
      params.push(query.since.toISOString());
      where.push(`created_at >= $${params.length}::timestamptz`);
    }
    if (query.until !== undefined) {
      params.push(query.until.toISOString());
      where.push(`created_at < $${params.length}::timestamptz`);
    }
    if (query.ruleId !== undefined) {
      params.push(query.ruleId);
      where.push(`rule_id = $${params.length}`);
    }
    if (query.actor !== undefined) {
      params.push(query.actor);
      where.push(`actor = $${params.length}`);
    }
    if (query.beforeId !== undefined) {
      params.push(idCursor(query.beforeId) ?? '0');
      where.push(`id < $${params.length}::bigint`);
    }
    params.push(pageLimit(query.limit, DEFAULT_EVENT_LIMIT, MAX_EVENT_LIMIT));
    const rows = await this.#q(
      'list events',
      `select * from public.rollback_events ${where.length ? `where ${where.join(' and ')}` : ''} order by created_at desc, id desc limit $${params.length}`,
      params,
    );
    return rows.map(toEvent);
  }

  async createFlag(flag: NewFlag, actor: string): Promise<Flag> {
    const rows = await this.#q(`create flag "${flag.name}"`, 'select * from public.guardian_create_flag($1, $2, $3, $4)', [
      flag.name,
      flag.description ?? '',
      flag.bucketGroup ?? null,
      actor,
    ]);
    return toFlag(rows[0] ?? {}, []);
  }

  async editFlag(name: string, expectedVersion: number, edit: FlagEdit, actor: string): Promise<Flag> {
    await this.#q(`edit flag "${name}"`, 'select name from public.guardian_edit_flag($1, $2::bigint, $3::jsonb, $4)', [name, expectedVersion, JSON.stringify(editToJson(edit)), actor]);
    const flag = await this.getFlag(name);
    if (!flag) throw storeError({ code: 'P0002', message: `flag "${name}" does not exist` }, 'edit flag');
    return flag;
  }

  async deleteFlag(name: string, expectedVersion: number, actor: string): Promise<void> {
    await this.#q(`delete flag "${name}"`, 'select name from public.guardian_delete_flag($1, $2::bigint, $3)', [name, expectedVersion, actor]);
  }

  async listTargets(flag: string, query: TargetQuery = {}): Promise<TargetPage> {
    const exists = await this.#q('get flag', 'select 1 from public.feature_flags where name = $1', [flag]);
    if (exists.length === 0) throw storeError({ code: 'P0002', message: `flag "${flag}" does not exist` }, 'list targets');
    const limit = pageLimit(query.limit, DEFAULT_TARGET_LIMIT, MAX_TARGET_LIMIT);
    const pattern = query.search ? likePattern(query.search) : null;
    const [page, count] = await Promise.all([
      this.#q(
        'list targets',
        `select user_id from public.flag_targets where flag_name = $1 and ($2::text is null or user_id ilike $2) and ($3::text is null or user_id > $3)
          order by user_id limit $4`,
        [flag, pattern, query.after ?? null, limit + 1],
      ),
      this.#q('count targets', 'select count(*)::int as n from public.flag_targets where flag_name = $1 and ($2::text is null or user_id ilike $2)', [flag, pattern]),
    ]);
    const targets = page.slice(0, limit).map((r) => String(r['user_id']));
    return { targets, total: Number(count[0]?.['n'] ?? 0), nextCursor: page.length > limit ? (targets.at(-1) ?? null) : null };
  }

  async listChanges(query: ChangeQuery = {}): Promise<FlagChange[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    const add = (cond: string, value: unknown): void => {
      params.push(value);
      where.push(cond.replace('?', `$${params.length}`));
    };
    if (query.flag !== undefined) add('flag_name = ?', query.flag);
    if (query.actor !== undefined) add('actor = ?', query.actor);
    if (query.since !== undefined) add('at >= ?::timestamptz', query.since.toISOString());
    if (query.until !== undefined) add('at < ?::timestamptz', query.until.toISOString());
    if (query.beforeId !== undefined) add('id < ?::bigint', idCursor(query.beforeId) ?? '0');
    params.push(pageLimit(query.limit, DEFAULT_EVENT_LIMIT, MAX_EVENT_LIMIT));
    const rows = await this.#q(
      'list changes',
      `select * from public.flag_changes ${where.length ? `where ${where.join(' and ')}` : ''} order by id desc limit $${params.length}`,
      params,
    );
    return rows.map(toChange);
  }

  async flagUsage(flag: string, bucket: UsageBucket, since: Date, until: Date): Promise<FlagUsage> {
    const rows = await this.#q(`usage of flag "${flag}"`, 'select public.guardian_flag_usage($1, $2, $3::timestamptz, $4::timestamptz) as u', [
      flag,
      bucket,
      since.toISOString(),
      until.toISOString(),
    ]);
    return usageFrom(rows[0]?.['u']);
  }

  async sourceHealth(): Promise<SourceHealth[]> {
    return (await this.#q('read source health', 'select * from public.guardian_source_health order by source')).map(toSourceHealth);
  }

  async eventNotifications(eventIds: readonly string[]): Promise<Map<string, EventNotification[]>> {
    const ids = eventIds.filter((id) => idCursor(id) !== undefined);
    if (ids.length === 0) return notificationsByEvent(eventIds, []);
    const rows = await this.#q(
      'read notifications',
      'select event_id, channel, status, attempts, delivered_at, last_error from public.notification_outbox where event_id = any($1::bigint[]) order by event_id, channel',
      [ids],
    );
    return notificationsByEvent(eventIds, rows);
  }

  async getEvent(id: string): Promise<RollbackEvent | undefined> {
    if (!/^\d{1,19}$/.test(id)) return undefined;
    const rows = await this.#q('get event', 'select * from public.rollback_events where id = $1::bigint', [id]);
    return rows[0] ? toEvent(rows[0]) : undefined;
  }

  async loadRuleState(options: RuleStateQuery = {}): Promise<RuleState[]> {
    const columns = options.evidence === false ? `rule_id, flag_name, consecutive_breaches, last_verdict, null as last_evidence, ${epochMs('updated_at')}` : '*';
    return (await this.#q('load rule state', `select ${columns} from public.guardian_rule_state order by rule_id, flag_name`)).map(toRuleState);
  }

  async saveRuleState(states: readonly Omit<RuleState, 'updatedAt'>[], at: Date): Promise<void> {
    await this.#bulk(
      'save rule state',
      `insert into public.guardian_rule_state (rule_id, flag_name, consecutive_breaches, last_verdict, last_evidence, updated_at)
       select x.rule_id, x.flag_name, x.consecutive_breaches, x.last_verdict, x.last_evidence, $2::timestamptz
         from jsonb_to_recordset($1::jsonb) as x(rule_id text, flag_name text, consecutive_breaches integer, last_verdict text, last_evidence jsonb)
       on conflict (rule_id, flag_name) do update
         set consecutive_breaches = excluded.consecutive_breaches, last_verdict = excluded.last_verdict,
             last_evidence = excluded.last_evidence, updated_at = excluded.updated_at`,
      states,
      (s) => ({ rule_id: s.ruleId, flag_name: s.flag, consecutive_breaches: s.consecutiveBreaches, last_verdict: s.lastVerdict, last_evidence: s.lastEvidence }),
      [at.toISOString()],
    );
  }

  async appendObservations(observations: readonly Observation[]): Promise<void> {
    const iso = isoTimes();
    await this.#bulk(
      'append observations',
      `insert into public.guardian_observations (source, flag_name, stage_started_at, since, at, unit, treatment_total, treatment_errors, control_total, control_errors)
       select x.source, x.flag_name, x.stage_started_at, x.since, x.at, x.unit, x.treatment_total, x.treatment_errors, x.control_total, x.control_errors
         from jsonb_to_recordset($1::jsonb) as x(source text, flag_name text, stage_started_at timestamptz, since timestamptz, at timestamptz, unit text,
              treatment_total bigint, treatment_errors bigint, control_total bigint, control_errors bigint)`,
      observations,
      (o) => ({
        source: o.source,
        flag_name: o.flag,
        stage_started_at: iso(o.stageStartedAt),
        since: iso(o.since ?? o.stageStartedAt),
        at: iso(o.at),
        unit: o.unit,
        treatment_total: o.treatment.total,
        treatment_errors: o.treatment.errors,
        control_total: o.control?.total ?? null,
        control_errors: o.control?.errors ?? null,
      }),
    );
  }

  /**
   * A cycle's bulk write: `text` takes the rows as a JSON array in $1 (then `params`), sent about
   * {@link WRITE_CHUNK_CHARS} characters a statement so that no single JSON text (and its copy on
   * the wire) grows with the flag count; more than one statement runs in one transaction, all or
   * nothing. Each statement takes as many rows as fit, at the last statement's characters per row.
   */
  async #bulk<T>(what: string, text: string, items: readonly T[], row: (item: T) => object, params: readonly unknown[] = []): Promise<void> {
    if (items.length === 0) return;
    let from = 0;
    let rows = 64;
    const next = (): string => {
      const part = items.slice(from, from + rows);
      const json = JSON.stringify(part.map(row));
      from += part.length;
      rows = Math.max(1, Math.floor((WRITE_CHUNK_CHARS * part.length) / json.length));
      return json;
    };
    try {
      const first = next();
      if (from >= items.length) {
        await this.#sql.query(text, [first, ...params]);
        return;
      }
      await this.#sql.transaction(async (tx) => {
        await tx.query(text, [first, ...params]);
        while (from < items.length) await tx.query(text, [next(), ...params]);
      });
    } catch (err) {
      throw storeError(err, what);
    }
  }

  async observationTail(source: string, queries: readonly HistoryQuery[], tail: number): Promise<Map<string, HistoryTail>> {
    const out = new Map<string, { points: HistoryPoint[]; omitted: number }>(queries.map((q) => [q.flag, { points: [], omitted: 0 }]));
    if (queries.length === 0) return out;
    const rows = await this.#q(
      'read observations',
      `select ${HISTORY_COLUMNS}, omitted
         from public.guardian_observation_tail($1, $2::jsonb, $3::integer)`,
      [source, JSON.stringify(historyArgs(queries)), Math.max(1, Math.trunc(tail))],
    );
    let flag: string | undefined;
    let entry: { points: HistoryPoint[]; omitted: number } | undefined;
    for (const r of rows) {
      const name = String(r['flag_name']);
      if (name !== flag) {
        flag = name;
        entry = out.get(name);
        if (entry) entry.omitted = Number(r['omitted'] ?? 0);
      }
      entry?.points.push(historyPointFromEpochRow(r));
    }
    return out;
  }

  async pruneObservations(before: Date): Promise<number> {
    const rows = await this.#q('prune observations', 'with d as (delete from public.guardian_observations where at < $1::timestamptz returning 1) select count(*)::int as n from d', [
      before.toISOString(),
    ]);
    return Number(rows[0]?.['n'] ?? 0);
  }

  async recordExposures(batch: readonly ExposureRecord[]): Promise<number> {
    if (batch.length === 0) return 0;
    const rows = await this.#q('record exposures', 'select public.guardian_record_exposures($1::jsonb) as n', [JSON.stringify(exposureArgs(batch))]);
    return Number(rows[0]?.['n'] ?? 0);
  }

  async exposureCounts(queries: readonly ExposureQuery[]): Promise<Map<string, ExposureCounts>> {
    if (queries.length === 0) return new Map();
    const rows = await this.#q('count exposures', 'select * from public.guardian_exposure_counts($1::jsonb)', [JSON.stringify(exposureQueryArgs(queries))]);
    return exposureCountsFrom(queries, rows);
  }

  async pruneExposures(before: Date): Promise<number> {
    const rows = await this.#q('prune exposures', 'with d as (delete from public.guardian_exposures where last_seen < $1::timestamptz returning 1) select count(*)::int as n from d', [
      before.toISOString(),
    ]);
    return Number(rows[0]?.['n'] ?? 0);
  }

  async tryLease(name: string, holder: string, ttlMs: number): Promise<boolean> {
    const rows = await this.#q('take lease', `select public.guardian_try_lease($1, $2, $3::double precision * interval '1 millisecond') as held`, [name, holder, ttlMs]);
    return rows[0]?.['held'] === true;
  }

  async releaseLease(name: string, holder: string): Promise<void> {
    await this.#q('release lease', 'select public.guardian_release_lease($1, $2)', [name, holder]);
  }

  async listPlanStates(): Promise<PlanState[]> {
    return (await this.#q('list release plans', 'select * from public.guardian_release_plans order by flag_name')).map(toPlanState);
  }

  async syncPlan(flag: string, actor: string): Promise<PlanState> {
    const rows = await this.#q(`release plan of "${flag}"`, 'select * from public.guardian_plan_sync(p_flag => $1, p_actor => $2)', [flag, actor]);
    return toPlanState(rows[0] ?? {});
  }

  async setPlanStatus(req: PlanStatusRequest): Promise<{ plan: PlanState; event?: RollbackEvent }> {
    const a = planStatusArgs(req);
    const rows = await this.#q(
      `${req.status} release plan of "${req.flag}"`,
      `select public.guardian_plan_set_status(
         p_flag => $1, p_status => $2, p_reason => $3, p_actor => $4, p_expected_status => $5::text[],
         p_event_kind => $6, p_idempotency_key => $7, p_channels => $8::text[], p_evidence => $9::jsonb,
         p_expected_flag_version => $10) as result`,
      [a['p_flag'], a['p_status'], a['p_reason'], a['p_actor'], a['p_expected_status'], a['p_event_kind'], a['p_idempotency_key'], a['p_channels'], JSON.stringify(a['p_evidence']), a['p_expected_flag_version']],
    );
    return toPlanStatusResult(rows[0]?.['result']);
  }

  async savePlanReports(reports: readonly { readonly flag: string; readonly report: Readonly<Record<string, unknown>> }[], at: Date): Promise<void> {
    if (reports.length === 0) return;
    await this.#q(
      'save plan reports',
      `update public.guardian_release_plans p set last_report = r.report, assessed_at = $2
         from jsonb_to_recordset($1::jsonb) as r(flag text, report jsonb) where p.flag_name = r.flag`,
      [JSON.stringify(reports), at],
    );
  }

  async promote(req: PromoteRequest): Promise<RollbackEvent> {
    const a = promoteArgs(req);
    const rows = await this.#q(
      `promotion of flag "${req.flag}"`,
      `select * from public.guardian_promote(
         p_flag => $1, p_from => $2, p_to => $3, p_expected_version => $4, p_final => $5, p_evidence => $6::jsonb,
         p_reason => $7, p_actor => $8, p_idempotency_key => $9, p_channels => $10::text[])`,
      [a['p_flag'], a['p_from'], a['p_to'], a['p_expected_version'], a['p_final'], JSON.stringify(a['p_evidence']), a['p_reason'], a['p_actor'], a['p_idempotency_key'], a['p_channels']],
    );
    return toEvent(rows[0] ?? {});
  }

  close(): Promise<void> {
    return this.#sql.close();
  }
}

/** The `p_queries` argument of `guardian_observation_history`. */
export function historyArgs(queries: readonly HistoryQuery[]): { flag: string; stage: string; segment_since: string }[] {
  const iso = isoTimes();
  return queries.map((q) => ({ flag: q.flag, stage: iso(q.stageStartedAt), segment_since: iso(q.segmentSince) }));
}

/**
 * `Date#toISOString` remembered per time for one batch: the flags of a cycle share a few stage
 * and segment starts and one poll time, and at thousands of flags formatting each again shows.
 */
export function isoTimes(): (d: Date) => string {
  const seen = new Map<number, string>();
  return (d) => {
    const ms = d.getTime();
    let text = seen.get(ms);
    if (text === undefined) seen.set(ms, (text = d.toISOString()));
    return text;
  };
}

/** The `p_batch` argument of `guardian_record_exposures`. */
export function exposureArgs(batch: readonly ExposureRecord[]): { flag: string; cohort: boolean; user_key: string; at: string; error: boolean }[] {
  return batch.map((e) => ({ flag: e.flag, cohort: e.cohort, user_key: e.userKey, at: e.at.toISOString(), error: e.error }));
}

/** The `p_queries` argument of `guardian_exposure_counts`. */
export function exposureQueryArgs(queries: readonly ExposureQuery[]): { flag: string; since: string; exclude?: string[] }[] {
  return queries.map((q) => ({ flag: q.flag, since: q.since.toISOString(), ...(q.excludeUserKeys?.length ? { exclude: [...q.excludeUserKeys] } : {}) }));
}

/** `guardian_exposure_counts` rows → counts for every queried flag (zeros where no row came back). */
export function exposureCountsFrom(queries: readonly ExposureQuery[], rows: readonly Row[]): Map<string, ExposureCounts> {
  const zero = { total: 0, errors: 0 };
  const out = new Map<string, { treatment: { total: number; errors: number }; control: { total: number; errors: number } }>(
    queries.map((q) => [q.flag, { treatment: { ...zero }, control: { ...zero } }]),
  );
  for (const r of rows) {
    const entry = out.get(String(r['flag_name']));
    if (!entry) continue;
    const counts = { total: Number(r['users']), errors: Number(r['error_users']) };
    if (r['cohort'] === true || r['cohort'] === 't' || r['cohort'] === 'true') entry.treatment = counts;
    else entry.control = counts;
  }
  return out;
}

function toDate(v: unknown): Date {
  return v instanceof Date ? v : new Date(String(v));
}

/** An observations row as a decide() history point (its `segment` is set by the cycle, which knows the window). */
export function toHistoryPoint(r: Row): HistoryPoint {
  const at = toDate(r['at']);
  const treatment = { total: Number(r['treatment_total']), errors: Number(r['treatment_errors']) };
  const unit = r['unit'] === 'events' ? 'events' : 'users';
  const since = r['since'] === null || r['since'] === undefined ? {} : { since: toDate(r['since']) };
  const ct = r['control_total'];
  const ce = r['control_errors'];
  return ct === null || ct === undefined ? { at, unit, treatment, ...since } : { at, unit, treatment, control: { total: Number(ct), errors: Number(ce ?? 0) }, ...since };
}

/** A number from a float8 column (a JS number from pg and PGlite; text only from a driver that sends it so). */
function num(v: unknown): number {
  return typeof v === 'number' ? v : Number(v);
}

/**
 * A `guardian_observation_history` row read with its times as epoch ms (`at_ms`, `since_ms`) as a
 * decide() history point: the same point {@link toHistoryPoint} makes of the row with timestamps.
 */
export function historyPointFromEpochRow(r: Row): HistoryPoint {
  const at = new Date(num(r['at_ms']));
  const treatment = { total: Number(r['treatment_total']), errors: Number(r['treatment_errors']) };
  const unit = r['unit'] === 'events' ? 'events' : 'users';
  const sinceMs = r['since_ms'];
  const ct = r['control_total'];
  if (ct === null || ct === undefined) return sinceMs === null || sinceMs === undefined ? { at, unit, treatment } : { at, unit, treatment, since: new Date(num(sinceMs)) };
  const control = { total: Number(ct), errors: Number(r['control_errors'] ?? 0) };
  return sinceMs === null || sinceMs === undefined ? { at, unit, treatment, control } : { at, unit, treatment, control, since: new Date(num(sinceMs)) };
}

/** The `guardian_flag_usage` document (jsonb: an object, or its text from PGlite/PostgREST). */
export function usageFrom(v: unknown): FlagUsage {
  const o = (typeof v === 'string' ? JSON.parse(v) : v) as Partial<FlagUsage> | null;
  return { series: o?.series ?? [], judged: o?.judged ?? [], changes: o?.changes ?? [] };
}
