/**
 * `@rollback-guardian/sdk/posthog`: puts `$feature/<name>` (and `$active_feature_flags`) on the
 * events PostHog captures, `$exception` included, so the guardian's HogQL query can split users
 * by flag value. posthog-node only adds flag properties when asked; this adapter makes sure they
 * are there. Structural types only: no import of posthog-node or posthog-js.
 *
 * @example
 * import { PostHog } from 'posthog-node';
 * const posthog = new PostHog(key, { host });
 * instrumentPostHog(posthog, flags); // capture() and captureException() now carry $feature/* for the distinctId
 */
import { SdkError } from '../client/errors.ts';

/** Server mode: all values for a user. */
interface ServerValues {
  allValues(userId: string): Record<string, boolean>;
}
/** Client mode: all values of the signed-in user, and a change stream. */
interface ClientValues {
  allValues(): Record<string, boolean>;
  subscribe(listener: () => void): () => void;
}

/**
 * The posthog-node methods this adapter wraps (any subset that exists).
 *
 * @example
 * const target: PostHogNodeLike = new PostHog(key);
 */
export interface PostHogNodeLike {
  capture(props: { distinctId?: string; event: string; properties?: Record<string, unknown> }): unknown;
  captureImmediate?(props: { distinctId?: string; event: string; properties?: Record<string, unknown> }): Promise<unknown>;
  captureException?(error: unknown, distinctId?: string, additionalProperties?: Record<string | number, unknown>, ...rest: unknown[]): unknown;
  captureExceptionImmediate?(error: unknown, distinctId?: string, additionalProperties?: Record<string | number, unknown>, ...rest: unknown[]): Promise<unknown>;
}

/**
 * posthog-js (browser): super properties.
 *
 * @example
 * const target: PostHogJsLike = posthog;
 */
export interface PostHogJsLike {
  register(properties: Record<string, unknown>): void;
}

/**
 * The `$feature/<name>` properties (and `$active_feature_flags`) for a set of values.
 *
 * @example
 * flagProperties({ a: true, b: false }); // { '$feature/a': true, '$feature/b': false, $active_feature_flags: ['a'] }
 */
export function flagProperties(values: Record<string, boolean>): Record<string, unknown> {
  const props: Record<string, unknown> = {};
  const active: string[] = [];
  for (const [name, value] of Object.entries(values)) {
    props[`$feature/${name}`] = value;
    if (value) active.push(name);
  }
  props['$active_feature_flags'] = active;
  return props;
}

function valuesFor(flags: ServerValues | ClientValues, distinctId: string | undefined): Record<string, boolean> {
  try {
    // Client mode's allValues() takes no argument; server mode's takes the user id.
    if (flags.allValues.length === 0) return (flags as ClientValues).allValues();
    return typeof distinctId === 'string' ? (flags as ServerValues).allValues(distinctId) : {};
  } catch {
    return {};
  }
}

/**
 * Makes every event `posthog` captures carry the flag values of its `distinctId` (server mode:
 * evaluated locally for that id; client mode: the signed-in user's). Properties the caller set
 * win. With posthog-js it registers them as super properties and re-registers on every change.
 * Returns the function that undoes it.
 *
 * @example
 * const undo = instrumentPostHog(posthog, flags);
 */
export function instrumentPostHog(posthog: PostHogNodeLike | PostHogJsLike, flags: ServerValues | ClientValues): () => void {
  if (flags === null || typeof flags !== 'object' || typeof flags.allValues !== 'function') {
    throw new SdkError('INVALID_OPTION', 'instrumentPostHog: the second argument must be a flag client (createServerClient / createBrowserClient)');
  }
  // Client mode (one user per process, e.g. posthog-js in a browser): super properties, kept
  // up to date. Server mode (many users): every capture gets its own distinctId's values.
  const clientMode = flags.allValues.length === 0 && 'subscribe' in flags;
  if (clientMode && posthog !== null && typeof posthog === 'object' && 'register' in posthog && typeof posthog.register === 'function') {
    const js = posthog;
    const apply = (): void => js.register(flagProperties((flags as ClientValues).allValues()));
    apply();
    return flags.subscribe(apply);
  }
  if (posthog === null || typeof posthog !== 'object' || typeof (posthog as PostHogNodeLike).capture !== 'function') {
    throw new SdkError('INVALID_OPTION', 'instrumentPostHog: the first argument must be a posthog-node PostHog instance or posthog-js');
  }
  const node = posthog as PostHogNodeLike;
  const originals = {
    capture: node.capture,
    captureImmediate: node.captureImmediate,
    captureException: node.captureException,
  };
  type Props = { distinctId?: string; event: string; properties?: Record<string, unknown> };
  const withFlags = (p: Props): Props => (p && typeof p === 'object' ? { ...p, properties: { ...flagProperties(valuesFor(flags, p.distinctId)), ...p.properties } } : p);
  node.capture = function (this: unknown, p: Props) {
    return originals.capture.call(this, withFlags(p));
  };
  if (originals.captureImmediate) {
    const orig = originals.captureImmediate;
    node.captureImmediate = function (this: unknown, p: Props) {
      return orig.call(this, withFlags(p));
    };
  }
  if (originals.captureException) {
    const orig = originals.captureException;
    node.captureException = function (this: unknown, error: unknown, distinctId?: string, extra?: Record<string | number, unknown>, ...rest: unknown[]) {
      return orig.call(this, error, distinctId, { ...flagProperties(valuesFor(flags, distinctId)), ...extra }, ...rest);
    };
  }
  // captureExceptionImmediate needs no wrapper: it sends through this.captureImmediate (wrapped above).
  return () => {
    node.capture = originals.capture;
    if (originals.captureImmediate) node.captureImmediate = originals.captureImmediate;
    if (originals.captureException) node.captureException = originals.captureException;
  };
}
