/**
 * The guardian's own error reporting: when `SENTRY_DSN` is set, every error the guardian logs
 * (a crashed cycle, a store it cannot reach, a rules reload that failed, an alert it could not
 * deliver) and every uncaught exception goes to that Sentry project. Secrets are scrubbed from
 * events before they leave the process, like from log lines.
 */
import * as Sentry from '@sentry/node';

import { redactText } from './logger.ts';

/**
 * Where the guardian's own errors go.
 *
 * @example
 * const telemetry = initTelemetry({ dsn: config.sentryDsn, secrets });
 * telemetry.captureError(new Error('cycle failed'), { part: 'cycle' });
 * await telemetry.flush(2000);
 */
export interface Telemetry {
  /** True when errors are sent somewhere (a DSN is set). */
  readonly enabled: boolean;
  /** Reports one error with context (tags and extra data). Never throws. */
  captureError(err: unknown, context?: Readonly<Record<string, unknown>>): void;
  /** Waits up to `timeoutMs` for queued events to be sent. */
  flush(timeoutMs?: number): Promise<void>;
}

/** Telemetry that sends nothing (no DSN). */
export const noTelemetry: Telemetry = {
  enabled: false,
  captureError: () => {},
  flush: async () => {},
};

/** Options of {@link initTelemetry}. */
export interface TelemetryOptions {
  /** Sentry DSN; undefined → {@link noTelemetry}. */
  readonly dsn: string | undefined;
  /** Secret values scrubbed from every event (read at send time, so later additions count). */
  readonly secrets: Iterable<string>;
  /** Release name on events. Default `rollback-guardian@<version>`. */
  readonly release?: string;
  /** Environment on events. Default `production`. */
  readonly environment?: string;
}

function scrub(value: unknown, secrets: Iterable<string>, depth = 0): unknown {
  if (typeof value === 'string') return redactText(value, secrets);
  if (depth > 8 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => scrub(v, secrets, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = scrub(v, secrets, depth + 1);
  return out;
}

/**
 * Starts Sentry for the guardian's own errors when a DSN is given. Default integrations stay on
 * (uncaught exceptions and unhandled rejections are reported before the process exits);
 * performance tracing is off (`tracesSampleRate: 0`).
 *
 * @example
 * const telemetry = initTelemetry({ dsn: process.env.SENTRY_DSN, secrets: configSecrets(config) });
 */
export function initTelemetry(options: TelemetryOptions): Telemetry {
  if (options.dsn === undefined) return noTelemetry;
  const secrets = options.secrets;
  Sentry.init({
    dsn: options.dsn,
    release: options.release ?? 'rollback-guardian@0.1.0',
    environment: options.environment ?? 'production',
    tracesSampleRate: 0,
    initialScope: { tags: { service: 'guardian' } },
    beforeSend: (event) => scrub(event, secrets) as typeof event,
    beforeBreadcrumb: (crumb) => scrub(crumb, secrets) as typeof crumb,
  });
  return {
    enabled: true,
    captureError(err, context = {}) {
      try {
        const error = err instanceof Error ? err : new Error(typeof err === 'string' ? err : JSON.stringify(err));
        Sentry.captureException(error, { extra: { ...context } });
      } catch {
        // reporting must never break the guardian
      }
    },
    async flush(timeoutMs = 2_000) {
      await Sentry.flush(timeoutMs).catch(() => false);
    },
  };
}
