/**
 * The guardian's logger: pino JSON lines with secrets removed twice over.
 *
 * 1. pino `redact` censors values under secret-looking keys (`token`, `apiKey`, `password`,
 *    `authorization`, `webhook_url`, `databaseUrl`, `smtpUrl`, `serviceRoleKey`, ...).
 * 2. Every finished line goes through {@link redactText} before it is written, so a secret that
 *    hides inside a message, an error's message or stack, or a URL is removed as well: passwords
 *    in `scheme://user:password@host` URLs, Slack webhook paths, `Bearer` tokens, `?token=`-style
 *    query parameters, JWTs, and every known secret value (from {@link configSecrets}, plus any
 *    you add later to the `secrets` set).
 */
import pino from 'pino';
import type { DestinationStream, Level, Logger as PinoLogger } from 'pino';

/** The logger type used across the guardian (a pino logger; use `.child({ source })` per part). */
export type Logger = PinoLogger;

/** What replaces a secret. */
export const REDACTED = '[REDACTED]';

const SECRET_KEYS = [
  'token',
  'accessToken',
  'access_token',
  'apiKey',
  'api_key',
  'apikey',
  'key',
  'secret',
  'password',
  'pass',
  'authorization',
  'Authorization',
  'cookie',
  'webhook_url',
  'webhookUrl',
  'databaseUrl',
  'DATABASE_URL',
  'connectionString',
  'smtpUrl',
  'SMTP_URL',
  'serviceRoleKey',
  'SUPABASE_SERVICE_ROLE_KEY',
  'adminToken',
  'GUARDIAN_ADMIN_TOKEN',
  'ingestKey',
  'GUARDIAN_INGEST_KEY',
  'ofrepKey',
  'GUARDIAN_OFREP_KEY',
  'dsn',
  'sentryDsn',
  'SENTRY_DSN',
];

/** pino `redact` paths: the secret keys at the top level, one and two levels down, and in headers. */
export const REDACT_PATHS: readonly string[] = [
  ...SECRET_KEYS,
  ...SECRET_KEYS.map((k) => `*.${k}`),
  ...SECRET_KEYS.map((k) => `*.*.${k}`),
  'headers.authorization',
  '*.headers.authorization',
  'req.headers.authorization',
  'headers["x-api-key"]',
  '*.headers["x-api-key"]',
  'req.headers["x-api-key"]',
  'req.headers.cookie',
];

