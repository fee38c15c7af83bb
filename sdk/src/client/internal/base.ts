import { SdkError } from '../errors.ts';
import type { ClientStatus, EvaluationListener, FlagEvaluation, RollbackListener, SdkLogger, Timers } from '../types.ts';

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
    this.notifyStore();
  }

  protected emitRollback(flag: string, message: string | null, version: number): void {
    for (const l of [...this.rollbackListeners]) this.safe(() => l({ flag, message, version }), flag);
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
