import type { FlagChange, FlagTransport, SdkLogger, SubscriptionStatus, Timers } from '../types.ts';

/**
 * Upper bound of the random delay before the re-fetch that a rollback needs in client mode (a
 * step back: the user's value depends on targets the client cannot see, so it is asked of the
 * database). Shorter than the usual spread, so every client hears a rollback within a second,
 * while a rollback's herd is still spread over a quarter of a second.
 */
export const ROLLBACK_JITTER_MS = 250;

/** What a {@link Sync} needs from its client. */
export interface SyncHost {
  /** Fetches and applies the flags; rejects on failure. */
  load(signal: AbortSignal): Promise<void>;
  /** A change event from the subscription (version filtering is the host's job). */
  change(change: FlagChange): void;
  /** A load failed (the sync retries on its own schedule). */
  loadFailed(error: unknown): void;
  /** The subscription went live or down. */
  statusChanged?(status: SubscriptionStatus): void;
}

/** Options of {@link Sync}. */
export interface SyncOptions {
  transport: FlagTransport;
  pollIntervalMs: number;
  ttlMs: number;
  timers: Timers;
  logger: SdkLogger;
  /** Upper bound of the random delay before a re-fetch after a change or a reconnect (0: at once). */
  jitterMs: number;
  /** Random numbers in [0, 1). */
  random: () => number;
}

/**
 * Keeps a client's flags fresh: an initial load, a re-fetch on EVERY subscription `live` (changes
 * made while disconnected are never replayed by Realtime), version-checked polling while the
 * subscription is down or absent, and a TTL re-fetch while it is live. Loads are single-flight: a
 * refresh asked for during a load runs once more after it, never concurrently.
 */
export class Sync {
  private readonly host: SyncHost;
  private readonly opts: SyncOptions;
  private live = false;
  private running: Promise<boolean> | null = null;
  private queued: Promise<boolean> | null = null;
  private timer: unknown = null;
  private stopped = false;
  private unsubscribe: (() => void) | null = null;
  private readonly abort = new AbortController();
  private lastFingerprint: string | null = null;
  private soon: unknown = null;
  /** The delay bound the scheduled re-fetch (`soon`) was drawn under. */
  private soonBound = 0;
  private everLive = false;

  constructor(host: SyncHost, opts: SyncOptions) {
    this.host = host;
    this.opts = opts;
  }

  /** Whether the change subscription is live. */
  get isLive(): boolean {
    return this.live;
  }

  /** Whether the transport streams changes at all (otherwise the client only polls). */
  get hasFeed(): boolean {
    return typeof this.opts.transport.subscribe === 'function';
  }

  /**
   * A re-fetch after a change or a reconnect, spread in time: waits a random delay below
   * `jitterMs` (so a change does not make every client hit the database at the same instant), and
   * every further request before it fires joins that one fetch (a burst of changes: one fetch).
   * `maxDelayMs` bounds the delay further (a rollback: see {@link ROLLBACK_JITTER_MS}); a fetch
   * already scheduled under a longer bound is drawn again under this one.
   */
  refreshSoon(maxDelayMs: number = Infinity): void {
    if (this.stopped) return;
    const bound = Math.min(this.opts.jitterMs, Math.max(0, maxDelayMs));
    if (this.soon !== null) {
      if (this.soonBound <= bound) return;
      this.opts.timers.clearTimeout(this.soon);
      this.soon = null;
    }
    const r = this.opts.random();
    const delay = Math.floor((Number.isFinite(r) ? Math.min(Math.max(r, 0), 1) : 0) * bound);
    if (delay <= 0) {
      void this.refresh();
      return;
    }
    this.soonBound = bound;
    this.soon = this.opts.timers.setTimeout(() => {
      this.soon = null;
      void this.refresh();
    }, delay);
  }

