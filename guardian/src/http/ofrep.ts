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
 * in constant time; none → 401, wrong → 403 (connection closed). Without `GUARDIAN_OFREP_KEY`
 * every `/ofrep/` path answers 404 saying how to enable it. Bodies: JSON only (415), at most
 * 64 KB (413).
 *
 * Error bodies: the evaluation failures the OFREP specification defines keep ITS shape
 * (400/404 `{ key, errorCode, errorDetails }`, 500 `{ errorDetails }`), because OFREP providers
 * parse them; everything the specification leaves open (401, 403, 404 of an unknown path or of
 * OFREP being off, 405, 413, 415) has the guardian's one error shape (errors.ts).
 *
 * Flag definitions are read with `store.listFlags()` at most once per cache TTL (default and
 * maximum 1 s): a burst of evaluations is one database read, and a rollback is visible within the TTL.
 */
import { createHash } from 'node:crypto';

import { evaluate, type FlagDefinition } from '@rollback-guardian/sdk';
import { Hono, type Context } from 'hono';

import { GuardianError } from '../errors.ts';
import type { Flag, GuardState, Store } from '../store/types.ts';
import { HttpError } from './errors.ts';
import { FlagCache } from './flag-cache.ts';
import type { GuardianMetrics } from './metrics.ts';
import { keyDigest, mediaType, readBodyText, sameKey, typeName } from './request.ts';
import { mountApp, type GuardianHttpEnv, type HttpLogger, type HttpMount } from './server.ts';

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

type OfrepContext = Context<GuardianHttpEnv>;

/** Which endpoint a path under `/ofrep` is (for the metrics). */
function endpointOf(path: string): Endpoint {
  if (path === OFREP_CONFIGURATION_PATH) return 'configuration';
  if (path === OFREP_EVALUATE_PATH || path === `${OFREP_EVALUATE_PATH}/`) return 'bulk';
  return path.startsWith(`${OFREP_EVALUATE_PATH}/`) ? 'evaluate' : 'other';
}

