/**
 * One change stream per signed-in page, shared by every component: `useLiveMessages` hears each
 * flag and rollback event; `useStreamStatus` tells whether changes are flowing.
 */
import { createContext, useContext, useEffect, useRef, useState, useSyncExternalStore } from 'react';
import type { ReactNode } from 'react';
import type { AdminApi } from './api/client.ts';
import { openStream } from './api/stream.ts';
import type { StreamMessage, StreamStatus } from './api/stream.ts';

export class LiveHub {
  private readonly listeners = new Set<(m: StreamMessage) => void>();
  private readonly statusListeners = new Set<() => void>();
  status: StreamStatus = 'connecting';
  detail = '';
  private everLive = false;

  emit(m: StreamMessage): void {
    for (const l of this.listeners) l(m);
  }
  setStatus(s: StreamStatus, detail = ''): void {
    const wasLive = this.status === 'live';
    this.status = s;
    this.detail = detail;
    for (const l of this.statusListeners) l();
    // Back after a gap: whatever was missed may not be replayable, so everyone re-fetches
    // (not on the first connection: the pages have just loaded).
    if (s === 'live' && !wasLive && this.everLive) this.emit({ type: 'reset' });
    if (s === 'live') this.everLive = true;
  }
  on(l: (m: StreamMessage) => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
  onStatus(l: () => void): () => void {
    this.statusListeners.add(l);
    return () => this.statusListeners.delete(l);
  }
}

const LiveContext = createContext<LiveHub>(new LiveHub());

export function LiveProvider(props: { api: AdminApi; children: ReactNode }): ReactNode {
  const [hub] = useState(() => new LiveHub());
  useEffect(() => openStream(props.api, { message: (m) => hub.emit(m), status: (s, d) => hub.setStatus(s, d) }), [props.api, hub]);
  return <LiveContext.Provider value={hub}>{props.children}</LiveContext.Provider>;
}

export function useLiveHub(): LiveHub {
  return useContext(LiveContext);
}

/** Calls `handler` with every stream message (the latest handler, without resubscribing). */
export function useLiveMessages(handler: (m: StreamMessage) => void): void {
  const hub = useContext(LiveContext);
  const ref = useRef(handler);
  useEffect(() => {
    ref.current = handler;
  });
  useEffect(() => hub.on((m) => ref.current(m)), [hub]);
}

export function useStreamStatus(): { status: StreamStatus; detail: string } {
  const hub = useContext(LiveContext);
  const status = useSyncExternalStore(
    (l) => hub.onStatus(l),
    () => hub.status,
  );
  return { status, detail: hub.detail };
}
