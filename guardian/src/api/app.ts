/**
 * `createAdminApi(deps)`: the admin API (mounted at `/api/v1`) as a Hono app. Each operation is
 * declared once (openapi.ts's OperationSpec: path, role, zod schemas) and registered from that
 * declaration: authentication and role, validation of params/query/body/If-Match, then the
 * handler. Writes are one audited SQL function call each, with the caller as actor; every flag
 * write carries the version it is based on and a stale one gets 412 with the current flag.
 */
import { randomUUID } from 'node:crypto';

import { getConnInfo } from '@hono/node-server/conninfo';
import { Hono, type Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { cors } from 'hono/cors';
import type { z } from 'zod';

import { isGuardianError } from '../errors.ts';
import { PLAN_CHANGES, planView } from '../plans/view.ts';
import type { Logger } from '../logger.ts';
import type { Flag, FlagEdit, RollbackEvent, Store } from '../store/types.ts';
import { constantTimeEqual, createAuthenticator, FailureLimiter, requireRole, type Authenticator, type AuthOptions, type Principal } from './auth.ts';
import { ChangeHub, type StreamMessage } from './hub.ts';
import { openApiDocument, type OperationSpec } from './openapi.ts';
import { badRequest, errorResponse, HttpError } from '../http/errors.ts';
import { apiError } from './problem.ts';
import * as S from './schemas.ts';
import { NO_DAEMON, type StatusProvider } from './status.ts';
import { changeJson, eventsJson, flagsJson, lastRollbackOf, toCsv, verdictJson } from './views.ts';

/**
 * What the admin API needs.
 *
 * @example
 * const api = createAdminApi({ store, auth: { adminToken: process.env.GUARDIAN_ADMIN_TOKEN }, allowedOrigins: ['https://admin.example.com'] });
 * app.route('/api/v1', api);
 */
export interface AdminApiDeps {
  readonly store: Store;
  /** Token checks ({@link AuthOptions}) or a ready {@link Authenticator}. */
  readonly auth: AuthOptions | Authenticator;
  /** Origins allowed by CORS (GUARDIAN_ALLOWED_ORIGINS); none = no CORS headers at all. */
  readonly allowedOrigins?: readonly string[];
  /** The change stream's hub; without one `/stream` answers 503. */
  readonly hub?: ChangeHub;
  /** The daemon's state (status, rule thresholds, rollback channels). */
  readonly status?: StatusProvider;
  /** Failed-authentication limiter (default 20 per minute per address). */
  readonly limiter?: FailureLimiter;
  /** The client address of a request (default: the socket's remote address). */
  readonly clientAddress?: (c: Context) => string;
  readonly logger?: Logger;
  readonly now?: () => Date;
  /** Largest request body (default 8 MiB: 2 × 10,000 ids of up to a few hundred bytes). */
  readonly maxBodyBytes?: number;
  /** API version in the OpenAPI document. */
  readonly version?: string;
}

interface Input<P, Q, B> {
  readonly c: Context;
  readonly params: P;
  readonly query: Q;
  readonly body: B;
  readonly principal: Principal;
  /** The If-Match version, when the operation requires one. */
  readonly version: number;
}

type Out<T extends z.ZodType | undefined> = T extends z.ZodType ? z.output<T> : undefined;

/** `"7"`, `W/"7"` or `7` → 7. */
function parseIfMatch(raw: string | undefined): number {
  if (raw === undefined || raw.trim() === '') {
    throw new HttpError('precondition_required', 'This change needs If-Match: "<version>" with the flag version you last read (its ETag), so it cannot overwrite a change you have not seen.', {
      field: 'header.If-Match',
    });
  }
  const m = /^\s*(?:W\/)?"?(\d{1,15})"?\s*$/.exec(raw);
  if (!m?.[1]) throw new HttpError('bad_request', `header.If-Match: must be "<version>" (a number in quotes, the flag's ETag), got ${JSON.stringify(raw.slice(0, 40))}`, { field: 'header.If-Match' });
  return Number(m[1]);
}

function wantsCsv(c: Context, format: string | undefined): boolean {
  if (format === 'csv') return true;
  if (format === 'json') return false;
  const accept = c.req.header('accept') ?? '';
  return /\btext\/csv\b/i.test(accept) && !/\bapplication\/json\b/i.test(accept);
}

/**
 * Builds the admin API.
 *
 * @example
 * const api = createAdminApi({ store, auth: { adminToken: 'x'.repeat(32) } });
 * serve({ fetch: new Hono().route('/api/v1', api).fetch, port: 8787 });
 */
export function createAdminApi(deps: AdminApiDeps): Hono {
  const { store } = deps;
  const authenticate = typeof deps.auth === 'function' ? deps.auth : createAuthenticator(deps.auth);
  const limiter = deps.limiter ?? new FailureLimiter();
  const status = deps.status ?? NO_DAEMON;
  const now = deps.now ?? (() => new Date());
  const address =
    deps.clientAddress ??
    ((c: Context) => {
      try {
        return getConnInfo(c).remote.address ?? 'unknown';
      } catch {
        return 'unknown';
      }
    });
  const app = new Hono();
  const ops: OperationSpec[] = [];

  if (deps.allowedOrigins && deps.allowedOrigins.length > 0) {
    const allowed = new Set(deps.allowedOrigins);
    app.use(
      '*',
      cors({
        origin: (origin) => (allowed.has(origin) ? origin : null),
        allowMethods: ['GET', 'POST', 'PATCH', 'DELETE', 'OPTIONS'],
        allowHeaders: ['Authorization', 'Content-Type', 'If-Match', 'Last-Event-ID', 'Accept'],
        exposeHeaders: ['ETag', 'Retry-After'],
        credentials: false,
        maxAge: 600,
      }),
    );
  }
  app.use(
    '*',
    bodyLimit({
      maxSize: deps.maxBodyBytes ?? 8 * 1024 * 1024,
      onError: () => {
        throw new HttpError('payload_too_large', `The request body is larger than ${deps.maxBodyBytes ?? 8 * 1024 * 1024} bytes; send fewer ids per request (at most ${S.MAX_TARGET_BATCH} to add and ${S.MAX_TARGET_BATCH} to remove).`);
      },
    }),
  );

  app.onError((err, c) => {
    const e = apiError(err);
    if (e.code === 'internal' || e.code === 'unavailable') deps.logger?.error({ err, path: c.req.path }, `admin api: ${err instanceof Error ? err.message : String(err)}`);
    return errorResponse(c, e);
  });
  app.notFound((c) => errorResponse(c, new HttpError('not_found', `No such endpoint: ${c.req.method} ${c.req.path}. The API is described at /api/v1/openapi.json.`)));

  const principalOf = async (c: Context): Promise<Principal> => {
    const addr = address(c);
    limiter.check(addr);
    try {
      return await authenticate(c.req.header('authorization'));
    } catch (err) {
      if (err instanceof HttpError && err.code === 'unauthorized') limiter.fail(addr);
      throw err;
    }
  };

  const parse = <T extends z.ZodType>(schema: T | undefined, value: unknown, where: string): Out<T> => {
    if (!schema) return undefined as Out<T>;
    const r = schema.safeParse(value);
    if (!r.success) throw badRequest(where, r.error);
    return r.data as Out<T>;
  };

  const readBody = async (c: Context): Promise<unknown> => {
    const type = c.req.header('content-type') ?? '';
    if (!/^application\/json\b/i.test(type)) throw new HttpError('bad_request', 'body: send JSON with Content-Type: application/json', { field: 'body' });
    const text = await c.req.text();
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new HttpError('bad_request', 'body: not valid JSON', { field: 'body' });
    }
  };

  /** Declares one operation: documented and registered from the same object. */
  const op = <P extends z.ZodType | undefined = undefined, Q extends z.ZodType | undefined = undefined, B extends z.ZodType | undefined = undefined>(
    spec: OperationSpec & { params?: P; query?: Q; body?: B },
    handler: (input: Input<Out<P>, Out<Q>, Out<B>>) => Promise<Response>,
  ): void => {
    ops.push(spec);
    const honoPath = spec.path.replace(/\{(\w+)\}/g, ':$1');
    app.on(spec.method.toUpperCase(), honoPath, async (c) => {
      const principal = spec.role === null ? { actor: 'anonymous', role: 'viewer' as const, via: 'admin_token' as const } : await principalOf(c);
      const params = parse(spec.params, c.req.param(), 'params');
      if (spec.role !== null) requireRole(principal, spec.role, spec.summary.replace(/\.$/, ''));
      const query = parse(spec.query, c.req.query(), 'query');
      const body = spec.body ? parse(spec.body, await readBody(c), 'body') : (undefined as Out<B>);
      const version = spec.ifMatch ? parseIfMatch(c.req.header('if-match')) : 0;
      return handler({ c, params: params as Out<P>, query: query as Out<Q>, body: body as Out<B>, principal, version });
    });
  };

  const oneFlag = async (name: string): Promise<Flag> => {
    const f = await store.getFlag(name);
    if (!f) throw new HttpError('not_found', `There is no flag "${name}" (GET /api/v1/flags lists them).`, { field: 'params.name' });
    return f;
  };
  const view = async (f: Flag) => (await flagsJson(store, [f], status()))[0]!;
  const withEtag = (c: Context, f: { version: number }) => c.header('ETag', `"${f.version}"`);
  /** Runs a versioned write; a stale version → 412 with the current flag. */
  const versioned = async <T>(name: string, write: () => Promise<T>): Promise<T> => {
    try {
      return await write();
    } catch (err) {
      if (isGuardianError(err, 'VERSION_CONFLICT')) {
        const current = await store.getFlag(name);
        throw new HttpError('version_conflict', `${err.message}. Nothing was changed: re-read the flag (it is in "current") and decide again.`, {
          ...(current ? { extra: { current: await view(current) } } : {}),
        });
      }
      throw err;
    }
  };
  /** 412 when the flag is no longer at `version` (before a write that has its own check too). */
  const atVersion = async (name: string, version: number): Promise<Flag> => {
    const f = await oneFlag(name);
    if (f.version !== version) {
      throw new HttpError('version_conflict', `flag "${name}" is at version ${f.version}, not ${version}: someone changed it since you read it. Nothing was changed.`, {
        extra: { current: await view(f) },
      });
    }
    return f;
  };

  const E = (description: string) => ({ description, schema: S.ErrorBody });

  // ---- document and identity -------------------------------------------------------------
  let doc: Record<string, unknown> | undefined;
  app.get('/openapi.json', (c) => {
    doc ??= openApiDocument(ops, { version: deps.version ?? '1.0.0' });
    return c.json(doc);
  });

  op({ method: 'get', path: '/me', operationId: 'getMe', summary: 'Who the token belongs to.', role: 'viewer', responses: { 200: { description: 'The caller.', schema: S.MeOut } } }, async ({ c, principal }) =>
    c.json({ actor: principal.actor, role: principal.role, via: principal.via }),
  );

  // ---- flags ---------------------------------------------------------------------------------
  op(
    {
      method: 'get',
      path: '/flags',
      operationId: 'listFlags',
      summary: 'List flags.',
      role: 'viewer',
      query: S.FlagListQuery,
      responses: { 200: { description: 'Flags, by name.', schema: S.FlagListOut } },
    },
    async ({ c, query }) => {
      let flags = await store.listFlags();
      const q = query.search?.toLowerCase();
      if (q) flags = flags.filter((f) => f.name.includes(q) || f.description.toLowerCase().includes(q));
      const st = query.state;
      if (st) {
        flags = flags.filter((f) => (st === 'on' ? f.enabled : st === 'off' ? !f.enabled : f.guardState === st));
      }
      return c.json({ flags: await flagsJson(store, flags, status()) });
    },
  );

  op(
    {
      method: 'get',
      path: '/flags/{name}',
      operationId: 'getFlag',
      summary: 'One flag.',
      role: 'viewer',
      params: S.FlagParams,
      responses: { 200: { description: 'The flag (ETag: its version).', schema: S.OneFlagOut, headers: { ETag: '"<version>"' } }, 404: E('No such flag.') },
    },
    async ({ c, params }) => {
      const f = await oneFlag(params.name);
      withEtag(c, f);
      return c.json({ flag: await view(f) });
    },
  );

  op(
    {
      method: 'post',
      path: '/flags',
      operationId: 'createFlag',
      summary: 'Create a flag (off, 0%).',
      role: 'admin',
      body: S.CreateFlagBody,
      responses: { 201: { description: 'Created.', schema: S.OneFlagOut, headers: { ETag: '"<version>"' } }, 409: E('The name is taken.') },
    },
    async ({ c, body, principal }) => {
      const f = await store.createFlag({ name: body.name, ...(body.description !== undefined ? { description: body.description } : {}), bucketGroup: body.bucketGroup ?? null }, principal.actor);
      withEtag(c, f);
      return c.json({ flag: await view(f) }, 201);
    },
  );

  op(
    {
      method: 'delete',
      path: '/flags/{name}',
      operationId: 'deleteFlag',
      summary: 'Delete a disabled flag.',
      role: 'admin',
      params: S.FlagParams,
      ifMatch: true,
      responses: { 204: { description: 'Deleted.' }, 404: E('No such flag.'), 409: E('The flag is enabled.'), 412: { description: 'Stale version.', schema: S.VersionConflictOut }, 428: E('If-Match missing.') },
    },
    async ({ c, params, version, principal }) => {
      await versioned(params.name, () => store.deleteFlag(params.name, version, principal.actor));
      return c.body(null, 204);
    },
  );

  op(
    {
      method: 'patch',
      path: '/flags/{name}',
      operationId: 'patchFlag',
      summary: 'Change a flag (enable/disable, percentage, message, description, lock).',
      role: 'editor',
      params: S.FlagParams,
      body: S.PatchFlagBody,
      ifMatch: true,
      responses: {
        200: { description: 'The flag after the change.', schema: S.PatchFlagOut, headers: { ETag: '"<version>"' } },
        404: E('No such flag.'),
        409: E('Refused (e.g. enabling a rolled-back flag: restore it instead).'),
        412: { description: 'Stale version: nothing changed; `current` is the flag now.', schema: S.VersionConflictOut },
        428: E('If-Match missing.'),
      },
    },
    async ({ c, params, body, version, principal }) => {
      const edit: FlagEdit = {
        ...(body.enabled !== undefined ? { enabled: body.enabled } : {}),
        ...(body.rolloutPercentage !== undefined ? { rolloutPercentage: body.rolloutPercentage } : {}),
        ...(body.rollbackMessage !== undefined ? { rollbackMessage: body.rollbackMessage } : {}),
        ...(body.description !== undefined ? { description: body.description } : {}),
        ...(body.locked !== undefined ? { lock: body.locked } : {}),
      };
      const f = await versioned(params.name, () => store.editFlag(params.name, version, edit, principal.actor));
      withEtag(c, f);
      const json = await view(f);
      const note =
        f.guardState === 'rolled_back' && json.lastRollback
          ? `The flag is rolled back (event ${json.lastRollback.id}): restoring it will put back ${json.lastRollback.previousState.enabled ? `enabled at ${json.lastRollback.previousState.rolloutPercentage}%` : 'disabled'}.`
          : undefined;
      return c.json({ flag: json, ...(note ? { note } : {}) });
    },
  );

  // ---- targets -------------------------------------------------------------------------------
  op(
    {
      method: 'get',
      path: '/flags/{name}/targets',
      operationId: 'listTargets',
      summary: 'List a flag\u2019s target ids (paged, searchable).',
      role: 'viewer',
      params: S.FlagParams,
      query: S.TargetsQuery,
      responses: { 200: { description: 'A page of ids, sorted.', schema: S.TargetsOut }, 404: E('No such flag.') },
    },
    async ({ c, params, query }) =>
      c.json(await store.listTargets(params.name, { ...(query.search ? { search: query.search } : {}), ...(query.cursor ? { after: query.cursor } : {}), limit: query.limit })),
  );

  op(
    {
      method: 'post',
      path: '/flags/{name}/targets',
      operationId: 'changeTargets',
      summary: 'Add and remove target ids (up to 10,000 each, all or nothing).',
      role: 'editor',
      params: S.FlagParams,
      body: S.TargetsBody,
      ifMatch: true,
      responses: {
        200: { description: 'The flag after the change, and how many ids were really added and removed.', schema: S.TargetsChangeOut, headers: { ETag: '"<version>"' } },
        404: E('No such flag.'),
        412: { description: 'Stale version.', schema: S.VersionConflictOut },
        413: E('Body too large.'),
        428: E('If-Match missing.'),
      },
    },
    async ({ c, params, body, version, principal }) => {
      const before = await atVersion(params.name, version);
      const after = await versioned(params.name, () =>
        store.editFlag(params.name, version, { ...(body.add?.length ? { addTargets: body.add } : {}), ...(body.remove?.length ? { removeTargets: body.remove } : {}) }, principal.actor),
      );
      const had = new Set(before.targets);
      const has = new Set(after.targets);
      withEtag(c, after);
      return c.json({
        flag: await view(after),
        added: after.targets.filter((t) => !had.has(t)).length,
        removed: before.targets.filter((t) => !has.has(t)).length,
      });
    },
  );

  // ---- rollback and restore ------------------------------------------------------------------
  op(
    {
      method: 'post',
      path: '/flags/{name}/rollback',
      operationId: 'rollbackFlag',
      summary: 'Roll a flag back now (manual_rollback event, notifications as the rules file says).',
      role: 'editor',
      params: S.FlagParams,
      body: S.RollbackBody,
      responses: {
        200: { description: 'The rollback event (or the one that already rolled the flag back) and the flag.', schema: S.RollbackOut },
        404: E('No such flag.'),
        409: E('The flag is locked (use force), or off without a rollback.'),
      },
    },
    async ({ c, params, body, principal }) => {
      const current = await oneFlag(params.name);
      const already = async (f: Flag, event?: RollbackEvent): Promise<Response> => {
        const e = event ?? lastRollbackOf(await store.listEvents({ flag: f.name, limit: 50 }));
        if (!e) throw new HttpError('conflict', `flag "${f.name}" is already disabled (by ${f.updatedBy ?? 'someone'}), not by a rollback: there is nothing to roll back.`);
        const [json] = await eventsJson(store, [e]);
        return c.json({ event: json!, flag: await view(f), alreadyRolledBack: true });
      };
      if (!current.enabled) return already(current);
      if (current.guardState === 'locked' && !body.force) {
        throw new HttpError('conflict', `flag "${current.name}" is locked: nothing was changed. Send "force": true to roll it back anyway (it stays locked), or unlock it first.`);
      }
      const channels = body.notify === false ? [] : [...status().channels];
      let event: RollbackEvent;
      try {
        event = await store.rollback({
          flag: current.name,
          action: body.stepBack ? 'step_back' : 'disable',
          actor: principal.actor,
          idempotencyKey: `manual:${current.name}:${current.version}`,
          channels,
          reason: body.reason.trim(),
          kind: 'manual_rollback',
          urgent: body.urgent === true,
        });
      } catch (err) {
        const f = isGuardianError(err, 'STORE_CONFLICT') ? await store.getFlag(current.name) : undefined;
        if (f && !f.enabled) return already(f);
        throw err;
      }
      const after = await oneFlag(current.name);
      if (event.actor !== principal.actor || event.reason !== body.reason.trim()) return already(after, event);
      const [json] = await eventsJson(store, [event]);
      withEtag(c, after);
      return c.json({ event: json!, flag: await view(after), alreadyRolledBack: false });
    },
  );

  op(
    {
      method: 'post',
      path: '/flags/{name}/restore',
      operationId: 'restoreFlag',
      summary: 'Restore a rolled-back flag as it was before its latest (or the given) rollback.',
      role: 'editor',
      params: S.FlagParams,
      body: S.RestoreBody,
      responses: { 200: { description: 'The restore event and the flag.', schema: S.RestoreOut }, 404: E('No such flag or event.'), 409: E('Nothing to restore.') },
    },
    async ({ c, params, body, principal }) => {
      await oneFlag(params.name);
      if (body.eventId !== undefined) {
        const e = await store.getEvent(body.eventId);
        if (!e || e.flag !== params.name) throw new HttpError('not_found', `body.eventId: flag "${params.name}" has no event ${body.eventId}.`, { field: 'body.eventId' });
        if (e.kind === 'restore' || e.kind === 'dry_run' || e.action === 'notify_only') {
          throw new HttpError('bad_request', `body.eventId: event ${e.id} is ${e.kind === 'restore' ? 'a restore' : 'not a rollback that changed the flag'}; give a rollback event id.`, { field: 'body.eventId' });
        }
      }
      let event: RollbackEvent;
      try {
        event = await store.restore({ target: body.eventId ?? params.name, actor: principal.actor, idempotencyKey: `restore:${randomUUID()}`, ...(body.reason ? { reason: body.reason } : {}) });
      } catch (err) {
        if (isGuardianError(err, 'NOT_FOUND') || isGuardianError(err, 'STORE_CONFLICT')) throw new HttpError('conflict', `Nothing to restore for ${params.name}: ${err.message}`, { cause: err });
        throw err;
      }
      const after = await oneFlag(params.name);
      const [json] = await eventsJson(store, [event]);
      withEtag(c, after);
      return c.json({ event: json!, flag: await view(after) });
    },
  );

  // ---- events and audit ----------------------------------------------------------------------
  const EVENT_CSV = ['id', 'createdAt', 'flag', 'kind', 'ruleId', 'source', 'action', 'actor', 'reason', 'restoresEventId', 'previousState', 'newState', 'evidence'];
  const listEvents = async (c: Context, q: z.output<typeof S.EventsQuery>): Promise<Response> => {
    const events = await store.listEvents({
      ...(q.flag ? { flag: q.flag } : {}),
      ...(q.kind ? { kind: q.kind as RollbackEvent['kind'] } : {}),
      ...(q.rule ? { ruleId: q.rule } : {}),
      ...(q.actor ? { actor: q.actor } : {}),
      ...(q.since ? { since: new Date(q.since) } : {}),
      ...(q.until ? { until: new Date(q.until) } : {}),
      ...(q.cursor ? { beforeId: q.cursor } : {}),
      limit: q.limit + 1,
    });
    const page = events.slice(0, q.limit);
    const nextCursor = events.length > q.limit ? (page.at(-1)?.id ?? null) : null;
    const json = await eventsJson(store, page);
    if (wantsCsv(c, q.format)) {
      if (nextCursor) c.header('X-Next-Cursor', nextCursor);
      return c.body(toCsv(EVENT_CSV, json), 200, { 'Content-Type': 'text/csv; charset=utf-8' });
    }
    return c.json({ events: json, nextCursor });
  };
  op(
    {
      method: 'get',
      path: '/events',
      operationId: 'listEvents',
      summary: 'The rollback event log, newest first (JSON or CSV).',
      role: 'viewer',
      query: S.EventsQuery,
      responses: { 200: { description: 'A page of events (CSV with Accept: text/csv or format=csv; next cursor in X-Next-Cursor).', schema: S.EventsOut, alsoAs: ['text/csv'] } },
    },
    async ({ c, query }) => listEvents(c, query),
  );

  const AUDIT_CSV = ['id', 'at', 'flag', 'op', 'actor', 'fields', 'old', 'new'];
  const listAudit = async (c: Context, q: z.output<typeof S.AuditQuery>): Promise<Response> => {
    const changes = await store.listChanges({
      ...(q.flag ? { flag: q.flag } : {}),
      ...(q.actor ? { actor: q.actor } : {}),
      ...(q.since ? { since: new Date(q.since) } : {}),
      ...(q.until ? { until: new Date(q.until) } : {}),
      ...(q.cursor ? { beforeId: q.cursor } : {}),
      limit: q.limit + 1,
    });
    const page = changes.slice(0, q.limit).map(changeJson);
    const nextCursor = changes.length > q.limit ? (page.at(-1)?.id ?? null) : null;
    if (wantsCsv(c, q.format)) {
      if (nextCursor) c.header('X-Next-Cursor', nextCursor);
      return c.body(toCsv(AUDIT_CSV, page.map((p) => ({ ...p, fields: p.fields.join(' ') }))), 200, { 'Content-Type': 'text/csv; charset=utf-8' });
    }
    return c.json({ changes: page, nextCursor });
  };
  op(
    {
      method: 'get',
      path: '/audit',
      operationId: 'listAudit',
      summary: 'Every change of every flag (flag_changes), newest first (JSON or CSV).',
      role: 'viewer',
      query: S.AuditQuery,
      responses: { 200: { description: 'A page of changes.', schema: S.AuditOut, alsoAs: ['text/csv'] } },
    },
    async ({ c, query }) => listAudit(c, query),
  );
  op(
    {
      method: 'get',
      path: '/flags/{name}/audit',
      operationId: 'listFlagAudit',
      summary: 'One flag\u2019s changes, newest first (JSON or CSV).',
      role: 'viewer',
      params: S.FlagParams,
      query: S.FlagAuditQuery,
      responses: { 200: { description: 'A page of changes.', schema: S.AuditOut, alsoAs: ['text/csv'] } },
    },
    async ({ c, params, query }) => listAudit(c, { ...query, flag: params.name }),
  );

  // ---- usage -----------------------------------------------------------------------------------
  const SPAN = { minute: 3_600_000, hour: 86_400_000, day: 30 * 86_400_000 } as const;
  op(
    {
      method: 'get',
      path: '/flags/{name}/usage',
      operationId: 'getFlagUsage',
      summary: 'Flag-on/off users and users with errors per time bucket, the counts the guardian judged, thresholds and rollout changes.',
      role: 'viewer',
      params: S.FlagParams,
      query: S.UsageQuery,
      responses: { 200: { description: 'Usage of the flag.', schema: S.UsageOut }, 404: E('No such flag.') },
    },
    async ({ c, params, query }) => {
      const until = query.until ? new Date(query.until) : now();
      const since = query.since ? new Date(query.since) : new Date(until.getTime() - SPAN[query.bucket]);
      if (since.getTime() >= until.getTime()) throw new HttpError('bad_request', 'query.since: must be before until', { field: 'query.since' });
      const usage = await store.flagUsage(params.name, query.bucket, since, until);
      const rules = status().rules.filter((r) => r.flags.includes(params.name));
      return c.json({
        bucket: query.bucket,
        since: since.toISOString(),
        until: until.toISOString(),
        series: usage.series,
        judged: usage.judged.map((j) => {
          const ids = rules.filter((r) => r.source === j.source).map((r) => r.id);
          return { t: j.t, ruleId: ids[0] ?? null, ruleIds: ids, source: j.source, treatment: j.treatment, control: j.control };
        }),
        thresholds: rules.map((r) => ({
          ruleId: r.id,
          source: r.source,
          kind: r.condition.kind,
          value: r.condition.kind === 'absolute' ? r.condition.error_rate_above : r.condition.max_increase,
        })),
        changes: usage.changes,
      });
    },
  );

  // ---- status ----------------------------------------------------------------------------------
  op(
    {
      method: 'get',
      path: '/status',
      operationId: 'getStatus',
      summary: 'The guardian: sources and blindness, last cycle, rules, every rule\u2019s last verdict.',
      role: 'viewer',
      responses: { 200: { description: 'Guardian status.', schema: S.StatusOut } },
    },
    async ({ c }) => {
      const snap = status();
      const [health, states] = await Promise.all([store.sourceHealth(), store.loadRuleState()]);
      const ids = new Set([...snap.sources.map((s) => s.id), ...health.map((h) => h.source)]);
      return c.json({
        lastCycle: snap.lastCycle ? { at: snap.lastCycle.at.toISOString(), durationMs: snap.lastCycle.durationMs, ok: snap.lastCycle.ok } : null,
        intervalMs: snap.intervalMs,
        dryRun: snap.dryRun,
        sources: [...ids].sort().map((id) => {
          const s = snap.sources.find((x) => x.id === id);
          const h = health.find((x) => x.source === id);
          const blind = h?.blindSince ?? null;
          return {
            id,
            configured: s?.configured ?? false,
            healthy: (s?.configured ?? false) && blind === null,
            blindSince: blind?.toISOString() ?? null,
            lastOkAt: h?.lastOkAt?.toISOString() ?? null,
            detail: [s?.detail, h?.lastError ? `last error: ${h.lastError}` : undefined].filter(Boolean).join('; ') || (s ? '' : 'not in the rules file'),
          };
        }),
        rules: {
          file: snap.rulesFile,
          count: snap.rules.length,
          ids: snap.rules.map((r) => r.id),
          loadedAt: snap.rulesLoadedAt?.toISOString() ?? null,
          lastReloadError: snap.lastReloadError,
        },
        verdicts: states.map((s) => ({ ...verdictJson(s, snap), flag: s.flag })),
      });
    },
  );

  // ---- release plans ---------------------------------------------------------------------------
  const planOf = (flag: string) => {
    const plan = (status().plans ?? []).find((p) => p.flag === flag);
    if (!plan) throw new HttpError('not_found', `${flag} has no release plan in the rules file (add one under plans:).`, { field: 'path.flag' });
    return plan;
  };
  const viewOf = async (flag: string) => {
    const plan = planOf(flag);
    const [f, states] = await Promise.all([store.getFlag(flag), store.listPlanStates()]);
    return planView(plan, f, states.find((x) => x.flag === flag), now());
  };
  op(
    {
      method: 'get',
      path: '/plans',
      operationId: 'listPlans',
      summary: 'Release plans: each flag\u2019s stage, time in stage, users, the evidence for safety and for harm, the earliest promotion.',
      role: 'viewer',
      responses: { 200: { description: 'Every plan of the rules file in force.', schema: S.PlansOut } },
    },
    async ({ c }) => {
      const plans = status().plans ?? [];
      const [flags, states] = await Promise.all([store.listFlags(), store.listPlanStates()]);
      const at = now();
      return c.json({ plans: plans.map((p) => planView(p, flags.find((f) => f.name === p.flag), states.find((x) => x.flag === p.flag), at)) });
    },
  );
  const PLAN_OPERATIONS = [
    { action: 'pause', operationId: 'pausePlan', summary: 'Stop promoting the flag (the guardian still rolls it back on harm).' },
    { action: 'resume', operationId: 'resumePlan', summary: 'Promote again, from the flag\u2019s current state.' },
    { action: 'abort', operationId: 'abortPlan', summary: 'End the plan for good: the flag stays where it is.' },
  ] as const;
  for (const operation of PLAN_OPERATIONS) {
    const change = { ...operation, ...PLAN_CHANGES[operation.action] };
    op(
      {
        method: 'post',
        path: `/plans/{flag}/${change.action}`,
        operationId: change.operationId,
        summary: change.summary,
        role: 'editor',
        params: S.PlanParams,
        body: S.PlanChangeBody,
        responses: {
          200: { description: 'The plan after the change and the event that records it.', schema: S.PlanChangeOut },
          404: E('No plan (or no flag) by that name.'),
          409: E('The plan is not in a state that allows it (or the flag is rolled back: restore it first).'),
        },
      },
      async ({ c, params, body, principal }) => {
        planOf(params.flag);
        const flag = await oneFlag(params.flag);
        if (change.action === 'resume' && flag.guardState === 'rolled_back') {
          throw new HttpError('conflict', `${params.flag} is rolled back: restore it first, then resume its plan.`);
        }
        const reason = body.reason?.trim() || `${change.action}d by ${principal.actor}`;
        let eventId: string | null;
        try {
          await store.syncPlan(params.flag, principal.actor);
          const { event } = await store.setPlanStatus({
            flag: params.flag,
            status: change.status,
            reason,
            actor: principal.actor,
            expectedStatus: change.from,
            event: { kind: change.kind, idempotencyKey: `${change.kind}:${params.flag}:${randomUUID()}`, channels: body.notify === false ? [] : status().channels },
          });
          eventId = event?.id ?? null;
        } catch (err) {
          if (isGuardianError(err, 'STORE_CONFLICT')) throw new HttpError('conflict', err.message, { cause: err });
          throw err;
        }
        return c.json({ plan: await viewOf(params.flag), eventId });
      },
    );
  }

  // ---- stream ----------------------------------------------------------------------------------
  op(
    {
      method: 'get',
      path: '/stream',
      operationId: 'streamChanges',
      summary: 'Server-Sent Events: flag changes and rollback events, resumable with Last-Event-ID.',
      description:
        'Events: `flag` (public fields, never targets), `rollback_event`, `reset` (re-fetch everything). Heartbeat comments every 15 s. Read with fetch() and a stream reader (Authorization header).',
      role: 'viewer',
      query: S.StreamQuery,
      responses: { 200: { description: 'text/event-stream', alsoAs: ['text/event-stream'] }, 503: E('Too many clients, or no stream in this process.') },
    },
    async ({ c, query }) => sseResponse(c, deps.hub, c.req.header('last-event-id') ?? query.lastEventId, () => true),
  );

  return app;
}

