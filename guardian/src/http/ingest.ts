/**
 * `POST /v1/exposures`: the builtin source's ingestion endpoint. Server-side SDKs (the exposure
 * reporter of `@rollback-guardian/sdk/server`) report which users saw which flag value and which
 * of them hit an error; each batch is validated whole (zod, every problem with its path; flags
 * must exist), the user ids are hashed (SHA-256, no raw id is stored) and the batch is written
 * in ONE SQL call, so a failure writes nothing. Off (404 saying how to enable it) unless
 * `GUARDIAN_INGEST_KEY` is set; the key is compared in constant time.
 *
 * Bounded (issue 10): after authentication and before its body is read, a request must be
 * admitted ({@link Admission}: at most `maxConcurrent` inside, their declared bodies within the
 * memory budget); the body is read into one buffer of its declared size (at most 1 MB); writes
 * go one at a time and yield to a running cycle ({@link CyclePriority}). A refused request is
 * answered at once and its connection closed, its body never read.
 *
 * Answers (errors in the one shape of errors.ts): 202 `{ accepted }`, 400 `bad_request` (every
 * issue with its path, `field` the first), 401 `unauthorized` (connection closed), 404 not
 * enabled, 405 not POST, 413 over 1 MB or 1000 exposures, 415 not JSON, 429 `rate_limited`
 * (`Retry-After`), 503 `unavailable` when the database failed (retry).
 */
import { Hono, type Context } from 'hono';
import { z } from 'zod';

import { exposureUserKey } from '../sources/builtin.ts';
import type { ExposureRecord, Store } from '../store/types.ts';
import { Admission, CyclePriority } from './admission.ts';
import { badRequest, HttpError } from './errors.ts';
import { FlagCache } from './flag-cache.ts';
import type { GuardianMetrics } from './metrics.ts';
import { keyDigest, mediaType, readBodyText, sameKey, typeName } from './request.ts';
import { mountApp, type GuardianHttpEnv, type HttpLogger, type HttpMount } from './server.ts';

/** The path of the endpoint. */
export const EXPOSURES_PATH = '/v1/exposures';

/** At most this many exposures per request. */
export const MAX_EXPOSURES_PER_REQUEST = 1000;

/** At most this many bytes of body per request (1 MB). */
export const MAX_EXPOSURE_BODY_BYTES = 1_048_576;

/** Default: requests inside the endpoint at once (reading, parsing, writing); more get 429. */
export const DEFAULT_INGEST_MAX_CONCURRENT = 4;

/** Default: body bytes the requests inside may hold together (8 MB); more get 429. */
export const DEFAULT_INGEST_MEMORY_BUDGET_BYTES = 8 * 1_048_576;

/** Seconds a refused (429) sender is told to wait. */
export const INGEST_RETRY_AFTER_SECONDS = 2;

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
      // One problem per `at`: an unreadable time stops there (abort), before the window checks.
      at: z
        .string({ error: (iss) => `must be an ISO 8601 time with a time zone (a string), got ${typeName(iss.input)}` })
        .check(z.iso.datetime({ offset: true, abort: true, error: 'must be an ISO 8601 time with a time zone, e.g. 2026-01-01T12:00:00Z' }))
        .refine((v) => Number.isFinite(Date.parse(v)), { abort: true, error: 'is not a real time (check the date), e.g. 2026-01-01T12:00:00Z' })
        .refine((v) => Date.parse(v) <= now.getTime() + MAX_EXPOSURE_FUTURE_MS, { abort: true, error: 'must not be more than 5 minutes in the future (check the sender\'s clock)' })
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

/** Options of {@link createExposureIngestRoute}. */
export interface ExposureIngestOptions {
  /** Where exposures go, and which flags exist (read at most once a second). */
  readonly store: Pick<Store, 'recordExposures' | 'listFlags'>;
  /** The bearer key (`GUARDIAN_INGEST_KEY`); undefined: the endpoint answers 404 saying how to enable it. */
  readonly ingestKey: string | undefined;
  readonly logger: HttpLogger;
  readonly metrics?: GuardianMetrics;
  /** Clock (time of exposures without `at`, and the `at` window). Default `() => new Date()`. */
  readonly now?: () => Date;
  /** Requests inside at once. Default {@link DEFAULT_INGEST_MAX_CONCURRENT}. */
  readonly maxConcurrent?: number;
  /** Body bytes the requests inside may hold together. Default {@link DEFAULT_INGEST_MEMORY_BUDGET_BYTES}. */
  readonly memoryBudgetBytes?: number;
  /** The cycle's priority over ingestion's writes (the daemon shares one with its cycles). Default: a private one (writes one at a time). */
  readonly priority?: CyclePriority;
}

