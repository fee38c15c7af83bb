/**
 * The outbox deliverer. It claims due rows (a lease per row: `locked_by`/`locked_until`), sends
 * each through its channel's notifier, and records the outcome:
 *
 * - acknowledged → `delivered` (never claimed again: at most once per channel once acknowledged);
 * - failed → back to `pending` with `next_attempt_at` on an exponential backoff with jitter
 *   (p-retry's schedule: `minTimeout · factor^(attempt-1) · random(1..2)`, capped; a Slack
 *   `Retry-After` is honoured), persisted so a restart keeps the schedule;
 * - after `maxAttempts` (or a failure that retrying cannot fix) → `failed` with `last_error`, logged.
 *
 * Every row is delivered on its own: a slow or failing channel never holds up another channel,
 * another row, or the rollback (which committed before the row existed). The send timeout is
 * kept below the lock time, so a live worker never loses a row it is sending.
 *
 * At most once per channel, even across a crash. Slack incoming webhooks and SMTP cannot
 * deduplicate, so just before each send the worker records that it begins (`markSending`). A
 * worker killed (kill -9) before that point leaves its rows `delivering`; once their lock
 * expires any worker reclaims and sends them. A worker killed after that point (the POST may
 * have arrived) leaves rows that the next claim sets `unconfirmed`: never sent again, shown in
 * the backlog with the reason. So no alert is ever posted twice by a crash; the one loss a crash
 * can cause is a kill in the instant between `markSending` and the request reaching the channel
 * (measured by test/faults/outbox-crash.db.test.ts). A send that fails with an answer is retried;
 * so is one that times out or is aborted by `stop({ abort: true })`: the channel may have taken
 * it, the one remaining way to a duplicate.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { GuardianError } from '../errors.ts';
import { redactText } from '../logger.ts';
import { messageFromOutbox } from './message.ts';
import type { OutboxStore } from './outbox-store.ts';
import type { Channel, Notifier, OutboxRow } from './types.ts';
import { failureInfo } from './types.ts';

/** The logging the worker does (a pino logger fits). */
export interface WorkerLogger {
  debug(obj: Record<string, unknown>, msg: string): void;
  info(obj: Record<string, unknown>, msg: string): void;
  warn(obj: Record<string, unknown>, msg: string): void;
  error(obj: Record<string, unknown>, msg: string): void;
}

/** Retry schedule (p-retry's option names). */
export interface BackoffOptions {
  /** First retry delay. Default 5 s. */
  readonly minTimeoutMs?: number;
  /** Growth per attempt. Default 2. */
  readonly factor?: number;
  /** Cap of one delay. Default 30 min. */
  readonly maxTimeoutMs?: number;
  /** Multiply by random(1..2) so replicas and rows spread out. Default true. */
  readonly randomize?: boolean;
}

/** How one row ended in a run. */
export type DeliveryOutcome = 'delivered' | 'retry' | 'failed' | 'lost_lock';

/** Options of {@link OutboxWorker}. */
export interface OutboxWorkerOptions {
  readonly store: OutboxStore;
  /** Channel → notifier. A function is read at every delivery (hot-reloaded rules). */
  readonly notifiers: ReadonlyMap<Channel, Notifier> | (() => ReadonlyMap<Channel, Notifier>);
  readonly logger: WorkerLogger;
  /** This worker's id in `locked_by`. Default `<host>:<pid>:<random>`. */
  readonly holder?: string;
  /** Rows claimed per run. Default 20. */
  readonly batchSize?: number;
  /** Lock per claimed row. Default 60 s. Must exceed `sendTimeoutMs`. */
  readonly lockSeconds?: number;
  /** Deadline of one send. Default 20 s. */
  readonly sendTimeoutMs?: number;
  /** Attempts before a row is `failed`. Default 10. */
  readonly maxAttempts?: number;
  readonly backoff?: BackoffOptions;
  /** Poll period of `start()`. Default 2 s. */
  readonly intervalMs?: number;
  /** Dashboard base URL for links in messages. */
  readonly dashboardUrl?: string;
  /** Clock. Default `() => new Date()`. */
  readonly now?: () => Date;
  /** Jitter source in [0, 1). Default Math.random. */
  readonly random?: () => number;
  /** Cleans error text before it is stored in `last_error` and logged. Default {@link redactText}. */
  readonly redact?: (text: string) => string;
  /** Called once per row outcome (for the `guardian_notifications_total` counter). */
  readonly onOutcome?: (channel: Channel, outcome: DeliveryOutcome, row: OutboxRow) => void;
}

/** What one {@link OutboxWorker.runOnce} did. */
export interface OutboxRunReport {
  readonly claimed: number;
  readonly delivered: number;
  readonly retried: number;
  readonly failed: number;
  /** Rows this worker delivered but whose lock it had lost (another worker had reclaimed them). */
  readonly lostLock: number;
}

/**
 * The delay before retry number `attempt` (1 = after the first failure), p-retry style.
 *
 * @example
 * backoffDelay(3, { minTimeoutMs: 1000, factor: 2, randomize: false }); // 4000
 */