/** The SSE response of a hub subscription (503 when there is no hub or no room). */
export function sseResponse(c: Context, hub: ChangeHub | undefined, lastEventId: string | undefined, filter: (m: StreamMessage) => boolean): Response {
  if (!hub) throw new HttpError('unavailable', 'The change stream is not running in this process.');
  if (!hub.hasRoom) throw new HttpError('unavailable', 'Too many stream clients are connected; try again later.', { headers: { 'Retry-After': '5' } });
  return new Response(hub.subscribe(lastEventId, filter), {
    status: 200,
    headers: { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-cache, no-transform', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' },
  });
}

/**
 * The read-only OFREP change stream (`GET /ofrep/v1/stream`): flag events only, for OFREP
 * clients holding the OFREP key (`Authorization: Bearer <key>` or `X-API-Key`).
 *
 * @example
 * app.route('/ofrep/v1', createOfrepStream({ hub, apiKey: process.env.GUARDIAN_OFREP_KEY }));
 */
export function createOfrepStream(deps: { hub: ChangeHub; apiKey: string | undefined; limiter?: FailureLimiter; clientAddress?: (c: Context) => string }): Hono {
  const app = new Hono();
  const limiter = deps.limiter ?? new FailureLimiter();
  app.onError((err, c) => errorResponse(c, apiError(err)));
  app.get('/stream', (c) => {
    const addr = deps.clientAddress?.(c) ?? (() => {
      try {
        return getConnInfo(c).remote.address ?? 'unknown';
      } catch {
        return 'unknown';
      }
    })();
    limiter.check(addr);
    if (deps.apiKey !== undefined) {
      const given = /^Bearer\s+(\S+)$/i.exec(c.req.header('authorization') ?? '')?.[1] ?? c.req.header('x-api-key');
      if (given === undefined || !constantTimeEqual(given, deps.apiKey)) {
        limiter.fail(addr);
        throw new HttpError('unauthorized', 'Send the OFREP key (GUARDIAN_OFREP_KEY) as "Authorization: Bearer <key>" or "X-API-Key: <key>".');
      }
    }
    return sseResponse(c, deps.hub, c.req.header('last-event-id') ?? c.req.query('lastEventId'), (m) => m.event !== 'rollback_event');
  });
  return app;
}
