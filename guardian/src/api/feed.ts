/**
 * What feeds the change stream: the `guardian_changes` notifications of the trigger in
 * supabase/migrations/20251203000100_change_notify.sql, heard by LISTEN on a dedicated
 * PostgreSQL connection (reconnected with backoff; a `reset` is published after a gap, since
 * notifications sent while disconnected are lost) or by PGlite's in-process `listen` on the
 * embedded database. Each payload becomes one stream message with the public fields it carries
 * (20251203010400_change_notify_fields.sql; never targets), in the order the notifications
 * arrived; a payload without them is completed by re-reading the row.
 */
import pg from 'pg';

import type { Logger } from '../logger.ts';
import type { Flag, Store } from '../store/types.ts';
import type { ChangeHub } from './hub.ts';

/** The channel of the change-notify trigger. */
export const CHANGE_CHANNEL = 'guardian_changes';

/**
 * A source of `guardian_changes` payloads.
 *
 * @example
 * const feed = pgChangeFeed({ connectionString: process.env.DATABASE_URL! });
 * await feed.start((payload) => console.log(payload), () => console.log('gap'));
 */
export interface ChangeFeed {
  /** Starts listening; `onGap` is called after a reconnect (notifications may have been lost). */
  start(onPayload: (payload: string) => void, onGap: () => void): Promise<void>;
  close(): Promise<void>;
}

/**
 * LISTEN on a dedicated pg connection, reconnecting (1 s, 2 s, … 30 s) when it drops.
 *
 * @example
 * pgChangeFeed({ connectionString: 'postgres://localhost/app' });
 */
export function pgChangeFeed(opts: { connectionString: string; logger?: Logger; maxBackoffMs?: number }): ChangeFeed {
  let client: pg.Client | undefined;
  let closed = false;
  let retry: ReturnType<typeof setTimeout> | undefined;
  let attempt = 0;
  const connect = async (onPayload: (p: string) => void, onGap: () => void, first: boolean): Promise<void> => {
    const c = new pg.Client({ connectionString: opts.connectionString, connectionTimeoutMillis: 10_000 });
    c.on('notification', (n) => {
      if (n.channel === CHANGE_CHANNEL && n.payload) onPayload(n.payload);
    });
    const again = (err?: Error): void => {
      if (closed || client !== c) return;
      client = undefined;
      opts.logger?.warn({ err }, 'change stream: lost the LISTEN connection; reconnecting');
      c.end().catch(() => {});
      schedule(onPayload, onGap);
    };
    c.on('error', again);
    c.on('end', () => again());
    await c.connect();
    await c.query(`listen ${CHANGE_CHANNEL}`);
    if (closed) {
      await c.end().catch(() => {});
      return;
    }
    client = c;
    attempt = 0;
    if (!first) onGap();
  };
  const schedule = (onPayload: (p: string) => void, onGap: () => void): void => {
    const wait = Math.min(opts.maxBackoffMs ?? 30_000, 1000 * 2 ** attempt++);
    retry = setTimeout(() => {
      connect(onPayload, onGap, false).catch((err: unknown) => {
        opts.logger?.warn({ err }, 'change stream: LISTEN reconnect failed');
        if (!closed) schedule(onPayload, onGap);
      });
    }, wait);
    retry.unref();
  };
  return {
    start: (onPayload, onGap) => connect(onPayload, onGap, true),
    async close() {
      closed = true;
      if (retry) clearTimeout(retry);
      const c = client;
      client = undefined;
      await c?.end().catch(() => {});
    },
  };
}

/** PGlite's `listen` (or anything shaped like it). */
export type ListenFn = (channel: string, cb: (payload: string) => void) => Promise<() => Promise<void>>;

/**
 * The embedded database's in-process notifications.
 *
 * @example
 * pgliteChangeFeed((ch, cb) => pglite.listen(ch, cb));
 */
export function pgliteChangeFeed(listen: ListenFn): ChangeFeed {
  let stop: (() => Promise<void>) | undefined;
  return {
    async start(onPayload) {
      stop = await listen(CHANGE_CHANNEL, onPayload);
    },
    async close() {
      await stop?.().catch(() => {});
      stop = undefined;
    },
  };
}