const TEXT_RULES: ReadonlyArray<readonly [RegExp, string]> = [
  // scheme://user:password@host → scheme://user:[REDACTED]@host (postgres, smtp, redis, https, ...)
  [/\b([a-z][a-z0-9+.-]*:\/\/[^\s/:@"'<>]*):([^\s@/"'<>]+)@/gi, `$1:${REDACTED}@`],
  // Slack incoming webhooks and workflow triggers: the path is the secret.
  [/(https?:\/\/hooks\.slack(?:-gov)?\.com\/(?:services|workflows|triggers))\/[^\s"'<>]+/gi, `$1/${REDACTED}`],
  // Authorization headers written out as text.
  [/\b(Bearer|Basic|Token)\s+[A-Za-z0-9._~+/=-]{8,}/g, `$1 ${REDACTED}`],
  // Secret-looking query parameters.
  [/([?&](?:api_?key|apikey|token|access_token|key|secret|sentry_key|password)=)[^&\s"'<>#]+/gi, `$1${REDACTED}`],
  // JWTs (Supabase keys are JWTs).
  [/\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]+/g, REDACTED],
];

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Removes secrets from free text: URL passwords, Slack webhook paths, bearer tokens, secret query
 * parameters, JWTs, and each of the given known secret values (also in their JSON-escaped form).
 * Use it for anything you store or print that may carry a secret (error messages, `last_error`).
 *
 * @example
 * redactText('connect ECONNREFUSED postgres://guardian:s3cret@db:5432/app');
 * // 'connect ECONNREFUSED postgres://guardian:[REDACTED]@db:5432/app'
 */
export function redactText(text: string, secrets: Iterable<string> = []): string {
  let out = text;
  for (const value of secrets) {
    if (value.length < 4) continue; // too short to replace safely; such values fail config validation anyway
    const escaped = JSON.stringify(value).slice(1, -1);
    for (const form of escaped === value ? [value] : [value, escaped]) {
      out = out.replace(new RegExp(escapeRegExp(form), 'g'), REDACTED);
    }
  }
  for (const [pattern, replacement] of TEXT_RULES) out = out.replace(pattern, replacement);
  return out;
}

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  /** pino level. Default `info`. */
  readonly level?: Level | 'silent';
  /**
   * Known secret values to scrub from every line. Pass a `Set` and add to it later (for example
   * a webhook URL read from a reloaded rules file): it is read on every write.
   *
   * @example
   * const secrets = new Set(configSecrets(config));
   * const logger = createLogger({ level: config.logLevel, secrets });
   * secrets.add(rules.notify.slack.webhook_url);
   */
  readonly secrets?: Iterable<string>;
  /** Where lines go. Default: stdout. Anything with `write(line)` works (tests capture lines). */
  readonly destination?: DestinationStream;
  /** Fields on every line. Default `{ service: 'guardian' }`. */
  readonly base?: Record<string, unknown>;
  /** pino's timestamp option (inject a fixed clock in tests). Default ISO time. */
  readonly timestamp?: () => string;
  /**
   * Called for every line at level `error` or above, with the logged object and message (the
   * daemon sends them to Sentry when `SENTRY_DSN` is set). Must not throw.
   *
   * @example
   * createLogger({ onError: (obj, msg) => telemetry.captureError(obj['err'] ?? new Error(msg), { msg }) });
   */
  readonly onError?: (obj: Readonly<Record<string, unknown>>, msg: string) => void;
}

const ERROR_LEVEL = 50;

function errorHook(onError: NonNullable<LoggerOptions['onError']>) {
  return function logMethod(this: PinoLogger, args: Parameters<PinoLogger['error']>, method: (...a: unknown[]) => void, level: number): void {
    if (level >= ERROR_LEVEL) {
      try {
        const [first, second] = args as unknown[];
        const obj = first !== null && typeof first === 'object' ? (first instanceof Error ? { err: first } : (first as Record<string, unknown>)) : {};
        const msg = typeof first === 'string' ? first : typeof second === 'string' ? second : '';
        onError({ ...this.bindings(), ...obj }, msg);
      } catch {
        // reporting must never break logging
      }
    }
    method.apply(this, args as unknown[]);
  };
}

/**
 * Creates the guardian's JSON logger with redaction. Errors go under `err` (pino's serializer).
 *
 * @example
 * const logger = createLogger({ level: 'info', secrets: configSecrets(config) });
 * logger.child({ source: 'sentry' }).warn({ err }, 'poll failed');
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const secrets = options.secrets ?? [];
  const level = options.level ?? 'info';
  // Errors reach `onError` whatever the level: above `error` (fatal, silent) the logger still
  // runs error calls, and their lines are dropped on the way out.
  const hideErrorLines = options.onError !== undefined && (level === 'fatal' || level === 'silent');
  return pino(
    {
      level: hideErrorLines ? 'error' : level,
      base: options.base ?? { service: 'guardian' },
      timestamp: options.timestamp ?? pino.stdTimeFunctions.isoTime,
      messageKey: 'msg',
      redact: { paths: [...REDACT_PATHS], censor: REDACTED },
      serializers: { err: pino.stdSerializers.err, error: pino.stdSerializers.err },
      formatters: { level: (label) => ({ level: label }) },
      hooks: {
        streamWrite: (line: string) =>
          hideErrorLines && (line.startsWith('{"level":"error"') || level === 'silent') ? '' : redactText(line, secrets),
        ...(options.onError ? { logMethod: errorHook(options.onError) } : {}),
      },
    },
    options.destination ?? pino.destination({ dest: 1, sync: false }),
  );
}

/**
 * A logger that writes nothing (for tests and library callers that do not log).
 *
 * @example
 * const worker = new OutboxWorker({ store, notifiers, logger: silentLogger() });
 */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
