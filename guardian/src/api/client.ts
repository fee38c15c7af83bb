/**
 * A {@link Store} over the admin API (`--api URL` / `GUARDIAN_API_URL` with
 * `GUARDIAN_ADMIN_TOKEN`), so the CLI works where it can reach the guardian but not its
 * database. Implements what the CLI's flag, event, rollback and restore commands use; every flag
 * write is version-checked (If-Match with the version just read). Guardian-internal parts of the
 * Store (rule state, observations, exposures, leases) are not reachable this way and say so.
 */
import { GuardianError, type GuardianErrorCode } from '../errors.ts';
import type {
  EventQuery,
  Flag,
  FlagChange,
  FlagEdit,
  FlagPatch,
  NewFlag,
  RestoreRequest,
  RollbackEvent,
  RollbackRequest,
  Store,
  TargetPage,
  TargetQuery,
  ChangeQuery,
} from '../store/types.ts';

type Json = Record<string, unknown>;

const CODES: Readonly<Record<string, GuardianErrorCode>> = {
  not_found: 'NOT_FOUND',
  bad_request: 'BAD_ARGUMENT',
  conflict: 'STORE_CONFLICT',
  version_conflict: 'VERSION_CONFLICT',
  unavailable: 'STORE_UNREACHABLE',
};

function toFlag(f: Json, targets: readonly string[]): Flag {
  return {
    name: String(f['name']),
    description: String(f['description'] ?? ''),
    enabled: f['enabled'] === true,
    rolloutPercentage: Number(f['rolloutPercentage']),
    bucketGroup: (f['bucketGroup'] as string | null) ?? null,
    version: Number(f['version']),
    updatedAt: new Date(String(f['updatedAt'])),
    updatedBy: (f['updatedBy'] as string | null) ?? null,
    guardState: f['guardState'] as Flag['guardState'],
    rollbackMessage: (f['rollbackMessage'] as string | null) ?? null,
    rollbackUrgent: f['rollbackUrgent'] === true,
    stageStartedAt: new Date(String(f['stageStartedAt'])),
    targets: [...targets].sort(),
  };
}

function toEvent(e: Json): RollbackEvent {
  const state = (s: unknown) => {
    const o = (s ?? {}) as Json;
    return { enabled: o['enabled'] === true, rolloutPercentage: Number(o['rolloutPercentage'] ?? 0), targets: Array.isArray(o['targets']) ? (o['targets'] as string[]) : [], guardState: (o['guardState'] ?? 'watching') as Flag['guardState'],
      ...('rollbackMessage' in o ? { rollbackMessage: (o['rollbackMessage'] as string | null) ?? null } : {}),
      ...('rollbackUrgent' in o ? { rollbackUrgent: o['rollbackUrgent'] === true } : {}) };
  };
  return {
    id: String(e['id']),
    flag: String(e['flag']),
    kind: e['kind'] as RollbackEvent['kind'],
    ruleId: (e['ruleId'] as string | null) ?? null,
    source: (e['source'] as string | null) ?? null,
    action: (e['action'] as RollbackEvent['action']) ?? null,
    reason: (e['reason'] as string | null) ?? null,
    evidence: (e['evidence'] as Json) ?? {},
    previousState: state(e['previousState']),
    newState: state(e['newState']),
    actor: String(e['actor']),
    idempotencyKey: '',
    restoresEventId: (e['restoresEventId'] as string | null) ?? null,
    createdAt: new Date(String(e['createdAt'])),
  };
}

/**
 * Opens the API store.
 *
 * @example
 * const store = apiStore({ url: 'https://guardian.example.com', token: process.env.GUARDIAN_ADMIN_TOKEN! });
 */