export function backoffDelay(attempt: number, options: BackoffOptions = {}, random: () => number = Math.random): number {
  const min = options.minTimeoutMs ?? 5_000;
  const factor = options.factor ?? 2;
  const max = options.maxTimeoutMs ?? 30 * 60_000;
  const jitter = options.randomize === false ? 1 : 1 + random();
  return Math.min(max, Math.round(min * factor ** Math.max(0, attempt - 1) * jitter));
}

/**
 * Delivers the outbox. `runOnce()` for tests and `guardian check --once`; `start()`/`stop()` for
 * the daemon; `kick()` to deliver right away (after a cycle that wrote rows).
 *
 * @example
 * const worker = new OutboxWorker({ store: new SqlOutboxStore(sql), notifiers: createNotifiers(rules.notify, config), logger });
 * worker.start();
 * process.on('SIGTERM', () => void worker.stop());
 */
export class OutboxWorker {
  readonly holder: string;
  readonly #store: OutboxStore;
  readonly #notifiers: () => ReadonlyMap<Channel, Notifier>;
  readonly #logger: WorkerLogger;
  readonly #batch: number;
  readonly #lockSeconds: number;
  readonly #sendTimeoutMs: number;
  readonly #maxAttempts: number;
  readonly #backoff: BackoffOptions;
  readonly #intervalMs: number;
  readonly #dashboardUrl: string | undefined;
  readonly #now: () => Date;
  readonly #random: () => number;
  readonly #redact: (text: string) => string;
  readonly #onOutcome: OutboxWorkerOptions['onOutcome'];
  readonly #inFlight = new Set<Promise<unknown>>();
  readonly #abort = new AbortController();
  #timer: NodeJS.Timeout | undefined;
  #running = false;
  #ticking = false;