  /** Subscribes (bindings first, so nothing is missed) and runs the first load. */
  start(): Promise<boolean> {
    const { transport } = this.opts;
    if (transport.subscribe) {
      try {
        this.unsubscribe = transport.subscribe({
          change: (c) => {
            if (!this.stopped) this.host.change(c);
          },
          status: (s, detail) => this.onStatus(s, detail),
        });
      } catch (error) {
        this.opts.logger.warn({ err: error }, 'flag subscription failed; polling instead');
      }
    }
    return this.refresh();
  }

  private onStatus(status: SubscriptionStatus, detail?: string): void {
    if (this.stopped) return;
    const wasLive = this.live;
    this.live = status === 'live';
    this.host.statusChanged?.(status);
    if (status === 'live') {
      // Re-fetch after every (re)subscription: Realtime keeps no buffer. A REconnect reaches every
      // client at once (a Realtime restart), so it is spread like a change.
      if (this.everLive) this.refreshSoon();
      else void this.refresh();
      this.everLive = true;
    } else if (wasLive) {
      this.opts.logger.warn({ detail }, 'flag change subscription is down; polling until it is back');
      this.schedule();
    }
  }

  /** A timer tick: asks the transport's fingerprint first (if any) and loads only on a change. */
  private async poll(): Promise<boolean> {
    const { transport } = this.opts;
    if (transport.fingerprint && this.lastFingerprint !== null && !this.running) {
      try {
        const fp = await transport.fingerprint(this.abort.signal);
        if (fp === this.lastFingerprint) {
          this.schedule();
          return true;
        }
      } catch (error) {
        this.opts.logger.warn({ err: error }, 'version check failed; loading the flags instead');
      }
    }
    return this.refresh();
  }

  /** Loads now (coalesced with a load in flight). Resolves `true` when the load succeeded. */
  refresh(): Promise<boolean> {
    if (this.stopped) return Promise.resolve(false);
    if (this.running) {
      this.queued ??= this.running.then(() => {
        this.queued = null;
        return this.refresh();
      });
      return this.queued;
    }
    const run = (async (): Promise<boolean> => {
      try {
        // The fingerprint is taken BEFORE the load, so a change between the two is seen next time.
        const fp = this.opts.transport.fingerprint ? await this.opts.transport.fingerprint(this.abort.signal).catch(() => null) : null;
        await this.host.load(this.abort.signal);
        this.lastFingerprint = fp;
        return true;
      } catch (error) {
        if (!this.stopped) this.host.loadFailed(error);
        return false;
      } finally {
        this.running = null;
        this.schedule();
      }
    })();
    this.running = run;
    return run;
  }

  private schedule(): void {
    if (this.stopped) return;
    const { timers } = this.opts;
    if (this.timer !== null) timers.clearTimeout(this.timer);
    const ms = this.live ? this.opts.ttlMs : this.opts.pollIntervalMs;
    this.timer = timers.setTimeout(() => {
      this.timer = null;
      void this.poll();
    }, ms);
  }

  /** Stops timers and the subscription; loads in flight are aborted. */
  stop(): void {
    this.stopped = true;
    if (this.timer !== null) this.opts.timers.clearTimeout(this.timer);
    if (this.soon !== null) this.opts.timers.clearTimeout(this.soon);
    this.timer = null;
    this.soon = null;
    this.abort.abort();
    try {
      this.unsubscribe?.();
    } catch (error) {
      this.opts.logger.warn({ err: error }, 'unsubscribing from flag changes failed');
    }
  }
}

/** The global timers, bound (some runtimes require `this === globalThis`). */
export const defaultTimers: Timers = {
  setTimeout: (fn, ms) => {
    const handle: unknown = globalThis.setTimeout(fn, ms);
    // In Node, a refresh timer must not keep the process alive.
    (handle as { unref?: () => void }).unref?.();
    return handle;
  },
  clearTimeout: (handle) => globalThis.clearTimeout(handle as Parameters<typeof globalThis.clearTimeout>[0]),
};

/** A logger that drops everything. */
export const silentLogger: SdkLogger = { warn: () => undefined, error: () => undefined };
