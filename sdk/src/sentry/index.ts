/**
 * `@rollback-guardian/sdk/sentry`: records every flag evaluation in Sentry, the way the
 * guardian's Sentry source counts them: `featureFlagsIntegration`'s `addFeatureFlag(name, value)`
 * (→ `contexts.flags` on errors, `flag.evaluation.<name>` on the active span) and a scope tag
 * `flag.<name>` = `'true'`/`'false'` (→ on errors AND transactions). Structural types only: no
 * import of `@sentry/*`; pass your `Sentry` namespace.
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
  getCurrentScope(): { setTag(key: string, value: string): unknown };
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
  readonly scope?: () => { setTag(key: string, value: string): unknown };
  /** Set the `flag.<name>` tag (default true). */
  readonly tags?: boolean;
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
  return flags.onEvaluation((name, value) => {
    try {
      const integration = sentry.getClient()?.getIntegrationByName('FeatureFlags') as FeatureFlagsIntegration | undefined;
      integration?.addFeatureFlag(name, value);
      if (tags) scope().setTag(`flag.${name}`, value ? 'true' : 'false');
    } catch {
      // Telemetry never breaks evaluation.
    }
  });
}
