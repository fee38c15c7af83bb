/**
 * The admin API over fetch: a Bearer token on every request, `If-Match` with the version a write
 * was made on, and every non-2xx turned into an {@link ApiError} whose message is words for a person.
 */
import type { AuditChange, Flag, FlagPatch, GuardianStatus, Me, NewFlag, PlanAction, PlanView, RollbackEvent, Usage } from './types.ts';

export interface ApiIssue {
  readonly path: string;
  readonly message: string;
}

/** A failed API call: `code` from the API (or `network`), `current` on a 412. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  readonly status: number;
  readonly code: string;
  readonly field: string | undefined;
  readonly issues: readonly ApiIssue[];
  readonly current: Flag | undefined;

  constructor(status: number, code: string, message: string, extra: { field?: string; issues?: readonly ApiIssue[]; current?: Flag } = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = extra.field;
    this.issues = extra.issues ?? [];
    this.current = extra.current;
  }

  /** The whole story in one line: message, field and every issue. */
  describe(): string {
    const parts = [this.message];
    if (this.field && !this.message.includes(this.field)) parts.push(`(field ${this.field})`);
    for (const i of this.issues) parts.push(`${i.path}: ${i.message}`);
    return parts.join(' ');
  }
}

export type TokenSource = () => Promise<string | null>;

interface RequestOptions {
  readonly body?: unknown;
  readonly version?: number;
  readonly accept?: string;
  readonly signal?: AbortSignal;
}

function query(params: Readonly<Record<string, string | number | undefined | null>>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s === '' ? '' : `?${s}`;
}

const enc = encodeURIComponent;

export interface EventFilters {
  readonly flag?: string;
  readonly kind?: string;
  readonly rule?: string;
  readonly actor?: string;
  readonly since?: string;
  readonly until?: string;
  readonly cursor?: string | null;
  readonly limit?: number;
}

export class AdminApi {
  readonly base: string;
  private readonly token: TokenSource;
  private readonly fetchImpl: typeof fetch;

  private readonly onUnauthorized: ((err: ApiError) => void) | undefined;

  /** `onUnauthorized` hears every 401 (the credentials expired or were revoked: sign in again). */
  constructor(base: string, token: TokenSource, options: { fetch?: typeof fetch; onUnauthorized?: (err: ApiError) => void } = {}) {
    this.base = base.replace(/\/$/, '');
    this.token = token;
    this.fetchImpl = options.fetch ?? ((...a) => globalThis.fetch(...a));
    this.onUnauthorized = options.onUnauthorized;
  }

  /** Headers every request carries (the stream reader uses them too). */
  async headers(extra: Record<string, string> = {}): Promise<Record<string, string>> {
    const token = await this.token();
    return { ...(token ? { authorization: `Bearer ${token}` } : {}), ...extra };
  }

  async raw(method: string, path: string, options: RequestOptions = {}): Promise<Response> {
    const headers = await this.headers({ accept: options.accept ?? 'application/json' });
    if (options.body !== undefined) headers['content-type'] = 'application/json';
    if (options.version !== undefined) headers['if-match'] = `"${options.version}"`;
    let res: Response;
    try {
      res = await this.fetchImpl(`${this.base}${path}`, {
        method,
        headers,
        ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
      });
    } catch (err) {
      if ((err as Error).name === 'AbortError') throw err;
      throw new ApiError(0, 'network', `Could not reach the guardian at ${this.base} (${(err as Error).message}). Check that it is running and try again.`);
    }
    if (!res.ok) {
      const err = await toError(res);
      if (res.status === 401) this.onUnauthorized?.(err);
      throw err;
    }
    return res;
  }

