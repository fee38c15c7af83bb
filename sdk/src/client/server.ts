import { compileFlag, evaluateCompiled, isCompiledOn } from '../core/compiled.ts';
import type { CompiledFlag } from '../core/compiled.ts';
import { checkMs, SdkError } from './errors.ts';
import { checkBehaviour, ListenerHub, plainText, safeString } from './internal/base.ts';
import type { ClientBehaviourOptions, FlagChangeEvent } from './internal/base.ts';
import { defaultTimers, ROLLBACK_JITTER_MS, silentLogger, Sync } from './internal/sync.ts';
import type { FlagChange, FlagEvaluation, FlagRecord, FlagTransport, SdkLogger, Timers } from './types.ts';

/**
 * Options of {@link createServerClient}.
 *
 * @example
 * const options: ServerClientOptions = { transport: supabaseTransport(supabase), pollIntervalMs: 10_000 };
 */
export interface ServerClientOptions extends ClientBehaviourOptions {
  /** Where the flags come from; needs `loadAll` (service role: definitions and targets). */
  readonly transport: FlagTransport;
  /** Poll period while no change subscription is live (default 15 000 ms). */
  readonly pollIntervalMs?: number;
  /** Safety-net re-fetch period while the subscription is live (default 300 000 ms). */
  readonly ttlMs?: number;
  /** Definitions to serve before the first load completes (e.g. baked into the deployment). */
  readonly bootstrap?: readonly FlagRecord[];
  readonly logger?: SdkLogger;
  readonly timers?: Timers;
}

/** A held flag: compiled for evaluation; `definition` is the record it came from. */
type Entry = CompiledFlag<FlagRecord>;

function sameRecord(a: FlagRecord, b: FlagRecord): boolean {
  if (
    a.version !== b.version ||
    a.enabled !== b.enabled ||
    a.rolloutPercentage !== b.rolloutPercentage ||
    a.bucketGroup !== b.bucketGroup ||
    a.guardState !== b.guardState ||
    a.rollbackMessage !== b.rollbackMessage ||
    (a.rollbackUrgent === true) !== (b.rollbackUrgent === true)
  ) {
    return false;
  }
  const ta = a.targets ?? [];
  const tb = b.targets ?? [];
  if (ta.length !== tb.length) return false;
  const set = new Set(ta);
  return tb.every((t) => set.has(t));
}

function toEntry(record: FlagRecord): Entry {
  return compileFlag(record);
}

/** A lookup table keyed by flag name, with no prototype (so no inherited keys). */
type Index = Record<string, Entry | undefined>;

function indexOf(flags: ReadonlyMap<string, Entry>): Index {
  const index = Object.create(null) as Index;
  for (const [name, entry] of flags) index[name] = entry;
  return index;
}

/**
 * Server mode (service key; Node, Deno, Edge Functions): holds every flag definition and its
 * targets, evaluates locally (a map lookup and one hash of the user id), and keeps them fresh
 * from the transport's change stream, with polling as the fallback and a TTL safety net.
 * Evaluation never throws: bad input, an unknown flag or a client that is not ready give the
 * caller's default.
 *
 * @example
 * const flags = createServerClient({ transport: supabaseTransport(supabaseAdmin) });
 * await flags.ready();
 * if (flags.isEnabled('booking_agent_enabled', user.id)) runAgent();
 */
export class ServerFlagClient extends ListenerHub {
  private flags = new Map<string, Entry>();
  // The same entries as `flags`, for `isEnabled` only: a keyed load on a prototype-less object is a
  // few ns cheaper than Map#get (V8 keeps the key's hash and looks it up inline).
  private index: Index = Object.create(null) as Index;
  private readonly transport: FlagTransport;
  private readonly sync: Sync;
  private loaded = false;

