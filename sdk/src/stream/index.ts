/**
 * `@rollback-guardian/sdk/stream`: follow flag changes through the guardian's change stream
 * (`GET /api/v1/stream`, or the read-only `GET /ofrep/v1/stream` with the OFREP key) — for
 * pages and servers without Supabase Realtime. Runs in browsers and Node alike: it reads the
 * Server-Sent Events with `fetch()` and a stream reader (EventSource cannot send the
 * Authorization header).
 *
 * The rule is Realtime's: after EVERY (re)connection the transport reports `live`, and the
 * client re-fetches all flags (changes made while it was away may be lost); a `reset` from the
 * server (it cannot replay what was missed) is reported the same way. Reconnects back off
 * (0.5 s … 30 s) and resume with `Last-Event-ID`.
 *
 * Loading comes from `load` (any transport: postgres, supabase, …), or, without one, from the
 * admin API itself (`GET /flags` and each flag's targets; needs a viewer token).
 *
 * @example
 * import { createServerClient } from '@rollback-guardian/sdk';
 * import { streamTransport } from '@rollback-guardian/sdk/stream';
 * const flags = createServerClient({ transport: streamTransport({ url: 'https://guardian.example.com/api/v1', token: process.env.GUARDIAN_ADMIN_TOKEN! }) });
 */
import { SdkError } from '../client/errors.ts';
import type { ChangeListener, FlagRecord, FlagTransport, GuardState } from '../client/types.ts';

/**
 * Options of {@link streamTransport}.
 *
 * @example
 * streamTransport({ url: 'https://guardian.example.com/ofrep/v1', token: ofrepKey, load: postgresTransport(pool) });
 */
export interface StreamTransportOptions {
  /** The API base (`…/api/v1`) or the OFREP base (`…/ofrep/v1`); `/stream` is appended. */
  readonly url: string;
  /** Bearer token: a Supabase access token, GUARDIAN_ADMIN_TOKEN, or the OFREP key for `/ofrep/v1`. Or a function (called per connection, e.g. to refresh). */
  readonly token: string | (() => string | Promise<string>);
  /** Where flags are loaded from; default the admin API at `url` (server mode only). */
  readonly load?: FlagTransport;
  /** Injected fetch (default the global one). */
  readonly fetch?: typeof fetch;
  /** Longest wait between reconnects. Default 30000 ms. */
  readonly maxBackoffMs?: number;
  /** Injected timers (tests). */
  readonly setTimeout?: (fn: () => void, ms: number) => unknown;
  readonly clearTimeout?: (handle: unknown) => void;
}

interface StreamFlag {
  name: string;
  version: number;
  enabled?: boolean;
  rolloutPercentage?: number;
  bucketGroup?: string | null;
  guardState?: string;
  rollbackMessage?: string | null;
  rollbackUrgent?: boolean;
  description?: string;
  deleted?: true;
}

/** The public fields of a flag as the admin API sends them (in its list and on the stream). */
function publicRecord(f: StreamFlag): Omit<FlagRecord, 'targets'> {
  return {
    name: f.name,
    enabled: f.enabled === true,
    rolloutPercentage: Number(f.rolloutPercentage ?? 0),
    bucketGroup: f.bucketGroup ?? null,
    version: f.version,
    guardState: (f.guardState ?? 'watching') as GuardState,
    rollbackMessage: f.rollbackMessage ?? null,
    rollbackUrgent: f.rollbackUrgent === true,
    description: f.description ?? null,
  };
}

/** One parsed SSE block (`id`, `event`, `data`), or null for comments only. */
function parseBlock(block: string): { id?: string; event: string; data: string } | null {
  let id: string | undefined;
  let event = 'message';
  const data: string[] = [];
  let any = false;
  for (const raw of block.split(/\r?\n/)) {
    if (raw === '' || raw.startsWith(':')) continue;
    const i = raw.indexOf(':');
    const field = i < 0 ? raw : raw.slice(0, i);
    const value = i < 0 ? '' : raw.slice(i + 1).replace(/^ /, '');
    if (field === 'id') id = value;
    else if (field === 'event') event = value;
    else if (field === 'data') data.push(value);
    else continue;
    any = true;
  }
  return any ? { ...(id !== undefined ? { id } : {}), event, data: data.join('\n') } : null;
}

/**
 * Creates the stream transport.
 *
 * @example
 * const transport = streamTransport({ url: 'http://localhost:8787/api/v1', token: adminToken });
 */
