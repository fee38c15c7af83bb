import { describe, expect, it } from 'vitest';
import { configSecrets, loadConfig } from '../src/config.ts';
import { isGuardianError } from '../src/errors.ts';

function problemsOf(env: Record<string, string | undefined>): Array<{ key: string; message: string }> {
  try {
    loadConfig(env);
  } catch (err) {
    if (isGuardianError(err, 'CONFIG_INVALID')) return err.details?.problems as Array<{ key: string; message: string }>;
    throw err;
  }
  throw new Error('expected loadConfig to throw');
}

describe('loadConfig', () => {
  it('gives the documented defaults and the embedded store for an empty environment', () => {
    const config = loadConfig({});
    expect(config).toEqual({
      store: 'pglite',
      databaseUrl: undefined,
      supabase: undefined,
      dataDir: '.data',
      rulesFile: 'rules/guardian.yaml',
      port: 8787,
      host: '0.0.0.0',
      sentryDsn: undefined,
      smtpUrl: undefined,
      emailFrom: undefined,
      dashboardUrl: undefined,
      logLevel: 'info',
      adminToken: undefined,
      ingestKey: undefined,
      ofrepKey: undefined,
      dryRun: false,
    });
  });

  it('treats empty strings as unset (KEY= in .env files)', () => {
    const config = loadConfig({ DATABASE_URL: '', PORT: ' ', LOG_LEVEL: '' });
    expect(config.store).toBe('pglite');
    expect(config.port).toBe(8787);
  });

  it('derives the store: pg wins over supabase, supabase over pglite', () => {
    expect(loadConfig({ DATABASE_URL: 'postgres://u:p@db:5432/app' }).store).toBe('pg');
    expect(loadConfig({ DATABASE_URL: 'postgresql://db/app', SUPABASE_URL: 'https://x.supabase.co', SUPABASE_SERVICE_ROLE_KEY: 'k'.repeat(40) }).store).toBe('pg');
    const sb = loadConfig({ SUPABASE_URL: 'https://x.supabase.co', SUPABASE_SERVICE_ROLE_KEY: 'service-key-123' });
    expect(sb.store).toBe('supabase');
    expect(sb.supabase).toEqual({ url: 'https://x.supabase.co', serviceRoleKey: 'service-key-123' });
  });

  it('parses every typed key', () => {
    const config = loadConfig({
      PORT: '9090',
      HOST: '127.0.0.1',
      SENTRY_DSN: 'https://abc123@o1.ingest.sentry.io/42',
      SMTP_URL: 'smtps://mailer:secret@smtp.example.com:465',
      EMAIL_FROM: 'Guardian <guardian@example.com>',
      GUARDIAN_DASHBOARD_URL: 'https://guardian.example.com',
      LOG_LEVEL: 'DEBUG',
      GUARDIAN_ADMIN_TOKEN: 'a'.repeat(32),
      GUARDIAN_DRY_RUN: 'yes',
      GUARDIAN_DATA_DIR: '/var/lib/guardian',
      RULES_FILE: '/etc/guardian/rules.yaml',
    });
    expect(config).toMatchObject({
      port: 9090,
      host: '127.0.0.1',
      logLevel: 'debug',
      dryRun: true,
      dataDir: '/var/lib/guardian',
      rulesFile: '/etc/guardian/rules.yaml',
      emailFrom: 'Guardian <guardian@example.com>',
    });
    expect(loadConfig({ GUARDIAN_DRY_RUN: '0' }).dryRun).toBe(false);
    expect(loadConfig({ PORT: '0' }).port).toBe(0);
  });

  it('lists every problem at once, each naming its key, and never echoes a secret', () => {
    const secret = 'hunter2-very-secret';
    let message = '';
    try {
      loadConfig({
        DATABASE_URL: `mysql://root:${secret}@db/app`,
        SUPABASE_URL: 'https://x.supabase.co',
        PORT: '99999',
        SENTRY_DSN: 'not a url',
        SMTP_URL: 'http://mail',
        EMAIL_FROM: 'nobody',
        LOG_LEVEL: 'loud',
        GUARDIAN_ADMIN_TOKEN: 'short',
        GUARDIAN_INGEST_KEY: 'short',
        GUARDIAN_OFREP_KEY: 'short',
        GUARDIAN_DRY_RUN: 'maybe',
        GUARDIAN_DASHBOARD_URL: 'ftp://x',
      });
    } catch (err) {
      expect(isGuardianError(err, 'CONFIG_INVALID')).toBe(true);
      message = (err as Error).message;
    }
    expect(message).toContain('DATABASE_URL: must be a postgres:// URL');
    expect(message).toContain('SUPABASE_SERVICE_ROLE_KEY: must be set when SUPABASE_URL is set');
    expect(message).toContain('PORT: must be an integer port');
    expect(message).toContain('SENTRY_DSN: must be');
    expect(message).toContain('SMTP_URL: must be an smtp://');
    expect(message).toContain('EMAIL_FROM: must be an email address');
    expect(message).toContain('LOG_LEVEL: must be one of');
    expect(message).toContain('GUARDIAN_ADMIN_TOKEN: must be at least 16 characters');
    expect(message).toContain('GUARDIAN_INGEST_KEY: must be at least 16 characters');
    expect(message).toContain('GUARDIAN_OFREP_KEY: must be at least 16 characters');
    expect(message).toContain('GUARDIAN_DRY_RUN: must be true or false');
    expect(message).toContain('GUARDIAN_DASHBOARD_URL: must be an http(s)://');
    expect(message).not.toContain(secret);
    expect(message).toContain('12 problems');
  });

  it('requires the Supabase URL when only the key is set', () => {
    expect(problemsOf({ SUPABASE_SERVICE_ROLE_KEY: 'k' })).toEqual([
      { key: 'SUPABASE_URL', message: 'must be set when SUPABASE_SERVICE_ROLE_KEY is set (set both or neither)' },
    ]);
  });

  it('accepts SUPABASE_URL with only the anon key: Supabase Auth for the dashboard beside its own store', () => {
    const config = loadConfig({ DATABASE_URL: 'postgres://guardian@db/app', SUPABASE_URL: 'https://x.supabase.co', SUPABASE_ANON_KEY: 'eyJanon', SUPABASE_JWT_SECRET: 'a'.repeat(32) });
    expect(config.store).toBe('pg');
    expect(config.supabaseAuth).toEqual({ url: 'https://x.supabase.co', anonKey: 'eyJanon' });
    expect(problemsOf({ SUPABASE_URL: 'https://x.supabase.co' })).toEqual([
      { key: 'SUPABASE_SERVICE_ROLE_KEY', message: "must be set when SUPABASE_URL is set (set both or neither; SUPABASE_URL with SUPABASE_ANON_KEY alone is the dashboard's sign-in only)" },
    ]);
  });

  it('collects the secrets a logger must redact', () => {
    const config = loadConfig({
      DATABASE_URL: 'postgres://guardian:db%40pass@db/app',
      SMTP_URL: 'smtp://mailer:smtppass@mail:587',
      GUARDIAN_ADMIN_TOKEN: 'admintoken-0123456789',
      GUARDIAN_INGEST_KEY: 'ingestkey-0123456789',
      GUARDIAN_OFREP_KEY: 'ofrepkey-0123456789',
      SUPABASE_URL: 'https://x.supabase.co',
      SUPABASE_SERVICE_ROLE_KEY: 'eyJservicerolekey',
      SENTRY_DSN: 'https://publickey99@sentry.example.com/7',
    });
    expect(configSecrets(config).sort()).toEqual(['admintoken-0123456789', 'ingestkey-0123456789', 'ofrepkey-0123456789', 'db%40pass', 'db@pass', 'eyJservicerolekey', 'publickey99', 'smtppass'].sort());
  });
});
