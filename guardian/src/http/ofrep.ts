/**
 * The OpenFeature Remote Evaluation Protocol (OFREP, open-feature/protocol `service/openapi.yaml`)
 * on the guardian's HTTP server, so apps in any language with an OpenFeature OFREP provider can
 * evaluate the boolean flags through the guardian, with exactly the SDK core's answer:
 *
 * - `POST /ofrep/v1/evaluate/flags/{key}` body `{ "context": { "targetingKey": "user-42" } }` →
 *   200 `{ key, value, reason, variant, metadata: { version, guardState }, cacheable: false }`,
 *   404 `FLAG_NOT_FOUND`, 400 `PARSE_ERROR` | `INVALID_CONTEXT` | `TARGETING_KEY_MISSING`,
 *   500 `{ errorDetails }` when the database failed.
 * - `POST /ofrep/v1/evaluate/flags` (bulk) → 200 `{ flags: [...] }` with an `ETag` of the body;
 *   `If-None-Match` with that tag → 304 without a body.
 * - `GET /ofrep/v1/configuration` → the capabilities (boolean flags, polling at least every 1 s), with ETag/304.
 *
 * Auth: `Authorization: Bearer <GUARDIAN_OFREP_KEY>` or `X-API-Key: <GUARDIAN_OFREP_KEY>`, compared
 * in constant time; none → 401, wrong → 403. Without `GUARDIAN_OFREP_KEY` every `/ofrep/` path
 * answers 404 saying how to enable it. Bodies: JSON only (415), at most 64 KB (413).
 *
 * Flag definitions are read with `store.listFlags()` at most once per cache TTL (default and
 * maximum 1 s): a burst of evaluations is one database read, and a rollback is visible within the TTL.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';

import { evaluate, type FlagDefinition } from '@rollback-guardian/sdk';

import { GuardianError } from '../errors.ts';
import type { Flag, GuardState, Store } from '../store/types.ts';
import type { GuardianMetrics } from './metrics.ts';
import { keyDigest, readBody, sameKey, typeName } from './request.ts';
import type { HttpLogger, HttpRoute } from './server.ts';

/** Every OFREP path starts with this (`/ofrep` alone included). */
export const OFREP_PREFIX = '/ofrep';

/** Bulk evaluation; single evaluation is this plus `/{key}`. */
export const OFREP_EVALUATE_PATH = '/ofrep/v1/evaluate/flags';

/** The provider configuration endpoint. */
export const OFREP_CONFIGURATION_PATH = '/ofrep/v1/configuration';

/** At most this many bytes of request body (64 KB). */
export const MAX_OFREP_BODY_BYTES = 65_536;

/** Default (and largest allowed) age of the cached flag definitions: a rollback shows within it. */
export const DEFAULT_OFREP_CACHE_TTL_MS = 1_000;

/** What `GET /ofrep/v1/configuration` answers. */
export const OFREP_CONFIGURATION = Object.freeze({
  name: 'rollback-guardian',
  capabilities: {
    cacheInvalidation: { polling: { enabled: true, minPollingIntervalMs: 1_000 } },
    flagEvaluation: { supportedTypes: ['boolean'] },
  },
});

const FLAG_PATTERN = /^[a-z][a-z0-9_]{1,63}$/;

/** OFREP error codes of evaluation failures (OpenFeature error codes). */
export type OfrepErrorCode = 'PARSE_ERROR' | 'TARGETING_KEY_MISSING' | 'INVALID_CONTEXT' | 'GENERAL' | 'FLAG_NOT_FOUND';

/**
 * A successful evaluation (one item of a bulk answer; a single answer adds `cacheable: false`).
 *
 * @example
 * const ok: OfrepEvaluationSuccess = { key: 'ai_beta_users', value: true, reason: 'SPLIT', variant: 'on', metadata: { version: 3, guardState: 'watching' } };
 */
