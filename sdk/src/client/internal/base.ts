import { checkMs, SdkError } from '../errors.ts';
import type { ClientStatus, EvaluationListener, FlagEvaluation, RollbackEvent, RollbackListener, SdkLogger, Timers } from '../types.ts';

/**
 * Options both clients take for rollbacks and re-fetches (see {@link RollbackEvent}).
 *
 * @example
 * createBrowserClient({ transport, rollbackHoldMs: 5_000, urgentFlags: ['payments_v2'], refetchJitterMs: 1_000 });
 */
export interface ClientBehaviourOptions {
  /** How long `onRollback` hooks may hold the switch to the new value (default 2 000 ms, at most 10 000). */
  readonly rollbackHoldMs?: number;
  /** How long `holdUntil(safePoint)` may keep the old value (default 300 000 ms). */
  readonly safePointMaxMs?: number;
  /**
   * Flags whose rollbacks are always urgent for this app: `holdUntil` is ignored for them (the save
   * hook still runs). A rollback an operator or a rule marked urgent is urgent without this.
   */
  readonly urgentFlags?: readonly string[];
  /**
   * Re-fetches after a change or a reconnect wait a random delay below this (default 2 000 ms), so
   * every client does not hit the database at the same instant; changes within that delay are
   * coalesced into one fetch. `0` re-fetches at once.
   */
  readonly refetchJitterMs?: number;
  /** Random numbers in [0, 1) for the jitter (default `Math.random`; tests inject one). */
  readonly random?: () => number;
}

/** Validated {@link ClientBehaviourOptions}. */
export interface Behaviour {
  readonly rollbackHoldMs: number;
  readonly safePointMaxMs: number;
  readonly urgentFlags: ReadonlySet<string>;
  readonly refetchJitterMs: number;
  readonly random: () => number;
}

/** Checks {@link ClientBehaviourOptions}; throws `INVALID_OPTION` naming the option. */
export function checkBehaviour(where: string, o: ClientBehaviourOptions): Behaviour {
  const rollbackHoldMs = checkMs(`${where}: options.rollbackHoldMs`, o.rollbackHoldMs, 2_000, 0);
  if (rollbackHoldMs > 10_000) throw new SdkError('INVALID_OPTION', `${where}: options.rollbackHoldMs must be at most 10000 ms (a rolled-back feature must not stay on for long); got ${rollbackHoldMs}`);
  const urgent = o.urgentFlags ?? [];
  if (!Array.isArray(urgent) || !urgent.every((f) => typeof f === 'string')) throw new SdkError('INVALID_OPTION', `${where}: options.urgentFlags must be an array of flag names`);
  if (o.random !== undefined && typeof o.random !== 'function') throw new SdkError('INVALID_OPTION', `${where}: options.random must be a function returning a number in [0, 1)`);
  return {
    rollbackHoldMs,
    safePointMaxMs: checkMs(`${where}: options.safePointMaxMs`, o.safePointMaxMs, 300_000, 0),
    urgentFlags: new Set(urgent),
    refetchJitterMs: checkMs(`${where}: options.refetchJitterMs`, o.refetchJitterMs, 2_000, 0),
    random: o.random ?? Math.random,
  };
}

/** Removes control characters (but newlines) from a rollback message and caps its length: it is shown to users as plain text. */
export function plainText(message: string | null): string | null {
  if (message === null) return null;
  // eslint-disable-next-line no-control-regex
  const text = message.replace(/[\u0000-\u0009\u000b-\u001f\u007f]/g, '').trim().slice(0, 1000);
  return text === '' ? null : text;
}

/**
 * What `onChange` listeners receive: the flag that changed and its new version (`null` when it
 * was deleted).
 *
 * @example
 * client.onChange('booking_agent_enabled', (e) => console.log(e.flag, e.version));
 */
export interface FlagChangeEvent {
  readonly flag: string;
  readonly version: number | null;
  readonly deleted: boolean;
}

/** Listener bookkeeping shared by server and client mode. */
export class ListenerHub {
  protected currentStatus: ClientStatus = 'NOT_READY';
  protected readonly logger: SdkLogger;
  private readonly readyTimers: Timers;
  private readonly changeListeners = new Map<string, Set<(e: FlagChangeEvent) => void>>();
  private readonly rollbackListeners = new Set<RollbackListener>();
  private readonly storeListeners = new Set<() => void>();
  private readonly batchListeners = new Set<(events: readonly FlagChangeEvent[]) => void>();
  /** Rollbacks whose switch is being held, by flag: the version waiting and how to drop it. */
  private readonly holds = new Map<string, { readonly version: number; cancel(): void }>();
  protected behaviour: Behaviour = checkBehaviour('client', {});
  private readonly readyWaiters: Array<(s: ClientStatus) => void> = [];
  /** Evaluation listeners as an array: the hot path only checks its length. */
  protected evaluationListeners: readonly EvaluationListener[] = [];

