/**
 * The admin API's one error shape (see the contract): `{ error: { code, message, field?, issues? } }`,
 * raised as an {@link ApiError} anywhere in a handler and written by the app's error handler.
 */
import type { ZodError } from 'zod';

import { GuardianError } from '../errors.ts';

/** Stable error codes of the admin API. */
export type ApiErrorCode =
  | 'not_found'
  | 'unauthorized'
  | 'forbidden'
  | 'bad_request'
  | 'version_conflict'
  | 'precondition_required'
  | 'conflict'
  | 'rate_limited'
  | 'payload_too_large'
  | 'unavailable'
  | 'internal';

/** HTTP status of each code. */
export const STATUS_OF: Readonly<Record<ApiErrorCode, 400 | 401 | 403 | 404 | 409 | 412 | 413 | 428 | 429 | 500 | 503>> = {
  bad_request: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  version_conflict: 412,
  payload_too_large: 413,
  precondition_required: 428,
  rate_limited: 429,
  internal: 500,
  unavailable: 503,
};

/** One validation problem: where (`body.add[3]`) and what. */
export interface ApiIssue {
  readonly path: string;
  readonly message: string;
}

/**
 * An error answered to the client as JSON.
 *
 * @example
 * throw new ApiError('forbidden', 'creating a flag needs the admin role; you are an editor');
 */
export class ApiError extends Error {
  override name = 'ApiError';
  readonly code: ApiErrorCode;
  readonly field: string | undefined;
  readonly issues: readonly ApiIssue[] | undefined;
  /** Extra top-level members of the body (412: `current`). */
  readonly extra: Readonly<Record<string, unknown>> | undefined;
  /** Extra response headers (429: Retry-After; 401: WWW-Authenticate). */
  readonly headers: Readonly<Record<string, string>> | undefined;

  constructor(
    code: ApiErrorCode,
    message: string,
    opts: { field?: string; issues?: readonly ApiIssue[]; extra?: Record<string, unknown>; headers?: Record<string, string>; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.code = code;
    this.field = opts.field;
    this.issues = opts.issues;
    this.extra = opts.extra;
    this.headers = opts.headers;
  }

  get status(): (typeof STATUS_OF)[ApiErrorCode] {
    return STATUS_OF[this.code];
  }

  /** The response body. */
  body(): Record<string, unknown> {
    return {
      error: { code: this.code, message: this.message, ...(this.field ? { field: this.field } : {}), ...(this.issues ? { issues: this.issues } : {}) },
      ...this.extra,
    };
  }
}

/** `['add', 3]` under `body` → `body.add[3]`. */
export function issuePath(where: string, path: readonly PropertyKey[]): string {
  let out = where;
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : `.${String(p)}`;
  return out;
}

/** A zod failure of `where` (body, query, params) → 400 naming every field. */
export function badRequest(where: string, err: ZodError): ApiError {
  const issues = err.issues.map((i) => ({ path: issuePath(where, i.path), message: i.message }));
  const first = issues[0];
  const message = issues.map((i) => `${i.path}: ${i.message}`).join('; ');
  return new ApiError('bad_request', message || `${where} is not valid`, { ...(first ? { field: first.path } : {}), issues });
}

/** A store error → the API's code (VERSION_CONFLICT is handled by the caller, which adds `current`). */
export function fromGuardianError(err: GuardianError): ApiError {
  switch (err.code) {
    case 'NOT_FOUND':
      return new ApiError('not_found', err.message, { cause: err });
    case 'BAD_ARGUMENT':
      return new ApiError('bad_request', err.message, { cause: err });
    case 'STORE_CONFLICT':
      return new ApiError('conflict', err.message, { cause: err });
    case 'VERSION_CONFLICT':
      return new ApiError('version_conflict', err.message, { cause: err });
    case 'STORE_UNREACHABLE':
      return new ApiError('unavailable', err.message, { cause: err });
    default:
      return new ApiError('internal', err.message, { cause: err });
  }
}
