import { checkMs, SdkError } from './errors.ts';
import { checkBehaviour, ListenerHub, plainText, safeString } from './internal/base.ts';
import type { ClientBehaviourOptions, FlagChangeEvent } from './internal/base.ts';
import { defaultTimers, ROLLBACK_JITTER_MS, silentLogger, Sync } from './internal/sync.ts';
import type { EvaluatedFlagRecord, FlagChange, FlagEvaluation, FlagTransport, SdkLogger, StorageAdapter, Timers } from './types.ts';

/**
 * Options of {@link createBrowserClient}.
 *
 * @example
 * const options: BrowserClientOptions = { transport: supabaseTransport(supabase), storage: localStorage };
 */
export interface BrowserClientOptions extends ClientBehaviourOptions {
  /** Where the flags come from; needs `loadMine` (`get_my_flags()` for the signed-in user). */
  readonly transport: FlagTransport;
  /** Keeps the last-known flags so the app starts with them offline (localStorage, AsyncStorage…). */
  readonly storage?: StorageAdapter;
  /** Storage key (default `rollback-guardian.flags`). */
  readonly storageKey?: string;
  /** Poll period while no change subscription is live (default 30 000 ms). */
  readonly pollIntervalMs?: number;
  /** Safety-net re-fetch period while the subscription is live (default 300 000 ms). */
  readonly ttlMs?: number;
  readonly logger?: SdkLogger;
  readonly timers?: Timers;
}

interface Persisted {
  readonly userId: string | null;
  readonly savedAt: number;
  readonly flags: readonly EvaluatedFlagRecord[];
}

function isPersisted(v: unknown): v is Persisted {
  if (v === null || typeof v !== 'object') return false;
  const p = v as Partial<Persisted>;
  return Array.isArray(p.flags) && (p.userId === null || typeof p.userId === 'string') && p.flags.every((f) => typeof f?.name === 'string' && typeof f.value === 'boolean');
}

/**
 * Client mode (anon key; browser, React Native): the signed-in user's flags, evaluated by the
 * database (`get_my_flags()`, so target lists never reach the device), cached in memory and
 * optionally in a persistent storage, refreshed on every change and on every sign-in/sign-out.
 * Evaluation never throws and never waits.
 *
 * @example
 * const flags = createBrowserClient({ transport: supabaseTransport(supabase), storage: localStorage });
 * flags.onRollback(({ message }) => toast(message));
 * if (flags.isEnabled('ai_beta_users')) showBetaUi();
 */
export class BrowserFlagClient extends ListenerHub {
  private values = new Map<string, EvaluatedFlagRecord>();
  private fromCache = false;
  private userId: string | null = null;
  private readonly transport: FlagTransport;
  private readonly storage: StorageAdapter | undefined;
  private readonly storageKey: string;
  private readonly sync: Sync;
  private readonly offAuth: (() => void) | undefined;

  constructor(options: BrowserClientOptions) {
    const logger = options?.logger ?? silentLogger;
    super(logger, options?.timers ?? defaultTimers);
    if (options === null || typeof options !== 'object' || options.transport === null || typeof options.transport !== 'object') {
      throw new SdkError('INVALID_OPTION', 'createBrowserClient: options.transport is required (e.g. supabaseTransport(supabase))');
    }
    if (typeof options.transport.loadMine !== 'function') {
      throw new SdkError('UNSUPPORTED', 'createBrowserClient: options.transport has no loadMine(); client mode reads the signed-in user\'s flags from get_my_flags()');
    }
    const s = options.storage;
    if (s !== undefined && (s === null || typeof s.getItem !== 'function' || typeof s.setItem !== 'function')) {
      throw new SdkError('INVALID_OPTION', 'createBrowserClient: options.storage must have getItem(key) and setItem(key, value), like localStorage or AsyncStorage');
    }
    if (options.storageKey !== undefined && (typeof options.storageKey !== 'string' || options.storageKey === '')) {
      throw new SdkError('INVALID_OPTION', 'createBrowserClient: options.storageKey must be a non-empty string');
    }
    this.transport = options.transport;
    this.storage = s;
    this.storageKey = options.storageKey ?? 'rollback-guardian.flags';
    const pollIntervalMs = checkMs('createBrowserClient: options.pollIntervalMs', options.pollIntervalMs, 30_000);
    const ttlMs = checkMs('createBrowserClient: options.ttlMs', options.ttlMs, 300_000);
    this.behaviour = checkBehaviour('createBrowserClient', options);
    this.sync = new Sync(
      {
        load: (signal) => this.load(signal),
        change: (c) => this.applyChange(c),
        loadFailed: (error) => {
          logger.error({ err: error }, 'loading my flags failed; serving last-known values');
          this.setStatus(this.values.size > 0 || this.currentStatus === 'READY' ? 'STALE' : 'ERROR');
        },
        statusChanged: () => this.feedChanged(),
      },
      { transport: this.transport, pollIntervalMs, ttlMs, timers: options.timers ?? defaultTimers, logger, jitterMs: this.behaviour.refetchJitterMs, random: this.behaviour.random },
    );
    this.offAuth = this.transport.onAuthChange?.((userId) => {
      if (userId === this.userId) return;
      this.userId = userId;
      void this.sync.refresh();
    });
    void this.start();
  }