  constructor(options: ServerClientOptions) {
    const logger = options?.logger ?? silentLogger;
    super(logger, options?.timers ?? defaultTimers);
    if (options === null || typeof options !== 'object' || options.transport === null || typeof options.transport !== 'object') {
      throw new SdkError('INVALID_OPTION', 'createServerClient: options.transport is required (e.g. supabaseTransport(client) or postgresTransport(pool))');
    }
    if (typeof options.transport.loadAll !== 'function') {
      throw new SdkError('UNSUPPORTED', 'createServerClient: options.transport has no loadAll(); server mode needs a service-role transport that can read all definitions');
    }
    this.transport = options.transport;
    const pollIntervalMs = checkMs('createServerClient: options.pollIntervalMs', options.pollIntervalMs, 15_000);
    const ttlMs = checkMs('createServerClient: options.ttlMs', options.ttlMs, 300_000);
    this.behaviour = checkBehaviour('createServerClient', options);
    if (options.bootstrap !== undefined) {
      if (!Array.isArray(options.bootstrap)) throw new SdkError('INVALID_OPTION', 'createServerClient: options.bootstrap must be an array of flag records');
      this.replaceAll(options.bootstrap, false);
      this.currentStatus = 'READY';
    }
    this.sync = new Sync(
      {
        load: async (signal) => {
          const records = await this.transport.loadAll!(signal);
          this.replaceAll(records, true);
          this.loaded = true;
          this.setStatus('READY');
        },
        change: (c) => this.applyChange(c),
        loadFailed: (error) => {
          logger.error({ err: error }, 'loading flag definitions failed; serving last-known values');
          this.setStatus(this.loaded || this.flags.size > 0 ? 'STALE' : 'ERROR');
        },
        statusChanged: () => this.feedChanged(),
      },
      { transport: this.transport, pollIntervalMs, ttlMs, timers: options.timers ?? defaultTimers, logger, jitterMs: this.behaviour.refetchJitterMs, random: this.behaviour.random },
    );
    void this.sync.start();
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
   * if (flags.feed === 'down') log.warn('flag changes arrive by polling only');
   */
  get feed(): 'live' | 'down' | 'none' {
    return !this.sync.hasFeed ? 'none' : this.sync.isLive ? 'live' : 'down';
  }

  /**
   * `true` when `flagName` is on for `userId`; `defaultValue` (default `false`) when the flag is
   * unknown, the client is not ready or the arguments are bad. Never throws.
   *
   * @example
   * flags.isEnabled('ai_beta_users', 'user-42'); // true | false
   */
  isEnabled(flagName: string, userId: string, defaultValue = false): boolean {
    // The hot path: one keyed lookup, one hash of the user id's bytes, nothing allocated.
    const flag = typeof flagName === 'string' ? this.index[flagName] : undefined;
    if (flag === undefined || !flag.valid || typeof userId !== 'string') {
      return this.evaluate(flagName, userId, defaultValue).value; // evaluate() notifies listeners
    }
    const value = isCompiledOn(flag, userId);
    if (this.evaluationListeners.length !== 0) {
      this.notifyEvaluation(flagName, value, userId, !flag.enabled ? 'DISABLED' : flag.targets !== null && flag.targets.has(userId) ? 'TARGETING_MATCH' : 'SPLIT');
    }
    return value;
  }

  /**
   * The value and why: `TARGETING_MATCH`, `SPLIT`, `DISABLED`, or `ERROR` with an `errorCode`
   * (`FLAG_NOT_FOUND`, `PROVIDER_NOT_READY`, `INVALID_USER_ID`, `INVALID_FLAG`, `INVALID_ARGUMENT`)
   * and the caller's default. Never throws.
   *
   * @example
   * const { value, reason } = flags.evaluate('ai_alpha_users', 'user-42', false);
   */
  evaluate(flagName: string, userId: string, defaultValue = false): FlagEvaluation {
    const fallback = typeof defaultValue === 'boolean' ? defaultValue : false;
    let result: FlagEvaluation;
    if (typeof flagName !== 'string') {
      result = { flag: safeString(flagName), value: fallback, reason: 'ERROR', errorCode: 'INVALID_ARGUMENT' };
    } else {
      const entry = this.flags.get(flagName);
      if (entry === undefined) {
        const notReady = this.currentStatus === 'NOT_READY' || (this.currentStatus === 'ERROR' && this.flags.size === 0);
        result = { flag: flagName, value: fallback, reason: 'ERROR', errorCode: notReady ? 'PROVIDER_NOT_READY' : 'FLAG_NOT_FOUND' };
      } else {
        const r = evaluateCompiled(entry, userId);
        result =
          r.reason === 'ERROR'
            ? { flag: flagName, value: fallback, reason: 'ERROR', errorCode: r.errorCode ?? 'INVALID_FLAG', version: entry.definition.version }
            : { flag: flagName, value: r.value, reason: r.reason, version: entry.definition.version };
        const d = entry.definition;
        if (d.guardState === 'rolled_back' && d.rollbackMessage !== null) result = { ...result, rollbackMessage: d.rollbackMessage };
        if (d.guardState === 'rolled_back' && d.rollbackUrgent === true) result = { ...result, rollbackUrgent: true };
      }
    }
    if (this.evaluationListeners.length !== 0) this.notifyEvaluation(result.flag, result.value, typeof userId === 'string' ? userId : null, result.reason);
    return result;
  }

  /**
   * Every known flag's value for one user (what the PostHog adapter attaches to events).
   * Does not notify evaluation listeners.
   *
   * @example
   * flags.allValues('user-42'); // { ai_beta_users: true, booking_agent_enabled: false, ... }
   */
  allValues(userId: string): Record<string, boolean> {
    const out: Record<string, boolean> = {};
    if (typeof userId !== 'string') return out;
    for (const [name, e] of this.flags) out[name] = isCompiledOn(e, userId);
    return out;
  }

  /**
   * The held definition of one flag (a copy of the record), or `undefined`.
   *
   * @example
   * flags.getFlag('booking_agent_enabled')?.guardState; // 'watching'
   */
  getFlag(flagName: string): FlagRecord | undefined {
    const e = this.flags.get(flagName);
    return e === undefined ? undefined : { ...e.definition };
  }

  /**
   * Names of all held flags.
   *
   * @example
   * flags.flagNames(); // ['ai_alpha_users', ...]
   */
  flagNames(): string[] {
    return [...this.flags.keys()];
  }

  /**
   * Re-fetches now (coalesced with a load in flight). Resolves `true` on success; never rejects.
   *
   * @example
   * await flags.refresh();
   */
  refresh(): Promise<boolean> {
    return this.sync.refresh();
  }

  /**
   * Stops the subscription and timers and closes the transport.
   *
   * @example
   * await flags.close();
   */
  async close(): Promise<void> {
    this.sync.stop();
    await this.transport.close?.();
  }

  private replaceAll(records: readonly FlagRecord[], fromSource: boolean): void {
    const next = new Map<string, Entry>();
    const events: FlagChangeEvent[] = [];
    const rollbacks: FlagRecord[] = [];
    for (const raw of records) {
      if (raw === null || typeof raw !== 'object' || typeof raw.name !== 'string') continue;
      const record: FlagRecord = { ...raw, rollbackMessage: plainText(raw.rollbackMessage ?? null) };
      const old = this.flags.get(record.name);
      if (old !== undefined && this.staleAnswer(record.name, record.version, old.definition.version)) {
        next.set(record.name, old);
        continue;
      }
      const held = this.heldVersion(record.name);
      if (held !== undefined && old !== undefined) {
        if (held === record.version) {
          next.set(record.name, old); // the held rollback again: keep holding
          continue;
        }
        this.cancelHold(record.name);
      }
      if (old !== undefined && sameRecord(old.definition, record)) {
        next.set(record.name, old);
        continue;
      }
      if (fromSource && isRollback(old?.definition, record)) {
        next.set(record.name, old!); // switched when the rollback listeners had their say
        rollbacks.push(record);
        continue;
      }
      next.set(record.name, toEntry(record));
      if (fromSource) events.push({ flag: record.name, version: record.version, deleted: false });
    }
    if (fromSource) {
      for (const name of this.flags.keys()) if (!next.has(name)) events.push({ flag: name, version: null, deleted: true });
    }
    this.flags = next;
    this.index = indexOf(next);
    this.emitChanges(events);
    for (const record of rollbacks) this.switchAfterRollback(record);
  }

  /** Puts a rolled-back definition in place once {@link gateRollback} lets it (unless replaced meanwhile). */
  private switchAfterRollback(record: FlagRecord): void {
    const kept = this.flags.get(record.name);
    this.gateRollback(record.name, record.rollbackMessage, record.version, record.rollbackUrgent === true, () => {
      if (this.flags.get(record.name) !== kept) return;
      const entry = toEntry(record);
      this.flags.set(record.name, entry);
      this.index[record.name] = entry;
      this.emitChanges([{ flag: record.name, version: record.version, deleted: false }]);
    });
  }

  private applyChange(change: FlagChange): void {
    const old = this.flags.get(change.name);
    if (change.type === 'DELETE') {
      if (old !== undefined) {
        this.cancelHold(change.name);
        this.flags.delete(change.name);
        this.index[change.name] = undefined; // (rebuilt without the key on the next full load)
        this.emitChanges([{ flag: change.name, version: null, deleted: true }]);
      }
      return;
    }
    // Drop events older than (or as old as) what is held.
    if (old !== undefined && change.version !== null && change.version <= old.definition.version) return;
    if (change.record !== null && this.heldVersion(change.name) !== change.version) {
      // Apply the public fields at once (a rollback must not wait for a round trip), keeping the
      // targets held; the re-fetch below brings the targets of this version.
      this.cancelHold(change.name);
      const record: FlagRecord = { ...change.record, rollbackMessage: plainText(change.record.rollbackMessage), targets: old?.definition.targets ?? [] };
      if (isRollback(old?.definition, record)) {
        this.switchAfterRollback(record);
      } else {
        const entry = toEntry(record);
        this.flags.set(change.name, entry);
        this.index[change.name] = entry;
        this.emitChanges([{ flag: change.name, version: record.version, deleted: false }]);
      }
    }
    // Spread in time: every server holding the flags hears the same change at the same instant;
    // a rollback known only by its guard state (no record to apply) is fetched within
    // ROLLBACK_JITTER_MS: the users it hurts must not wait for the whole spread.
    const rollback = change.record === null && change.guardState === 'rolled_back' && old !== undefined && old.definition.guardState !== 'rolled_back';
    this.sync.refreshSoon(rollback ? ROLLBACK_JITTER_MS : Infinity);
  }
}

/** A flag the guardian (or a person) just rolled back: it was not rolled back before and now is. */
function isRollback(old: FlagRecord | undefined, next: FlagRecord): boolean {
  return old !== undefined && old.guardState !== 'rolled_back' && next.guardState === 'rolled_back';
}

/**
 * Creates a {@link ServerFlagClient} and starts loading (call `ready()` to wait for it).
 * Throws an `SdkError` (`INVALID_OPTION`/`UNSUPPORTED`) on bad options, naming the option.
 *
 * @example
 * import { createServerClient } from '@rollback-guardian/sdk';
 * import { supabaseTransport } from '@rollback-guardian/sdk/supabase';
 * const flags = createServerClient({ transport: supabaseTransport(createClient(url, serviceKey)) });
 */
export function createServerClient(options: ServerClientOptions): ServerFlagClient {
  return new ServerFlagClient(options);
}