  constructor(logger: SdkLogger, timers: Timers) {
    this.logger = logger;
    this.readyTimers = timers;
  }

  /** `NOT_READY`, `READY`, `STALE` or `ERROR` (see {@link ClientStatus}). */
  get status(): ClientStatus {
    return this.currentStatus;
  }

  /**
   * Resolves once the first load (or a cache hit) settled the status: `READY`, `STALE` or
   * `ERROR`. Never rejects; with `timeoutMs` (on the client's `timers`), resolves with the status
   * at that time. A `timeoutMs` that is not a finite number ≥ 0 throws `INVALID_OPTION`.
   *
   * @example
   * if ((await client.ready(2000)) !== 'READY') console.warn('flags not loaded; using defaults');
   */
  ready(timeoutMs?: number): Promise<ClientStatus> {
    if (timeoutMs !== undefined && (typeof timeoutMs !== 'number' || !Number.isFinite(timeoutMs) || timeoutMs < 0)) {
      throw new SdkError('INVALID_OPTION', `ready(timeoutMs): timeoutMs must be a number of milliseconds ≥ 0, or left out to wait for the first load; got ${JSON.stringify(timeoutMs) ?? String(timeoutMs)}`);
    }
    if (this.currentStatus !== 'NOT_READY') return Promise.resolve(this.currentStatus);
    return new Promise((resolve) => {
      let timer: unknown;
      let settled = false;
      const done = (s: ClientStatus): void => {
        if (settled) return;
        settled = true;
        if (timer !== undefined) this.readyTimers.clearTimeout(timer);
        const i = this.readyWaiters.indexOf(done);
        if (i >= 0) this.readyWaiters.splice(i, 1);
        resolve(s);
      };
      this.readyWaiters.push(done);
      if (timeoutMs !== undefined) timer = this.readyTimers.setTimeout(() => done(this.currentStatus), timeoutMs);
    });
  }

  /**
   * Calls `listener` when `flag` changes (or, with only a listener, when any flag changes).
   * Returns the function that removes it.
   *
   * @example
   * const off = client.onChange('ai_beta_users', () => rerender());
   */
  onChange(flag: string, listener: (e: FlagChangeEvent) => void): () => void;
  onChange(listener: (e: FlagChangeEvent) => void): () => void;
  onChange(flagOrListener: string | ((e: FlagChangeEvent) => void), maybe?: (e: FlagChangeEvent) => void): () => void {
    const key = typeof flagOrListener === 'string' ? flagOrListener : '*';
    const listener = typeof flagOrListener === 'string' ? maybe : flagOrListener;
    if (typeof listener !== 'function') return () => undefined;
    let set = this.changeListeners.get(key);
    if (!set) this.changeListeners.set(key, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
    };
  }

  /**
   * Calls `listener` when a rollback reaches this client (see {@link RollbackListener}).
   *
   * @example
   * client.onRollback(({ flag, message }) => alert(message ?? `${flag} is off for now`));
   */
  onRollback(listener: RollbackListener): () => void {
    this.rollbackListeners.add(listener);
    return () => {
      this.rollbackListeners.delete(listener);
    };
  }

  /**
   * Calls `listener` once per batch of changes (one load, one change event) with every flag that
   * changed in it: what the OpenFeature providers turn into one `ConfigurationChanged`.
   *
   * @example
   * client.onChangeBatch((events) => console.log(events.map((e) => e.flag)));
   */
  onChangeBatch(listener: (events: readonly FlagChangeEvent[]) => void): () => void {
    this.batchListeners.add(listener);
    return () => {
      this.batchListeners.delete(listener);
    };
  }

  /**
   * Calls `listener` with every evaluation this client serves (Sentry and PostHog adapters).
   *
   * @example
   * client.onEvaluation((flag, value) => metrics.count(flag, value));
   */
  onEvaluation(listener: EvaluationListener): () => void {
    this.evaluationListeners = [...this.evaluationListeners, listener];
    return () => {
      this.evaluationListeners = this.evaluationListeners.filter((l) => l !== listener);
    };
  }

  /**
   * `useSyncExternalStore`-style subscription: `listener` runs after any flag or status change.
   *
   * @example
   * const off = client.subscribe(() => console.log('flags changed'));
   */
  subscribe(listener: () => void): () => void {
    this.storeListeners.add(listener);
    return () => {
      this.storeListeners.delete(listener);
    };
  }

  protected setStatus(status: ClientStatus): void {
    if (status === this.currentStatus) return;
    this.currentStatus = status;
    if (status !== 'NOT_READY') {
      for (const w of this.readyWaiters.splice(0)) w(status);
    }
    this.notifyStore();
  }