/** The public fields of a flag as the stream sends them (never targets). */
export function flagEvent(f: Flag): Record<string, unknown> {
  return {
    name: f.name,
    version: f.version,
    enabled: f.enabled,
    rolloutPercentage: f.rolloutPercentage,
    bucketGroup: f.bucketGroup,
    guardState: f.guardState,
    rollbackMessage: f.rollbackMessage,
    rollbackUrgent: f.rollbackUrgent,
    description: f.description,
    updatedAt: f.updatedAt.toISOString(),
    updatedBy: f.updatedBy,
  };
}

/**
 * Connects a feed to a hub: each payload becomes a `flag` or `rollback_event` message, in order.
 * Returns a function that stops it.
 *
 * @example
 * const stop = await pipeFeed(feed, hub, store, logger);
 */
export async function pipeFeed(feed: ChangeFeed, hub: ChangeHub, store: Store, logger?: Logger): Promise<() => Promise<void>> {
  let chain = Promise.resolve();
  /** Highest version published per flag: a re-read that already showed a later change is not sent twice. */
  const published = new Map<string, number>();
  const handle = async (raw: string): Promise<void> => {
    let p: Record<string, unknown>;
    try {
      p = JSON.parse(raw) as Record<string, unknown>;
    } catch {
      logger?.warn({ payload: raw.slice(0, 200) }, 'change stream: a notification that is not JSON was ignored');
      return;
    }
    if (p['table'] === 'feature_flags') {
      const name = String(p['name']);
      const version = Number(p['version']);
      if (p['op'] === 'DELETE') {
        published.delete(name);
        hub.publish('flag', { name, version, deleted: true });
        return;
      }
      const row = p['row'];
      if (row !== null && typeof row === 'object' && p['partial'] !== true) {
        // The row as committed (20251203010400_change_notify_fields.sql): every change, in order.
        const r = row as Record<string, unknown>;
        published.set(name, Math.max(version, published.get(name) ?? 0));
        hub.publish('flag', {
          name,
          version,
          enabled: r['enabled'] === true,
          rolloutPercentage: Number(r['rollout_percentage']),
          bucketGroup: (r['bucket_group'] as string | null) ?? null,
          guardState: String(r['guard_state']),
          rollbackMessage: (r['rollback_message'] as string | null) ?? null,
          rollbackUrgent: r['rollback_urgent'] === true,
          description: String(r['description'] ?? ''),
          updatedAt: new Date(String(r['updated_at'])).toISOString(),
          updatedBy: (r['updated_by'] as string | null) ?? null,
        });
        return;
      }
      // An older payload, or one too long to carry its text: re-read the row (a later change may
      // already show; the version check keeps one message per version at most).
      if ((published.get(name) ?? 0) >= version) return;
      const flag = await store.getFlag(name);
      if (!flag) return; // deleted since: its DELETE notification follows
      if ((published.get(name) ?? 0) >= flag.version) return;
      published.set(name, flag.version);
      hub.publish('flag', flagEvent(flag));
      return;
    }
    if (p['table'] === 'rollback_events') {
      const id = String(p['id']);
      // Older payloads carry no actor: re-read the event then.
      const e = typeof p['actor'] === 'string' ? undefined : await store.getEvent(id);
      hub.publish('rollback_event', {
        id,
        flag: e?.flag ?? String(p['flag']),
        kind: e?.kind ?? String(p['kind']),
        actor: e?.actor ?? String(p['actor'] ?? ''),
        ruleId: e ? e.ruleId : ((p['rule_id'] as string | null | undefined) ?? null),
        createdAt: (e?.createdAt ?? new Date(String(p['created_at'] ?? Date.now()))).toISOString(),
      });
    }
  };
  await feed.start(
    (payload) => {
      chain = chain.then(() => handle(payload)).catch((err: unknown) => logger?.warn({ err }, 'change stream: could not read a changed row'));
    },
    () => {
      chain = chain.then(() => {
        published.clear();
        hub.publish('reset', {});
      });
    },
  );
  return async () => {
    await feed.close();
    await chain;
  };
}
