/**
 * The guardian's environment configuration: one zod schema is the runtime check and the type.
 * `loadConfig(env)` validates every key at once and throws one `CONFIG_INVALID` error that lists
 * every problem as `KEY: what is wrong and what to do`. Secret values are never echoed back.
 */
import { z } from 'zod';
import { GuardianError } from './errors.ts';

/** pino's level names, lowest to highest (plus `silent`). */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

/** Where the guardian keeps its state, derived from the keys that are set. */
export type StoreKind = 'pg' | 'supabase' | 'pglite';

const TRUE_WORDS = new Set(['1', 'true', 'yes', 'on']);
const FALSE_WORDS = new Set(['0', 'false', 'no', 'off']);

/** Trims, and turns an empty string into "not set" (docker-compose and .env files write `KEY=`). */
const optionalText = z.preprocess((v) => {
  if (typeof v !== 'string') return v;
  const t = v.trim();
  return t === '' ? undefined : t;
}, z.string().optional());

function urlWithProtocols(protocols: readonly string[], what: string) {
  return optionalText.refine(
    (v) => {
      if (v === undefined) return true;
      try {
        return protocols.includes(new URL(v).protocol);
      } catch {
        return false;
      }
    },
    { message: `must be ${what}` },
  );
}

/** An IPv4 or IPv6 address, or a host name (letters, digits, dots, hyphens; no scheme, port or path). */
const HOST_PATTERN = /^(?:[0-9a-fA-F:.]+|\[[0-9a-fA-F:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}))*)$/;

const envSchema = z
  .object({
    DATABASE_URL: urlWithProtocols(['postgres:', 'postgresql:'], 'a postgres:// URL (postgres://user:password@host:5432/db)'),
    SUPABASE_URL: urlWithProtocols(['http:', 'https:'], 'an http(s):// URL, e.g. https://<project>.supabase.co'),
    SUPABASE_SERVICE_ROLE_KEY: optionalText,
    SUPABASE_ANON_KEY: optionalText,
    GUARDIAN_DATA_DIR: optionalText.transform((v) => v ?? '.data'),
    RULES_FILE: optionalText.transform((v) => v ?? 'rules/guardian.yaml'),
    PORT: optionalText
      .refine((v) => v === undefined || (/^\d{1,5}$/.test(v) && Number(v) <= 65535), {
        error: (iss) => `must be an integer port between 0 and 65535 (0 picks a free port), got ${JSON.stringify(iss.input)}`,
      })
      .transform((v) => (v === undefined ? 8787 : Number(v))),
    HOST: optionalText
      .refine((v) => v === undefined || HOST_PATTERN.test(v), {
        error: (iss) => `must be an IP address or host name to listen on (0.0.0.0: every interface, 127.0.0.1: this machine only), got ${JSON.stringify(iss.input)}`,
      })
      .transform((v) => v ?? '0.0.0.0'),
    SENTRY_DSN: urlWithProtocols(['http:', 'https:'], 'a Sentry DSN URL (https://<key>@<host>/<project id>)').refine(
      (v) => {
        if (v === undefined || !URL.canParse(v)) return true; // the URL check above already reported it
        const u = new URL(v);
        return u.username !== '' && /\/\d+$/.test(u.pathname);
      },
      { message: 'must be a Sentry DSN with a public key and a project id (https://<key>@<host>/<project id>)' },
    ),
    SMTP_URL: urlWithProtocols(['smtp:', 'smtps:'], 'an smtp:// or smtps:// URL (smtp://user:password@host:587)'),
    EMAIL_FROM: optionalText.refine((v) => v === undefined || /^(?:[^<>]*<[^\s@<>]+@[^\s@<>]+>|[^\s@<>]+@[^\s@<>]+)$/.test(v), {
      message: 'must be an email address ("guardian@example.com" or "Guardian <guardian@example.com>")',
    }),
    GUARDIAN_DASHBOARD_URL: urlWithProtocols(['http:', 'https:'], 'an http(s):// URL of the dashboard (used for links in alerts)'),
    LOG_LEVEL: optionalText
      .transform((v) => v?.toLowerCase())
      .refine((v) => v === undefined || (LOG_LEVELS as readonly string[]).includes(v), {
        message: `must be one of ${LOG_LEVELS.join(', ')}`,
      })
      .transform((v) => (v ?? 'info') as (typeof LOG_LEVELS)[number]),
    GUARDIAN_ADMIN_TOKEN: optionalText.refine((v) => v === undefined || v.length >= 16, {
      message: 'must be at least 16 characters (generate one with `openssl rand -hex 32`)',
    }),
    GUARDIAN_INGEST_KEY: optionalText.refine((v) => v === undefined || v.length >= 16, {
      message: 'must be at least 16 characters (generate one with `openssl rand -hex 32`)',
    }),
    GUARDIAN_OFREP_KEY: optionalText.refine((v) => v === undefined || v.length >= 16, {
      message: 'must be at least 16 characters (generate one with `openssl rand -hex 32`)',
    }),
    SUPABASE_JWT_SECRET: optionalText.refine((v) => v === undefined || v.length >= 32, {
      message: "must be the Supabase project's JWT secret (Settings → API → JWT secret, at least 32 characters)",
    }),
    GUARDIAN_ALLOWED_ORIGINS: optionalText
      .transform((v) => (v === undefined ? [] : v.split(',').map((o) => o.trim()).filter((o) => o !== '')))
      .refine((list) => list.every((o) => URL.canParse(o) && ['http:', 'https:'].includes(new URL(o).protocol) && new URL(o).origin === o), {
        message: 'must be a comma-separated list of origins like https://admin.example.com,http://localhost:5173 (scheme, host and port; no path, no trailing /)',
      }),
    GUARDIAN_DRY_RUN: optionalText
      .transform((v) => v?.toLowerCase())
      .refine((v) => v === undefined || TRUE_WORDS.has(v) || FALSE_WORDS.has(v), {
        message: 'must be true or false (also accepted: 1/0, yes/no, on/off)',
      })
      .transform((v) => v !== undefined && TRUE_WORDS.has(v)),
  })
  .superRefine((env, ctx) => {
    const hasUrl = env.SUPABASE_URL !== undefined;
    const hasKey = env.SUPABASE_SERVICE_ROLE_KEY !== undefined;
    // SUPABASE_URL with only the anon key is Supabase Auth for the dashboard's sign-in, beside a
    // store of its own (DATABASE_URL or the embedded database).
    const authOnly = env.SUPABASE_ANON_KEY !== undefined;
    if (hasUrl && !hasKey && !authOnly) {
      ctx.addIssue({
        code: 'custom',
        path: ['SUPABASE_SERVICE_ROLE_KEY'],
        message: 'must be set when SUPABASE_URL is set (set both or neither; SUPABASE_URL with SUPABASE_ANON_KEY alone is the dashboard\'s sign-in only)',
      });
    }
    if (hasKey && !hasUrl) {
      ctx.addIssue({ code: 'custom', path: ['SUPABASE_URL'], message: 'must be set when SUPABASE_SERVICE_ROLE_KEY is set (set both or neither)' });
    }
  });

