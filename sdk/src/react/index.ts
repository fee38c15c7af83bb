/**
 * `@rollback-guardian/sdk/react`: `FlagsProvider`, `useFeatureFlag` and `useFeatureFlagDetails`
 * (react is a peer dependency). The hooks subscribe with `useSyncExternalStore`, so a rollback
 * re-renders at once. This entry imports the clients' TYPES only: no server code reaches a
 * browser bundle.
 *
 * Server rendering and hydration without a flicker: render on the server with the user's values
 * (`serverFlags.allValues(userId)`, or a client-mode client's `allValues()`), embed them in the
 * page, and hand the SAME object to `FlagsProvider`'s `snapshot` on the client. The server render
 * and the hydration pass both read it (so the markup matches), and the client keeps serving it
 * until its own flags are loaded; afterwards changes re-render as usual.
 *
 * @example
 * // server
 * const snapshot = serverFlags.allValues(user.id);
 * const html = renderToString(<FlagsProvider client={browserFlags} snapshot={snapshot}><App /></FlagsProvider>);
 * // client
 * hydrateRoot(el, <FlagsProvider client={flags} snapshot={window.__FLAGS__}><App /></FlagsProvider>);
 */
import { createContext, createElement, useCallback, useContext, useMemo, useSyncExternalStore } from 'react';
import type { ReactNode } from 'react';
import type { BrowserFlagClient } from '../client/browser.ts';
import type { ServerFlagClient } from '../client/server.ts';
import type { FlagEvaluation } from '../client/types.ts';

/** A client the hooks can read: client mode, or server mode with a fixed user id. */
type AnyClient = BrowserFlagClient | ServerFlagClient;

/**
 * Flag values rendered on the server, handed to the client for hydration.
 *
 * @example
 * const snapshot: FlagsSnapshot = { booking_agent_enabled: true };
 */
export type FlagsSnapshot = Readonly<Record<string, boolean>>;

interface FlagsContextValue {
  readonly client: AnyClient | null;
  readonly userId: string | null;
  readonly snapshot: FlagsSnapshot | null;
}

const FlagsContext = createContext<FlagsContextValue>({ client: null, userId: null, snapshot: null });

/**
 * Props of {@link FlagsProvider}.
 *
 * @example
 * const props: FlagsProviderProps = { client: flags, snapshot: { booking_agent_enabled: true }, children: null };
 */
export interface FlagsProviderProps {
  /**
   * A client-mode client, or a server-mode client plus `userId` (e.g. in a Node SSR tree), or
   * `null` to render from `snapshot` alone (a server render that has no client).
   */
  readonly client: AnyClient | null;
  /** The user to evaluate for with a server-mode client. */
  readonly userId?: string;
  /** Values rendered on the server (see the module's SSR pattern); served until the client is loaded. */
  readonly snapshot?: FlagsSnapshot;
  readonly children?: ReactNode;
}

/**
 * Makes a flag client available to `useFeatureFlag` below it.
 *
 * @example
 * createRoot(el).render(<FlagsProvider client={flags}><App /></FlagsProvider>);
 */
export function FlagsProvider(props: FlagsProviderProps): ReactNode {
  const { client, userId, snapshot } = props;
  const value = useMemo(() => ({ client, userId: userId ?? null, snapshot: snapshot ?? null }), [client, userId, snapshot]);
  return createElement(FlagsContext.Provider, { value }, props.children);
}

function isServerClient(client: AnyClient): client is ServerFlagClient {
  return typeof (client as Partial<ServerFlagClient>).flagNames === 'function';
}

function evaluateWith(ctx: FlagsContextValue, name: string, defaultValue: boolean): FlagEvaluation {
  const { client, userId, snapshot } = ctx;
  const fromSnapshot = snapshot !== null && typeof snapshot[name] === 'boolean' ? snapshot[name] : undefined;
  if (client === null || client.status === 'NOT_READY' || client.status === 'ERROR') {
    if (fromSnapshot !== undefined) return { flag: name, value: fromSnapshot, reason: 'CACHED' };
  }
  if (client === null) return { flag: name, value: defaultValue, reason: 'DEFAULT' };
  if (isServerClient(client)) {
    return userId === null ? { flag: name, value: defaultValue, reason: 'ERROR', errorCode: 'INVALID_USER_ID' } : client.evaluate(name, userId, defaultValue);
  }
  return client.evaluate(name, defaultValue);
}

