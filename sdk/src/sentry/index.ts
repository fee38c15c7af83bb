/**
 * `@rollback-guardian/sdk/sentry`: records every flag evaluation in Sentry, the way the
 * guardian's Sentry source counts them: `featureFlagsIntegration`'s `addFeatureFlag(name, value)`
 * (→ `contexts.flags` on errors, `flag.evaluation.<name>` on the active span) and a scope tag
 * `flag.<name>` = `'true'`/`'false'` (→ on errors AND transactions), and the evaluated user
 * (`scope.setUser({ id })`, unless the scope already has a user) so the guardian counts USERS
 * on both sides (`count_unique(user)`): one user flooding errors then moves a rate by one user,
 * not by thousands of events. Structural types only: no import of `@sentry/*`; pass your
 * `Sentry` namespace.
 *
 * @example
 * import * as Sentry from '@sentry/node';
 * Sentry.init({ dsn, integrations: [Sentry.featureFlagsIntegration()], tracesSampleRate: 0.1 });
 * const stop = trackFlagsInSentry(flags, Sentry);
 */
import { SdkError } from '../client/errors.ts';
import type { EvaluationListener } from '../client/types.ts';

/**
 * The part of the `Sentry` namespace this adapter uses (`@sentry/node`, `@sentry/browser`,
 * `@sentry/react-native`, `@sentry/deno` all fit).
 *
 * @example
 * const sentry: SentryLike = Sentry;
 */
export interface SentryLike {
  getClient(): { getIntegrationByName(name: string): unknown } | undefined;
  getCurrentScope(): SentryScopeLike;
}

/**
 * The part of a Sentry scope this adapter uses (`setUser`/`getUser` are optional: without them
 * only tags are set).
 *
 * @example
 * const scope: SentryScopeLike = Sentry.getCurrentScope();
 */
export interface SentryScopeLike {
  setTag(key: string, value: string): unknown;
  setUser?(user: { id: string } | null): unknown;
  getUser?(): { id?: unknown; email?: unknown; username?: unknown } | undefined | null;
}

/** A client whose evaluations can be observed (server or client mode). */
export interface ObservableFlags {
  onEvaluation(listener: EvaluationListener): () => void;
}

/**
 * Options of {@link trackFlagsInSentry}.
 *
 * @example
 * trackFlagsInSentry(flags, Sentry, { scope: () => Sentry.getIsolationScope() });
 */
export interface SentryTrackingOptions {
  /** The scope that receives the `flag.<name>` tags (default `sentry.getCurrentScope()`). */
  readonly scope?: () => SentryScopeLike;
  /** Set the `flag.<name>` tag (default true). */
  readonly tags?: boolean;
  /**
   * Set the evaluated user on the scope (`setUser({ id })`) when it has none yet (default true),
   * so Sentry can count users (`count_unique(user)`) on errors and transactions alike. A user the
   * app set itself (id, email or username) is left alone.
   */
  readonly user?: boolean;
}

interface FeatureFlagsIntegration {
  addFeatureFlag(name: string, value: unknown): void;
}

/**
 * Starts recording `flags`' evaluations in Sentry; returns the function that stops it. Never
 * throws at evaluation time (a Sentry failure is swallowed: telemetry must not break flags).
 *
 * @example
 * const stop = trackFlagsInSentry(flags, Sentry);
 */
export function trackFlagsInSentry(flags: ObservableFlags, sentry: SentryLike, options: SentryTrackingOptions = {}): () => void {
  if (flags === null || typeof flags !== 'object' || typeof flags.onEvaluation !== 'function') {
    throw new SdkError('INVALID_OPTION', 'trackFlagsInSentry: the first argument must be a flag client (createServerClient / createBrowserClient)');
  }
  if (sentry === null || typeof sentry !== 'object' || typeof sentry.getClient !== 'function' || typeof sentry.getCurrentScope !== 'function') {
    throw new SdkError('INVALID_OPTION', 'trackFlagsInSentry: the second argument must be the Sentry namespace (import * as Sentry from "@sentry/node")');
  }
  const scope = options.scope ?? (() => sentry.getCurrentScope());
  const tags = options.tags !== false;
  const user = options.user !== false;
  return flags.onEvaluation((name, value, userId) => {
    try {
      const integration = sentry.getClient()?.getIntegrationByName('FeatureFlags') as FeatureFlagsIntegration | undefined;
      integration?.addFeatureFlag(name, value);
      const s = scope();
      if (tags) s.setTag(`flag.${name}`, value ? 'true' : 'false');
      if (user && userId !== null && userId !== '' && typeof s.setUser === 'function') {
        const current = typeof s.getUser === 'function' ? s.getUser() : undefined;
        const has = (v: unknown) => (typeof v === 'string' && v !== '') || typeof v === 'number';
        if (!current || !(has(current.id) || has(current.email) || has(current.username))) s.setUser({ id: userId });
      }
    } catch {
      // Telemetry never breaks evaluation.
    }
  });
}
