/**
 * The outbox's storage contract and its SQL implementation (node-postgres and PGlite through
 * {@link SqlClient}). Every operation is one call of a SQL function from the migrations
 * `20251125030*` (`outbox_claim`, `outbox_complete`, `outbox_fail`, `outbox_enqueue`,
 * `outbox_backlog`, `guardian_source_observe`), so the Supabase variant (`.rpc()`) behaves the same.
 */
import { GuardianError } from '../errors.ts';
import type { SqlClient } from '../store/sql.ts';
import type { Channel, OutboxRow, OutboxStatus, OutboxTopic } from './types.ts';

/** Undelivered rows of one channel and status. */
export interface BacklogEntry {
  readonly channel: Channel;
  readonly status: Exclude<OutboxStatus, 'delivered'>;
  readonly count: number;
  readonly oldestCreatedAt: Date | null;
}

/** One poll of a metric source, for {@link BlindnessStore.observeSource}. */
export interface SourceObservation {
  readonly source: string;
  readonly at: Date;
  /** True when the source gave data this poll. */
  readonly ok: boolean;
  /** Why not (stored as `last_error`, shown in the alert). */
  readonly error?: string;
  /** How long without data before ONE blindness alert. */
  readonly blindAfterMs: number;
  /** Channels that get the alert (empty: state is tracked, nothing is sent). */
  readonly channels: readonly Channel[];
}

/**
 * What an observation changed: `blind` (alert enqueued now), `recovered` (recovery enqueued),
 * `ok`, `failing` (no data, not long enough yet) or `still_blind` (already alerted).
 */
export interface SourceTransition {
  readonly transition: 'blind' | 'recovered' | 'ok' | 'failing' | 'still_blind';
  readonly blindSince: Date | null;
  readonly lastOkAt: Date | null;
  /** Outbox rows written by this call. */
  readonly alertsWritten: number;
}

/**
 * The outbox as the deliverer needs it.
 *
 * @example
 * const rows = await store.claim(holder, 20, 60);
 * for (const row of rows) await store.complete(row.id, holder);
 */
export interface OutboxStore {
  /** Claims up to `limit` due rows (also those whose lock expired) for `lockSeconds`; each claim counts as an attempt. */
  claim(holder: string, limit: number, lockSeconds: number): Promise<OutboxRow[]>;
  /**
   * Records that the held row's send begins now (just before the POST / SMTP transaction); false
   * when `holder` no longer holds it. After a crash past this point the row is never resent: the
   * next claim sets it `unconfirmed`.
   */
  markSending(id: string, holder: string): Promise<boolean>;
  /** Marks a held row delivered; false when `holder` no longer holds it. */
  complete(id: string, holder: string): Promise<boolean>;
  /** Records a failed attempt: back to pending until `nextAttemptAt`, or failed for good when `giveUp`. */
  fail(id: string, holder: string, error: string, nextAttemptAt: Date | null, giveUp: boolean): Promise<boolean>;
  /** Enqueues a blindness/recovery alert on each channel, idempotent by `dedupeKey`; returns rows written. */
  enqueue(topic: Exclude<OutboxTopic, 'rollback_event'>, payload: Readonly<Record<string, unknown>>, channels: readonly Channel[], dedupeKey: string): Promise<number>;
  /** Undelivered rows per channel and status. */
  backlog(): Promise<BacklogEntry[]>;
}

/**
 * Per-source health and its blindness/recovery alerts (`guardian_source_observe`).
 *
 * @example
 * const t = await store.observeSource({ source: 'sentry', at: new Date(), ok: false, error: 'HTTP 503', blindAfterMs: 600_000, channels: ['slack'] });
 */
export interface BlindnessStore {
  observeSource(observation: SourceObservation): Promise<SourceTransition>;
}

type Raw = Record<string, unknown>;

function asDate(v: unknown): Date | null {
  if (v === null || v === undefined) return null;
  if (v instanceof Date) return v;
  const d = new Date(String(v));
  return Number.isNaN(d.getTime()) ? null : d;
}

function asId(v: unknown): string {
  return typeof v === 'bigint' || typeof v === 'number' ? v.toString() : String(v);
}

function asPayload(v: unknown): Readonly<Record<string, unknown>> {
  if (typeof v === 'string') {
    try {
      return JSON.parse(v) as Record<string, unknown>;
    } catch {
      return {};
    }
  }
  return v !== null && typeof v === 'object' ? (v as Record<string, unknown>) : {};
}

/**
 * Maps a raw `notification_outbox` row (pg, PGlite or PostgREST JSON) to an {@link OutboxRow}.
 *
 * @example
 * const row = toOutboxRow((await sql.query('select * from notification_outbox limit 1')).rows[0]!);
 */
export function toOutboxRow(r: Raw): OutboxRow {
  return {
    id: asId(r['id']),
    eventId: r['event_id'] === null || r['event_id'] === undefined ? null : asId(r['event_id']),
    topic: String(r['topic']) as OutboxTopic,
    payload: asPayload(r['payload']),
    channel: String(r['channel']) as Channel,
    status: String(r['status']) as OutboxStatus,
    attempts: Number(r['attempts']),
    nextAttemptAt: asDate(r['next_attempt_at']) ?? new Date(0),
    lockedUntil: asDate(r['locked_until']),
    lockedBy: r['locked_by'] === null || r['locked_by'] === undefined ? null : String(r['locked_by']),
    lastError: r['last_error'] === null || r['last_error'] === undefined ? null : String(r['last_error']),
    deliveredAt: asDate(r['delivered_at']),
    createdAt: asDate(r['created_at']) ?? new Date(0),
    dedupeKey: String(r['dedupe_key']),
  };
}