/**
 * The validated configuration. Optional keys are `undefined` when not set (an empty string counts
 * as not set).
 *
 * @example
 * const config: GuardianConfig = loadConfig(process.env);
 * if (config.store === 'pglite') console.log(`embedded database in ${config.dataDir}`);
 */
export interface GuardianConfig {
  /** `pg` when DATABASE_URL is set, else `supabase` when SUPABASE_URL and its key are set, else `pglite`. */
  readonly store: StoreKind;
  /** Direct PostgreSQL connection string (`postgres://...`). Secret: contains the password. */
  readonly databaseUrl: string | undefined;
  /** Supabase project URL and service-role key; both set or both undefined. */
  readonly supabase: { readonly url: string; readonly serviceRoleKey: string } | undefined;
  /** Folder for the embedded PGlite database and other local state. Default `.data`. */
  readonly dataDir: string;
  /** The rules file. Default `rules/guardian.yaml`. */
  readonly rulesFile: string;
  /** HTTP port for /healthz, /readyz, /metrics and the admin API. Default 8787; 0 picks a free port. */
  readonly port: number;
  /** HTTP listen address. Default `0.0.0.0`. */
  readonly host: string;
  /** When set, the guardian reports its own crashes to this Sentry project. */
  readonly sentryDsn: string | undefined;
  /** SMTP server for email alerts (`smtp://user:pass@host:587`, `smtps://...:465`). */
  readonly smtpUrl: string | undefined;
  /** Default sender of email alerts (a rules file's `notify.email.from` wins). */
  readonly emailFrom: string | undefined;
  /** Base URL of the dashboard, for links in alerts. */
  readonly dashboardUrl: string | undefined;
  /**
   * Supabase Auth for the dashboard's sign-in: SUPABASE_URL and SUPABASE_ANON_KEY (both public by
   * design); undefined unless both are set, and then the dashboard offers the admin token only.
   */
  readonly supabaseAuth: { readonly url: string; readonly anonKey: string } | undefined;
  /** pino level. Default `info`. */
  readonly logLevel: (typeof LOG_LEVELS)[number];
  /** Bearer token required by the admin API; the admin API is off when undefined. */
  readonly adminToken: string | undefined;
  /**
   * Bearer key of `POST /v1/exposures` (the builtin source's ingestion endpoint, for the SDK's
   * exposure reporter); the endpoint is off when undefined. Secret.
   */
  readonly ingestKey: string | undefined;
  /**
   * API key of the OpenFeature Remote Evaluation Protocol endpoints (`/ofrep/v1/...`), sent as
   * `Authorization: Bearer <key>` or `X-API-Key: <key>`; the endpoints are off when undefined. Secret.
   */
  readonly ofrepKey: string | undefined;
  /** Global dry run: decide and record `dry_run` events, never change a flag. */
  readonly dryRun: boolean;
  /** HS256 secret that signs the Supabase project's access tokens (admin API auth). Secret. */
  readonly jwtSecret?: string | undefined;
  /** Origins allowed to call the admin API from a browser (CORS); empty: none. */
  readonly allowedOrigins?: readonly string[];
}

