/**
 * The change stream's fan-out: every change is published once here (with a monotonic id) and
 * written to every connected SSE client; the last `bufferSize` messages are kept so a client
 * that reconnects with `Last-Event-ID` gets what it missed, or a `reset` when it is too far
 * behind (or its id is from before this process started). Bounded: at most `maxClients`
 * clients (503 beyond), and a client that cannot keep up holds at most `maxClientBytes`
 * unread bytes before it is cut off (it reconnects and resumes from its last id).
 *
 * Ids start at the boot time in microseconds, so they keep growing across restarts and an id
 * from an earlier process is always older than the buffer (→ `reset`, never a wrong replay).
 */

/** One SSE message. */
export interface StreamMessage {
  readonly id: number;
  readonly event: 'flag' | 'rollback_event' | 'reset';
  /** JSON text. */
  readonly data: string;
}

/**
 * Options of {@link ChangeHub}.
 *
 * @example
 * new ChangeHub({ bufferSize: 1000, maxClients: 2000, maxClientBytes: 1 << 20, heartbeatMs: 15_000 });
 */
export interface ChangeHubOptions {
  /** Messages kept for resume. Default 1000. */
  readonly bufferSize?: number;
  /** Most connected clients. Default 5000. */
  readonly maxClients?: number;
  /** Most unread bytes per client before it is cut off. Default 1 MiB. */
  readonly maxClientBytes?: number;
  /** Heartbeat comment period. Default 15 s; 0 = none. */
  readonly heartbeatMs?: number;
  /** Injected timers. */
  readonly setInterval?: (fn: () => void, ms: number) => { unref?: () => void };
  readonly clearInterval?: (handle: unknown) => void;
  /** Start of the id sequence. Default Date.now() * 1000. */
  readonly firstId?: number;
}

interface Client {
  readonly controller: ReadableStreamDefaultController<Uint8Array>;
  readonly filter: (m: StreamMessage) => boolean;
  closed: boolean;
}

const encoder = new TextEncoder();

/** The SSE wire form of a message. */
export function sseFrame(m: StreamMessage): string {
  return `id: ${m.id}\nevent: ${m.event}\ndata: ${m.data}\n\n`;
}

/**
 * The hub.
 *
 * @example
 * const hub = new ChangeHub();
 * hub.publish('flag', { name: 'f', version: 2 });
 * return new Response(hub.subscribe(lastEventId), { headers: { 'content-type': 'text/event-stream' } });
 */
export class ChangeHub {
  readonly #buffer: StreamMessage[] = [];
  readonly #clients = new Set<Client>();
  readonly #bufferSize: number;
  readonly #maxClients: number;
  readonly #maxBytes: number;
  readonly #timer: unknown;
  readonly #clear: (h: unknown) => void;
  #lastId: number;
  #closed = false;
  /** Clients cut off for holding too many unread bytes (for metrics/tests). */
  droppedSlowClients = 0;

  constructor(opts: ChangeHubOptions = {}) {
    this.#bufferSize = opts.bufferSize ?? 1000;
    this.#maxClients = opts.maxClients ?? 5000;
    this.#maxBytes = opts.maxClientBytes ?? 1 << 20;
    this.#lastId = opts.firstId ?? Date.now() * 1000;
    const every = opts.heartbeatMs ?? 15_000;
    const setI = opts.setInterval ?? ((fn: () => void, ms: number) => setInterval(fn, ms));
    this.#clear = opts.clearInterval ?? ((h: unknown) => clearInterval(h as ReturnType<typeof setInterval>));
    if (every > 0) {
      const h = setI(() => this.#heartbeat(), every);
      h.unref?.();
      this.#timer = h;
    }
  }

  /** Connected clients. */
  get clients(): number {
    return this.#clients.size;
  }

  /** The id of the latest message. */
  get lastId(): number {
    return this.#lastId;
  }

  /** True when one more client may connect. */
  get hasRoom(): boolean {
    return !this.#closed && this.#clients.size < this.#maxClients;
  }

  /** Publishes one message to every client (and the resume buffer). */
  publish(event: StreamMessage['event'], data: unknown): StreamMessage {
    const m: StreamMessage = { id: ++this.#lastId, event, data: JSON.stringify(data) };
    if (event !== 'reset') {
      this.#buffer.push(m);
      if (this.#buffer.length > this.#bufferSize) this.#buffer.shift();
    } else {
      // After a gap in the feed, nothing before it can be replayed faithfully.
      this.#buffer.length = 0;
    }
    for (const c of this.#clients) if (c.filter(m)) this.#write(c, sseFrame(m));
    return m;
  }

  /**
   * A new client's byte stream: replay after `lastEventId` (or `reset` when that cannot be
   * done), then live messages. `filter` keeps some kinds only (the OFREP stream: flags).
   */
  subscribe(lastEventId: string | undefined, filter: (m: StreamMessage) => boolean = () => true): ReadableStream<Uint8Array> {
    let client: Client | undefined;
    return new ReadableStream<Uint8Array>(
      {
        start: (controller) => {
          client = { controller, filter, closed: false };
          this.#clients.add(client);
          this.#write(client, `retry: 2000\n: connected\n\n`);
          for (const frame of this.#replay(lastEventId, filter)) this.#write(client, frame);
        },
        cancel: () => {
          if (client) this.#drop(client);
        },
      },
      { highWaterMark: this.#maxBytes, size: (chunk) => chunk.byteLength },
    );
  }

  /** Frames a client resuming from `lastEventId` must get first. */
  #replay(lastEventId: string | undefined, filter: (m: StreamMessage) => boolean): string[] {
    if (lastEventId === undefined || lastEventId === '') return [];
    const last = /^\d{1,17}$/.test(lastEventId) ? Number(lastEventId) : Number.NaN;
    if (last === this.#lastId) return [];
    const oldest = this.#buffer[0]?.id ?? this.#lastId + 1;
    if (!Number.isFinite(last) || last > this.#lastId || last < oldest - 1) {
      return [sseFrame({ id: this.#lastId, event: 'reset', data: '{}' })];
    }
    return this.#buffer.filter((m) => m.id > last && filter(m)).map(sseFrame);
  }

  #write(c: Client, text: string): void {
    if (c.closed) return;
    const desired = c.controller.desiredSize;
    if (desired !== null && desired <= 0) {
      // The client reads slower than we write: cut it off; it resumes from its last id.
      this.droppedSlowClients++;
      this.#drop(c);
      try {
        c.controller.close();
      } catch {
        // already closed
      }
      return;
    }
    try {
      c.controller.enqueue(encoder.encode(text));
    } catch {
      this.#drop(c);
    }
  }

  #drop(c: Client): void {
    c.closed = true;
    this.#clients.delete(c);
  }

  #heartbeat(): void {
    for (const c of this.#clients) this.#write(c, ': heartbeat\n\n');
  }

  /** Ends every client's stream and stops the heartbeat. */
  close(): void {
    this.#closed = true;
    if (this.#timer !== undefined) this.#clear(this.#timer);
    for (const c of [...this.#clients]) {
      this.#drop(c);
      try {
        c.controller.close();
      } catch {
        // already closed
      }
    }
  }
}
