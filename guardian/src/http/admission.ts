/**
 * Bounds on exposure ingestion (issue 10): how many requests may be inside at once, how many
 * body bytes they may hold together, and the cycle's priority over ingestion's store writes.
 *
 * - {@link Admission}: a request is admitted (after authentication, before its body is read)
 *   only while fewer than `maxConcurrent` are inside and its declared size (or the largest body,
 *   when it declares none) fits the memory budget; otherwise it is refused at once (429 with
 *   `Retry-After`) without reading its body.
 * - {@link CyclePriority}: the daemon runs each cycle inside `during()`; ingestion's writes wait
 *   in `turn()`, one write at a time, and not while a cycle runs (at most `maxYieldMs`, after
 *   which one write proceeds: a hung cycle cannot stop ingestion for good, and a single write
 *   never holds more than one database connection).
 */

/** Options of {@link Admission}. */
export interface AdmissionOptions {
  /** Requests inside at once (reading, parsing, writing). */
  readonly maxConcurrent: number;
  /** Body bytes held by the requests inside, together. */
  readonly memoryBudgetBytes: number;
}

/** A place inside; release it exactly once (release is idempotent). */
export interface AdmissionTicket {
  release(): void;
}

/**
 * The admission counter.
 *
 * @example
 * const admission = new Admission({ maxConcurrent: 4, memoryBudgetBytes: 8 << 20 });
 * const ticket = admission.tryEnter(declaredBytes);
 * if (!ticket) return tooBusy();
 * try { … } finally { ticket.release(); }
 */
export class Admission {
  readonly #o: AdmissionOptions;
  #inside = 0;
  #bytes = 0;

  constructor(options: AdmissionOptions) {
    if (!(options.maxConcurrent >= 1) || !(options.memoryBudgetBytes >= 1)) throw new RangeError(`admission: maxConcurrent and memoryBudgetBytes must be at least 1, got ${options.maxConcurrent} and ${options.memoryBudgetBytes}`);
    this.#o = options;
  }

  /** Requests inside now. */
  get inside(): number {
    return this.#inside;
  }

  /** Body bytes reserved now. */
  get reservedBytes(): number {
    return this.#bytes;
  }

  /** A ticket reserving `bytes`, or undefined when the request must wait outside (429). */
  tryEnter(bytes: number): AdmissionTicket | undefined {
    if (this.#inside >= this.#o.maxConcurrent) return undefined;
    // One request alone is always let in (up to the body limit), or a budget below the body limit would refuse everything.
    if (this.#inside > 0 && this.#bytes + bytes > this.#o.memoryBudgetBytes) return undefined;
    this.#inside += 1;
    this.#bytes += bytes;
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.#inside -= 1;
        this.#bytes -= bytes;
      },
    };
  }
}

/**
 * The cycle's priority over ingestion's store writes.
 *
 * @example
 * const priority = new CyclePriority();
 * // daemon: await priority.during(() => runLeasedCycle(deps));
 * // ingest: await priority.turn(() => store.recordExposures(batch));
 */
export class CyclePriority {
  readonly #maxYieldMs: number;
  #cycles = 0;
  #idle: Array<() => void> = [];
  #writing: Promise<void> = Promise.resolve();

  /** `maxYieldMs`: the longest a write waits for a running cycle (default 5 s). */
  constructor(options: { readonly maxYieldMs?: number } = {}) {
    this.#maxYieldMs = options.maxYieldMs ?? 5_000;
  }

  /** Whether a cycle runs now. */
  get cycleRunning(): boolean {
    return this.#cycles > 0;
  }

  /** Runs a cycle; writes queued meanwhile wait for its end. */
  async during<T>(cycle: () => Promise<T>): Promise<T> {
    this.#cycles += 1;
    try {
      return await cycle();
    } finally {
      this.#cycles -= 1;
      if (this.#cycles === 0) for (const wake of this.#idle.splice(0)) wake();
    }
  }

  /** Runs one ingestion write: after the writes queued before it, and not while a cycle runs. */
  turn<T>(write: () => Promise<T>): Promise<T> {
    const run = this.#writing.then(async () => {
      await this.#cycleIdle();
      return write();
    });
    this.#writing = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  #cycleIdle(): Promise<void> {
    if (this.#cycles === 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, this.#maxYieldMs);
      timer.unref();
      const idle = this.#idle;
      function done() {
        clearTimeout(timer);
        const i = idle.indexOf(done);
        if (i >= 0) idle.splice(i, 1);
        resolve();
      }
      idle.push(done);
    });
  }
}