  private async start(): Promise<void> {
    if (this.storage) {
      try {
        this.userId = (await this.transport.currentUserId?.()) ?? null;
        const raw = await this.storage.getItem(this.storageKey);
        const parsed: unknown = raw ? JSON.parse(raw) : null;
        // Only the same user's flags: never show one user's cohort to the next.
        if (isPersisted(parsed) && parsed.userId === this.userId && this.currentStatus === 'NOT_READY') {
          this.replace(parsed.flags, false);
          this.fromCache = true;
          this.setStatus('READY');
        }
      } catch (error) {
        this.logger.warn({ err: error }, 'reading cached flags failed; starting without them');
      }
    }
    await this.sync.start();
  }

  private async load(signal: AbortSignal): Promise<void> {
    const records = await this.transport.loadMine!(signal);
    const userId = this.transport.currentUserId ? await this.transport.currentUserId() : this.userId;
    this.userId = userId;
    this.replace(records, true);
    this.fromCache = false;
    this.setStatus('READY');
    if (this.storage) {
      // What the source said (a rollback being held is stored as rolled back).
      const value: Persisted = { userId, savedAt: Date.now(), flags: records };
      try {
        await this.storage.setItem(this.storageKey, JSON.stringify(value));
      } catch (error) {
        this.logger.warn({ err: error }, 'saving flags to storage failed');
      }
    }
  }

  /** Whether the change subscription is live (otherwise the client is polling). */
  get realtime(): boolean {
    return this.sync.isLive;
  }

  /**
   * The change feed: `live`, `down` (lost: the client polls until it is back) or `none` (the
   * transport cannot stream changes; polling only).
   *
   * @example
   * if (flags.feed === 'down') showOfflineHint();
   */
  get feed(): 'live' | 'down' | 'none' {
    return !this.sync.hasFeed ? 'none' : this.sync.isLive ? 'live' : 'down';
  }

  /**
   * `true` when `flagName` is on for the signed-in user; `defaultValue` (default `false`) when it
   * is unknown or nothing is loaded yet. Never throws.
   *
   * @example
   * flags.isEnabled('ai_ga_enabled');
   */
  isEnabled(flagName: string, defaultValue = false): boolean {
    return this.evaluate(flagName, defaultValue).value;
  }

  /**
   * The value and its reason (the database's reason; `CACHED` when served from storage before
   * the first fetch; `ERROR` with `errorCode` and the default otherwise). Never throws.
   *
   * @example
   * const { value, reason } = flags.evaluate('ai_beta_users', false);
   */
  evaluate(flagName: string, defaultValue = false): FlagEvaluation {
    const fallback = typeof defaultValue === 'boolean' ? defaultValue : false;
    let result: FlagEvaluation;
    if (typeof flagName !== 'string') {
      result = { flag: safeString(flagName), value: fallback, reason: 'ERROR', errorCode: 'INVALID_ARGUMENT' };
    } else {
      const r = this.values.get(flagName);
      if (r === undefined) {
        const notReady = this.currentStatus === 'NOT_READY' || (this.currentStatus === 'ERROR' && this.values.size === 0);
        result = { flag: flagName, value: fallback, reason: 'ERROR', errorCode: notReady ? 'PROVIDER_NOT_READY' : 'FLAG_NOT_FOUND' };
      } else {
        result = { flag: flagName, value: r.value, reason: this.fromCache ? 'CACHED' : r.reason, version: r.version };
        if (r.guardState === 'rolled_back' && r.rollbackMessage !== null) result = { ...result, rollbackMessage: r.rollbackMessage };
        if (r.guardState === 'rolled_back' && r.rollbackUrgent === true) result = { ...result, rollbackUrgent: true };
      }
    }
    if (this.evaluationListeners.length !== 0) this.notifyEvaluation(result.flag, result.value, this.userId, result.reason);
    return result;
  }

  /**
   * Every held flag's value for the signed-in user. Does not notify evaluation listeners.
   *
   * @example
   * flags.allValues(); // { ai_ga_enabled: true, ... }
   */
  allValues(): Record<string, boolean> {
    const out: Record<string, boolean> = {};
    for (const [name, r] of this.values) out[name] = r.value;
    return out;
  }