type IngestContext = Context<GuardianHttpEnv>;

/**
 * The `POST /v1/exposures` endpoint, a mount for {@link startHttpServer}'s `mounts`.
 *
 * @example
 * const ingest = createExposureIngestRoute({ store, ingestKey: config.ingestKey, logger, metrics, priority });
 * await startHttpServer({ port, health, metrics, logger, mounts: [ingest] });
 */
export function createExposureIngestRoute(options: ExposureIngestOptions): HttpMount {
  const now = options.now ?? (() => new Date());
  const expected = options.ingestKey === undefined ? undefined : keyDigest(options.ingestKey);
  const m = options.metrics;
  const admission = new Admission({
    maxConcurrent: options.maxConcurrent ?? DEFAULT_INGEST_MAX_CONCURRENT,
    memoryBudgetBytes: options.memoryBudgetBytes ?? DEFAULT_INGEST_MEMORY_BUDGET_BYTES,
  });
  const priority = options.priority ?? new CyclePriority();
  // The wall clock, not `now`: a test's frozen clock must not freeze which flags exist.
  const flagNames = new FlagCache({
    store: options.store,
    ttlMs: 1_000,
    now: () => new Date(),
    logger: options.logger,
    derive: (flags) => new Set(flags.map((f) => f.name)),
    failureNote: 'ingest: batches answer 503 until a read succeeds',
  });

  const app = new Hono<GuardianHttpEnv>();
  // Every answer counted by status (the server's 405 included: this runs around it).
  app.use(async (c, next) => {
    await next();
    m?.exposureRequests.inc({ status: c.res.status });
  });
  if (expected === undefined) {
    app.all('/', () => {
      throw new HttpError(
        'not_found',
        `exposure ingestion is off: set GUARDIAN_INGEST_KEY (at least 16 characters, e.g. \`openssl rand -hex 32\`) on the guardian, then send it as "Authorization: Bearer <key>" to POST ${EXPOSURES_PATH}`,
      );
    });
    return mountApp(EXPOSURES_PATH, app, { maxBodyBytes: null });
  }

  /** Refuses and closes the connection: the sender's body (never read) is not kept. */
  const refuse = (code: 'unauthorized' | 'rate_limited' | 'payload_too_large' | 'unsupported_media_type', message: string, headers: Record<string, string> = {}): HttpError =>
    new HttpError(code, message, { headers: { connection: 'close', ...headers } });

  app.post('/', async (c: IngestContext) => {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(c.req.header('authorization') ?? '');
    // Compare digests: constant time whatever the lengths.
    if (!match || !sameKey(match[1]!, expected)) {
      throw refuse(
        'unauthorized',
        match ? 'wrong ingest key: send the guardian\'s GUARDIAN_INGEST_KEY as "Authorization: Bearer <key>"' : 'missing "Authorization: Bearer <GUARDIAN_INGEST_KEY>" header',
        { 'www-authenticate': 'Bearer realm="guardian"' },
      );
    }
    const type = mediaType(c.req.header('content-type'));
    if (type !== 'application/json') {
      throw refuse('unsupported_media_type', `send the body as JSON with "Content-Type: application/json"${type ? `, got ${type}` : ''}`, { 'accept-post': 'application/json' });
    }
    const tooLarge = `the body is larger than ${MAX_EXPOSURE_BODY_BYTES} bytes (1 MB): send smaller batches (at most ${MAX_EXPOSURES_PER_REQUEST} exposures)`;
    const declared = Number(c.req.header('content-length') ?? Number.NaN);
    if (Number.isFinite(declared) && declared > MAX_EXPOSURE_BODY_BYTES) throw refuse('payload_too_large', tooLarge);
    const ticket = admission.tryEnter(Number.isFinite(declared) && declared >= 0 ? declared : MAX_EXPOSURE_BODY_BYTES);
    if (ticket === undefined) {
      throw refuse('rate_limited', `the guardian is busy with other exposure batches (${admission.inside} inside): retry in ${INGEST_RETRY_AFTER_SECONDS} s; nothing was recorded`, {
        'retry-after': String(INGEST_RETRY_AFTER_SECONDS),
      });
    }
    try {
      return await ingest(c);
    } finally {
      ticket.release();
    }

    async function ingest(ctx: IngestContext): Promise<Response> {
      const body = await readBodyText(ctx.req.raw, MAX_EXPOSURE_BODY_BYTES);
      if (!body.ok) throw refuse('payload_too_large', tooLarge);
      let json: unknown;
      try {
        json = JSON.parse(body.text);
      } catch (err) {
        throw new HttpError('bad_request', `the body is not valid JSON: ${(err as Error).message}`, { field: 'body', issues: [{ path: 'body', message: 'not valid JSON' }] });
      }
      const items = (json as { exposures?: unknown } | null)?.exposures;
      if (Array.isArray(items) && items.length > MAX_EXPOSURES_PER_REQUEST) {
        m?.exposures.inc({ result: 'rejected' }, items.length);
        throw new HttpError('payload_too_large', `${items.length} exposures in one request; at most ${MAX_EXPOSURES_PER_REQUEST}: send smaller batches`, { field: 'body.exposures' });
      }
      const at = now();
      const parsed = exposureBodySchema(at).safeParse(json);
      if (!parsed.success) {
        m?.exposures.inc({ result: 'rejected' }, Array.isArray(items) ? items.length : 0);
        throw badRequest('body', parsed.error, 'nothing was recorded');
      }
      const exposures = parsed.data.exposures;
      if (exposures.length > 0) await refuseUnknownFlags(exposures.map((e) => e.flag), exposures.length);
      const batch: ExposureRecord[] = exposures.map((e) => ({
        flag: e.flag,
        cohort: e.value,
        userKey: exposureUserKey(e.user),
        at: e.at === undefined ? at : new Date(e.at),
        error: e.error === true,
      }));
      if (batch.length > 0) {
        try {
          await priority.turn(() => options.store.recordExposures(batch));
        } catch (err) {
          m?.exposures.inc({ result: 'failed' }, batch.length);
          options.logger.error({ err: { message: (err as Error).message }, exposures: batch.length }, 'ingest: recording exposures failed; the sender should retry');
          throw new HttpError('unavailable', 'the guardian could not record the exposures (its database failed); nothing was recorded: retry later', { headers: { 'retry-after': '5' } });
        }
      }
      m?.exposures.inc({ result: 'accepted' }, batch.length);
      return ctx.json({ accepted: batch.length }, 202, { 'cache-control': 'no-store' });
    }
  });

  /** 400 naming every flag of the batch that does not exist (before refusing, the flags are read afresh: one created a moment ago is accepted). */
  async function refuseUnknownFlags(names: readonly string[], count: number): Promise<void> {
    let known: ReadonlySet<string>;
    try {
      known = await flagNames.get();
      if (names.some((n) => !known.has(n))) known = await flagNames.get(0);
    } catch {
      m?.exposures.inc({ result: 'failed' }, count);
      throw new HttpError('unavailable', 'the guardian could not read which flags exist (its database failed); nothing was recorded: retry later', { headers: { 'retry-after': '5' } });
    }
    const issues = names.flatMap((n, i) => (known.has(n) ? [] : [{ path: `body.exposures[${i}].flag`, message: `flag "${n}" does not exist: create it first, or stop reporting it` }]));
    if (issues.length === 0) return;
    m?.exposures.inc({ result: 'rejected' }, count);
    const unknown = [...new Set(names.filter((n) => !known.has(n)))];
    throw new HttpError('bad_request', `unknown flag(s) ${unknown.map((n) => `"${n}"`).join(', ')}; nothing was recorded`, { field: issues[0]!.path, issues });
  }

  return mountApp(EXPOSURES_PATH, app, { maxBodyBytes: null });
}
