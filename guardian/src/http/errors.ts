/**
 * The one JSON error shape of every guardian HTTP route (admin API contract, "Errors"):
 *
 *     { "error": { "code": "bad_request", "message": "words for a person", "field"?: "body.exposures[0].flag",
 *                  "issues"?: [{ "path": "body.exposures[0].flag", "message": "..." }] } }
 *
 * Throw an {@link HttpError} from any handler (the server's error handler renders it), or answer
 * with {@link errorResponse}. OFREP evaluation failures are the one exception: their bodies are
 * dictated by the OFREP specification (`{ key, errorCode, errorDetails }`), see ofrep.ts.
 */
import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { z } from 'zod';

import { formatPath } from '../rules/parse.ts';

/**
 * Stable error codes (the contract's, plus `method_not_allowed`, `unsupported_media_type` and
 * `unavailable` for 405, 415 and 503).
 */
export type HttpErrorCode =
  | 'not_found'
  | 'unauthorized'
  | 'forbidden'
  | 'bad_request'
  | 'version_conflict'
  | 'precondition_required'
  | 'conflict'
  | 'rate_limited'
  | 'payload_too_large'
  | 'internal'
  | 'method_not_allowed'
  | 'unsupported_media_type'
  | 'unavailable';

/** One problem of a refused request, with where it is (`body.…`, `query.…`, `header.…`). */
export interface HttpErrorIssue {
  readonly path: string;
  readonly message: string;
}

/** The body of every non-2xx answer (except OFREP evaluation failures). */
export interface HttpErrorBody {
  readonly error: {
    readonly code: HttpErrorCode;
    readonly message: string;
    readonly field?: string;
    readonly issues?: readonly HttpErrorIssue[];
  };
}

/** The status each code is answered with when none is given. */
export const HTTP_ERROR_STATUS: Readonly<Record<HttpErrorCode, ContentfulStatusCode>> = {
  bad_request: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  method_not_allowed: 405,
  conflict: 409,
  version_conflict: 412,
  payload_too_large: 413,
  unsupported_media_type: 415,
  precondition_required: 428,
  rate_limited: 429,
  internal: 500,
  unavailable: 503,
};

/** Options of {@link HttpError}. */
export interface HttpErrorOptions {
  /** Default: the code's status ({@link HTTP_ERROR_STATUS}). */
  readonly status?: ContentfulStatusCode;
  /** The one field at fault (`body.rolloutPercentage`). */
  readonly field?: string;
  readonly issues?: readonly HttpErrorIssue[];
  /** Extra response headers (`retry-after`, `www-authenticate`, `allow`…). */
  readonly headers?: Readonly<Record<string, string>>;
  /** Extra top-level members beside `error` (the contract's 412 carries `current`). */
  readonly extra?: Readonly<Record<string, unknown>>;
  readonly cause?: unknown;
}

/**
 * An error a handler throws to answer with the one error shape.
 *
 * @example
 * throw new HttpError('not_found', `flag "${name}" does not exist`);
 * throw new HttpError('rate_limited', 'too many exposure batches in flight: retry later', { headers: { 'retry-after': '2' } });
 */
export class HttpError extends Error {
  override name = 'HttpError';
  readonly code: HttpErrorCode;
  readonly status: ContentfulStatusCode;
  readonly field: string | undefined;
  readonly issues: readonly HttpErrorIssue[] | undefined;
  readonly headers: Readonly<Record<string, string>>;
  readonly extra: Readonly<Record<string, unknown>>;

  constructor(code: HttpErrorCode, message: string, options: HttpErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.status = options.status ?? HTTP_ERROR_STATUS[code];
    this.field = options.field;
    this.issues = options.issues;
    this.headers = options.headers ?? {};
    this.extra = options.extra ?? {};
  }

  /** The JSON body. */
  body(): HttpErrorBody & Readonly<Record<string, unknown>> {
    return {
      ...this.extra,
      error: {
        code: this.code,
        message: this.message,
        ...(this.field !== undefined ? { field: this.field } : {}),
        ...(this.issues !== undefined ? { issues: this.issues } : {}),
      },
    };
  }
}

/**
 * The code for a bare status (a library's `HTTPException`, or a status without a code of ours).
 *
 * @example
 * codeForStatus(413); // 'payload_too_large'
 */
export function codeForStatus(status: number): HttpErrorCode {
  for (const [code, s] of Object.entries(HTTP_ERROR_STATUS) as [HttpErrorCode, number][]) if (s === status) return code;
  return status >= 500 ? 'internal' : 'bad_request';
}

/**
 * Answers an error in the one shape, `cache-control: no-store`.
 *
 * @example
 * return errorResponse(c, new HttpError('forbidden', 'editors only: ask an admin for the editor role'));
 */
export function errorResponse(c: Context, err: HttpError): Response {
  return c.json(err.body(), err.status, { 'cache-control': 'no-store', ...err.headers });
}

/**
 * Turns any thrown value into an {@link HttpError}: itself, a Hono `HTTPException` by its
 * status, anything else `internal` (its words are NOT shown: they may hold internals).
 *
 * @example
 * app.onError((err, c) => errorResponse(c, toHttpError(err)));
 */
export function toHttpError(err: unknown): HttpError {
  if (err instanceof HttpError) return err;
  if (err instanceof HTTPException) {
    const code = codeForStatus(err.status);
    return new HttpError(code, err.message || `HTTP ${err.status}`, { status: err.status as ContentfulStatusCode, cause: err });
  }
  return new HttpError('internal', 'internal error; see the guardian logs', { cause: err });
}

/**
 * A zod error's issues, each with its path under `prefix` (`body`, `query`…), every one listed.
 *
 * @example
 * const parsed = schema.safeParse(json);
 * if (!parsed.success) throw badRequest('body', parsed.error);
 */
export function zodIssues(prefix: string, error: z.ZodError): HttpErrorIssue[] {
  return error.issues.map((i) => ({ path: i.path.length === 0 ? prefix : `${prefix}${i.path.length > 0 && typeof i.path[0] === 'number' ? '' : '.'}${formatPath(i.path)}`, message: i.message }));
}

/**
 * A 400 listing every issue of a zod error (`field` is the first issue's path).
 *
 * @example
 * if (!parsed.success) throw badRequest('body', parsed.error, 'nothing was recorded');
 */
export function badRequest(prefix: string, error: z.ZodError, note?: string): HttpError {
  const issues = zodIssues(prefix, error);
  const message = `${issues.length} problem(s)${note ? `, ${note}` : ''}: ${issues.map((p) => `${p.path}: ${p.message}`).join('; ')}`;
  return new HttpError('bad_request', message, { field: issues[0]?.path ?? prefix, issues });
}
