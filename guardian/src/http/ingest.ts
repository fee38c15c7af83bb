/**
 * `POST /v1/exposures`: the builtin source's ingestion endpoint. Server-side SDKs (the exposure
 * reporter of `@rollback-guardian/sdk/server`) report which users saw which flag value and which
 * of them hit an error; each batch is validated whole (zod, every problem with its path), the user
 * ids are hashed (SHA-256, no raw id is stored) and the batch is written in ONE SQL call, so a
 * failure writes nothing. Off (404 saying how to enable it) unless `GUARDIAN_INGEST_KEY` is set;
 * the key is compared in constant time.
 *
 * Answers: 202 `{ accepted }`, 400 invalid body (`problems: [{ path, message }]`), 401 missing or
 * wrong key, 404 not enabled, 405 not POST, 413 over 1 MB or 1000 exposures, 415 not JSON,
 * 503 the database failed (retry).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

import { z } from 'zod';

import { formatPath } from '../rules/parse.ts';
import { exposureUserKey } from '../sources/builtin.ts';
import type { ExposureRecord, Store } from '../store/types.ts';
import type { GuardianMetrics } from './metrics.ts';
import { keyDigest, readBody, sameKey, typeName } from './request.ts';
import { sendJson, type HttpLogger, type HttpRoute } from './server.ts';

/** The path of the endpoint. */
export const EXPOSURES_PATH = '/v1/exposures';

/** At most this many exposures per request. */
export const MAX_EXPOSURES_PER_REQUEST = 1000;

/** At most this many bytes of body per request (1 MB). */
export const MAX_EXPOSURE_BODY_BYTES = 1_048_576;

/** An exposure's `at` may be at most this far in the future (clock skew)… */
export const MAX_EXPOSURE_FUTURE_MS = 5 * 60_000;

/** …and at most this old. */
export const MAX_EXPOSURE_AGE_MS = 24 * 3_600_000;

const FLAG_PATTERN = /^[a-z][a-z0-9_]{1,63}$/;


/**
 * The request body's schema, judged at `now` (for the `at` window).
 *
 * @example
 * const parsed = exposureBodySchema(new Date()).safeParse(JSON.parse(body));
 */
export function exposureBodySchema(now: Date) {
  const exposure = z.strictObject(
    {
      flag: z
        .string({ error: (iss) => `must be a flag name (a string), got ${typeName(iss.input)}` })
        .regex(FLAG_PATTERN, { error: 'must match ^[a-z][a-z0-9_]{1,63}$' }),
      user: z
        .string({ error: (iss) => `must be the user id (a string), got ${typeName(iss.input)}` })
        .min(1, { error: 'must not be empty' })
        .max(512, { error: 'must be at most 512 characters' }),
      value: z.boolean({ error: (iss) => `must be the flag's value for the user (true or false), got ${typeName(iss.input)}` }),
      error: z.boolean({ error: (iss) => `must be true or false (whether the user hit an error), got ${typeName(iss.input)}` }).optional(),
      at: z.iso
        .datetime({ offset: true, error: 'must be an ISO 8601 time with a time zone, e.g. 2026-01-01T12:00:00Z' })
        .refine((v) => Date.parse(v) <= now.getTime() + MAX_EXPOSURE_FUTURE_MS, { error: 'must not be more than 5 minutes in the future (check the sender\'s clock)' })
        .refine((v) => Date.parse(v) >= now.getTime() - MAX_EXPOSURE_AGE_MS, { error: 'must not be older than 24 hours' })
        .optional(),
    },
    { error: (iss) => (iss.code === 'unrecognized_keys' ? `unknown field(s) ${iss.keys.map((k) => `"${k}"`).join(', ')}: an exposure has flag, user, value, error and at` : `must be an object { flag, user, value, error?, at? }, got ${typeName(iss.input)}`) },
  );
  return z.strictObject(
    { exposures: z.array(exposure, { error: (iss) => `must be an array of exposures, got ${typeName(iss.input)}` }) },
    { error: (iss) => (iss.code === 'unrecognized_keys' ? `unknown field(s) ${iss.keys.map((k) => `"${k}"`).join(', ')}: the body is { "exposures": [...] }` : `the body must be a JSON object { "exposures": [...] }, got ${typeName(iss.input)}`) },
  );
}

/** One problem of a refused body. */
export interface ExposureProblem {
  readonly path: string;
  readonly message: string;
}

/** Options of {@link createExposureIngestRoute}. */
export interface ExposureIngestOptions {
  readonly store: Pick<Store, 'recordExposures'>;
  /** The bearer key (`GUARDIAN_INGEST_KEY`); undefined: the endpoint answers 404 saying how to enable it. */
  readonly ingestKey: string | undefined;
  readonly logger: HttpLogger;
  readonly metrics?: GuardianMetrics;
  /** Clock (time of exposures without `at`, and the `at` window). Default `() => new Date()`. */
  readonly now?: () => Date;
}


