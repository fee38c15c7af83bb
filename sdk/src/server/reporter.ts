import { checkMs, SdkError } from '../client/errors.ts';
import { defaultTimers, silentLogger } from '../client/internal/sync.ts';
import type { EvaluationListener, SdkLogger, Timers } from '../client/types.ts';

/** The guardian's ingestion path, appended to {@link ExposureReporterOptions.url}. */
export const EXPOSURES_PATH = '/v1/exposures';

/** The guardian accepts at most this many exposures per request. */
export const MAX_EXPOSURE_BATCH = 1000;

const FLAG_PATTERN = /^[a-z][a-z0-9_]{1,63}$/;
const MAX_USER_ID_LENGTH = 512;
const MAX_BACKOFF_MS = 60_000;

/**
 * Options of {@link createExposureReporter}.
 *
 * @example
 * const options: ExposureReporterOptions = { url: 'http://guardian:8787', ingestKey: process.env.GUARDIAN_INGEST_KEY!, flushIntervalMs: 5_000 };
 */
export interface ExposureReporterOptions {
  /**
   * The guardian's base URL (`http://guardian:8787`); exposures go to `<url>/v1/exposures`.
   *
   * @example
   * { url: 'https://guardian.internal.example.com' }
   */
  readonly url: string;
  /**
   * The guardian's `GUARDIAN_INGEST_KEY` (at least 16 characters), sent as `Authorization: Bearer`.
   * A secret: use the reporter on servers only, never in a browser or app bundle.
   *
   * @example
   * { ingestKey: process.env.GUARDIAN_INGEST_KEY! }
   */
  readonly ingestKey: string;
  /**
   * The fetch to send with (default the global `fetch`).
   *
   * @example
   * { fetch: (input, init) => fetch(input, { ...init, keepalive: true }) }
   */
  readonly fetch?: typeof globalThis.fetch;
  /**
   * Timers for the flush schedule, retries and the request timeout (default the global ones,
   * which do not keep a Node process alive).
   *
   * @example
   * { timers: { setTimeout: (fn, ms) => setTimeout(fn, ms), clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout) } }
   */
  readonly timers?: Timers;
  /**
   * How often the buffer is sent (default 10 000 ms, at least 10). A full batch is sent at once.
   *
   * @example
   * { flushIntervalMs: 5_000 }
   */
  readonly flushIntervalMs?: number;
  /**
   * Exposures per request (default 500, 1..1000).
   *
   * @example
   * { maxBatch: 1000 }
   */
  readonly maxBatch?: number;
  /**
   * Exposures held at most (default 10 000, at least `maxBatch`); beyond it the oldest are
   * dropped (counted in {@link ExposureReporter.dropped}, with one warning per overflow).
   *
   * @example
   * { maxBuffer: 50_000 }
   */
  readonly maxBuffer?: number;
  /**
   * Time limit of one request (default 10 000 ms); a request that times out is retried.
   *
   * @example
   * { requestTimeoutMs: 5_000 }
   */
  readonly requestTimeoutMs?: number;
  /**
   * Where drops, refusals and retries are logged (default: nowhere).
   *
   * @example
   * { logger: console }
   */
  readonly logger?: SdkLogger;
}

/** A client whose evaluations can be observed (`createServerClient`'s client). */
export interface EvaluationSource {
  onEvaluation(listener: EvaluationListener): () => void;
}

/**
 * Reports which users saw which flag value, and which of them hit an error, to the guardian's
 * builtin source (`POST /v1/exposures`). `record` and `error` never throw and never block: they
 * only touch memory; batches go out on a timer.
 *
 * @example
 * const reporter = createExposureReporter({ url: 'http://guardian:8787', ingestKey: process.env.GUARDIAN_INGEST_KEY! });
 * reporter.attach(flags);             // every evaluation of the server client is an exposure
 * try { await handle(req); } catch (err) { reporter.error(req.userId); throw err; }
 * process.once('SIGTERM', () => void reporter.close());
 */
export interface ExposureReporter {
  /**
   * Notes that `userId` got `value` for `flag` (deduplicated per flag, user and value until the
   * next send). Invalid arguments are ignored.
   *
   * @example
   * reporter.record('ai_beta_users', 'u-42', true);
   */
  record(flag: string, userId: string, value: boolean): void;
  /**
   * Marks an error for `userId` on every flag that user was exposed to in the current window
   * (since the last send; exposures of the send just before are reported again with the error).
   *
   * @example
   * reporter.error('u-42');
   */
  error(userId: string): void;
  /**
   * Records every evaluation of a server-mode client; returns the function that stops it.
   *
   * @example
   * const detach = reporter.attach(flags);
   */
  attach(client: EvaluationSource): () => void;
  /**
   * Sends everything buffered now, in batches of at most `maxBatch`. Never rejects: a failed
   * send is retried later with backoff (5xx, 429, network), or dropped and logged (other 4xx).
   *
   * @example
   * await reporter.flush();
   */
  flush(): Promise<void>;
  /**
   * Stops the timer and the attached listeners, sends what is buffered (one try) and stops.
   *
   * @example
   * await reporter.close();
   */
  close(): Promise<void>;
  /** Exposures waiting to be sent. */
  readonly pending: number;
  /** Exposures the guardian accepted. */
  readonly sent: number;
  /** Exposures dropped: buffer overflow, refused by the guardian (4xx), or unsent at close. */
  readonly dropped: number;
}