  protected notifyEvaluation(flag: string, value: boolean, userId: string | null, reason: FlagEvaluation['reason']): void {
    for (const l of this.evaluationListeners) {
      try {
        l(flag, value, userId, reason);
      } catch (error) {
        this.logger.warn({ err: error, flag }, 'an evaluation listener threw');
      }
    }
  }

  protected emitChanges(events: readonly FlagChangeEvent[]): void {
    if (events.length === 0) return;
    const all = this.changeListeners.get('*');
    for (const e of events) {
      for (const set of [this.changeListeners.get(e.flag), all]) {
        if (!set) continue;
        for (const l of [...set]) this.safe(() => l(e), e.flag);
      }
    }
    for (const l of [...this.batchListeners]) this.safe(() => l(events), '*');
    this.notifyStore();
  }

  /** The version of `flag` whose switch is being held, if any. */
  protected heldVersion(flag: string): number | undefined {
    return this.holds.get(flag)?.version;
  }

  /**
   * A fetched answer (`version`) that was read before what the client holds (`current`, the
   * version it serves) or before the rollback whose switch is being held: a fetch that raced with a
   * newer change. It must not take the flag back in time, nor drop the held rollback.
   */
  protected staleAnswer(flag: string, version: number, current: number | undefined): boolean {
    return current !== undefined && version < Math.max(current, this.heldVersion(flag) ?? 0);
  }

  /** Drops a held switch (a newer state of the flag arrived: it wins). */
  protected cancelHold(flag: string): void {
    this.holds.get(flag)?.cancel();
  }

  /**
   * A rollback reached the client: tells the rollback listeners BEFORE `apply` switches the value,
   * then applies it once their hooks settled (at most `rollbackHoldMs`) and their safe points
   * passed (at most `safePointMaxMs`; none when the rollback is urgent: `marked` by an operator or
   * a rule, or the flag is in `urgentFlags`). With no listener, or none that asks to wait, `apply`
   * runs at once.
   */
  protected gateRollback(flag: string, message: string | null, version: number, marked: boolean, apply: () => void): void {
    this.cancelHold(flag);
    const listeners = [...this.rollbackListeners];
    const urgent = marked || this.behaviour.urgentFlags.has(flag);
    const hooks: Promise<unknown>[] = [];
    const safePoints: Promise<unknown>[] = [];
    let open = true;
    const event: RollbackEvent = {
      flag,
      message,
      version,
      urgent,
      holdUntil: (safePoint) => {
        if (!open || urgent) {
          this.logger.warn({ flag, urgent }, urgent ? 'holdUntil ignored: this rollback is urgent' : 'holdUntil ignored: the value was already switched');
          return;
        }
        safePoints.push(Promise.resolve(safePoint).catch((error: unknown) => this.logger.warn({ err: error, flag }, 'a rollback safe point rejected')));
      },
    };
    for (const l of listeners) {
      try {
        const r = l(event);
        if (typeof (r as PromiseLike<unknown> | null | undefined)?.then === 'function') {
          hooks.push(Promise.resolve(r as PromiseLike<unknown>).catch((error: unknown) => this.logger.warn({ err: error, flag }, 'an onRollback hook rejected')));
        }
      } catch (error) {
        this.logger.warn({ err: error, flag }, 'a rollback listener threw');
      }
    }
    if (hooks.length === 0 && safePoints.length === 0) {
      open = false;
      apply();
      return;
    }
    let cancelled = false;
    const timers: unknown[] = [];
    const within = (all: Promise<unknown>[], ms: number): Promise<void> =>
      new Promise((resolve) => {
        timers.push(this.readyTimers.setTimeout(resolve, ms));
        void Promise.all(all).then(() => resolve());
      });
    this.holds.set(flag, {
      version,
      cancel: () => {
        cancelled = true;
        open = false;
        for (const t of timers) this.readyTimers.clearTimeout(t);
        this.holds.delete(flag);
      },
    });
    void (async () => {
      await within(hooks, this.behaviour.rollbackHoldMs);
      if (!urgent && safePoints.length > 0 && !cancelled) await within(safePoints, this.behaviour.safePointMaxMs);
      open = false;
      for (const t of timers) this.readyTimers.clearTimeout(t);
      if (cancelled) return;
      this.holds.delete(flag);
      apply();
    })();
  }

  /** The change feed went live or down: store subscribers (and providers) re-read the state. */
  protected feedChanged(): void {
    this.notifyStore();
  }

  private notifyStore(): void {
    for (const l of [...this.storeListeners]) this.safe(l, '*');
  }

  private safe(fn: () => void, flag: string): void {
    try {
      fn();
    } catch (error) {
      this.logger.warn({ err: error, flag }, 'a flag listener threw');
    }
  }
}

/** `String(value)` that cannot throw (an object's own `toString` may): for naming a bad argument. */
export function safeString(value: unknown): string {
  try {
    return String(value);
  } catch {
    return `[${typeof value}]`;
  }
}