/**
 * The `POST /v1/exposures` route for {@link startHttpServer}'s `routes`.
 *
 * @example
 * const ingest = createExposureIngestRoute({ store, ingestKey: config.ingestKey, logger, metrics });
 * await startHttpServer({ port, health, metrics, logger, routes: [ingest] });
 */
export function createExposureIngestRoute(options: ExposureIngestOptions): HttpRoute {
  const now = options.now ?? (() => new Date());
  const expected = options.ingestKey === undefined ? undefined : keyDigest(options.ingestKey);
  const m = options.metrics;

  const answer = (req: IncomingMessage, res: ServerResponse, status: number, value: unknown, headers?: Record<string, string>): void => {
    m?.exposureRequests.inc({ status });
    sendJson(res, req, status, value, headers);
  };

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (expected === undefined) {
      answer(req, res, 404, {
        error: 'not_enabled',
        message: `exposure ingestion is off: set GUARDIAN_INGEST_KEY (at least 16 characters, e.g. \`openssl rand -hex 32\`) on the guardian, then send it as "Authorization: Bearer <key>" to POST ${EXPOSURES_PATH}`,
      });
      return;
    }
    if (req.method !== 'POST') {
      answer(req, res, 405, { error: 'method_not_allowed', message: `${EXPOSURES_PATH} accepts POST only` }, { allow: 'POST' });
      return;
    }
    const auth = req.headers.authorization ?? '';
    const match = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    // Compare digests: constant time whatever the lengths.
    if (!match || !sameKey(match[1]!, expected)) {
      answer(
        req,
        res,
        401,
        { error: 'unauthorized', message: match ? 'wrong ingest key: send the guardian\'s GUARDIAN_INGEST_KEY as "Authorization: Bearer <key>"' : 'missing "Authorization: Bearer <GUARDIAN_INGEST_KEY>" header' },
        { 'www-authenticate': 'Bearer realm="guardian"' },
      );
      return;
    }
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (type !== 'application/json') {
      answer(req, res, 415, { error: 'unsupported_media_type', message: `send the body as JSON with "Content-Type: application/json"${type ? `, got ${type}` : ''}` }, { 'accept-post': 'application/json' });
      return;
    }
    const tooLarge = () =>
      answer(req, res, 413, { error: 'too_large', message: `the body is larger than ${MAX_EXPOSURE_BODY_BYTES} bytes (1 MB): send smaller batches (at most ${MAX_EXPOSURES_PER_REQUEST} exposures)` }, { connection: 'close' });
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > MAX_EXPOSURE_BODY_BYTES) {
      tooLarge();
      req.resume();
      return;
    }
    const body = await readBody(req, MAX_EXPOSURE_BODY_BYTES);
    if (!body.ok) {
      tooLarge();
      return;
    }
    let json: unknown;
    try {
      json = JSON.parse(body.text);
    } catch (err) {
      answer(req, res, 400, { error: 'invalid_body', message: `the body is not valid JSON: ${(err as Error).message}`, problems: [{ path: '(body)', message: 'not valid JSON' }] });
      return;
    }
    const items = (json as { exposures?: unknown } | null)?.exposures;
    if (Array.isArray(items) && items.length > MAX_EXPOSURES_PER_REQUEST) {
      m?.exposures.inc({ result: 'rejected' }, items.length);
      answer(req, res, 413, { error: 'too_large', message: `${items.length} exposures in one request; at most ${MAX_EXPOSURES_PER_REQUEST}: send smaller batches` });
      return;
    }
    const at = now();
    const parsed = exposureBodySchema(at).safeParse(json);
    if (!parsed.success) {
      const problems: ExposureProblem[] = parsed.error.issues.map((i) => ({ path: i.path.length === 0 ? '(body)' : formatPath(i.path), message: i.message }));
      m?.exposures.inc({ result: 'rejected' }, Array.isArray(items) ? items.length : 0);
      answer(req, res, 400, {
        error: 'invalid_body',
        message: `${problems.length} problem(s), nothing was recorded: ${problems.map((p) => `${p.path}: ${p.message}`).join('; ')}`,
        problems,
      });
      return;
    }
    const batch: ExposureRecord[] = parsed.data.exposures.map((e) => ({
      flag: e.flag,
      cohort: e.value,
      userKey: exposureUserKey(e.user),
      at: e.at === undefined ? at : new Date(e.at),
      error: e.error === true,
    }));
    if (batch.length > 0) {
      try {
        await options.store.recordExposures(batch);
      } catch (err) {
        m?.exposures.inc({ result: 'failed' }, batch.length);
        options.logger.error({ err: { message: (err as Error).message }, exposures: batch.length }, 'ingest: recording exposures failed; the sender should retry');
        answer(req, res, 503, { error: 'store_unavailable', message: 'the guardian could not record the exposures (its database failed); nothing was recorded: retry later' }, { 'retry-after': '5' });
        return;
      }
    }
    m?.exposures.inc({ result: 'accepted' }, batch.length);
    answer(req, res, 202, { accepted: batch.length });
  }

  return {
    async handle(req, res, url) {
      if (url.pathname !== EXPOSURES_PATH) return false;
      await handle(req, res);
      return true;
    },
  };
}