interface Entry {
  readonly flag: string;
  readonly user: string;
  readonly value: boolean;
  error: boolean;
}

type SendResult = { kind: 'ok' } | { kind: 'retry'; why: string; retryAfterMs?: number } | { kind: 'refused'; status: number; message: string };

function invalid(name: string, rule: string, value: unknown): SdkError {
  let shown: string;
  try {
    shown = typeof value === 'function' ? 'a function' : (JSON.stringify(value) ?? String(value));
  } catch {
    shown = typeof value;
  }
  return new SdkError('INVALID_OPTION', `createExposureReporter: ${name} must be ${rule}; got ${shown}`);
}

function checkInt(name: string, value: unknown, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) throw invalid(name, `a whole number from ${min} to ${max}`, value);
  return value;
}

const keyOf = (flag: string, user: string, value: boolean): string => `${value ? '1' : '0'}${flag}\u0000${user}`;

class Reporter implements ExposureReporter {
  readonly #endpoint: string;
  readonly #key: string;
  readonly #fetch: typeof globalThis.fetch;
  readonly #timers: Timers;
  readonly #logger: SdkLogger;
  readonly #intervalMs: number;
  readonly #maxBatch: number;
  readonly #maxBuffer: number;
  readonly #timeoutMs: number;
  /** Buffered exposures, oldest first (Map order). */
  #buffer = new Map<string, Entry>();
  /** user → keys of their buffered exposures (error attribution without a scan). */
  #byUser = new Map<string, Set<string>>();
  /** user → exposures of the last send (an error just after a send still finds its flags). */
  #previous = new Map<string, Entry[]>();
  #timer: unknown = null;
  #flushing: Promise<void> | null = null;
  #failures = 0;
  #retryAfterMs = 0;
  #overflowWarned = false;
  #closed = false;
  readonly #detach = new Set<() => void>();
  #sent = 0;
  #dropped = 0;

  constructor(options: ExposureReporterOptions) {
    if (options === null || typeof options !== 'object') throw invalid('options', 'an object { url, ingestKey, … }', options);
    const { url, ingestKey } = options;
    if (typeof url !== 'string' || !URL.canParse(url) || !/^https?:$/.test(new URL(url).protocol)) throw invalid('url', "the guardian's http(s) base URL (e.g. http://guardian:8787)", url);
    if (typeof ingestKey !== 'string' || ingestKey.length < 16) {
      throw new SdkError('INVALID_OPTION', "createExposureReporter: ingestKey must be the guardian's GUARDIAN_INGEST_KEY (a string of at least 16 characters)");
    }
    if (options.fetch !== undefined && typeof options.fetch !== 'function') throw invalid('fetch', 'a fetch function', options.fetch);
    const t = options.timers;
    if (t !== undefined && (t === null || typeof t !== 'object' || typeof t.setTimeout !== 'function' || typeof t.clearTimeout !== 'function')) {
      throw invalid('timers', 'an object with setTimeout and clearTimeout', t);
    }
    const l = options.logger;
    if (l !== undefined && (l === null || typeof l !== 'object' || typeof l.warn !== 'function' || typeof l.error !== 'function')) throw invalid('logger', 'an object with warn and error methods', l);
    if (typeof options.fetch !== 'function' && typeof globalThis.fetch !== 'function') throw new SdkError('INVALID_OPTION', 'createExposureReporter: fetch is required where there is no global fetch');
    this.#intervalMs = checkMs('createExposureReporter: flushIntervalMs', options.flushIntervalMs, 10_000, 10);
    this.#timeoutMs = checkMs('createExposureReporter: requestTimeoutMs', options.requestTimeoutMs, 10_000, 10);
    this.#maxBatch = checkInt('maxBatch', options.maxBatch, 500, 1, MAX_EXPOSURE_BATCH);
    this.#maxBuffer = checkInt('maxBuffer', options.maxBuffer, Math.max(10_000, this.#maxBatch), this.#maxBatch, Number.MAX_SAFE_INTEGER);
    const base = url.replace(/\/+$/, '');
    this.#endpoint = base.endsWith(EXPOSURES_PATH) ? base : `${base}${EXPOSURES_PATH}`;
    this.#key = ingestKey;
    this.#fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.#timers = t ?? defaultTimers;
    this.#logger = l ?? silentLogger;
    this.#schedule();
  }

