/**
 * Store errors → the one HTTP error shape (http/errors.ts's {@link HttpError}).
 */
import { GuardianError } from '../errors.ts';
import { HttpError, toHttpError } from '../http/errors.ts';

/**
 * Any error thrown in an admin handler → the HttpError to answer with: a GuardianError by its code
 * (VERSION_CONFLICT reaches here only without the current flag; handlers add it), else as the
 * server does ({@link toHttpError}: internal, words hidden).
 *
 * @example
 * app.onError((err, c) => errorResponse(c, apiError(err)));
 */
export function apiError(err: unknown): HttpError {
  if (!(err instanceof GuardianError)) return toHttpError(err);
  switch (err.code) {
    case 'NOT_FOUND':
      return new HttpError('not_found', err.message, { cause: err });
    case 'BAD_ARGUMENT':
      return new HttpError('bad_request', err.message, { cause: err });
    case 'STORE_CONFLICT':
      return new HttpError('conflict', err.message, { cause: err });
    case 'VERSION_CONFLICT':
      return new HttpError('version_conflict', err.message, { cause: err });
    case 'STORE_UNREACHABLE':
      return new HttpError('unavailable', 'The database is unreachable; try again shortly.', { cause: err });
    default:
      return new HttpError('internal', 'internal error; see the guardian logs', { cause: err });
  }
}