export function streamTransport(options: StreamTransportOptions): FlagTransport {
  if (options === null || typeof options !== 'object' || typeof options.url !== 'string' || !/^https?:\/\//.test(options.url)) {
    throw new SdkError('INVALID_OPTION', 'streamTransport: options.url must be the http(s) URL of the guardian API (https://guardian.example.com/api/v1)');
  }
  if (typeof options.token !== 'string' && typeof options.token !== 'function') throw new SdkError('INVALID_OPTION', 'streamTransport: options.token is required (a bearer token)');
  if (typeof options.token === 'string' && options.token === '') throw new SdkError('INVALID_OPTION', 'streamTransport: options.token must not be empty');
  const base = options.url.replace(/\/+$/, '');
  const doFetch = options.fetch ?? ((input: RequestInfo | URL, init?: RequestInit) => globalThis.fetch(input, init));
  const setT = options.setTimeout ?? ((fn: () => void, ms: number) => globalThis.setTimeout(fn, ms));
  const clearT = options.clearTimeout ?? ((h: unknown) => globalThis.clearTimeout(h as ReturnType<typeof setTimeout>));
  const token = async (): Promise<string> => (typeof options.token === 'function' ? await options.token() : options.token);

  const getJson = async (path: string, signal?: AbortSignal): Promise<unknown> => {
    let res: Response;
    try {
      res = await doFetch(`${base}${path}`, { headers: { authorization: `Bearer ${await token()}`, accept: 'application/json' }, ...(signal ? { signal } : {}) });
    } catch (error) {
      throw new SdkError('TRANSPORT_FAILED', `GET ${path} failed: ${(error as Error)?.message ?? String(error)}`, { cause: error });
    }
    if (!res.ok) throw new SdkError('TRANSPORT_FAILED', `GET ${path} answered ${res.status}: ${(await res.text().catch(() => '')).slice(0, 300)}`);
    return res.json();
  };

  const loadFromApi = async (signal?: AbortSignal): Promise<readonly FlagRecord[]> => {
    const { flags } = (await getJson('/flags', signal)) as { flags: (StreamFlag & { targetCount: number })[] };
    return Promise.all(
      flags.map(async (f) => {
        const targets: string[] = [];
        for (let cursor: string | null = ''; f.targetCount > 0 && cursor !== null; ) {
          const page = (await getJson(`/flags/${encodeURIComponent(f.name)}/targets?limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, signal)) as { targets: string[]; nextCursor: string | null };
          targets.push(...page.targets);
          cursor = page.nextCursor;
        }
        return { ...publicRecord(f), targets };
      }),
    );
  };

  const subscribe = (listener: ChangeListener): (() => void) => {
    let stopped = false;
    let lastEventId: string | undefined;
    let attempt = 0;
    let timer: unknown = null;
    let abort: AbortController | null = null;

    const onMessage = (m: { id?: string; event: string; data: string }): void => {
      if (m.id !== undefined) lastEventId = m.id;
      if (m.event === 'reset') {
        // The server cannot replay what we missed: re-fetch everything.
        listener.status('live', 'reset');
        return;
      }
      if (m.event !== 'flag') return;
      let f: StreamFlag;
      try {
        f = JSON.parse(m.data) as StreamFlag;
      } catch {
        return;
      }
      if (typeof f.name !== 'string') return;
      if (f.deleted) {
        listener.change({ type: 'DELETE', name: f.name, version: typeof f.version === 'number' ? f.version : null, record: null });
        return;
      }
      listener.change({
        type: 'UPDATE',
        name: f.name,
        version: f.version,
        record: publicRecord(f),
      });
    };

    const connect = async (): Promise<void> => {
      abort = new AbortController();
      const res = await doFetch(`${base}/stream`, {
        headers: { authorization: `Bearer ${await token()}`, accept: 'text/event-stream', ...(lastEventId ? { 'last-event-id': lastEventId } : {}) },
        signal: abort.signal,
      });
      if (!res.ok || !res.body) throw new SdkError('TRANSPORT_FAILED', `GET /stream answered ${res.status}`);
      attempt = 0;
      // Connected: re-fetch (the rule after every (re)subscription).
      listener.status('live');
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += decoder.decode(value, { stream: true });
        let i: number;
        while ((i = buf.search(/\r?\n\r?\n/)) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i).replace(/^\r?\n\r?\n/, '');
          const m = parseBlock(block);
          if (m) onMessage(m);
        }
      }
      throw new SdkError('TRANSPORT_FAILED', 'the stream ended');
    };

    const loop = (): void => {
      if (stopped) return;
      connect().catch((error: unknown) => {
        if (stopped) return;
        listener.status('down', (error as Error)?.message ?? String(error));
        const wait = Math.min(options.maxBackoffMs ?? 30_000, 500 * 2 ** attempt++);
        timer = setT(() => {
          timer = null;
          loop();
        }, wait);
      });
    };
    loop();
    return () => {
      stopped = true;
      if (timer !== null) clearT(timer);
      abort?.abort();
    };
  };

  const load = options.load;
  return {
    ...(load?.loadAll ? { loadAll: (signal?: AbortSignal) => load.loadAll!(signal) } : load ? {} : { loadAll: loadFromApi }),
    ...(load?.loadMine ? { loadMine: (signal?: AbortSignal) => load.loadMine!(signal) } : {}),
    ...(load?.fingerprint ? { fingerprint: (signal?: AbortSignal) => load.fingerprint!(signal) } : {}),
    ...(load?.onAuthChange ? { onAuthChange: (cb: (userId: string | null) => void) => load.onAuthChange!(cb) } : {}),
    ...(load?.currentUserId ? { currentUserId: () => load.currentUserId!() } : {}),
    ...(load?.close ? { close: () => load.close!() } : {}),
    subscribe,
  };
}
