/**
 * Shared HTTP plumbing of the metric sources: one request with a timeout and the caller's
 * deadline, failures classified (CONVENTIONS §6) into GuardianErrors with a `reason`, retries
 * with p-retry for the retryable ones (5xx, network, timeout) using the injected `sleep`.
 */
import pRetry, { AbortError } from 'p-retry';
import { GuardianError, type GuardianErrorCode } from '../errors.ts';
import type { SourceDeps } from './types.ts';

/** A classified source failure: `reason` is the `no_data` reason code of the observation. */
export class SourceFailure extends GuardianError {
  override name = 'SourceFailure';
  readonly reason: string;
  readonly retryable: boolean;
  /** For 429: when the provider said it may be asked again (epoch ms), if it said. */
  readonly retryAt: number | undefined;

  constructor(code: GuardianErrorCode, reason: string, message: string, options: { retryable?: boolean; retryAt?: number; cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(code, message, { cause: options.cause, details: options.details });
    this.reason = reason;
    this.retryable = options.retryable ?? false;
    this.retryAt = options.retryAt;
  }
}

/** A successful response: status, headers and the parsed JSON body (undefined when not JSON). */
export interface JsonResponse {
  readonly status: number;
  readonly headers: Headers;
  readonly body: unknown;
  readonly text: string;
}

/** Retry policy of one request. */
export interface RetryPolicy {
  /** Retries after the first attempt (default 2). */
  readonly retries: number;
  /** First backoff in ms, doubled each retry (default 500). */
  readonly backoffMs: number;
  /** Per-attempt timeout in ms (default 10 000). */
  readonly timeoutMs: number;
}

/** Default retry policy. */
export const DEFAULT_RETRY: RetryPolicy = { retries: 2, backoffMs: 500, timeoutMs: 10_000 };

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/**
 * Sends one request (retrying 5xx, network errors and timeouts), returns the response for any
 * status the caller classifies itself (2xx, 4xx), or throws a SourceFailure.
 *
 * @example
 * const res = await requestJson(deps, 'https://us.posthog.com/api/projects/1/query/', { method: 'POST' }, signal, DEFAULT_RETRY, 'posthog');
 */
export async function requestJson(deps: SourceDeps, url: string, init: RequestInit, signal: AbortSignal, policy: RetryPolicy, source: string): Promise<JsonResponse> {
  const attempt = async (): Promise<JsonResponse> => {
    if (signal.aborted) throw new AbortError(deadlineFailure(source));
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(), policy.timeoutMs);
    try {
      let res: Response;
      try {
        res = await deps.fetch(url, { ...init, signal: AbortSignal.any([signal, timeout.signal]) });
      } catch (err) {
        if (signal.aborted) throw new AbortError(deadlineFailure(source, err));
        if (timeout.signal.aborted) throw new SourceFailure('SOURCE_UNAVAILABLE', 'timeout', `${source}: no answer within ${policy.timeoutMs} ms`, { retryable: true, cause: err });
        throw new SourceFailure('SOURCE_UNAVAILABLE', 'unavailable', `${source}: network error: ${err instanceof Error ? err.message : String(err)}`, { retryable: true, cause: err });
      }
      let text: string;
      try {
        text = await res.text();
      } catch (err) {
        if (signal.aborted) throw new AbortError(deadlineFailure(source, err));
        throw new SourceFailure('SOURCE_UNAVAILABLE', timeout.signal.aborted ? 'timeout' : 'unavailable', `${source}: the response body could not be read`, { retryable: true, cause: err });
      }
      if (res.status >= 500) {
        throw new SourceFailure('SOURCE_UNAVAILABLE', 'unavailable', `${source}: HTTP ${res.status} from the provider`, { retryable: true, details: { status: res.status, body: text.slice(0, 300) } });
      }
      return { status: res.status, headers: res.headers, body: parseJson(text), text };
    } finally {
      clearTimeout(timer);
    }
  };
  try {
    return await pRetry(attempt, {
      retries: policy.retries,
      minTimeout: 0,
      factor: 1,
      shouldRetry: ({ error }) => error instanceof SourceFailure && error.retryable && !signal.aborted,
      onFailedAttempt: async ({ error, attemptNumber, retriesLeft }) => {
        if (retriesLeft <= 0 || !(error instanceof SourceFailure) || !error.retryable || signal.aborted) return;
        const wait = policy.backoffMs * 2 ** (attemptNumber - 1);
        deps.logger.warn({ source, attempt: attemptNumber, wait_ms: wait, err: { code: error.code, message: error.message } }, `${source}: request failed, retrying`);
        await deps.sleep(wait);
      },
    });
  } catch (err) {
    if (err instanceof SourceFailure) throw err;
    if (signal.aborted) throw deadlineFailure(source, err);
    throw new SourceFailure('SOURCE_UNAVAILABLE', 'unavailable', `${source}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

function deadlineFailure(source: string, cause?: unknown): SourceFailure {
  return new SourceFailure('SOURCE_UNAVAILABLE', 'timeout', `${source}: the cycle's deadline passed before the provider answered`, { cause });
}

/** A budget of requests over sliding windows (e.g. 240/min and 2,400/h for PostHog). */
export class RequestBudget {
  readonly #limits: readonly { readonly max: number; readonly windowMs: number }[];
  readonly #stamps: number[] = [];

  constructor(limits: readonly { readonly max: number; readonly windowMs: number }[]) {
    this.#limits = limits;
  }

  /** Takes one request from the budget at `now` (epoch ms); false when any window is full. */
  take(now: number): boolean {
    const longest = Math.max(...this.#limits.map((l) => l.windowMs));
    while (this.#stamps.length > 0 && this.#stamps[0]! <= now - longest) this.#stamps.shift();
    for (const limit of this.#limits) {
      let used = 0;
      for (let i = this.#stamps.length - 1; i >= 0 && this.#stamps[i]! > now - limit.windowMs; i--) used++;
      if (used >= limit.max) return false;
    }
    this.#stamps.push(now);
    return true;
  }
}

/** Retry-After header (seconds or HTTP date) → epoch ms, or undefined. */
export function retryAfterMs(header: string | null, now: number): number | undefined {
  if (header === null || header.trim() === '') return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds) && seconds >= 0) return now + seconds * 1000;
  const date = Date.parse(header);
  return Number.isFinite(date) ? date : undefined;
}