export interface OfrepEvaluationSuccess {
  readonly key: string;
  readonly value: boolean;
  /** The SDK core's reason: `TARGETING_MATCH`, `SPLIT` (a percentage rollout, 100% included) or `DISABLED`. */
  readonly reason: 'TARGETING_MATCH' | 'SPLIT' | 'DISABLED';
  readonly variant: 'on' | 'off';
  /** The flag's row `version`, its `guardState`, and its `rollbackMessage` when it has one. */
  readonly metadata: { readonly version: number; readonly guardState: GuardState; readonly rollbackMessage?: string };
}

/**
 * A failed evaluation (the body of a 400/404 single answer, or one item of a bulk answer).
 *
 * @example
 * const notFound: OfrepEvaluationFailure = { key: 'nope', errorCode: 'FLAG_NOT_FOUND', errorDetails: 'flag "nope" does not exist' };
 */
export interface OfrepEvaluationFailure {
  readonly key: string;
  readonly errorCode: OfrepErrorCode;
  readonly errorDetails: string;
}

/** Options of {@link createOfrepRoute}. */
export interface OfrepRouteOptions {
  /** Where flag definitions come from (read at most once per `cacheTtlMs`). */
  readonly store: Pick<Store, 'listFlags'>;
  /** `GUARDIAN_OFREP_KEY`; undefined: every OFREP path answers 404 saying how to enable it. */
  readonly apiKey: string | undefined;
  readonly logger: HttpLogger;
  readonly metrics?: GuardianMetrics;
  /** How long flag definitions (or a failed read) are reused, 0..1000 ms. Default 1000. */
  readonly cacheTtlMs?: number;
  /** Clock of the cache. Default `() => new Date()`. */
  readonly now?: () => Date;
}

type Endpoint = 'evaluate' | 'bulk' | 'configuration' | 'other';

/** One read of the flag definitions, ready to evaluate. */
interface Snapshot {
  readonly byName: ReadonlyMap<string, { readonly flag: Flag; readonly definition: FlagDefinition }>;
  /** Flag names, sorted (the bulk answer's order, so equal flags give an equal ETag). */
  readonly names: readonly string[];
}

function snapshotOf(flags: readonly Flag[]): Snapshot {
  const byName = new Map<string, { flag: Flag; definition: FlagDefinition }>();
  for (const flag of flags) {
    byName.set(flag.name, {
      flag,
      definition: { name: flag.name, enabled: flag.enabled, rolloutPercentage: flag.rolloutPercentage, bucketGroup: flag.bucketGroup, targets: new Set(flag.targets), version: flag.version },
    });
  }
  return { byName, names: [...byName.keys()].sort() };
}

/** A strong entity tag of a body. */
function etagOf(body: string): string {
  return `"${createHash('sha256').update(body, 'utf8').digest('base64url')}"`;
}

