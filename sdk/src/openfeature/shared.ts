import { ErrorCode, ProviderNotReadyError, StandardResolutionReasons } from '@openfeature/core';
import type { ResolutionDetails } from '@openfeature/core';
import type { FlagEvaluation } from '../client/types.ts';

/** Maps an SDK evaluation to OpenFeature resolution details (reason and error code). */
export function toResolution(e: FlagEvaluation, defaultValue: boolean): ResolutionDetails<boolean> {
  if (e.reason === 'ERROR') {
    const errorCode =
      e.errorCode === 'FLAG_NOT_FOUND'
        ? ErrorCode.FLAG_NOT_FOUND
        : e.errorCode === 'PROVIDER_NOT_READY'
          ? ErrorCode.PROVIDER_NOT_READY
          : e.errorCode === 'INVALID_USER_ID'
            ? ErrorCode.TARGETING_KEY_MISSING
            : e.errorCode === 'INVALID_FLAG'
              ? ErrorCode.PARSE_ERROR
              : ErrorCode.GENERAL;
    return { value: defaultValue, reason: StandardResolutionReasons.ERROR, errorCode, errorMessage: `${e.flag}: ${e.errorCode ?? 'error'}` };
  }
  const reason =
    e.reason === 'DISABLED' ? StandardResolutionReasons.DISABLED
      : e.reason === 'TARGETING_MATCH' ? StandardResolutionReasons.TARGETING_MATCH
        : e.reason === 'SPLIT' ? StandardResolutionReasons.SPLIT
          : e.reason === 'CACHED' ? StandardResolutionReasons.CACHED
            : StandardResolutionReasons.UNKNOWN;
  return { value: e.value, reason, ...(e.version !== undefined ? { flagMetadata: { version: e.version } } : {}) };
}

/** Rollback Guardian flags are booleans: any other type is a TYPE_MISMATCH with the default. */
export function typeMismatch<T>(flagKey: string, defaultValue: T): ResolutionDetails<T> {
  return {
    value: defaultValue,
    reason: StandardResolutionReasons.ERROR,
    errorCode: ErrorCode.TYPE_MISMATCH,
    errorMessage: `${flagKey} is a boolean flag; use getBooleanValue / getBooleanDetails`,
  };
}

/** What the providers need from a client to report its health. */
export interface WatchedClient {
  readonly status: 'NOT_READY' | 'READY' | 'STALE' | 'ERROR';
  readonly feed: 'live' | 'down' | 'none';
  subscribe(listener: () => void): () => void;
  onChangeBatch(listener: (events: readonly { readonly flag: string }[]) => void): () => void;
}

/** The events a provider emits (server and web emitters both fit). */
export interface ProviderEventSink {
  configurationChanged(flagsChanged: string[]): void;
  stale(message: string): void;
  ready(): void;
}

/**
 * Follows a client for a provider: one `ConfigurationChanged` per batch of changes with the names
 * of the flags in it; `PROVIDER_STALE` when the client lost its change feed or serves last-known
 * values after a failed refresh, and `PROVIDER_READY` once it is fresh again. Returns the stop
 * function.
 */
export function watchClient(client: WatchedClient, sink: ProviderEventSink): () => void {
  // A feed that has not come up yet is not "lost": only a feed that was live and went down is.
  let sawLive = client.feed === 'live';
  const staleWhy = (): string | null => {
    if (client.feed === 'live') sawLive = true;
    if (client.status === 'STALE' || client.status === 'ERROR') return 'serving last-known flag values: the last refresh failed';
    return sawLive && client.feed === 'down' ? 'the flag change feed is down: changes arrive by polling until it is back' : null;
  };
  let stale = staleWhy() !== null;
  const offBatch = client.onChangeBatch((events) => sink.configurationChanged([...new Set(events.map((e) => e.flag))]));
  const offStore = client.subscribe(() => {
    const why = staleWhy();
    if (why !== null && !stale) sink.stale(why);
    if (why === null && stale && client.status === 'READY') sink.ready();
    stale = why !== null;
  });
  return () => {
    offBatch();
    offStore();
  };
}

/** `initialize()` of both providers: waits for the first load, or fails with a typed error. */
export async function startOrFail(client: { ready(): Promise<string> }): Promise<void> {
  const status = await client.ready();
  if (status === 'ERROR') {
    throw new ProviderNotReadyError('rollback-guardian: the first flag load failed and nothing is cached (see the client logger for the cause); the client keeps retrying and the provider turns READY when a load succeeds');
  }
}
