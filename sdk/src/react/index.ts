/**
 * `@rollback-guardian/sdk/react`: `FlagsProvider` and `useFeatureFlag` (react is a peer
 * dependency). The hook subscribes with `useSyncExternalStore`, so a rollback re-renders at once;
 * on the server (SSR) it renders the default.
 *
 * @example
 * <FlagsProvider client={flags}><App /></FlagsProvider>
 * function BetaBadge() { return useFeatureFlag('ai_beta_users') ? <Badge /> : null; }
 */
import { createContext, createElement, useCallback, useContext, useSyncExternalStore } from 'react';
import type { ReactNode } from 'react';
import type { BrowserFlagClient } from '../client/browser.ts';
import { ServerFlagClient } from '../client/server.ts';

/** A client the hooks can read: client mode, or server mode with a fixed user id. */
type AnyClient = BrowserFlagClient | ServerFlagClient;

interface FlagsContextValue {
  readonly client: AnyClient | null;
  readonly userId: string | null;
}

const FlagsContext = createContext<FlagsContextValue>({ client: null, userId: null });

/**
 * Props of {@link FlagsProvider}.
 *
 * @example
 * const props: FlagsProviderProps = { client: flags, children: null };
 */
export interface FlagsProviderProps {
  /** A client-mode client, or a server-mode client plus `userId` (e.g. in a Node SSR tree). */
  readonly client: AnyClient;
  /** The user to evaluate for with a server-mode client. */
  readonly userId?: string;
  readonly children?: ReactNode;
}

/**
 * Makes a flag client available to `useFeatureFlag` below it.
 *
 * @example
 * createRoot(el).render(<FlagsProvider client={flags}><App /></FlagsProvider>);
 */
export function FlagsProvider(props: FlagsProviderProps): ReactNode {
  return createElement(FlagsContext.Provider, { value: { client: props.client, userId: props.userId ?? null } }, props.children);
}

function read(client: AnyClient | null, userId: string | null, name: string, defaultValue: boolean): boolean {
  if (client === null) return defaultValue;
  if (client instanceof ServerFlagClient) {
    // Server mode: needs a user id.
    return userId === null ? defaultValue : client.isEnabled(name, userId, defaultValue);
  }
  return client.isEnabled(name, defaultValue);
}

/**
 * The current value of a flag for the provider's user; re-renders when it changes (rollbacks
 * included). Renders `defaultValue` (default `false`) on the server snapshot, without a
 * provider, and until the flags are loaded.
 *
 * @example
 * const bookingOn = useFeatureFlag('booking_agent_enabled');
 */
export function useFeatureFlag(name: string, defaultValue = false): boolean {
  const { client, userId } = useContext(FlagsContext);
  const subscribe = useCallback((onStoreChange: () => void) => (client ? client.subscribe(onStoreChange) : () => undefined), [client]);
  const getSnapshot = useCallback(() => read(client, userId, name, defaultValue), [client, userId, name, defaultValue]);
  const getServerSnapshot = useCallback(() => defaultValue, [defaultValue]);
  return useSyncExternalStore(subscribe, getSnapshot, getServerSnapshot);
}

/**
 * The flag client from the nearest {@link FlagsProvider} (`null` without one), e.g. for
 * `onRollback` in an effect.
 *
 * @example
 * const flags = useFlagsClient();
 * useEffect(() => flags?.onRollback((e) => toast(e.message)), [flags]);
 */
export function useFlagsClient(): AnyClient | null {
  return useContext(FlagsContext).client;
}
