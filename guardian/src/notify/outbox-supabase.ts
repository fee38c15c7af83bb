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
    let res: { data: unknown; error: { message: string; code?: string; details?: string; hint?: string } | null; status?: number };
    try {
      res = await this.#client.rpc(name, args);
    } catch (err) {
      throw new GuardianError('STORE_UNREACHABLE', `outbox: ${name} failed: ${(err as Error).message}`, { cause: err });
    }
    if (res.error) {
      const unreachable = res.status === undefined || res.status === 0 || res.status >= 500;
      throw new GuardianError(unreachable ? 'STORE_UNREACHABLE' : 'STORE_CONFLICT', `outbox: ${name} failed: ${res.error.message}${res.error.hint ? ` (${res.error.hint})` : ''}`, {
        cause: res.error,
        details: { code: res.error.code, status: res.status },
      });
    }
    return res.data;
  }

  async claim(holder: string, limit: number, lockSeconds: number): Promise<OutboxRow[]> {
    checkClaimArgs(holder, limit, lockSeconds);
    const data = await this.#rpc('outbox_claim', { p_holder: holder, p_limit: limit, p_lock_seconds: lockSeconds });
    const rows = Array.isArray(data) ? (data as Raw[]).map(toOutboxRow) : [];
    return rows.sort((a, b) => a.nextAttemptAt.getTime() - b.nextAttemptAt.getTime() || Number(a.id) - Number(b.id));
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
