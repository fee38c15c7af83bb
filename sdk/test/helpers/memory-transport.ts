import type { ChangeListener, EvaluatedFlagRecord, FlagChange, FlagRecord, FlagTransport, Timers } from '../../src/index.ts';

/** An in-memory FlagTransport twin: tests set rows, push changes and flip the subscription. */
export class MemoryTransport implements FlagTransport {
  rows: FlagRecord[] = [];
  mine: EvaluatedFlagRecord[] = [];
  fail: Error | null = null;
  loads = 0;
  listeners = new Set<ChangeListener>();
  authListeners = new Set<(u: string | null) => void>();
  userId: string | null = null;

  async loadAll(): Promise<readonly FlagRecord[]> {
    this.loads++;
    if (this.fail) throw this.fail;
    return this.rows.map((r) => ({ ...r }));
  }
  async loadMine(): Promise<readonly EvaluatedFlagRecord[]> {
    this.loads++;
    if (this.fail) throw this.fail;
    return this.mine.map((r) => ({ ...r }));
  }
  subscribe(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  onAuthChange(cb: (u: string | null) => void): () => void {
    this.authListeners.add(cb);
    return () => this.authListeners.delete(cb);
  }
  async currentUserId(): Promise<string | null> {
    return this.userId;
  }
  push(change: FlagChange): void {
    for (const l of this.listeners) l.change(change);
  }
  status(s: 'live' | 'down'): void {
    for (const l of this.listeners) l.status(s, 'test');
  }
  signIn(userId: string | null): void {
    this.userId = userId;
    for (const l of this.authListeners) l(userId);
  }
}

/** Manual timers: tests advance time explicitly, never wait on real timers. */
export class ManualTimers implements Timers {
  now = 0;
  private next = 1;
  private pending = new Map<number, { at: number; fn: () => void }>();
  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.next++;
    this.pending.set(id, { at: this.now + ms, fn });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.pending.delete(handle as number);
  }
  get size(): number {
    return this.pending.size;
  }
  /** Runs every timer due within `ms`, in order. */
  async advance(ms: number): Promise<void> {
    const end = this.now + ms;
    for (let guard = 0; guard < 10_000; guard++) {
      const due = [...this.pending.entries()].filter(([, t]) => t.at <= end).sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      this.pending.delete(due[0]);
      this.now = due[1].at;
      due[1].fn();
      await flush();
    }
    this.now = end;
  }
}

/** Lets pending promise callbacks run. */
export async function flush(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
  await new Promise((r) => setImmediate(r));
}

export function flag(name: string, over: Partial<FlagRecord> = {}): FlagRecord {
  return { name, enabled: true, rolloutPercentage: 100, bucketGroup: null, version: 1, guardState: 'watching', rollbackMessage: null, targets: [], ...over };
}

/** The public part of a record (what a change event carries). */
export function pub(record: FlagRecord): Omit<FlagRecord, 'targets'> {
  const { targets: _targets, ...rest } = record;
  return rest;
}