  get pending(): number {
    return this.#buffer.size;
  }

  get sent(): number {
    return this.#sent;
  }

  get dropped(): number {
    return this.#dropped;
  }

  record(flag: string, userId: string, value: boolean): void {
    if (this.#closed) return;
    if (typeof flag !== 'string' || !FLAG_PATTERN.test(flag) || typeof userId !== 'string' || userId.length === 0 || userId.length > MAX_USER_ID_LENGTH || typeof value !== 'boolean') return;
    this.#add({ flag, user: userId, value, error: false });
    if (this.#buffer.size >= this.#maxBatch && this.#failures === 0 && this.#flushing === null) void this.flush();
  }

  error(userId: string): void {
    if (this.#closed || typeof userId !== 'string') return;
    for (const key of this.#byUser.get(userId) ?? []) {
      const e = this.#buffer.get(key);
      if (e) e.error = true;
    }
    for (const e of this.#previous.get(userId) ?? []) {
      const existing = this.#buffer.get(keyOf(e.flag, e.user, e.value));
      if (existing) existing.error = true;
      else this.#add({ flag: e.flag, user: e.user, value: e.value, error: true });
    }
  }

  attach(client: EvaluationSource): () => void {
    if (client === null || typeof client !== 'object' || typeof client.onEvaluation !== 'function') {
      throw new SdkError('INVALID_OPTION', 'attach(client): client must be a flag client with onEvaluation (createServerClient)');
    }
    // Exposures are values the flag decided: by the rollout percentage or the target list (the
    // guardian leaves targets out of relative rules itself, from the flag's list). Disabled flags
    // and errors (the caller's default) are no exposure at all.
    const off = client.onEvaluation((flag, value, userId, reason) => {
      if (userId !== null && (reason === 'SPLIT' || reason === 'TARGETING_MATCH')) this.record(flag, userId, value);
    });
    const detach = (): void => {
      this.#detach.delete(detach);
      off();
    };
    this.#detach.add(detach);
    return detach;
  }

  flush(): Promise<void> {
    if (this.#flushing) return this.#flushing;
    this.#flushing = (async () => {
      try {
        await this.#drain(false);
      } catch (err) {
        this.#logger.error({ err }, 'exposure reporter: flush failed unexpectedly');
      } finally {
        this.#flushing = null;
        this.#schedule();
      }
    })();
    return this.#flushing;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const d of [...this.#detach]) d();
    this.#cancelTimer();
    if (this.#flushing) await this.#flushing;
    this.#cancelTimer();
    try {
      await this.#drain(true);
    } catch (err) {
      this.#logger.error({ err }, 'exposure reporter: final flush failed unexpectedly');
    }
  }

  #add(entry: Entry): void {
    const key = keyOf(entry.flag, entry.user, entry.value);
    const existing = this.#buffer.get(key);
    if (existing) {
      existing.error ||= entry.error;
      return;
    }
    while (this.#buffer.size >= this.#maxBuffer) {
      const oldest = this.#buffer.keys().next().value as string;
      this.#remove(oldest);
      this.#dropped++;
      if (!this.#overflowWarned) {
        this.#overflowWarned = true;
        this.#logger.warn({ maxBuffer: this.#maxBuffer, dropped: this.#dropped }, `exposure reporter: buffer full (${this.#maxBuffer} exposures; is the guardian reachable?): dropping the oldest`);
      }
    }
    this.#buffer.set(key, entry);
    let keys = this.#byUser.get(entry.user);
    if (!keys) this.#byUser.set(entry.user, (keys = new Set()));
    keys.add(key);
  }

  #remove(key: string): Entry | undefined {
    const e = this.#buffer.get(key);
    if (!e) return undefined;
    this.#buffer.delete(key);
    const keys = this.#byUser.get(e.user);
    keys?.delete(key);
    if (keys?.size === 0) this.#byUser.delete(e.user);
    return e;
  }

  /** Puts an unsent batch back in front of the buffer (merging errors marked meanwhile). */
  #putBack(batch: readonly Entry[]): void {
    const rest = [...this.#buffer.values()];
    this.#buffer = new Map();
    this.#byUser = new Map();
    for (const e of [...batch, ...rest]) this.#add(e);
  }