/** Whether an `If-None-Match` header matches the tag (weak comparison, as RFC 9110 asks for this header). */
function noneMatch(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  const bare = (t: string) => t.trim().replace(/^W\//, '');
  return header.split(',').some((t) => t.trim() === '*' || bare(t) === bare(etag));
}


function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** The flag definitions, read at most once per TTL; concurrent requests share one read. */
class FlagCache {
  readonly #store: Pick<Store, 'listFlags'>;
  readonly #ttlMs: number;
  readonly #now: () => Date;
  readonly #logger: HttpLogger;
  #entry: { readonly at: number; readonly value: Promise<Snapshot> } | undefined;

  constructor(store: Pick<Store, 'listFlags'>, ttlMs: number, now: () => Date, logger: HttpLogger) {
    this.#store = store;
    this.#ttlMs = ttlMs;
    this.#now = now;
    this.#logger = logger;
  }

  get(): Promise<Snapshot> {
    const t = this.#now().getTime();
    const e = this.#entry;
    // The age counts from the START of the read: whatever it returned was true at or after `at`.
    if (e !== undefined && t >= e.at && t - e.at < this.#ttlMs) return e.value;
    let value: Promise<Snapshot>;
    try {
      value = this.#store.listFlags().then(snapshotOf);
    } catch (err) {
      value = Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    // A failed read is reused for the TTL too, so a database outage is not hammered by every request.
    value.catch((err: unknown) => {
      this.#logger.error({ err: { message: (err as Error).message } }, 'ofrep: reading the flags failed; evaluations answer 500 until a read succeeds');
    });
    this.#entry = { at: t, value };
    return value;
  }
}

/**
 * The OFREP route for {@link startHttpServer}'s `routes`: answers every path under `/ofrep`.
 *
 * @example
 * const ofrep = createOfrepRoute({ store, apiKey: config.ofrepKey, logger, metrics });
 * await startHttpServer({ port, health, metrics, logger, routes: [ingest, ofrep] });
 * // curl -X POST -H "X-API-Key: $GUARDIAN_OFREP_KEY" -H 'Content-Type: application/json' \
 * //   -d '{"context":{"targetingKey":"user-42"}}' http://localhost:8787/ofrep/v1/evaluate/flags/ai_beta_users
 */
export function createOfrepRoute(options: OfrepRouteOptions): HttpRoute {
  const ttl = options.cacheTtlMs ?? DEFAULT_OFREP_CACHE_TTL_MS;
  if (!Number.isFinite(ttl) || ttl < 0 || ttl > DEFAULT_OFREP_CACHE_TTL_MS) {
    throw new GuardianError('BAD_ARGUMENT', `ofrep: cacheTtlMs must be between 0 and ${DEFAULT_OFREP_CACHE_TTL_MS} ms (a rollback must show within a second), got ${ttl}`);
  }
  const expected = options.apiKey === undefined ? undefined : keyDigest(options.apiKey);
  const cache = new FlagCache(options.store, ttl, options.now ?? (() => new Date()), options.logger);
  const m = options.metrics;
  const configurationBody = `${JSON.stringify(OFREP_CONFIGURATION)}\n`;
  const configurationTag = etagOf(configurationBody);

  function send(req: IncomingMessage, res: ServerResponse, endpoint: Endpoint, status: number, value: unknown, headers: Record<string, string> = {}): void {
    m?.ofrepRequests.inc({ endpoint, status });
    const body = status === 304 || value === undefined ? '' : `${JSON.stringify(value)}\n`;
    res.writeHead(status, {
      ...(body === '' ? {} : { 'content-type': 'application/json; charset=utf-8', 'content-length': String(Buffer.byteLength(body)) }),
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      ...headers,
    });
    res.end(req.method === 'HEAD' || body === '' ? undefined : body);
  }

  /** Sends a JSON body with its ETag, or 304 when the client holds that tag already. */
  function sendTagged(req: IncomingMessage, res: ServerResponse, endpoint: Endpoint, body: string, etag: string): void {
    const headers = { etag, 'cache-control': 'private, no-cache' };
    if (noneMatch(req.headers['if-none-match'], etag)) {
      send(req, res, endpoint, 304, undefined, headers);
      return;
    }
    m?.ofrepRequests.inc({ endpoint, status: 200 });
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': String(Buffer.byteLength(body)), 'x-content-type-options': 'nosniff', ...headers });
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  /** The credential check: undefined when allowed, else the status to answer (401 none, 403 wrong). */
  function authFailure(req: IncomingMessage): 401 | 403 | undefined {
    const given: string[] = [];
    const bearer = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
    if (bearer) given.push(bearer[1]!);
    const apiKey = req.headers['x-api-key'];
    for (const k of Array.isArray(apiKey) ? apiKey : apiKey === undefined ? [] : [apiKey]) if (k.trim() !== '') given.push(k.trim());
    if (given.length === 0) return 401;
    // Compare digests: constant time whatever the lengths; every credential is checked.
    let ok = false;
    for (const k of given) ok = sameKey(k, expected!) || ok;
    return ok ? undefined : 403;
  }

  /** The parsed `context.targetingKey`, or the failure to answer. */
  async function readTargetingKey(req: IncomingMessage): Promise<{ ok: true; targetingKey: string } | { ok: false; status: 400 | 413 | 415; errorCode: OfrepErrorCode; errorDetails: string }> {
    const tooLarge = { ok: false as const, status: 413 as const, errorCode: 'GENERAL' as const, errorDetails: `the body is larger than ${MAX_OFREP_BODY_BYTES} bytes (64 KB): send only the evaluation context` };
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > MAX_OFREP_BODY_BYTES) {
      req.resume();
      return tooLarge;
    }
    const hasBody = (Number.isFinite(declared) && declared > 0) || req.headers['transfer-encoding'] !== undefined;
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (hasBody && type !== 'application/json') {
      req.resume();
      return { ok: false, status: 415, errorCode: 'GENERAL', errorDetails: `send the body as JSON with "Content-Type: application/json"${type ? `, got ${type}` : ''}` };
    }
    const body = await readBody(req, MAX_OFREP_BODY_BYTES);
    if (!body.ok) return tooLarge;
    let json: unknown = {};
    if (body.text.trim() !== '') {
      try {
        json = JSON.parse(body.text);
      } catch (err) {
        return { ok: false, status: 400, errorCode: 'PARSE_ERROR', errorDetails: `the body is not valid JSON: ${(err as Error).message}` };
      }
    }
    if (!isPlainObject(json)) return { ok: false, status: 400, errorCode: 'PARSE_ERROR', errorDetails: `the body must be a JSON object { "context": { "targetingKey": "..." } }, got ${typeName(json)}` };
    const context = json['context'] === undefined ? {} : json['context'];
    if (!isPlainObject(context)) return { ok: false, status: 400, errorCode: 'INVALID_CONTEXT', errorDetails: `"context" must be an object { "targetingKey": "..." }, got ${typeName(context)}` };
    const targetingKey = context['targetingKey'];
    if (typeof targetingKey !== 'string' || targetingKey === '') {
      return {
        ok: false,
        status: 400,
        errorCode: 'TARGETING_KEY_MISSING',
        errorDetails:
          targetingKey === undefined
            ? 'the context has no "targetingKey": send the user id as context.targetingKey'
            : `"context.targetingKey" must be a non-empty string (the user id), got ${typeof targetingKey === 'string' ? 'an empty string' : typeName(targetingKey)}`,
      };
    }
    return { ok: true, targetingKey };
  }

  function evaluateOne(entry: { flag: Flag; definition: FlagDefinition }, targetingKey: string): OfrepEvaluationSuccess | OfrepEvaluationFailure {
    const { flag, definition } = entry;
    const result = evaluate(definition, targetingKey);
    if (result.reason !== 'TARGETING_MATCH' && result.reason !== 'SPLIT' && result.reason !== 'DISABLED') {
      return { key: flag.name, errorCode: 'GENERAL', errorDetails: `flag "${flag.name}" could not be evaluated (${result.errorCode ?? result.reason}): check its definition` };
    }
    return {
      key: flag.name,
      value: result.value,
      reason: result.reason,
      variant: result.value ? 'on' : 'off',
      metadata: { version: flag.version, guardState: flag.guardState, ...(flag.rollbackMessage !== null ? { rollbackMessage: flag.rollbackMessage } : {}) },
    };
  }

  const storeFailed = { errorDetails: 'the guardian could not read the flag definitions (its database failed): retry shortly' };

  async function handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const path = url.pathname;
    const endpoint: Endpoint =
      path === OFREP_CONFIGURATION_PATH ? 'configuration' : path === OFREP_EVALUATE_PATH || path === `${OFREP_EVALUATE_PATH}/` ? 'bulk' : path.startsWith(`${OFREP_EVALUATE_PATH}/`) ? 'evaluate' : 'other';
    if (expected === undefined) {
      send(req, res, endpoint, 404, {
        error: 'not_enabled',
        errorDetails: `OFREP is off: set GUARDIAN_OFREP_KEY (at least 16 characters, e.g. \`openssl rand -hex 32\`) on the guardian, then send it as "Authorization: Bearer <key>" or "X-API-Key: <key>" to POST ${OFREP_EVALUATE_PATH}/{key}`,
      });
      return;
    }
    const denied = authFailure(req);
    if (denied === 401) {
      send(req, res, endpoint, 401, { error: 'unauthorized', errorDetails: 'missing credentials: send GUARDIAN_OFREP_KEY as "Authorization: Bearer <key>" or "X-API-Key: <key>"' }, { 'www-authenticate': 'Bearer realm="guardian"' });
      return;
    }
    if (denied === 403) {
      send(req, res, endpoint, 403, { error: 'forbidden', errorDetails: 'wrong OFREP key: send the guardian\'s GUARDIAN_OFREP_KEY as "Authorization: Bearer <key>" or "X-API-Key: <key>"' });
      return;
    }
    if (endpoint === 'other') {
      send(req, res, endpoint, 404, { error: 'not_found', errorDetails: `no OFREP route ${path}: use POST ${OFREP_EVALUATE_PATH}/{key}, POST ${OFREP_EVALUATE_PATH} or GET ${OFREP_CONFIGURATION_PATH}` });
      return;
    }
    if (endpoint === 'configuration') {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        send(req, res, endpoint, 405, { error: 'method_not_allowed', errorDetails: `${OFREP_CONFIGURATION_PATH} accepts GET and HEAD` }, { allow: 'GET, HEAD' });
        return;
      }
      sendTagged(req, res, endpoint, configurationBody, configurationTag);
      return;
    }
    let key = '';
    if (endpoint === 'evaluate') {
      const raw = path.slice(OFREP_EVALUATE_PATH.length + 1);
      try {
        key = decodeURIComponent(raw);
      } catch {
        key = raw;
      }
    }
    const withKey = endpoint === 'evaluate' ? { key } : {};
    if (req.method !== 'POST') {
      send(req, res, endpoint, 405, { ...withKey, errorCode: 'GENERAL', errorDetails: `${endpoint === 'evaluate' ? `${OFREP_EVALUATE_PATH}/{key}` : OFREP_EVALUATE_PATH} accepts POST only` }, { allow: 'POST' });
      return;
    }
    const input = await readTargetingKey(req);
    if (!input.ok) {
      send(req, res, endpoint, input.status, { ...withKey, errorCode: input.errorCode, errorDetails: input.errorDetails }, input.status === 413 ? { connection: 'close' } : {});
      return;
    }
    // A key that cannot be a flag name is simply not found (no database read needed).
    if (endpoint === 'evaluate' && !FLAG_PATTERN.test(key)) {
      send(req, res, endpoint, 404, { key, errorCode: 'FLAG_NOT_FOUND', errorDetails: 'no such flag: flag names match ^[a-z][a-z0-9_]{1,63}$' });
      return;
    }
    let snapshot: Snapshot;
    try {
      snapshot = await cache.get();
    } catch {
      send(req, res, endpoint, 500, storeFailed, { 'retry-after': '1' });
      return;
    }
    if (endpoint === 'evaluate') {
      const entry = snapshot.byName.get(key);
      if (entry === undefined) {
        send(req, res, endpoint, 404, { key, errorCode: 'FLAG_NOT_FOUND', errorDetails: `flag "${key}" does not exist` });
        return;
      }
      const item = evaluateOne(entry, input.targetingKey);
      if ('errorCode' in item) {
        options.logger.warn({ flag: key, errorDetails: item.errorDetails }, 'ofrep: a flag could not be evaluated');
        send(req, res, endpoint, 500, { errorDetails: item.errorDetails });
        return;
      }
      // Flags can be rolled back any second: never let a provider cache an answer.
      send(req, res, endpoint, 200, { ...item, cacheable: false });
      return;
    }
    const flags = snapshot.names.map((name) => evaluateOne(snapshot.byName.get(name)!, input.targetingKey));
    const body = `${JSON.stringify({ flags })}\n`;
    sendTagged(req, res, endpoint, body, etagOf(body));
  }

  return {
    async handle(req, res, url) {
      if (url.pathname !== OFREP_PREFIX && !url.pathname.startsWith(`${OFREP_PREFIX}/`)) return false;
      await handle(req, res, url);
      return true;
    },
  };
}
