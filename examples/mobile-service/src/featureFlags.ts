/**
 * mobile/src/services/featureFlags.ts, React Native style: one flag service for the app, over the
 * app's supabase-js client (anon key + the user's session). Last-known values are kept in
 * AsyncStorage (`@react-native-async-storage/async-storage`, or anything with the same getItem /
 * setItem), so the app starts with them offline and refreshes when the network is back. A rollback
 * is announced BEFORE the feature switches off, so the screen can save what the user typed.
 *
 * @example
 * import AsyncStorage from '@react-native-async-storage/async-storage';
 * export const featureFlags = createFeatureFlagService({ supabase, storage: AsyncStorage });
 * if (featureFlags.isEnabled('booking_agent_enabled')) navigation.navigate('AiBooking');
 */
import type { SupabaseClient } from '@supabase/supabase-js';
import { createBrowserClient } from '@rollback-guardian/sdk';
import type { BrowserFlagClient, ClientStatus, RollbackEvent, StorageAdapter } from '@rollback-guardian/sdk';
import { supabaseTransport } from '@rollback-guardian/sdk/supabase';

/** AsyncStorage's shape (promises only). */
export interface AsyncStorageLike extends StorageAdapter {
  getItem(key: string): Promise<string | null>;
  setItem(key: string, value: string): Promise<void>;
}

/** What screens use. */
export interface FeatureFlagService {
  /** Resolves when values are there (from the network or from storage), or after `timeoutMs`. */
  ready(timeoutMs?: number): Promise<ClientStatus>;
  isEnabled(flag: string): boolean;
  /** Where the current values come from: `network`, `storage` (last-known, offline start) or `none`. */
  source(): 'network' | 'storage' | 'none';
  /** Re-renders on changes (for useSyncExternalStore). */
  subscribe(listener: () => void): () => void;
  /** Called before a rolled-back feature switches off; may save work (bounded by the SDK). */
  onRollback(listener: (event: RollbackEvent) => unknown): () => void;
  close(): Promise<void>;
}

/** Creates the app's flag service (create it once, at start-up). */
export function createFeatureFlagService(options: { readonly supabase: SupabaseClient; readonly storage: AsyncStorageLike; readonly pollIntervalMs?: number }): FeatureFlagService {
  const client: BrowserFlagClient = createBrowserClient({
    transport: supabaseTransport(options.supabase),
    storage: options.storage,
    storageKey: 'featureFlags.v1',
    ...(options.pollIntervalMs === undefined ? {} : { pollIntervalMs: options.pollIntervalMs }),
  });
  return {
    ready: (timeoutMs) => client.ready(timeoutMs),
    isEnabled: (flag) => client.isEnabled(flag, false),
    source: () => {
      const names = Object.keys(client.allValues());
      if (names.length === 0) return 'none';
      return client.evaluate(names[0]!).reason === 'CACHED' ? 'storage' : 'network';
    },
    subscribe: (listener) => client.subscribe(listener),
    onRollback: (listener) => client.onRollback(listener),
    close: () => client.close(),
  };
}
