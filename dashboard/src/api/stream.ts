/**
 * The admin change stream (`GET /api/v1/stream`, Server-Sent Events) read with fetch and a
 * stream reader, since EventSource cannot send the Bearer header. Reconnects with backoff and
 * resumes from the last event id; a `reset` event means "re-fetch everything".
 */
import type { AdminApi } from './client.ts';
import type { FlagStreamEvent, RollbackStreamEvent } from './types.ts';

export type StreamMessage =
  | { readonly type: 'flag'; readonly data: FlagStreamEvent }
  | { readonly type: 'rollback_event'; readonly data: RollbackStreamEvent }
  | { readonly type: 'reset' };

export type StreamStatus = 'connecting' | 'live' | 'down';

export interface StreamHandlers {
  message(m: StreamMessage): void;
  status(s: StreamStatus, detail?: string): void;
}

/** One parsed SSE block. */
export interface SseFrame {
  readonly event: string;
  readonly data: string;
  readonly id: string | null;
}

/**
 * Splits SSE text into frames; returns the frames and the unfinished tail to keep.
 *
 * @example
 * const { frames, rest } = parseSse('event: flag\ndata: {}\nid: 3\n\n: heartbeat\n\n');
 */
export function parseSse(buffer: string): { frames: SseFrame[]; rest: string } {
  const frames: SseFrame[] = [];
  const text = buffer.replace(/\r\n?/g, '\n');
  const blocks = text.split('\n\n');
  const rest = blocks.pop() ?? '';
  for (const block of blocks) {
    let event = 'message';
    const data: string[] = [];
    let id: string | null = null;
    for (const line of block.split('\n')) {
      if (line === '' || line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon === -1 ? line : line.slice(0, colon);
      const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'event') event = value;
      else if (field === 'data') data.push(value);
      else if (field === 'id') id = value;
    }
    if (data.length > 0 || event !== 'message') frames.push({ event, data: data.join('\n'), id });
  }
  return { frames, rest };
}

function toMessage(frame: SseFrame): StreamMessage | null {
  if (frame.event === 'reset') return { type: 'reset' };
  if (frame.event !== 'flag' && frame.event !== 'rollback_event') return null;
  try {
    const data = JSON.parse(frame.data) as unknown;
    if (data === null || typeof data !== 'object') return null;
    return frame.event === 'flag' ? { type: 'flag', data: data as FlagStreamEvent } : { type: 'rollback_event', data: data as RollbackStreamEvent };
  } catch {
    return null;
  }
}

/**
 * Opens the stream and keeps it open until the returned function is called.
 *
 * @example
 * const close = openStream(api, { message: (m) => console.log(m), status: (s) => console.log(s) });
 */
export function openStream(api: AdminApi, handlers: StreamHandlers): () => void {
  let stopped = false;
  let lastId: string | null = null;
  let controller: AbortController | null = null;
  let attempt = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;

  async function connect(): Promise<void> {
    controller = new AbortController();
    handlers.status('connecting');
    try {
      const headers = await api.headers({ accept: 'text/event-stream', ...(lastId !== null ? { 'last-event-id': lastId } : {}) });
      const res = await fetch(`${api.base}/stream`, { headers, signal: controller.signal, cache: 'no-store' });
      if (!res.ok || res.body === null) throw new Error(`the stream answered ${res.status}`);
      attempt = 0;
      handlers.status('live');
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      while (!stopped) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        const { frames, rest } = parseSse(buffer);
        buffer = rest;
        for (const f of frames) {
          if (f.id !== null) lastId = f.id;
          const m = toMessage(f);
          if (m) handlers.message(m);
        }
      }
      if (!stopped) handlers.status('down', 'the stream closed');
    } catch (err) {
      if (stopped) return;
      handlers.status('down', (err as Error).message);
    }
    if (stopped) return;
    attempt += 1;
    timer = setTimeout(() => void connect(), Math.min(5_000, 250 * 2 ** Math.min(attempt, 5)));
  }

  void connect();
  return () => {
    stopped = true;
    if (timer !== undefined) clearTimeout(timer);
    controller?.abort();
  };
}