export function apiStore(opts: { url: string; token: string; fetch?: typeof fetch }): Store {
  const base = `${opts.url.replace(/\/+$/, '').replace(/\/api\/v1$/, '')}/api/v1`;
  const doFetch = opts.fetch ?? fetch;
  const call = async (method: string, path: string, body?: unknown, ifMatch?: number): Promise<{ status: number; json: Json }> => {
    let res: Response;
    try {
      res = await doFetch(`${base}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${opts.token}`,
          accept: 'application/json',
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
          ...(ifMatch !== undefined ? { 'if-match': `"${ifMatch}"` } : {}),
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
    } catch (err) {
      throw new GuardianError('STORE_UNREACHABLE', `the guardian API at ${base} is unreachable (${(err as Error).message}). Check --api / GUARDIAN_API_URL.`, { cause: err });
    }
    const text = await res.text();
    const json = (text ? JSON.parse(text) : {}) as Json;
    if (res.status >= 400) {
      const e = (json['error'] ?? {}) as Json;
      const code = String(e['code'] ?? '');
      const message = String(e['message'] ?? `HTTP ${res.status}`);
      if (res.status === 401 || res.status === 403) throw new GuardianError('STORE_UNREACHABLE', `the guardian API refused the token (${res.status}): ${message} Set GUARDIAN_ADMIN_TOKEN.`);
      throw new GuardianError(CODES[code] ?? 'STORE_FAILED', message);
    }
    return { status: res.status, json };
  };
  const enc = encodeURIComponent;
  const listTargets = async (flag: string, q: TargetQuery = {}): Promise<TargetPage> => {
    const params = new URLSearchParams({ limit: String(q.limit ?? 1000), ...(q.search ? { search: q.search } : {}), ...(q.after ? { cursor: q.after } : {}) });
    return (await call('GET', `/flags/${enc(flag)}/targets?${params.toString()}`)).json as unknown as TargetPage;
  };
  const allTargets = async (flag: string): Promise<string[]> => {
    const out: string[] = [];
    for (let after: string | null = null; ; ) {
      const page: TargetPage = await listTargets(flag, { limit: 1000, ...(after ? { after } : {}) });
      out.push(...page.targets);
      if (!page.nextCursor) return out;
      after = page.nextCursor;
    }
  };
  const getFlag = async (name: string): Promise<Flag | undefined> => {
    try {
      const f = (await call('GET', `/flags/${enc(name)}`)).json['flag'] as Json;
      return toFlag(f, Number(f['targetCount']) > 0 ? await allTargets(name) : []);
    } catch (err) {
      if (err instanceof GuardianError && err.code === 'NOT_FOUND') return undefined;
      throw err;
    }
  };
  const editFlag = async (name: string, version: number, edit: FlagEdit): Promise<Flag> => {
    const body: Json = {
      ...(edit.enabled !== undefined ? { enabled: edit.enabled } : {}),
      ...(edit.rolloutPercentage !== undefined ? { rolloutPercentage: edit.rolloutPercentage } : {}),
      ...(edit.rollbackMessage !== undefined ? { rollbackMessage: edit.rollbackMessage } : {}),
      ...(edit.description !== undefined ? { description: edit.description } : {}),
      ...(edit.lock !== undefined ? { locked: edit.lock } : {}),
    };
    let v = version;
    if (Object.keys(body).length > 0) v = Number(((await call('PATCH', `/flags/${enc(name)}`, body, v)).json['flag'] as Json)['version']);
    if (edit.addTargets?.length || edit.removeTargets?.length) {
      await call('POST', `/flags/${enc(name)}/targets`, { ...(edit.addTargets?.length ? { add: edit.addTargets } : {}), ...(edit.removeTargets?.length ? { remove: edit.removeTargets } : {}) }, v);
    }
    const after = await getFlag(name);
    if (!after) throw new GuardianError('NOT_FOUND', `flag "${name}" does not exist`);
    return after;
  };
  const setFlag = async (name: string, patch: FlagPatch): Promise<Flag> => {
    const now = await getFlag(name);
    if (!now) throw new GuardianError('NOT_FOUND', `flag "${name}" does not exist`);
    return editFlag(name, now.version, patch);
  };
  const unsupported = (what: string) => (): never => {
    throw new GuardianError('BAD_ARGUMENT', `${what} is not available through the admin API (--api / GUARDIAN_API_URL); run this where the database is reachable`);
  };
  return {
    kind: 'api',
    location: base,
    async ping() {
      await call('GET', '/me');
    },
    async listFlags() {
      const flags = (await call('GET', '/flags')).json['flags'] as Json[];
      return Promise.all(flags.map(async (f) => toFlag(f, Number(f['targetCount']) > 0 ? await allTargets(String(f['name'])) : [])));
    },
    getFlag,
    setFlag: (name, patch) => setFlag(name, patch),
    addTarget: (flag, userId) => setFlag(flag, { addTargets: [userId] }),
    removeTarget: (flag, userId) => setFlag(flag, { removeTargets: [userId] }),
    lock: (flag) => setFlag(flag, { lock: true }),
    unlock: (flag) => setFlag(flag, { lock: false }),
    async rollback(req: RollbackRequest) {
      const res = await call('POST', `/flags/${enc(req.flag)}/rollback`, { reason: req.reason ?? 'rolled back through the API', stepBack: req.action === 'step_back', notify: req.channels.length > 0, force: true, ...(req.urgent ? { urgent: true } : {}) });
      return toEvent(res.json['event'] as Json);
    },
    async restore(req: RestoreRequest) {
      const byId = /^\d+$/.test(req.target);
      const flag = byId ? (await this.getEvent(req.target))?.flag : req.target;
      if (!flag) throw new GuardianError('NOT_FOUND', `there is no event with id ${req.target}`);
      const res = await call('POST', `/flags/${enc(flag)}/restore`, { ...(byId ? { eventId: req.target } : {}), ...(req.reason ? { reason: req.reason } : {}) });
      return toEvent(res.json['event'] as Json);
    },
    async listEvents(q: EventQuery = {}) {
      const params = new URLSearchParams({
        limit: String(q.limit ?? 50),
        ...(q.flag ? { flag: q.flag } : {}),
        ...(q.kind ? { kind: q.kind } : {}),
        ...(q.since ? { since: q.since.toISOString() } : {}),
        ...(q.until ? { until: q.until.toISOString() } : {}),
        ...(q.ruleId ? { rule: q.ruleId } : {}),
        ...(q.actor ? { actor: q.actor } : {}),
        ...(q.beforeId ? { cursor: q.beforeId } : {}),
      });
      return ((await call('GET', `/events?${params.toString()}`)).json['events'] as Json[]).map(toEvent);
    },
    async getEvent(id: string) {
      if (!/^\d{1,19}$/.test(id)) return undefined;
      const events = (await call('GET', `/events?cursor=${(BigInt(id) + 1n).toString()}&limit=1`)).json['events'] as Json[];
      const e = events[0];
      return e && String(e['id']) === id ? toEvent(e) : undefined;
    },
    async createFlag(flag: NewFlag) {
      const f = (await call('POST', '/flags', { name: flag.name, ...(flag.description !== undefined ? { description: flag.description } : {}), ...(flag.bucketGroup ? { bucketGroup: flag.bucketGroup } : {}) })).json['flag'] as Json;
      return toFlag(f, []);
    },
    editFlag: (name, version, edit) => editFlag(name, version, edit),
    async deleteFlag(name: string, version: number) {
      await call('DELETE', `/flags/${enc(name)}`, undefined, version);
    },
    listTargets,
    async listChanges(q: ChangeQuery = {}): Promise<FlagChange[]> {
      const params = new URLSearchParams({
        limit: String(q.limit ?? 50),
        ...(q.flag ? { flag: q.flag } : {}),
        ...(q.actor ? { actor: q.actor } : {}),
        ...(q.since ? { since: q.since.toISOString() } : {}),
        ...(q.until ? { until: q.until.toISOString() } : {}),
        ...(q.beforeId ? { cursor: q.beforeId } : {}),
      });
      return ((await call('GET', `/audit?${params.toString()}`)).json['changes'] as Json[]).map((c) => ({
        id: String(c['id']),
        flag: String(c['flag']),
        op: String(c['op']).toLowerCase() as FlagChange['op'],
        actor: String(c['actor']),
        at: new Date(String(c['at'])),
        oldRow: (c['old'] as Json | null) ?? null,
        newRow: (c['new'] as Json | null) ?? null,
      }));
    },
    flagUsage: unsupported('usage (use GET /api/v1/flags/{name}/usage)'),
    sourceHealth: unsupported('source health (use GET /api/v1/status)'),
    eventNotifications: async (ids) => new Map(ids.map((id) => [id, []])),
    loadRuleState: unsupported('rule state'),
    saveRuleState: unsupported('rule state'),
    appendObservations: unsupported('observations'),
    observationTail: unsupported('observations'),
    pruneObservations: unsupported('observations'),
    recordExposures: unsupported('exposures'),
    exposureCounts: unsupported('exposures'),
    pruneExposures: unsupported('exposures'),
    tryLease: unsupported('leases'),
    releaseLease: unsupported('leases'),
    previousStage: unsupported('rollout stages'),
    listPlanStates: unsupported('release plans'),
    syncPlan: unsupported('release plans'),
    setPlanStatus: unsupported('release plans'),
    savePlanReports: unsupported('release plans'),
    promote: unsupported('promotion'),
    async close() {},
  };
}