/** An OFREP-shaped answer (`x-content-type-options: nosniff`, `no-store` unless told otherwise). */
function ofrepJson(c: OfrepContext, status: 200 | 400 | 404 | 500, value: unknown, headers: Record<string, string> = {}): Response {
  return c.json(value, status, { 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', ...headers });
}

/**
 * The OFREP endpoints, a mount (at `/ofrep`) for {@link startHttpServer}'s `mounts`.
 *
 * @example
 * const ofrep = createOfrepRoute({ store, apiKey: config.ofrepKey, logger, metrics });
 * await startHttpServer({ port, health, metrics, logger, mounts: [ingest, ofrep] });
 * // curl -X POST -H "X-API-Key: $GUARDIAN_OFREP_KEY" -H 'Content-Type: application/json' \
 * //   -d '{"context":{"targetingKey":"user-42"}}' http://localhost:8787/ofrep/v1/evaluate/flags/ai_beta_users
 */
export function createOfrepRoute(options: OfrepRouteOptions): HttpMount {
  const ttl = options.cacheTtlMs ?? DEFAULT_OFREP_CACHE_TTL_MS;
  if (!Number.isFinite(ttl) || ttl < 0 || ttl > DEFAULT_OFREP_CACHE_TTL_MS) {
    throw new GuardianError('BAD_ARGUMENT', `ofrep: cacheTtlMs must be between 0 and ${DEFAULT_OFREP_CACHE_TTL_MS} ms (a rollback must show within a second), got ${ttl}`);
  }
  const expected = options.apiKey === undefined ? undefined : keyDigest(options.apiKey);
  const cache = new FlagCache({
    store: options.store,
    ttlMs: ttl,
    now: options.now ?? (() => new Date()),
    logger: options.logger,
    derive: snapshotOf,
    failureNote: 'ofrep: evaluations answer 500 until a read succeeds',
  });
  const m = options.metrics;
  const configurationBody = `${JSON.stringify(OFREP_CONFIGURATION)}\n`;
  const configurationTag = etagOf(configurationBody);

  const app = new Hono<GuardianHttpEnv>();
  // Every answer counted by endpoint and status (the server's 404/405 included: this runs around them).
  app.use(async (c, next) => {
    await next();
    m?.ofrepRequests.inc({ endpoint: endpointOf(c.req.path), status: c.res.status });
  });
  if (expected === undefined) {
    const off = () => {
      throw new HttpError(
        'not_found',
        `OFREP is off: set GUARDIAN_OFREP_KEY (at least 16 characters, e.g. \`openssl rand -hex 32\`) on the guardian, then send it as "Authorization: Bearer <key>" or "X-API-Key: <key>" to POST ${OFREP_EVALUATE_PATH}/{key}`,
      );
    };
    app.all('/', off).all('/*', off);
    return mountApp(OFREP_PREFIX, app, { maxBodyBytes: null });
  }

  /** Sends a JSON body with its ETag, or 304 when the client holds that tag already. */
  function sendTagged(c: OfrepContext, body: string, etag: string): Response {
    const headers = { etag, 'cache-control': 'private, no-cache', 'x-content-type-options': 'nosniff' };
    if (noneMatch(c.req.header('if-none-match'), etag)) return c.body(null, 304, headers);
    return c.body(body, 200, { 'content-type': 'application/json; charset=utf-8', ...headers });
  }

  // The credential check, before anything else under /ofrep: none → 401, wrong → 403; the connection is closed.
  app.use(async (c, next) => {
    const given: string[] = [];
    const bearer = /^Bearer\s+(\S+)\s*$/i.exec(c.req.header('authorization') ?? '');
    if (bearer) given.push(bearer[1]!);
    const apiKey = c.req.header('x-api-key')?.trim();
    if (apiKey) given.push(apiKey);
    if (given.length === 0) {
      throw new HttpError('unauthorized', 'missing credentials: send GUARDIAN_OFREP_KEY as "Authorization: Bearer <key>" or "X-API-Key: <key>"', {
        headers: { 'www-authenticate': 'Bearer realm="guardian"', connection: 'close' },
      });
    }
    // Compare digests: constant time whatever the lengths; every credential is checked.
    let ok = false;
    for (const k of given) ok = sameKey(k, expected) || ok;
    if (!ok) throw new HttpError('forbidden', 'wrong OFREP key: send the guardian\'s GUARDIAN_OFREP_KEY as "Authorization: Bearer <key>" or "X-API-Key: <key>"', { headers: { connection: 'close' } });
    await next();
  });

  /** The parsed `context.targetingKey`, or the OFREP failure to answer (413/415 are thrown in the one shape). */
  async function readTargetingKey(c: OfrepContext): Promise<{ ok: true; targetingKey: string } | { ok: false; errorCode: OfrepErrorCode; errorDetails: string }> {
    const tooLarge = () => new HttpError('payload_too_large', `the body is larger than ${MAX_OFREP_BODY_BYTES} bytes (64 KB): send only the evaluation context`, { headers: { connection: 'close' } });
    const declared = Number(c.req.header('content-length') ?? Number.NaN);
    if (Number.isFinite(declared) && declared > MAX_OFREP_BODY_BYTES) throw tooLarge();
    const hasBody = (Number.isFinite(declared) && declared > 0) || c.req.header('transfer-encoding') !== undefined;
    const type = mediaType(c.req.header('content-type'));
    if (hasBody && type !== 'application/json') {
      throw new HttpError('unsupported_media_type', `send the body as JSON with "Content-Type: application/json"${type ? `, got ${type}` : ''}`, { headers: { connection: 'close' } });
    }
    const body = await readBodyText(c.req.raw, MAX_OFREP_BODY_BYTES);
    if (!body.ok) throw tooLarge();
    let json: unknown = {};
    if (body.text.trim() !== '') {
      try {
        json = JSON.parse(body.text);
      } catch (err) {
        return { ok: false, errorCode: 'PARSE_ERROR', errorDetails: `the body is not valid JSON: ${(err as Error).message}` };
      }
    }
    if (!isPlainObject(json)) return { ok: false, errorCode: 'PARSE_ERROR', errorDetails: `the body must be a JSON object { "context": { "targetingKey": "..." } }, got ${typeName(json)}` };
    const context = json['context'] === undefined ? {} : json['context'];
    if (!isPlainObject(context)) return { ok: false, errorCode: 'INVALID_CONTEXT', errorDetails: `"context" must be an object { "targetingKey": "..." }, got ${typeName(context)}` };
    const targetingKey = context['targetingKey'];
    if (typeof targetingKey !== 'string' || targetingKey === '') {
      return {
        ok: false,
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

  app.get('/v1/configuration', (c) => sendTagged(c, configurationBody, configurationTag));

  const bulk = async (c: OfrepContext): Promise<Response> => {
    const input = await readTargetingKey(c);
    if (!input.ok) return ofrepJson(c, 400, { errorCode: input.errorCode, errorDetails: input.errorDetails });
    let snapshot: Snapshot;
    try {
      snapshot = await cache.get();
    } catch {
      return ofrepJson(c, 500, storeFailed, { 'retry-after': '1' });
    }
    const flags = snapshot.names.map((name) => evaluateOne(snapshot.byName.get(name)!, input.targetingKey));
    const body = `${JSON.stringify({ flags })}\n`;
    return sendTagged(c, body, etagOf(body));
  };
  app.post('/v1/evaluate/flags', bulk).post('/v1/evaluate/flags/', bulk);

  app.post('/v1/evaluate/flags/*', async (c) => {
    // The key as sent (everything after the prefix), percent-decoded when it decodes.
    const raw = new URL(c.req.url).pathname.slice(OFREP_EVALUATE_PATH.length + 1);
    let key: string;
    try {
      key = decodeURIComponent(raw);
    } catch {
      key = raw;
    }
    const input = await readTargetingKey(c);
    if (!input.ok) return ofrepJson(c, 400, { key, errorCode: input.errorCode, errorDetails: input.errorDetails });
    // A key that cannot be a flag name is simply not found (no database read needed).
    if (!FLAG_PATTERN.test(key)) return ofrepJson(c, 404, { key, errorCode: 'FLAG_NOT_FOUND', errorDetails: 'no such flag: flag names match ^[a-z][a-z0-9_]{1,63}$' });
    let snapshot: Snapshot;
    try {
      snapshot = await cache.get();
    } catch {
      return ofrepJson(c, 500, storeFailed, { 'retry-after': '1' });
    }
    const entry = snapshot.byName.get(key);
    if (entry === undefined) return ofrepJson(c, 404, { key, errorCode: 'FLAG_NOT_FOUND', errorDetails: `flag "${key}" does not exist` });
    const item = evaluateOne(entry, input.targetingKey);
    if ('errorCode' in item) {
      options.logger.warn({ flag: key, errorDetails: item.errorDetails }, 'ofrep: a flag could not be evaluated');
      return ofrepJson(c, 500, { errorDetails: item.errorDetails });
    }
    // Flags can be rolled back any second: never let a provider cache an answer.
    return ofrepJson(c, 200, { ...item, cacheable: false });
  });

  return mountApp(OFREP_PREFIX, app, { maxBodyBytes: null });
}