  /** Sends the buffer in batches; stops at the first retryable failure (then backs off, or at close drops the rest). */
  async #drain(final: boolean): Promise<void> {
    this.#cancelTimer();
    if (this.#buffer.size === 0) return;
    // The window being sent: an error reported after this send still reaches these exposures.
    const window = new Map<string, Entry[]>();
    for (const e of this.#buffer.values()) {
      const list = window.get(e.user) ?? [];
      list.push({ ...e, error: false });
      window.set(e.user, list);
    }
    this.#previous = window;
    while (this.#buffer.size > 0) {
      const batch: Entry[] = [];
      for (const key of [...this.#buffer.keys()].slice(0, this.#maxBatch)) batch.push(this.#remove(key)!);
      const result = await this.#send(batch);
      if (result.kind === 'ok') {
        this.#sent += batch.length;
        this.#failures = 0;
        this.#retryAfterMs = 0;
        this.#overflowWarned = false;
        continue;
      }
      if (result.kind === 'refused') {
        this.#dropped += batch.length;
        this.#logger.error(
          { status: result.status, dropped: batch.length },
          `exposure reporter: the guardian refused ${batch.length} exposure(s) (HTTP ${result.status}): ${result.message}; they are dropped`,
        );
        continue;
      }
      if (final) {
        const lost = batch.length + this.#buffer.size;
        this.#dropped += lost;
        this.#buffer = new Map();
        this.#byUser = new Map();
        this.#logger.warn({ dropped: lost }, `exposure reporter: closing; ${lost} exposure(s) could not be sent (${result.why})`);
        return;
      }
      this.#failures++;
      this.#retryAfterMs = result.retryAfterMs ?? 0;
      this.#putBack(batch);
      this.#logger.warn({ failures: this.#failures, pending: this.#buffer.size }, `exposure reporter: sending failed (${result.why}); retrying in ${Math.round(this.#backoffMs() / 1000)} s`);
      return;
    }
  }

  async #send(batch: readonly Entry[]): Promise<SendResult> {
    const controller = new AbortController();
    const timer = this.#timers.setTimeout(() => controller.abort(), this.#timeoutMs);
    try {
      const res = await this.#fetch(this.#endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${this.#key}` },
        body: JSON.stringify({ exposures: batch.map((e) => ({ flag: e.flag, user: e.user, value: e.value, error: e.error })) }),
        signal: controller.signal,
      });
      const text = await res.text().catch(() => '');
      if (res.ok) return { kind: 'ok' };
      if (res.status >= 500 || res.status === 429 || res.status === 408) {
        const seconds = Number(res.headers.get('retry-after'));
        return { kind: 'retry', why: `HTTP ${res.status}`, ...(Number.isFinite(seconds) && seconds > 0 ? { retryAfterMs: seconds * 1000 } : {}) };
      }
      let message = text.trim().slice(0, 500);
      try {
        // The guardian's error shape is { error: { code, message } } (older guardians: { message }).
        const body = JSON.parse(text) as { message?: unknown; error?: { message?: unknown } };
        if (typeof body.error?.message === 'string') message = body.error.message;
        else if (typeof body.message === 'string') message = body.message;
      } catch {
        // not JSON: the raw text
      }
      return { kind: 'refused', status: res.status, message: message || res.statusText };
    } catch (err) {
      return { kind: 'retry', why: controller.signal.aborted ? `no answer within ${this.#timeoutMs} ms` : (err as Error).message };
    } finally {
      this.#timers.clearTimeout(timer);
    }
  }

  #backoffMs(): number {
    const exp = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** Math.max(0, this.#failures - 1));
    return Math.min(MAX_BACKOFF_MS, Math.max(exp, this.#retryAfterMs));
  }

  #schedule(): void {
    if (this.#closed) return;
    this.#cancelTimer();
    const delay = this.#failures > 0 ? this.#backoffMs() : this.#intervalMs;
    this.#timer = this.#timers.setTimeout(() => {
      this.#timer = null;
      void this.flush();
    }, delay);
  }

  #cancelTimer(): void {
    if (this.#timer !== null) {
      this.#timers.clearTimeout(this.#timer);
      this.#timer = null;
    }
  }
}

/**
 * Creates an exposure reporter (see {@link ExposureReporter}): the SDK side of the guardian's
 * builtin source, for setups with neither Sentry nor PostHog. Server-side only (it holds the
 * ingest key). Bad options throw `SdkError('INVALID_OPTION')` naming the option.
 *
 * @example
 * import { createServerClient } from '@rollback-guardian/sdk';
 * import { createExposureReporter } from '@rollback-guardian/sdk/server';
 * const reporter = createExposureReporter({ url: process.env.GUARDIAN_URL!, ingestKey: process.env.GUARDIAN_INGEST_KEY! });
 * reporter.attach(flags);
 */
export function createExposureReporter(options: ExposureReporterOptions): ExposureReporter {
  return new Reporter(options);
}