/** Maps a raw `outbox_backlog()` row. */
export function toBacklogEntry(r: Raw): BacklogEntry {
  return {
    channel: String(r['channel']) as Channel,
    status: String(r['status']) as BacklogEntry['status'],
    count: Number(r['count']),
    oldestCreatedAt: asDate(r['oldest_created_at']),
  };
}

/** Maps a raw `guardian_source_observe()` row. */
export function toSourceTransition(r: Raw | undefined): SourceTransition {
  return {
    transition: String(r?.['transition'] ?? 'ok') as SourceTransition['transition'],
    blindSince: asDate(r?.['blind_since']),
    lastOkAt: asDate(r?.['last_ok_at']),
    alertsWritten: Number(r?.['alerts_written'] ?? 0),
  };
}

/** Validates the arguments shared by both implementations (clear errors before any SQL). */
export function checkClaimArgs(holder: string, limit: number, lockSeconds: number): void {
  if (holder.trim() === '') throw new GuardianError('BAD_ARGUMENT', 'outbox claim: holder must be a non-empty worker id');
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new GuardianError('BAD_ARGUMENT', `outbox claim: limit must be an integer 1..1000, got ${limit}`);
  if (!Number.isInteger(lockSeconds) || lockSeconds < 1) throw new GuardianError('BAD_ARGUMENT', `outbox claim: lockSeconds must be an integer ≥ 1, got ${lockSeconds}`);
}

function storeFailure(what: string, err: unknown): GuardianError {
  const e = err as { code?: string; message?: string };
  const unreachable = typeof e.code === 'string' && /^(ECONNREFUSED|ENOTFOUND|ETIMEDOUT|ECONNRESET|57P0[1-3]|08\d\d\d)$/.test(e.code);
  return new GuardianError(unreachable ? 'STORE_UNREACHABLE' : 'STORE_CONFLICT', `outbox: ${what} failed: ${e.message ?? String(err)}`, { cause: err });
}

/**
 * {@link OutboxStore} and {@link BlindnessStore} over a {@link SqlClient} (pg Pool or PGlite).
 *
 * @example
 * const outbox = new SqlOutboxStore(pgSqlClient(new pg.Pool({ connectionString: config.databaseUrl })));
 * console.log(await outbox.backlog());
 */
export class SqlOutboxStore implements OutboxStore, BlindnessStore {
  readonly #sql: SqlClient;

  constructor(sql: SqlClient) {
    this.#sql = sql;
  }

  async #q(what: string, text: string, params: readonly unknown[]): Promise<Raw[]> {
    try {
      return (await this.#sql.query<Raw>(text, params)).rows;
    } catch (err) {
      throw storeFailure(what, err);
    }
  }

  async claim(holder: string, limit: number, lockSeconds: number): Promise<OutboxRow[]> {
    checkClaimArgs(holder, limit, lockSeconds);
    const rows = await this.#q('claim', 'select * from public.outbox_claim($1, $2, $3)', [holder, limit, lockSeconds]);
    return rows.map(toOutboxRow).sort((a, b) => a.nextAttemptAt.getTime() - b.nextAttemptAt.getTime() || Number(a.id) - Number(b.id));
  }

  async markSending(id: string, holder: string): Promise<boolean> {
    const rows = await this.#q('mark sending', 'select public.outbox_mark_sending($1::bigint, $2) as done', [id, holder]);
    return rows[0]?.['done'] === true;
  }

  async complete(id: string, holder: string): Promise<boolean> {
    const rows = await this.#q('complete', 'select public.outbox_complete($1::bigint, $2) as done', [id, holder]);
    return rows[0]?.['done'] === true;
  }

  async fail(id: string, holder: string, error: string, nextAttemptAt: Date | null, giveUp: boolean): Promise<boolean> {
    const rows = await this.#q('fail', 'select public.outbox_fail($1::bigint, $2, $3, $4::timestamptz, $5) as done', [
      id,
      holder,
      error,
      nextAttemptAt === null ? null : nextAttemptAt.toISOString(),
      giveUp,
    ]);
    return rows[0]?.['done'] === true;
  }

  async enqueue(topic: 'blindness' | 'recovery', payload: Readonly<Record<string, unknown>>, channels: readonly Channel[], dedupeKey: string): Promise<number> {
    const rows = await this.#q('enqueue', 'select public.outbox_enqueue($1, $2::jsonb, $3::text[], $4) as written', [topic, JSON.stringify(payload), [...channels], dedupeKey]);
    return Number(rows[0]?.['written'] ?? 0);
  }

  async backlog(): Promise<BacklogEntry[]> {
    return (await this.#q('backlog', 'select * from public.outbox_backlog()', [])).map(toBacklogEntry);
  }

  async observeSource(o: SourceObservation): Promise<SourceTransition> {
    const rows = await this.#q('observe source', 'select * from public.guardian_source_observe($1, $2::timestamptz, $3, $4, $5::double precision, $6::text[])', [
      o.source,
      o.at.toISOString(),
      o.ok,
      o.error ?? null,
      o.blindAfterMs / 1000,
      [...o.channels],
    ]);
    return toSourceTransition(rows[0]);
  }
}
