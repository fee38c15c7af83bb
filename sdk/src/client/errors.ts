/**
 * Stable codes of {@link SdkError}:
 * - `INVALID_OPTION`: a client or adapter option is missing or malformed (the message names it).
 * - `TRANSPORT_FAILED`: the flag source answered with an error or an unexpected shape.
 * - `UNSUPPORTED`: the transport lacks what the chosen mode needs (e.g. `loadAll` for server mode).
 *
 * @example
 * const code: SdkErrorCode = 'INVALID_OPTION';
 */
export type SdkErrorCode = 'INVALID_OPTION' | 'TRANSPORT_FAILED' | 'UNSUPPORTED';

/**
 * The SDK's only error type. Thrown by constructors on bad options and by transports on source
 * failures; evaluation never throws it.
 *
 * @example
 * try { createServerClient({ transport, pollIntervalMs: -1 }); }
 * catch (e) { if (e instanceof SdkError && e.code === 'INVALID_OPTION') console.error(e.message); }
 */
export class SdkError extends Error {
  override name = 'SdkError';
  readonly code: SdkErrorCode;

  constructor(code: SdkErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }

  /** A plain object for logs. */
  toJSON(): { name: string; code: SdkErrorCode; message: string; cause?: string } {
    const cause = this.cause instanceof Error ? this.cause.message : this.cause === undefined ? undefined : String(this.cause);
    return cause === undefined ? { name: this.name, code: this.code, message: this.message } : { name: this.name, code: this.code, message: this.message, cause };
  }
}

/** Checks a millisecond option: a finite number ≥ `min`. Throws an `INVALID_OPTION` naming it. */
export function checkMs(name: string, value: unknown, fallback: number, min = 10): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min) {
    throw new SdkError('INVALID_OPTION', `${name} must be a number of milliseconds ≥ ${min}; got ${JSON.stringify(value)}`);
  }
  return value;
}