  async json<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const res = await this.raw(method, path, options);
    if (res.status === 204) return undefined as T;
    return (await res.json()) as T;
  }

  me(): Promise<Me> {
    return this.json('GET', '/me');
  }
  async flags(params: { search?: string; state?: string } = {}, signal?: AbortSignal): Promise<Flag[]> {
    return (await this.json<{ flags: Flag[] }>('GET', `/flags${query(params)}`, signal ? { signal } : {})).flags;
  }
  async flag(name: string, signal?: AbortSignal): Promise<Flag> {
    return (await this.json<{ flag: Flag }>('GET', `/flags/${enc(name)}`, signal ? { signal } : {})).flag;
  }
  patchFlag(name: string, version: number, patch: FlagPatch): Promise<{ flag: Flag; note?: string }> {
    return this.json('PATCH', `/flags/${enc(name)}`, { body: patch, version });
  }
  targets(name: string, params: { search?: string; cursor?: string | null; limit?: number } = {}): Promise<{ targets: string[]; total: number; nextCursor: string | null }> {
    return this.json('GET', `/flags/${enc(name)}/targets${query(params)}`);
  }
  changeTargets(name: string, version: number, change: { add?: readonly string[]; remove?: readonly string[] }): Promise<{ flag: Flag; added: number; removed: number }> {
    return this.json('POST', `/flags/${enc(name)}/targets`, { body: change, version });
  }
  /** Rolls back now (the endpoint takes no If-Match: a rollback is never refused for being stale). */
  rollback(name: string, body: { reason: string; stepBack?: boolean; notify?: boolean; urgent?: boolean }): Promise<{ event: RollbackEvent; flag: Flag; alreadyRolledBack: boolean }> {
    return this.json('POST', `/flags/${enc(name)}/rollback`, { body });
  }
  async createFlag(body: NewFlag): Promise<Flag> {
    return (await this.json<{ flag: Flag }>('POST', '/flags', { body })).flag;
  }
  deleteFlag(name: string, version: number): Promise<void> {
    return this.json('DELETE', `/flags/${enc(name)}`, { version });
  }
  async plans(signal?: AbortSignal): Promise<PlanView[]> {
    return (await this.json<{ plans: PlanView[] }>('GET', '/plans', signal ? { signal } : {})).plans;
  }
  changePlan(flag: string, action: PlanAction, body: { reason?: string } = {}): Promise<{ plan: PlanView; eventId: string | null }> {
    return this.json('POST', `/plans/${enc(flag)}/${action}`, { body });
  }
  restore(name: string, version: number, body: { eventId?: string; reason?: string }): Promise<{ event: RollbackEvent; flag: Flag }> {
    return this.json('POST', `/flags/${enc(name)}/restore`, { body, version });
  }
  audit(name: string, cursor?: string | null): Promise<{ changes: AuditChange[]; nextCursor: string | null }> {
    return this.json('GET', `/flags/${enc(name)}/audit${query({ cursor, limit: 50 })}`);
  }
  usage(name: string, bucket: 'minute' | 'hour' | 'day', since: Date, signal?: AbortSignal): Promise<Usage> {
    return this.json('GET', `/flags/${enc(name)}/usage${query({ bucket, since: since.toISOString() })}`, signal ? { signal } : {});
  }
  events(filters: EventFilters = {}): Promise<{ events: RollbackEvent[]; nextCursor: string | null }> {
    return this.json('GET', `/events${query({ ...filters })}`);
  }
  async eventsCsv(filters: EventFilters = {}): Promise<string> {
    const res = await this.raw('GET', `/events${query({ ...filters, format: 'csv' })}`, { accept: 'text/csv' });
    return res.text();
  }
  status(): Promise<GuardianStatus> {
    return this.json('GET', '/status');
  }
}

async function toError(res: Response): Promise<ApiError> {
  let body: unknown = null;
  try {
    body = await res.json();
  } catch {
    // Not JSON: a proxy's page or an empty body; the status says what we know.
  }
  const e = (body as { error?: { code?: unknown; message?: unknown; field?: unknown; issues?: unknown } } | null)?.error;
  const current = (body as { current?: Flag } | null)?.current;
  const code = typeof e?.code === 'string' ? e.code : statusCode(res.status);
  const message = typeof e?.message === 'string' && e.message !== '' ? e.message : `The guardian answered ${res.status} ${res.statusText || ''}`.trim() + '.';
  const issues = Array.isArray(e?.issues) ? (e.issues as ApiIssue[]).filter((i) => typeof i?.message === 'string') : [];
  return new ApiError(res.status, code, message, {
    ...(typeof e?.field === 'string' ? { field: e.field } : {}),
    issues,
    ...(current && typeof current === 'object' ? { current } : {}),
  });
}

function statusCode(status: number): string {
  if (status === 401) return 'unauthorized';
  if (status === 403) return 'forbidden';
  if (status === 404) return 'not_found';
  if (status === 412) return 'version_conflict';
  if (status === 428) return 'precondition_required';
  if (status === 429) return 'rate_limited';
  return status >= 500 ? 'internal' : 'bad_request';
}
