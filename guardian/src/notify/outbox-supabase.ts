/**
 * {@link OutboxStore} and {@link BlindnessStore} over supabase-js: each operation is one
 * `.rpc()` of the same SQL functions the direct store calls (PostgREST exposes them at
 * `POST /rest/v1/rpc/<name>`; only the service role may execute them).
 */
import type { SupabaseClient } from '@supabase/supabase-js';
import { GuardianError } from '../errors.ts';
import type { BacklogEntry, BlindnessStore, OutboxStore, SourceObservation, SourceTransition } from './outbox-store.ts';
import { checkClaimArgs, toBacklogEntry, toOutboxRow, toSourceTransition } from './outbox-store.ts';
import type { Channel, OutboxRow } from './types.ts';

type Raw = Record<string, unknown>;

interface RpcError {
  message: string;
  code?: string;
  details?: string | null;
  hint?: string | null;
}

/**
 * A failed `.rpc()` → GuardianError, classified like SqlOutboxStore's errors (outbox-store.ts) where
 * PostgREST passes the SQLSTATE through (its HTTP status is not used for that: PostgREST answers
 * 500 for a 40001 or 55000, which is a conflict, not an outage), and by transport otherwise: no
 * answer, a 5xx without a SQLSTATE, or a refused key are STORE_UNREACHABLE.
 */
function rpcFailure(name: string, error: RpcError, status: number | undefined): GuardianError {
  const code = error.code ?? '';
  const text = `outbox: ${name} failed: ${error.message}${error.hint ? ` (${error.hint})` : ''}`;
  const opts = { cause: error, details: { code: error.code, status } };
  if (status === undefined || status === 0) return new GuardianError('STORE_UNREACHABLE', `${text}. Check SUPABASE_URL.`, opts);
  if (status === 401 || status === 403 || code.startsWith('PGRST3')) {
    return new GuardianError('STORE_UNREACHABLE', `${text}. Supabase refused the key: check SUPABASE_SERVICE_ROLE_KEY (the service_role key, not the anon key).`, opts);
  }
  if (code === 'PGRST202' || code === '42883') {
    return new GuardianError('STORE_FAILED', `${text}. The database schema is missing or old: apply the migrations (supabase db push).`, opts);
  }
  if (/^(08\d\d\d|57P0[1-3])$/.test(code) || (status >= 500 && !/^[0-9A-Z]{5}$/.test(code))) return new GuardianError('STORE_UNREACHABLE', text, opts);
  return new GuardianError('STORE_CONFLICT', text, opts);
}

/** The slice of supabase-js this store uses (a real `SupabaseClient` fits). */
export type SupabaseRpcClient = Pick<SupabaseClient, 'rpc'>;

/**
 * The outbox through Supabase's REST API (service-role key).
 *
 * @example
 * const outbox = new SupabaseOutboxStore(createClient(config.supabase.url, config.supabase.serviceRoleKey));
 * const rows = await outbox.claim('worker-1', 20, 60);
 */
export class SupabaseOutboxStore implements OutboxStore, BlindnessStore {
  readonly #client: SupabaseRpcClient;

  constructor(client: SupabaseRpcClient) {
    this.#client = client;
  }

  async #rpc(name: string, args: Raw): Promise<unknown> {
    let res: { data: unknown; error: RpcError | null; status?: number };
    try {
      res = await this.#client.rpc(name, args);
    } catch (err) {
      throw new GuardianError('STORE_UNREACHABLE', `outbox: ${name} failed: ${(err as Error).message}`, { cause: err });
    }
    if (res.error) throw rpcFailure(name, res.error, res.status);
    return res.data;
  }

  async claim(holder: string, limit: number, lockSeconds: number): Promise<OutboxRow[]> {
    checkClaimArgs(holder, limit, lockSeconds);
    const data = await this.#rpc('outbox_claim', { p_holder: holder, p_limit: limit, p_lock_seconds: lockSeconds });
    const rows = Array.isArray(data) ? (data as Raw[]).map(toOutboxRow) : [];
    return rows.sort((a, b) => a.nextAttemptAt.getTime() - b.nextAttemptAt.getTime() || Number(a.id) - Number(b.id));
  }

  async markSending(id: string, holder: string): Promise<boolean> {
    return (await this.#rpc('outbox_mark_sending', { p_id: id, p_holder: holder })) === true;
  }

  async complete(id: string, holder: string): Promise<boolean> {
    return (await this.#rpc('outbox_complete', { p_id: id, p_holder: holder })) === true;
  }

  async fail(id: string, holder: string, error: string, nextAttemptAt: Date | null, giveUp: boolean): Promise<boolean> {
    const data = await this.#rpc('outbox_fail', {
      p_id: id,
      p_holder: holder,
      p_error: error,
      p_next_attempt_at: nextAttemptAt === null ? null : nextAttemptAt.toISOString(),
      p_give_up: giveUp,
    });
    return data === true;
  }

  async enqueue(topic: 'blindness' | 'recovery', payload: Readonly<Record<string, unknown>>, channels: readonly Channel[], dedupeKey: string): Promise<number> {
    return Number(await this.#rpc('outbox_enqueue', { p_topic: topic, p_payload: payload, p_channels: [...channels], p_dedupe_key: dedupeKey }));
  }

  async backlog(): Promise<BacklogEntry[]> {
    const data = await this.#rpc('outbox_backlog', {});
    return Array.isArray(data) ? (data as Raw[]).map(toBacklogEntry) : [];
  }

  async observeSource(o: SourceObservation): Promise<SourceTransition> {
    const data = await this.#rpc('guardian_source_observe', {
      p_source: o.source,
      p_at: o.at.toISOString(),
      p_ok: o.ok,
      p_error: o.error ?? null,
      p_blind_after_seconds: o.blindAfterMs / 1000,
      p_channels: [...o.channels],
    });
    return toSourceTransition(Array.isArray(data) ? (data[0] as Raw | undefined) : (data as Raw | undefined));
  }
}
