/**
 * Every error the guardian raises carries a stable `code`, the `cause`, and a message that says
 * what was wrong, where, and what to do. `toJSON()` gives the form printed by `--json`.
 */

/**
 * Stable error codes. Documented here, one line each:
 * - `CONFIG_INVALID`: environment configuration failed validation (every problem listed).
 * - `RULES_INVALID`: a rules file failed validation (every problem listed with its path).
 * - `RULES_ENV_MISSING`: a rules file names `${VAR}` and VAR is not set.
 * - `SOURCE_AUTH`: a provider answered 401/403: the token or its scope is wrong; the source stops.
 * - `SOURCE_RATE_LIMITED`: a provider answered 429; the source backs off and reports no data.
 * - `SOURCE_UNAVAILABLE`: 5xx, network failure or timeout; retried, then no data.
 * - `SOURCE_BAD_RESPONSE`: the provider's body was not the documented shape; no data.
 * - `SOURCE_BAD_QUERY`: the provider refused the query (400); a configuration or code problem.
 * - `STORE_UNREACHABLE`: the database could not be reached.
 * - `STORE_LOCKED`: the embedded database's folder is owned by another live process (it is named).
 * - `MIGRATION_FAILED`: a migration, the test shim or the seed could not be read or applied (the file is named).
 * - `STORE_CONFLICT`: the database refused the change (for example a locked or rolled-back flag).
 * - `VERSION_CONFLICT`: the flag changed since the caller read it (its `version` is not the one named); nothing was written.
 * - `STORE_FAILED`: the database failed a query for another reason (the message carries its words).
 * - `NOT_FOUND`: a flag or event that was asked for does not exist.
 * - `BAD_ARGUMENT`: a CLI argument or API body is wrong.
 * - `NOTIFY_FAILED`: a notification channel could not deliver (it will be retried).
 */
export type GuardianErrorCode =
  | 'CONFIG_INVALID'
  | 'RULES_INVALID'
  | 'RULES_ENV_MISSING'
  | 'SOURCE_AUTH'
  | 'SOURCE_RATE_LIMITED'
  | 'SOURCE_UNAVAILABLE'
  | 'SOURCE_BAD_RESPONSE'
  | 'SOURCE_BAD_QUERY'
  | 'STORE_UNREACHABLE'
  | 'STORE_LOCKED'
  | 'MIGRATION_FAILED'
  | 'STORE_CONFLICT'
  | 'VERSION_CONFLICT'
  | 'STORE_FAILED'
  | 'NOT_FOUND'
  | 'BAD_ARGUMENT'
  | 'NOTIFY_FAILED';

/**
 * The one error base of the guardian.
 *
 * @example
 * throw new GuardianError('BAD_ARGUMENT', '--limit: must be a positive integer, got "x"');
 */
export class GuardianError extends Error {
  override name = 'GuardianError';
  readonly code: GuardianErrorCode;
  /** Extra structured facts (for example the list of validation problems). */
  readonly details: Readonly<Record<string, unknown>> | undefined;

  constructor(code: GuardianErrorCode, message: string, options?: { cause?: unknown; details?: Record<string, unknown> }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = options?.details;
  }

  toJSON(): { name: string; code: GuardianErrorCode; message: string; details?: Readonly<Record<string, unknown>>; cause?: string } {
    const cause = this.cause instanceof Error ? this.cause.message : this.cause === undefined ? undefined : String(this.cause);
    return {
      name: this.name,
      code: this.code,
      message: this.message,
      ...(this.details ? { details: this.details } : {}),
      ...(cause === undefined ? {} : { cause }),
    };
  }
}

/**
 * True when `err` is a GuardianError (optionally with the given code).
 *
 * @example
 * if (isGuardianError(err, 'SOURCE_AUTH')) stopSource();
 */
export function isGuardianError(err: unknown, code?: GuardianErrorCode): err is GuardianError {
  return err instanceof GuardianError && (code === undefined || err.code === code);
}

/**
 * Cuts `text` to at most `max` characters, ending with `…` when cut (messages never echo a
 * 10 MB value whole).
 *
 * @example
 * cutText('a'.repeat(500), 10); // 'aaaaaaaaa…'
 */
export function cutText(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, Math.max(0, max - 1))}…`;
}
