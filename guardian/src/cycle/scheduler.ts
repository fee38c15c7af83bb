/**
 * The scheduler only calls the cycle: node-cron ticks at the rules file's `interval`, a cycle
 * still running when the next tick comes makes that tick skip (logged, counted), and `stop()`
 * lets the cycle in flight finish before it resolves (SIGTERM drains, then exits 0).
 */
import cron, { type ScheduledTask } from 'node-cron';

import type { CycleLogger } from './types.ts';

/**
 * The cron expression (with seconds) for an interval, and whether ticks must be gated on the
 * elapsed time because cron cannot express the interval exactly (e.g. 45s, 7m): then it ticks
 * every second and runs once `intervalMs` has passed since the last start.
 *
 * @example
 * cronForInterval(30_000); // { expression: '*\/30 * * * * *', gated: false }
 * cronForInterval(60_000); // { expression: '0 * * * * *', gated: false }
 * cronForInterval(45_000); // { expression: '* * * * * *', gated: true }
 */
export function cronForInterval(intervalMs: number): { expression: string; gated: boolean } {
  if (!Number.isFinite(intervalMs) || intervalMs < 1000) {
    throw new RangeError(`interval must be at least 1s, got ${intervalMs}ms`);
  }
  const s = intervalMs / 1000;
  if (Number.isInteger(s)) {
    if (s < 60 && 60 % s === 0) return { expression: s === 1 ? '* * * * * *' : `*/${s} * * * * *`, gated: false };
    const m = s / 60;
    if (Number.isInteger(m) && m < 60 && 60 % m === 0) return { expression: m === 1 ? '0 * * * * *' : `0 */${m} * * * *`, gated: false };
    const h = m / 60;
    if (Number.isInteger(h) && h < 24 && 24 % h === 0) return { expression: h === 1 ? '0 0 * * * *' : `0 0 */${h} * * *`, gated: false };
  }
  return { expression: '* * * * * *', gated: true };
}

/**
 * Options of {@link Scheduler}.
 *
 * @example
 * new Scheduler({ intervalMs: 60_000, logger, run: async () => { await runLeasedCycle(deps); } });
 */
export interface SchedulerOptions {
  readonly intervalMs: number;
  /** The work of one tick (one cycle). Errors are logged, never stop the schedule. */
  readonly run: () => Promise<void>;
  readonly logger: CycleLogger;
  /** Called when a tick is skipped because the previous cycle is still running. */
  readonly onOverlap?: () => void;
  /** Injected clock for the gated mode. Default `Date.now`. */
  readonly now?: () => number;
}

/**
 * Calls `run` at the interval, never two at once, stoppable.
 *
 * @example
 * const scheduler = new Scheduler({ intervalMs: 60_000, logger, run });
 * scheduler.start();
 * process.once('SIGTERM', () => void scheduler.stop().then(() => process.exit(0)));
 */
export class Scheduler {
  readonly #opts: SchedulerOptions;
  #task: ScheduledTask | undefined;
  #inFlight: Promise<void> | undefined;
  #lastStart = Number.NEGATIVE_INFINITY;
  #stopped = false;
  #skipped = 0;
  #soon: ReturnType<typeof setTimeout> | undefined;

  constructor(opts: SchedulerOptions) {
    this.#opts = opts;
  }

  /** Ticks skipped so far because a cycle was still running. */
  get skipped(): number {
    return this.#skipped;
  }

  /** True while a confirmation asked for with {@link soon} waits for its timer. */
  get confirmationPending(): boolean {
    return this.#soon !== undefined;
  }

  /** True while a cycle runs. */
  get busy(): boolean {
    return this.#inFlight !== undefined;
  }

  /** Starts ticking (the first cycle runs at the first tick). */
  start(): void {
    if (this.#task || this.#stopped) return;
    const { expression, gated } = cronForInterval(this.#opts.intervalMs);
    const now = this.#opts.now ?? Date.now;
    this.#task = cron.schedule(
      expression,
      () => {
        if (gated && now() - this.#lastStart < this.#opts.intervalMs - 500) return;
        void this.tick();
      },
      { name: 'guardian-cycle', noOverlap: false },
    );
    this.#opts.logger.info({ expression, intervalMs: this.#opts.intervalMs, gated }, 'scheduler: started');
  }

  /**
   * One tick: runs the cycle unless one is in flight (then skips and logs). Returns when this
   * tick's cycle (if any) has finished. Public so tests drive ticks without timers.
   */
  tick(): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    if (this.#inFlight) {
      this.#skipped++;
      this.#opts.onOverlap?.();
      this.#opts.logger.warn({ skipped: this.#skipped }, 'scheduler: the previous cycle is still running; skipping this tick');
      return Promise.resolve();
    }
    this.#lastStart = (this.#opts.now ?? Date.now)();
    return this.#exclusive(this.#opts.run);
  }

  /**
   * Runs `work` once, `delayMs` from now, never alongside a cycle (the confirmation poll, see
   * `confirm.ts`): when a cycle is in flight then, the extra run is dropped (that cycle polls the
   * same flags). A later call replaces one still waiting; `stop()` cancels it.
   *
   * @example
   * scheduler.soon(10_000, () => runOnce(focus));
   */
  soon(delayMs: number, work: () => Promise<void>): void {
    if (this.#stopped) return;
    if (this.#soon !== undefined) clearTimeout(this.#soon);
    this.#soon = setTimeout(() => {
      this.#soon = undefined;
      if (this.#stopped || this.#inFlight) return;
      void this.#exclusive(work);
    }, delayMs);
    this.#soon.unref?.();
  }

  #exclusive(work: () => Promise<void>): Promise<void> {
    const run = (async () => {
      try {
        await work();
      } catch (err) {
        this.#opts.logger.error({ err }, 'scheduler: cycle failed');
      }
    })();
    this.#inFlight = run.finally(() => {
      this.#inFlight = undefined;
    });
    return this.#inFlight;
  }

  /** Stops ticking and resolves once the cycle in flight (if any) has finished. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#soon !== undefined) clearTimeout(this.#soon);
    this.#soon = undefined;
    const task = this.#task;
    this.#task = undefined;
    if (task) await task.destroy();
    if (this.#inFlight) {
      this.#opts.logger.info({}, 'scheduler: waiting for the cycle in flight to finish');
      await this.#inFlight;
    }
  }
}