  constructor(options: OutboxWorkerOptions) {
    this.#store = options.store;
    const n = options.notifiers;
    this.#notifiers = typeof n === 'function' ? n : () => n;
    this.#logger = options.logger;
    this.holder = options.holder ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
    this.#batch = options.batchSize ?? 20;
    this.#lockSeconds = options.lockSeconds ?? 60;
    this.#sendTimeoutMs = options.sendTimeoutMs ?? 20_000;
    this.#maxAttempts = options.maxAttempts ?? 10;
    this.#backoff = options.backoff ?? {};
    this.#intervalMs = options.intervalMs ?? 2_000;
    this.#dashboardUrl = options.dashboardUrl;
    this.#now = options.now ?? (() => new Date());
    this.#random = options.random ?? Math.random;
    this.#redact = options.redact ?? ((t) => redactText(t));
    this.#onOutcome = options.onOutcome;
    if (!Number.isInteger(this.#maxAttempts) || this.#maxAttempts < 1) {
      throw new GuardianError('BAD_ARGUMENT', `OutboxWorker: maxAttempts must be an integer ≥ 1, got ${this.#maxAttempts}`);
    }
    if (this.#sendTimeoutMs >= this.#lockSeconds * 1000) {
      throw new GuardianError(
        'BAD_ARGUMENT',
        `OutboxWorker: sendTimeoutMs (${this.#sendTimeoutMs}) must be shorter than lockSeconds (${this.#lockSeconds} s), or another worker could reclaim a row still being sent`,
      );
    }
  }

  /**
   * Claims due rows and delivers them all (concurrently, each independently); resolves when every
   * claimed row has an outcome.
   */
  async runOnce(): Promise<OutboxRunReport> {
    const rows = await this.#store.claim(this.holder, this.#batch, this.#lockSeconds);
    const outcomes = await Promise.all(rows.map((row) => this.#deliver(row)));
    return {
      claimed: rows.length,
      delivered: outcomes.filter((o) => o === 'delivered').length,
      retried: outcomes.filter((o) => o === 'retry').length,
      failed: outcomes.filter((o) => o === 'failed').length,
      lostLock: outcomes.filter((o) => o === 'lost_lock').length,
    };
  }

  /** Starts polling every `intervalMs`. Deliveries run in the background so a slow channel never blocks new rows. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#schedule(0);
  }

  /** Delivers due rows now instead of at the next poll (no-op when stopped). */
  kick(): void {
    if (!this.#running) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#schedule(0);
  }

  /**
   * Stops polling and waits for in-flight sends (each bounded by `sendTimeoutMs`). With
   * `abort: true` in-flight sends are cancelled; their rows are retried later.
   */
  async stop(options: { abort?: boolean } = {}): Promise<void> {
    this.#running = false;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (options.abort) this.#abort.abort(new Error('outbox worker stopped'));
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
  }

  #schedule(delay: number): void {
    this.#timer = setTimeout(() => void this.#tick(), delay);
    this.#timer.unref?.();
  }

  async #tick(): Promise<void> {
    if (!this.#running || this.#ticking) return;
    this.#ticking = true;
    try {
      const room = this.#batch - this.#inFlight.size;
      if (room > 0) {
        const rows = await this.#store.claim(this.holder, room, this.#lockSeconds);
        for (const row of rows) {
          const p = this.#deliver(row).finally(() => this.#inFlight.delete(p));
          this.#inFlight.add(p);
        }
      }
    } catch (err) {
      this.#logger.warn({ err: this.#cleanError(err) }, 'outbox: claiming due notifications failed; will retry');
    } finally {
      this.#ticking = false;
      if (this.#running) this.#schedule(this.#intervalMs);
    }
  }

  #cleanError(err: unknown): { message: string; code?: string } {
    const e = err as { message?: string; code?: unknown };
    return { message: this.#redact(e?.message ?? String(err)), ...(typeof e?.code === 'string' ? { code: e.code } : {}) };
  }

  async #deliver(row: OutboxRow): Promise<DeliveryOutcome> {
    const log = { outboxId: row.id, channel: row.channel, topic: row.topic, attempt: row.attempts, ...(row.eventId ? { eventId: row.eventId } : {}) };
    let outcome: DeliveryOutcome;
    try {
      outcome = await this.#attempt(row, log);
    } catch (err) {
      // The store failed while recording the outcome: the row stays 'delivering'; after its lock it is
      // resent if its send never began, and set unconfirmed (never resent) if it did.
      this.#logger.error({ ...log, err: this.#cleanError(err) }, 'outbox: could not record a delivery outcome; the row is retried after its lock expires');
      outcome = 'retry';
    }
    this.#onOutcome?.(row.channel, outcome, row);
    return outcome;
  }

  async #attempt(row: OutboxRow, log: Record<string, unknown>): Promise<DeliveryOutcome> {
    if (row.attempts > this.#maxAttempts) {
      const error = `gave up after ${row.attempts - 1} attempts (the last one was interrupted: a guardian stopped during delivery)`;
      await this.#store.fail(row.id, this.holder, error, null, true);
      this.#logger.error({ ...log, error }, 'outbox: notification failed for good');
      return 'failed';
    }
    const notifier = this.#notifiers().get(row.channel);
    let failure: unknown;
    if (notifier === undefined) {
      failure = new GuardianError('NOTIFY_FAILED', `${row.channel}: no ${row.channel} notifier is configured (notify.${row.channel} in the rules file); retried in case it is added`);
    } else {
      // The at-most-once marker: written just before the message can reach the channel.
      let marked: boolean | undefined;
      const beforeTransmit = async (): Promise<void> => {
        marked ??= await this.#store.markSending(row.id, this.holder);
        if (!marked) throw new GuardianError('NOTIFY_FAILED', `${row.channel}: the row was reclaimed by another worker before its send began; not sent`);
      };
      const timeout = AbortSignal.timeout(this.#sendTimeoutMs);
      try {
        if (!notifier.callsBeforeTransmit) await beforeTransmit();
        await notifier.send(messageFromOutbox(row, this.#dashboardUrl === undefined ? {} : { dashboardUrl: this.#dashboardUrl }), AbortSignal.any([timeout, this.#abort.signal]), {
          beforeTransmit,
        });
        if (marked !== true) throw new GuardianError('NOTIFY_FAILED', `${row.channel}: the notifier did not record the send before transmitting (a bug); not retried`, { details: { retryable: false } });
        failure = undefined;
      } catch (err) {
        if (marked === false) {
          this.#logger.warn(log, 'outbox: the row was reclaimed by another worker before its send began; not sent');
          return 'lost_lock';
        }
        failure = timeout.aborted && !(err instanceof GuardianError) ? new GuardianError('NOTIFY_FAILED', `${row.channel}: timed out after ${this.#sendTimeoutMs} ms`, { cause: err }) : err;
      }
    }

    if (failure === undefined) {
      const done = await this.#store.complete(row.id, this.holder);
      if (!done) {
        this.#logger.warn(log, 'outbox: delivered, but the row had been reclaimed by another worker (its lock expired); it may be delivered twice');
        return 'lost_lock';
      }
      this.#logger.info(log, 'outbox: notification delivered');
      return 'delivered';
    }

    const info = failureInfo(failure, row.channel);
    const message = this.#redact((failure as Error)?.message ?? String(failure));
    const giveUp = !info.retryable || row.attempts >= this.#maxAttempts;
    if (giveUp) {
      const error = info.retryable ? `${message} (gave up after ${row.attempts} attempts)` : `${message} (not retryable)`;
      await this.#store.fail(row.id, this.holder, error, null, true);
      this.#logger.error({ ...log, error }, 'outbox: notification failed for good');
      return 'failed';
    }
    const delay = Math.max(backoffDelay(row.attempts, this.#backoff, this.#random), info.retryAfterMs ?? 0);
    const next = new Date(this.#now().getTime() + delay);
    const held = await this.#store.fail(row.id, this.holder, message, next, false);
    this.#logger.warn({ ...log, error: message, nextAttemptAt: next.toISOString(), delayMs: delay }, 'outbox: delivery failed; will retry');
    return held ? 'retry' : 'lost_lock';
  }
}
