import { describe, expect, it } from 'vitest';
import { configSecrets, loadConfig } from '../src/config.ts';
import { createLogger, redactText } from '../src/logger.ts';

function capture(): { lines: string[]; destination: { write(line: string): void } } {
  const lines: string[] = [];
  return { lines, destination: { write: (line: string) => void lines.push(line) } };
}

const DB_PASSWORD = 'pg-Pa55word-xyz';
const SMTP_PASSWORD = 'smtp-pa55-qrs';
const ADMIN_TOKEN = 'admin-token-0123456789abcdef';
const SERVICE_KEY = 'eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2lnbmF0dXJlLXNlY3JldA';
const WEBHOOK = 'https://hooks.slack.com/services/T000AAA/B000BBB/XXXXsecretXXXX';
const SENTRY_KEY = 'sentrypublickey42';
const INGEST_KEY = 'ingest-key-fedcba9876543210';
const OFREP_KEY = 'ofrep-key-fedcba9876543210';

describe('createLogger', () => {
  it('writes JSON lines and no secret reaches the output, wherever it hides', () => {
    const config = loadConfig({
      DATABASE_URL: `postgres://guardian:${DB_PASSWORD}@db.internal:5432/app`,
      SMTP_URL: `smtp://mailer:${SMTP_PASSWORD}@smtp.internal:587`,
      GUARDIAN_ADMIN_TOKEN: ADMIN_TOKEN,
      GUARDIAN_INGEST_KEY: INGEST_KEY,
      GUARDIAN_OFREP_KEY: OFREP_KEY,
      SUPABASE_URL: 'https://proj.supabase.co',
      SUPABASE_SERVICE_ROLE_KEY: SERVICE_KEY,
      SENTRY_DSN: `https://${SENTRY_KEY}@o1.ingest.sentry.io/5`,
    });
    const { lines, destination } = capture();
    const secrets = new Set(configSecrets(config));
    const logger = createLogger({ level: 'debug', destination, secrets });

    logger.info({ config }, 'configuration loaded');
    logger.info({ notify: { slack: { webhook_url: WEBHOOK } } }, 'rules loaded');
    logger.warn(`slack delivery to ${WEBHOOK} failed`);
    logger.error({ err: new Error(`connect ECONNREFUSED postgres://guardian:${DB_PASSWORD}@db.internal:5432/app`) }, 'store unreachable');
    logger.info({ headers: { authorization: `Bearer ${ADMIN_TOKEN}` } }, 'admin request');
    logger.info({ request: { url: `https://api.example.com/x?token=${ADMIN_TOKEN}&page=2` } }, 'fetched');
    logger.warn({ ingestKey: INGEST_KEY }, `exposure reporter configured with ${INGEST_KEY}`);
    logger.debug(`got key ${SERVICE_KEY} from env`);
    logger.child({ source: 'smtp' }).warn({ smtpUrl: config.smtpUrl }, `mail failed: 535 auth failed for ${SMTP_PASSWORD}`);
    // A secret learnt later (a reloaded rules file) is scrubbed from then on.
    const lateSecret = 'late-added-secret-value';
    secrets.add(lateSecret);
    logger.info({ note: `contains ${lateSecret}` }, 'late');
    logger.info({ req: { headers: { 'x-api-key': 'some-other-client-key-123' } } }, 'ofrep request');

    expect(lines).toHaveLength(11);
    const all = lines.join('');
    for (const secret of [DB_PASSWORD, SMTP_PASSWORD, ADMIN_TOKEN, SERVICE_KEY, 'XXXXsecretXXXX', 'B000BBB', SENTRY_KEY, INGEST_KEY, OFREP_KEY, 'some-other-client-key-123', lateSecret]) {
      expect(all, `secret ${secret} leaked`).not.toContain(secret);
    }
    const parsed = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(parsed[0]).toMatchObject({ level: 'info', msg: 'configuration loaded', service: 'guardian' });
    expect((parsed[0]!.config as Record<string, unknown>).databaseUrl).toBe('[REDACTED]');
    expect((parsed[0]!.config as Record<string, unknown>).ingestKey).toBe('[REDACTED]');
    expect((parsed[0]!.config as Record<string, unknown>).ofrepKey).toBe('[REDACTED]');
    expect((parsed[0]!.config as Record<string, unknown>).port).toBe(8787); // non-secrets stay
    expect(parsed[2]!.msg).toBe('slack delivery to https://hooks.slack.com/services/[REDACTED] failed');
    expect((parsed[3]!.err as { message: string }).message).toBe('connect ECONNREFUSED postgres://guardian:[REDACTED]@db.internal:5432/app');
    expect((parsed[5]!.request as { url: string }).url).toBe('https://api.example.com/x?token=[REDACTED]&page=2');
    expect(parsed[6]).toMatchObject({ ingestKey: '[REDACTED]', msg: 'exposure reporter configured with [REDACTED]' });
    expect(parsed[8]).toMatchObject({ source: 'smtp', level: 'warn' });
    expect(parsed[10]).toMatchObject({ msg: 'ofrep request', req: { headers: { 'x-api-key': '[REDACTED]' } } });
  });

  it('respects the level', () => {
    const { lines, destination } = capture();
    const logger = createLogger({ level: 'warn', destination });
    logger.info('hidden');
    logger.warn('shown');
    expect(lines.map((l) => (JSON.parse(l) as { msg: string }).msg)).toEqual(['shown']);
  });
});

describe('redactText', () => {
  it('redacts URL passwords, webhook paths, bearer tokens, JWTs and known values', () => {
    expect(redactText('smtps://u:p%40ss@mail:465 and postgresql://a:b@h/db')).toBe('smtps://u:[REDACTED]@mail:465 and postgresql://a:[REDACTED]@h/db');
    expect(redactText('Authorization: Bearer abcdefghijkl')).toBe('Authorization: Bearer [REDACTED]');
    expect(redactText(`x ${SERVICE_KEY} y`)).toBe('x [REDACTED] y');
    expect(redactText('the "quoted\\secret" here', ['quoted\\secret'])).toBe('the "[REDACTED]" here');
    expect(redactText('plain text stays', ['abc'])).toBe('plain text stays');
  });
});