/** The environment keys the guardian reads (all optional). */
export const CONFIG_KEYS = Object.keys(envSchema.shape) as readonly (keyof typeof envSchema.shape)[];

/** The secret values in a config (for log redaction): passwords in URLs, keys and tokens. */
export function configSecrets(config: GuardianConfig): string[] {
  const out: string[] = [];
  const fromUrl = (raw: string | undefined): void => {
    if (raw === undefined) return;
    try {
      const u = new URL(raw);
      if (u.password !== '') out.push(decodeURIComponent(u.password), u.password);
    } catch {
      // not a URL: nothing to extract
    }
  };
  fromUrl(config.databaseUrl);
  fromUrl(config.smtpUrl);
  if (config.supabase) out.push(config.supabase.serviceRoleKey);
  if (config.adminToken !== undefined) out.push(config.adminToken);
  if (config.ingestKey !== undefined) out.push(config.ingestKey);
  if (config.ofrepKey !== undefined) out.push(config.ofrepKey);
  if (config.jwtSecret !== undefined) out.push(config.jwtSecret);
  if (config.sentryDsn !== undefined) {
    try {
      const key = new URL(config.sentryDsn).username;
      if (key !== '') out.push(key);
    } catch {
      // validated already
    }
  }
  return [...new Set(out.filter((s) => s.length >= 4))];
}

/**
 * Validates the environment and returns the configuration, or throws a `GuardianError` with code
 * `CONFIG_INVALID` whose message lists every problem, one per line (`details.problems` holds them
 * as `{ key, message }`). Values are never repeated in messages, so a bad secret never leaks.
 *
 * @example
 * const config = loadConfig({ DATABASE_URL: 'postgres://guardian:pw@db:5432/app', PORT: '8787' });
 * config.store; // 'pg'
 */
export function loadConfig(env: Readonly<Record<string, string | undefined>>): GuardianConfig {
  const picked: Record<string, string | undefined> = {};
  for (const key of CONFIG_KEYS) picked[key] = env[key];
  const parsed = envSchema.safeParse(picked);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => ({
      key: issue.path.map(String).join('.') || '(environment)',
      message: issue.message,
    }));
    const lines = problems.map((p) => `  ${p.key}: ${p.message}`);
    throw new GuardianError('CONFIG_INVALID', `Invalid guardian configuration (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n${lines.join('\n')}`, {
      details: { problems },
    });
  }
  const e = parsed.data;
  const supabase =
    e.SUPABASE_URL !== undefined && e.SUPABASE_SERVICE_ROLE_KEY !== undefined ? { url: e.SUPABASE_URL, serviceRoleKey: e.SUPABASE_SERVICE_ROLE_KEY } : undefined;
  return {
    store: e.DATABASE_URL !== undefined ? 'pg' : supabase ? 'supabase' : 'pglite',
    databaseUrl: e.DATABASE_URL,
    supabase,
    dataDir: e.GUARDIAN_DATA_DIR,
    rulesFile: e.RULES_FILE,
    port: e.PORT,
    host: e.HOST,
    sentryDsn: e.SENTRY_DSN,
    smtpUrl: e.SMTP_URL,
    emailFrom: e.EMAIL_FROM,
    dashboardUrl: e.GUARDIAN_DASHBOARD_URL,
    supabaseAuth: e.SUPABASE_URL !== undefined && e.SUPABASE_ANON_KEY !== undefined ? { url: e.SUPABASE_URL, anonKey: e.SUPABASE_ANON_KEY } : undefined,
    logLevel: e.LOG_LEVEL,
    adminToken: e.GUARDIAN_ADMIN_TOKEN,
    ingestKey: e.GUARDIAN_INGEST_KEY,
    ofrepKey: e.GUARDIAN_OFREP_KEY,
    dryRun: e.GUARDIAN_DRY_RUN,
    ...(e.SUPABASE_JWT_SECRET !== undefined ? { jwtSecret: e.SUPABASE_JWT_SECRET } : {}),
    ...(e.GUARDIAN_ALLOWED_ORIGINS.length > 0 ? { allowedOrigins: e.GUARDIAN_ALLOWED_ORIGINS } : {}),
  };
}