  /**
   * The held row of one flag, or `undefined`.
   *
   * @example
   * flags.getFlag('ai_beta_users')?.rollbackMessage;
   */
  getFlag(flagName: string): EvaluatedFlagRecord | undefined {
    const r = this.values.get(flagName);
    return r === undefined ? undefined : { ...r };
  }

  /** The user id the held flags belong to (`null`: anonymous). */
  get currentUser(): string | null {
    return this.userId;
  }

  /**
   * Re-fetches now (coalesced with a fetch in flight). Resolves `true` on success; never rejects.
   *
   * @example
   * await flags.refresh();
   */
  refresh(): Promise<boolean> {
    return this.sync.refresh();
  }

  /**
   * Stops the subscription, timers and auth listener, and closes the transport.
   *
   * @example
   * await flags.close();
   */
  async close(): Promise<void> {
    this.sync.stop();
    this.offAuth?.();
    await this.transport.close?.();
  }

  private replace(records: readonly EvaluatedFlagRecord[], fromSource: boolean): void {
    const next = new Map<string, EvaluatedFlagRecord>();
    const events: FlagChangeEvent[] = [];
    const rollbacks: EvaluatedFlagRecord[] = [];
    for (const raw of records) {
      if (raw === null || typeof raw !== 'object' || typeof raw.name !== 'string' || typeof raw.value !== 'boolean') continue;
      const r: EvaluatedFlagRecord = { ...raw, rollbackMessage: plainText(raw.rollbackMessage ?? null) };
      const old = this.values.get(r.name);
      if (old !== undefined && this.staleAnswer(r.name, r.version, old.version)) {
        next.set(r.name, old);
        continue;
      }
      const held = this.heldVersion(r.name);
      if (held !== undefined && old !== undefined) {
        // The same rolled-back row again while its switch is held: keep holding.
        if (held === r.version) {
          next.set(r.name, old);
          continue;
        }
        this.cancelHold(r.name); // a newer state (e.g. a restore) wins over the held rollback
      }
      if (fromSource && old?.value === true && !r.value && r.guardState === 'rolled_back') {
        next.set(r.name, old); // the old value stays until the rollback listeners had their say
        rollbacks.push(r);
        continue;
      }
      next.set(r.name, r);
      if (old === undefined || old.value !== r.value || old.version !== r.version || old.guardState !== r.guardState || old.rollbackMessage !== r.rollbackMessage || (old.rollbackUrgent === true) !== (r.rollbackUrgent === true)) {
        events.push({ flag: r.name, version: r.version, deleted: false });
      }
    }
    for (const name of this.values.keys()) if (!next.has(name)) events.push({ flag: name, version: null, deleted: true });
    this.values = next;
    this.emitChanges(events);
    for (const r of rollbacks) {
      const kept = next.get(r.name);
      this.gateRollback(r.name, r.rollbackMessage, r.version, r.rollbackUrgent === true, () => {
        if (this.values.get(r.name) !== kept) return; // replaced meanwhile
        this.values.set(r.name, r);
        this.emitChanges([{ flag: r.name, version: r.version, deleted: false }]);
      });
    }
  }

  private applyChange(change: FlagChange): void {
    const held = this.values.get(change.name);
    if (change.type !== 'DELETE' && held !== undefined && change.version !== null && change.version <= held.version) return;
    const rec = change.record;
    if (rec !== null && !rec.enabled && held !== undefined && change.version !== null) {
      // Off for everyone (a rollback, a kill switch): no need to ask the database, and no herd.
      const off: EvaluatedFlagRecord = { name: rec.name, value: false, reason: 'DISABLED', version: change.version, guardState: rec.guardState, rollbackMessage: rec.rollbackMessage, rollbackUrgent: rec.rollbackUrgent === true };
      this.replace([...[...this.values.values()].filter((r) => r.name !== rec.name), off], true);
      return;
    }
    // Targets are not visible here, so the user's value is asked of the database again (spread);
    // sooner when the row says the guardian just rolled the flag back (a step back keeps it on for
    // some users): the users it hurts must hear it within a second, not after the whole spread.
    const guard = rec?.guardState ?? change.guardState;
    const rollback = guard === 'rolled_back' && held !== undefined && held.guardState !== 'rolled_back';
    this.sync.refreshSoon(rollback ? ROLLBACK_JITTER_MS : Infinity);
  }
}

/**
 * Creates a {@link BrowserFlagClient}: reads the cached flags (if a storage is given), then
 * fetches and subscribes. Throws an `SdkError` on bad options, naming the option.
 *
 * @example
 * import { createBrowserClient } from '@rollback-guardian/sdk';
 * import { supabaseTransport } from '@rollback-guardian/sdk/supabase';
 * const flags = createBrowserClient({ transport: supabaseTransport(supabase), storage: window.localStorage });
 */
export function createBrowserClient(options: BrowserClientOptions): BrowserFlagClient {
  return new BrowserFlagClient(options);
}
