/**
 * {@link Store} over Supabase's REST API (PostgREST) with supabase-js and the service-role key:
 * the SQL functions through `.rpc()` (guardian_rollback, restore_flag, guardian_set_flag,
 * guardian_try_lease — the same exactly-once code as the SQL backends) and plain table queries
 * for the rest. Works through Supabase's transaction pooler: no session state is used.
 *
 * PostgREST answers at most `max_rows` rows per read (1000 on Supabase unless changed), silently:
 * every read that can grow (flags, targets, observations, rule state, health) is paged with
 * `.range()` until a page comes back empty. supabase-js's own retries (GETs only, 1 s + 2 s + 4 s
 * on a network error) are off and each request has a timeout, so an unreachable Supabase is
 * reported at once as STORE_UNREACHABLE; the guardian's cycle is what tries again.
 */
import { createClient, type SupabaseClient } from '@supabase/supabase-js';

import type { HistoryPoint } from '../decide/types.ts';
import { GuardianError } from '../errors.ts';
import { editToJson, notificationsByEvent, patchToJson, planStatusArgs, promoteArgs, storeError, toChange, toEvent, toFlag, toPlanState, toPlanStatusResult, toRuleState, toSourceHealth } from './rows.ts';
import { DEFAULT_EVENT_LIMIT, DEFAULT_TARGET_LIMIT, MAX_EVENT_LIMIT, MAX_TARGET_LIMIT, exposureArgs, idCursor, likePattern, pageLimit, usageFrom, exposureCountsFrom, exposureQueryArgs, historyArgs, toHistoryPoint } from './sql-store.ts';
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

/** Rows asked for per page: Supabase's default `max_rows`; a lower server cap only means more pages. */
const PAGE_ROWS = 1000;

/** Default time limit of one request to Supabase. */
const DEFAULT_TIMEOUT_MS = 30_000;

/**
 * Options of {@link SupabaseStore}.
 *
 * @example
 * new SupabaseStore({ url: 'https://abc.supabase.co', serviceRoleKey: process.env.SUPABASE_SERVICE_ROLE_KEY! });
 */
export interface SupabaseStoreOptions {
  readonly url: string;
  readonly serviceRoleKey: string;
  /** Injected fetch (tests, proxies). Default the global fetch. */
  readonly fetch?: typeof fetch;
  /** Time limit of one request, in ms (aborted requests are STORE_UNREACHABLE). Default 30000. */
  readonly timeoutMs?: number;
}

interface PostgrestLikeError {
  code?: string;
  message?: string;
  details?: string | null;
  hint?: string | null;
}

/** A supabase-js error → GuardianError (SQLSTATEs as the SQL backends; network and auth failures → unreachable). */
function supabaseError(error: PostgrestLikeError, what: string, status?: number): GuardianError {
  const code = error.code ?? '';
  const message = error.message ?? 'unknown error';
  if ((code === '' && /fetch failed|network|ECONNREFUSED|ENOTFOUND|timed? ?out/i.test(`${message} ${error.details ?? ''}`)) || status === 0) {
    return new GuardianError('STORE_UNREACHABLE', `${what}: Supabase is unreachable (${message}). Check SUPABASE_URL.`, { cause: error });
  }
  if (code.startsWith('PGRST3') || status === 401) {
    return new GuardianError('STORE_UNREACHABLE', `${what}: Supabase refused the key (${message}). Check SUPABASE_SERVICE_ROLE_KEY (the service_role key, not the anon key).`, {
      cause: error,
    });
  }
  if (status === 403) {
    // PostgREST: 42501 for a role that is not anon. The key is valid but its role lacks the right.
    return new GuardianError(
      'STORE_UNREACHABLE',
      `${what}: Supabase refused this to the key's role (${message}). Check SUPABASE_SERVICE_ROLE_KEY is the service_role key and the migrations' grants are applied.`,
      { cause: error },
    );
  }
  if (code === 'PGRST202' || code === 'PGRST205') {
    return new GuardianError('STORE_FAILED', `${what}: ${message}. The database schema is missing or old: apply the migrations (supabase db push).`, { cause: error });
  }
  return storeError({ ...error, code, message, status }, what);
}

/**
 * The Supabase backend of {@link Store}.
 *
 * @example
 * const store = new SupabaseStore({ url: process.env.SUPABASE_URL!, serviceRoleKey: process.env.SUPABASE_SERVICE_ROLE_KEY! });
 * await store.ping();
 */