function serverEvaluation(ctx: FlagsContextValue, name: string, defaultValue: boolean): FlagEvaluation {
  const v = ctx.snapshot?.[name];
  return typeof v === 'boolean' ? { flag: name, value: v, reason: 'CACHED' } : { flag: name, value: defaultValue, reason: 'DEFAULT' };
}

/** A snapshot as a string (stable for useSyncExternalStore); parsed back by the hook. */
function key(e: FlagEvaluation): string {
  return JSON.stringify([e.value, e.reason, e.errorCode ?? null, e.version ?? null, e.rollbackMessage ?? null, e.rollbackUrgent === true]);
}

/**
 * What {@link useFeatureFlagDetails} returns.
 *
 * @example
 * const { value, rollbackMessage } = useFeatureFlagDetails('booking_agent_enabled');
 */
export interface FeatureFlagDetails {
  readonly value: boolean;
  readonly reason: FlagEvaluation['reason'];
  readonly errorCode: FlagEvaluation['errorCode'] | null;
  readonly version: number | null;
  /** The flag's rollback message (plain text: render it as text, never as HTML) while it is rolled back. */
  readonly rollbackMessage: string | null;
  /** The flag is rolled back and that rollback was marked urgent (users were switched off without waiting for safe points). */
  readonly rollbackUrgent: boolean;
}

/**
 * The value of a flag and why, with its rollback message while it is rolled back; re-renders
 * when any of it changes. On the server (and while hydrating) it reads the provider's `snapshot`.
 *
 * @example
 * const { value, rollbackMessage } = useFeatureFlagDetails('booking_agent_enabled');
 * return <>{rollbackMessage && <Notice text={rollbackMessage} />}{value ? <AiButton /> : <ClassicButton />}</>;
 */
export function useFeatureFlagDetails(name: string, defaultValue = false): FeatureFlagDetails {
  const ctx = useContext(FlagsContext);
  const { client } = ctx;
  const subscribe = useCallback((onStoreChange: () => void) => (client ? client.subscribe(onStoreChange) : () => undefined), [client]);
  const getSnapshot = useCallback(() => key(evaluateWith(ctx, name, defaultValue)), [ctx, name, defaultValue]);
  const getServerSnapshot = useCallback(() => key(serverEvaluation(ctx, name, defaultValue)), [ctx, name, defaultValue]);
  const snap = useSyncExternalStore(subscribe, getSnapshot, getServerSnapshot);
  return useMemo(() => {
    const [value, reason, errorCode, version, rollbackMessage, rollbackUrgent] = JSON.parse(snap) as [
      boolean,
      FlagEvaluation['reason'],
      FlagEvaluation['errorCode'] | null,
      number | null,
      string | null,
      boolean,
    ];
    return { value, reason, errorCode, version, rollbackMessage, rollbackUrgent };
  }, [snap]);
}

/**
 * The current value of a flag for the provider's user; re-renders when it changes (rollbacks
 * included). Renders the provider's `snapshot` value on the server and while hydrating, else
 * `defaultValue` (default `false`) without a provider and until the flags are loaded.
 *
 * @example
 * const bookingOn = useFeatureFlag('booking_agent_enabled');
 */
export function useFeatureFlag(name: string, defaultValue = false): boolean {
  const ctx = useContext(FlagsContext);
  const { client } = ctx;
  const subscribe = useCallback((onStoreChange: () => void) => (client ? client.subscribe(onStoreChange) : () => undefined), [client]);
  const getSnapshot = useCallback(() => evaluateWith(ctx, name, defaultValue).value, [ctx, name, defaultValue]);
  const getServerSnapshot = useCallback(() => serverEvaluation(ctx, name, defaultValue).value, [ctx, name, defaultValue]);
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
