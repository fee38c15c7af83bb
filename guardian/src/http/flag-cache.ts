/**
 * Flag definitions read from the store at most once per TTL, shared by concurrent requests: a
 * burst of requests is one database read, and a change shows within the TTL. Used by OFREP (the
 * evaluations) and by exposure ingestion (which flags exist).
 */
import type { Flag, Store } from '../store/types.ts';
import type { HttpLogger } from './server.ts';

/** Options of {@link FlagCache}. */
export interface FlagCacheOptions<T> {
  readonly store: Pick<Store, 'listFlags'>;
  /** How long a read (or a failed read) is reused. */
  readonly ttlMs: number;
  readonly now: () => Date;
  readonly logger: HttpLogger;
  /** What a read is turned into (once per read). */
  readonly derive: (flags: readonly Flag[]) => T;
  /** Said in the log line when a read fails (`ofrep: evaluations answer 500 until a read succeeds`). */
  readonly failureNote: string;
}

/**
 * The cache.
 *
 * @example
 * const names = new FlagCache({ store, ttlMs: 1000, now, logger, derive: (f) => new Set(f.map((x) => x.name)), failureNote: 'ingest: …' });
 * const known = await names.get();
 */
export class FlagCache<T> {
  readonly #o: FlagCacheOptions<T>;
  #entry: { readonly at: number; readonly value: Promise<T> } | undefined;

  constructor(options: FlagCacheOptions<T>) {
    this.#o = options;
  }

  /** The flags, read at most `maxAgeMs` (default the TTL) ago. */
  get(maxAgeMs = this.#o.ttlMs): Promise<T> {
    const t = this.#o.now().getTime();
    const e = this.#entry;
    // The age counts from the START of the read: whatever it returned was true at or after `at`.
    if (e !== undefined && t >= e.at && t - e.at < Math.min(maxAgeMs, this.#o.ttlMs)) return e.value;
    let value: Promise<T>;
    try {
      value = this.#o.store.listFlags().then((flags) => this.#o.derive(flags));
    } catch (err) {
      value = Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    // A failed read is reused for the TTL too, so a database outage is not hammered by every request.
    value.catch((err: unknown) => {
      this.#o.logger.error({ err: { message: (err as Error).message } }, `reading the flags failed; ${this.#o.failureNote}`);
    });
    this.#entry = { at: t, value };
    return value;
  }
}