export class SupabaseStore implements Store {
  readonly kind = 'supabase' as const;
  readonly location: string;
  readonly #client: SupabaseClient;

  constructor(opts: SupabaseStoreOptions) {
    this.location = opts.url;
    this.#client = createClient(opts.url, opts.serviceRoleKey, {
      auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
      // No hidden retries (they made an unreachable URL take 7 s per read); a bounded wait per request.
      db: { retry: false, timeout: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS },
      ...(opts.fetch ? { global: { fetch: opts.fetch } } : {}),
    });
  }

  /** The supabase-js client underneath (the outbox worker shares it). */
  get client(): SupabaseClient {
    return this.#client;
  }

  async #run<T>(what: string, op: PromiseLike<{ data: T | null; error: PostgrestLikeError | null; status?: number }>): Promise<T | null> {
    let res: { data: T | null; error: PostgrestLikeError | null; status?: number };
    try {
      res = await op;
    } catch (err) {
      throw new GuardianError('STORE_UNREACHABLE', `${what}: Supabase is unreachable (${(err as Error).message}). Check SUPABASE_URL.`, { cause: err });
    }
    if (res.error) throw supabaseError(res.error, what, res.status);
    return res.data;
  }

  /**
   * Every row of a read, page by page (`.range()`), so PostgREST's `max_rows` cap never truncates
   * it silently; stops at an empty page, or once `max` rows are in. `build` must order by a unique key.
   */
  async #pages(what: string, build: (from: number, to: number) => PromiseLike<{ data: Row[] | null; error: PostgrestLikeError | null; status?: number }>, max = Infinity): Promise<Row[]> {
    const out: Row[] = [];
    while (out.length < max) {
      const size = Math.min(PAGE_ROWS, max - out.length);
      const rows = (await this.#run<Row[]>(what, build(out.length, out.length + size - 1))) ?? [];
      if (rows.length === 0) break;
      out.push(...rows);
    }
    return out;
  }

  async #rpcRow(what: string, fn: string, args: Record<string, unknown>): Promise<Row> {
    const data = await this.#run<unknown>(what, this.#client.rpc(fn, args));
    const row = Array.isArray(data) ? (data[0] as unknown) : data;
    if (row === null || typeof row !== 'object') throw new GuardianError('STORE_FAILED', `${what}: Supabase returned no row from ${fn}`);
    return row as Row;
  }

  /**
   * Reads a table only the service role may read (`guardian_leases`): an unreachable URL, a
   * missing schema AND a wrong key (the anon key can read `feature_flags`) all fail here, at start.
   */
  async ping(): Promise<void> {
    await this.#run('ping', this.#client.from('guardian_leases').select('name').limit(1));
  }

  async listFlags(): Promise<Flag[]> {
    const [flags, targets] = await Promise.all([
      this.#pages('list flags', (from, to) => this.#client.from('feature_flags').select('*').order('name').range(from, to)),
      this.#pages('list targets', (from, to) => this.#client.from('flag_targets').select('flag_name,user_id').order('flag_name').order('user_id').range(from, to)),
    ]);
    const byFlag = new Map<string, string[]>();
    for (const t of targets) {
      const list = byFlag.get(String(t['flag_name'])) ?? [];
      list.push(String(t['user_id']));
      byFlag.set(String(t['flag_name']), list);
    }
    return flags.map((f) => toFlag(f, byFlag.get(String(f['name'])) ?? []));
  }

  async getFlag(name: string): Promise<Flag | undefined> {
    const [flags, targets] = await Promise.all([
      this.#run<Row[]>('get flag', this.#client.from('feature_flags').select('*').eq('name', name)),
      this.#pages('get targets', (from, to) => this.#client.from('flag_targets').select('user_id').eq('flag_name', name).order('user_id').range(from, to)),
    ]);
    const row = flags?.[0];
    return row ? toFlag(row, targets.map((t) => String(t['user_id']))) : undefined;
  }

  async setFlag(name: string, patch: FlagPatch, actor: string): Promise<Flag> {
    await this.#rpcRow(`set flag "${name}"`, 'guardian_set_flag', { p_flag: name, p_patch: patchToJson(patch), p_actor: actor });
    const flag = await this.getFlag(name);
    if (!flag) throw new GuardianError('NOT_FOUND', `flag "${name}" does not exist`);
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

  async previousStage(flag: string, current: number, stages?: readonly number[]): Promise<number | undefined> {
    const data = await this.#run<unknown>(
      `previous stage of flag "${flag}"`,
      this.#client.rpc('guardian_previous_stage', { p_flag: flag, p_current: current, p_stages: stages ? [...stages] : null }),
    );
    return data === null || data === undefined ? undefined : Number(data);
  }

  async rollback(req: RollbackRequest): Promise<RollbackEvent> {
    return toEvent(
      await this.#rpcRow(`rollback of flag "${req.flag}"`, 'guardian_rollback', {
        p_flag: req.flag,
        p_action: req.action,
        p_rule_id: req.ruleId ?? null,
        p_source: req.source ?? null,
        p_evidence: req.evidence ?? {},
        p_actor: req.actor,
        p_idempotency_key: req.idempotencyKey,
        p_channels: [...req.channels],
        p_dry_run: req.dryRun === true,
        p_reason: req.reason ?? null,
        p_kind: req.kind ?? 'auto_rollback',
        p_stages: req.stages ? [...req.stages] : null,
        p_message: req.message ?? null,
        p_urgent: req.urgent === true,
      }),
    );
  }

  async restore(req: RestoreRequest): Promise<RollbackEvent> {
    return toEvent(
      await this.#rpcRow(`restore of "${req.target}"`, 'restore_flag', {
        p_flag_or_event: req.target,
        p_actor: req.actor,
        p_reason: req.reason ?? null,
        p_idempotency_key: req.idempotencyKey,
        p_channels: req.channels ? [...req.channels] : null,
      }),
    );
  }

  async listEvents(query: EventQuery = {}): Promise<RollbackEvent[]> {
    const page = (from: number, to: number) => {
      let q = this.#client.from('rollback_events').select('*');
      if (query.flag !== undefined) q = q.eq('flag_name', query.flag);
      if (query.kind !== undefined) q = q.eq('kind', query.kind);
      if (query.since !== undefined) q = q.gte('created_at', query.since.toISOString());
      if (query.until !== undefined) q = q.lt('created_at', query.until.toISOString());
      if (query.ruleId !== undefined) q = q.eq('rule_id', query.ruleId);
      if (query.actor !== undefined) q = q.eq('actor', query.actor);
      if (query.beforeId !== undefined) q = q.lt('id', idCursor(query.beforeId) ?? '0');
      return q.order('created_at', { ascending: false }).order('id', { ascending: false }).range(from, to);
    };
    const limit = Math.min(Math.max(1, Math.trunc(query.limit ?? DEFAULT_EVENT_LIMIT)), MAX_EVENT_LIMIT);
    return (await this.#pages('list events', page, limit)).map(toEvent);
  }

  async createFlag(flag: NewFlag, actor: string): Promise<Flag> {
    const row = await this.#rpcRow(`create flag "${flag.name}"`, 'guardian_create_flag', {
      p_name: flag.name,
      p_description: flag.description ?? '',
      p_bucket_group: flag.bucketGroup ?? null,
      p_actor: actor,
    });
    return toFlag(row, []);
  }

  async editFlag(name: string, expectedVersion: number, edit: FlagEdit, actor: string): Promise<Flag> {
    await this.#rpcRow(`edit flag "${name}"`, 'guardian_edit_flag', { p_flag: name, p_expected_version: expectedVersion, p_patch: editToJson(edit), p_actor: actor });
    const flag = await this.getFlag(name);
    if (!flag) throw new GuardianError('NOT_FOUND', `flag "${name}" does not exist`);
    return flag;
  }

  async deleteFlag(name: string, expectedVersion: number, actor: string): Promise<void> {
    await this.#rpcRow(`delete flag "${name}"`, 'guardian_delete_flag', { p_name: name, p_expected_version: expectedVersion, p_actor: actor });
  }

  async listTargets(flag: string, query: TargetQuery = {}): Promise<TargetPage> {
    const exists = await this.#run<Row[]>('get flag', this.#client.from('feature_flags').select('name').eq('name', flag));
    if (!exists?.length) throw new GuardianError('NOT_FOUND', `flag "${flag}" does not exist`);
    const limit = pageLimit(query.limit, DEFAULT_TARGET_LIMIT, MAX_TARGET_LIMIT);
    let count = this.#client.from('flag_targets').select('user_id', { count: 'exact', head: true }).eq('flag_name', flag);
    let page = this.#client.from('flag_targets').select('user_id').eq('flag_name', flag);
    if (query.search) {
      count = count.ilike('user_id', likePattern(query.search));
      page = page.ilike('user_id', likePattern(query.search));
    }
    if (query.after !== undefined) page = page.gt('user_id', query.after);
    let total: number;
    try {
      const res = await count;
      if (res.error) throw supabaseError(res.error, 'count targets', res.status);
      total = res.count ?? 0;
    } catch (err) {
      if (err instanceof GuardianError) throw err;
      throw new GuardianError('STORE_UNREACHABLE', `count targets: Supabase is unreachable (${(err as Error).message}). Check SUPABASE_URL.`, { cause: err });
    }
    const rows = (await this.#run<Row[]>('list targets', page.order('user_id').range(0, limit))) ?? [];
    const targets = rows.slice(0, limit).map((r) => String(r['user_id']));
    return { targets, total, nextCursor: rows.length > limit ? (targets.at(-1) ?? null) : null };
  }

  async listChanges(query: ChangeQuery = {}): Promise<FlagChange[]> {
    const page = (from: number, to: number) => {
      let q = this.#client.from('flag_changes').select('*');
      if (query.flag !== undefined) q = q.eq('flag_name', query.flag);
      if (query.actor !== undefined) q = q.eq('actor', query.actor);
      if (query.since !== undefined) q = q.gte('at', query.since.toISOString());
      if (query.until !== undefined) q = q.lt('at', query.until.toISOString());
      if (query.beforeId !== undefined) q = q.lt('id', idCursor(query.beforeId) ?? '0');
      return q.order('id', { ascending: false }).range(from, to);
    };
    return (await this.#pages('list changes', page, pageLimit(query.limit, DEFAULT_EVENT_LIMIT, MAX_EVENT_LIMIT))).map(toChange);
  }

  async flagUsage(flag: string, bucket: UsageBucket, since: Date, until: Date): Promise<FlagUsage> {
    const data = await this.#run<unknown>(
      `usage of flag "${flag}"`,
      this.#client.rpc('guardian_flag_usage', { p_flag: flag, p_bucket: bucket, p_since: since.toISOString(), p_until: until.toISOString() }),
    );
    return usageFrom(data);
  }

  async sourceHealth(): Promise<SourceHealth[]> {
    const rows = await this.#pages('read source health', (from, to) => this.#client.from('guardian_source_health').select('*').order('source').range(from, to));
    return rows.map(toSourceHealth);
  }

  async eventNotifications(eventIds: readonly string[]): Promise<Map<string, EventNotification[]>> {
    const ids = eventIds.filter((id) => idCursor(id) !== undefined);
    if (ids.length === 0) return notificationsByEvent(eventIds, []);
    const rows = await this.#pages('read notifications', (from, to) =>
      this.#client.from('notification_outbox').select('id,event_id,channel,status,attempts,delivered_at,last_error').in('event_id', ids).order('id').range(from, to),
    );
    return notificationsByEvent(eventIds, rows);
  }

  async getEvent(id: string): Promise<RollbackEvent | undefined> {
    if (!/^\d{1,19}$/.test(id)) return undefined;
    const rows = await this.#run<Row[]>('get event', this.#client.from('rollback_events').select('*').eq('id', id));
    return rows?.[0] ? toEvent(rows[0]) : undefined;
  }

  async loadRuleState(options: RuleStateQuery = {}): Promise<RuleState[]> {
    const table = () => this.#client.from('guardian_rule_state');
    const rows = await this.#pages('load rule state', (from, to) =>
      (options.evidence === false ? table().select('rule_id,flag_name,consecutive_breaches,last_verdict,updated_at') : table().select('*')).order('rule_id').order('flag_name').range(from, to),
    );
    return rows.map(toRuleState);
  }

  async saveRuleState(states: readonly Omit<RuleState, 'updatedAt'>[], at: Date): Promise<void> {
    if (states.length === 0) return;
    const rows = states.map((s) => ({
      rule_id: s.ruleId,
      flag_name: s.flag,
      consecutive_breaches: s.consecutiveBreaches,
      last_verdict: s.lastVerdict,
      last_evidence: s.lastEvidence,
      updated_at: at.toISOString(),
    }));
    await this.#run('save rule state', this.#client.from('guardian_rule_state').upsert(rows, { onConflict: 'rule_id,flag_name' }));
  }

  async appendObservations(observations: readonly Observation[]): Promise<void> {
    if (observations.length === 0) return;
    const rows = observations.map((o) => ({
      source: o.source,
      flag_name: o.flag,
      stage_started_at: o.stageStartedAt.toISOString(),
      since: (o.since ?? o.stageStartedAt).toISOString(),
      at: o.at.toISOString(),
      unit: o.unit,
      treatment_total: o.treatment.total,
      treatment_errors: o.treatment.errors,
      control_total: o.control?.total ?? null,
      control_errors: o.control?.errors ?? null,
    }));
    await this.#run('append observations', this.#client.from('guardian_observations').insert(rows));
  }

  async observationTail(source: string, queries: readonly HistoryQuery[], tail: number): Promise<Map<string, HistoryTail>> {
    const out = new Map<string, { points: HistoryPoint[]; omitted: number }>(queries.map((q) => [q.flag, { points: [], omitted: 0 }]));
    if (queries.length === 0) return out;
    const args = { p_source: source, p_queries: historyArgs(queries), p_tail: Math.max(1, Math.trunc(tail)) };
    const rows = await this.#pages('read observations', (from, to) => this.#client.rpc('guardian_observation_tail', args).range(from, to));
    for (const r of rows) {
      const entry = out.get(String(r['flag_name']));
      if (!entry) continue;
      entry.omitted = Number(r['omitted'] ?? 0);
      entry.points.push(toHistoryPoint(r));
    }
    return out;
  }

  async pruneObservations(before: Date): Promise<number> {
    const res = await this.#client.from('guardian_observations').delete({ count: 'exact' }).lt('at', before.toISOString());
    if (res.error) throw supabaseError(res.error, 'prune observations', res.status);
    return res.count ?? 0;
  }

  async recordExposures(batch: readonly ExposureRecord[]): Promise<number> {
    if (batch.length === 0) return 0;
    const data = await this.#run<unknown>('record exposures', this.#client.rpc('guardian_record_exposures', { p_batch: exposureArgs(batch) }));
    return Number(data ?? 0);
  }

  async exposureCounts(queries: readonly ExposureQuery[]): Promise<Map<string, ExposureCounts>> {
    if (queries.length === 0) return new Map();
    const args = { p_queries: exposureQueryArgs(queries) };
    const rows = await this.#pages('count exposures', (from, to) => this.#client.rpc('guardian_exposure_counts', args).range(from, to));
    return exposureCountsFrom(queries, rows);
  }

  async pruneExposures(before: Date): Promise<number> {
    const res = await this.#client.from('guardian_exposures').delete({ count: 'exact' }).lt('last_seen', before.toISOString());
    if (res.error) throw supabaseError(res.error, 'prune exposures', res.status);
    return res.count ?? 0;
  }

  async tryLease(name: string, holder: string, ttlMs: number): Promise<boolean> {
    const data = await this.#run<unknown>('take lease', this.#client.rpc('guardian_try_lease', { p_name: name, p_holder: holder, p_ttl: `${Math.round(ttlMs)} milliseconds` }));
    return data === true;
  }

  async releaseLease(name: string, holder: string): Promise<void> {
    await this.#run('release lease', this.#client.rpc('guardian_release_lease', { p_name: name, p_holder: holder }));
  }

  async listPlanStates(): Promise<PlanState[]> {
    const rows = await this.#pages('list release plans', (from, to) => this.#client.from('guardian_release_plans').select('*').order('flag_name').range(from, to));
    return rows.map(toPlanState);
  }

  async syncPlan(flag: string, actor: string): Promise<PlanState> {
    return toPlanState(await this.#rpcRow(`release plan of "${flag}"`, 'guardian_plan_sync', { p_flag: flag, p_actor: actor }));
  }

  async setPlanStatus(req: PlanStatusRequest): Promise<{ plan: PlanState; event?: RollbackEvent }> {
    return toPlanStatusResult(await this.#run<unknown>(`${req.status} release plan of "${req.flag}"`, this.#client.rpc('guardian_plan_set_status', planStatusArgs(req))));
  }

  async savePlanReports(reports: readonly { readonly flag: string; readonly report: Readonly<Record<string, unknown>> }[], at: Date): Promise<void> {
    for (const r of reports) {
      await this.#run('save plan report', this.#client.from('guardian_release_plans').update({ last_report: r.report, assessed_at: at.toISOString() }).eq('flag_name', r.flag));
    }
  }

  async promote(req: PromoteRequest): Promise<RollbackEvent> {
    return toEvent(await this.#rpcRow(`promotion of flag "${req.flag}"`, 'guardian_promote', promoteArgs(req)));
  }

  async close(): Promise<void> {
    await this.#client.removeAllChannels();
  }
}
