/**
 * Blindness on the real PostgreSQL, delivered to a real SMTP server and a Slack-shaped webhook:
 * a source without data for longer than `blindness_after` raises ONE alert per channel, however
 * many failing polls follow and however many trackers (replicas, restarts) observe them, and
 * ONE recovery when data returns. Faults count as no data; "empty" (no traffic) does not.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.ts';
import { silentLogger } from '../src/logger.ts';
import { BlindnessTracker, sourceSawData } from '../src/notify/blindness.ts';
import { EmailNotifier } from '../src/notify/email.ts';
import { SqlOutboxStore } from '../src/notify/outbox-store.ts';
import { SlackNotifier } from '../src/notify/slack.ts';
import type { Channel, Notifier } from '../src/notify/types.ts';
import { OutboxWorker } from '../src/notify/worker.ts';
import type { SourceReport } from '../src/sources/types.ts';
import { createSmtpServer, decodeQuotedPrintable, startWebhookServer, type SmtpTestServer, type WebhookServer } from './notify-helpers.ts';

const T0 = new Date('2026-11-25T10:00:00Z');
const min = (n: number) => new Date(T0.getTime() + n * 60_000);

const failing = (at: Date): SourceReport => ({ source: 'sentry', at, observations: [], requests: 3, error: { code: 'SOURCE_UNAVAILABLE', message: 'HTTP 503 from us.sentry.io' } });
const rateLimited = (at: Date): SourceReport => ({
  source: 'sentry',
  at,
  requests: 1,
  observations: [{ flag: 'booking_agent_enabled', status: 'no_data', reason: 'rate_limited', detail: 'X-Sentry-Rate-Limit-Remaining: 0' }],
});
const healthy = (at: Date): SourceReport => ({
  source: 'sentry',
  at,
  requests: 2,
  observations: [{ flag: 'booking_agent_enabled', status: 'ok', unit: 'users', treatment: { total: 400, errors: 3 }, control: { total: 900, errors: 8 } }],
});
const empty = (at: Date): SourceReport => ({ source: 'sentry', at, requests: 1, observations: [{ flag: 'booking_agent_enabled', status: 'no_data', reason: 'empty' }] });

describe('blindness alerts (real PostgreSQL, SMTP and webhook)', () => {
  let db: TestDatabase;
  let smtp: SmtpTestServer;
  let hook: WebhookServer;
  let store: SqlOutboxStore;
  const channels: Channel[] = ['slack', 'email'];

  beforeAll(async () => {
    db = await createTestDatabase();
    smtp = await createSmtpServer();
    hook = await startWebhookServer();
    store = new SqlOutboxStore(db.sql);
  });
  afterAll(async () => {
    await hook.close();
    await smtp.stop();
    await db.drop();
  });

  const alerts = async () =>
    (await db.sql.query<{ topic: string; channel: string }>(`select topic, channel from notification_outbox where topic in ('blindness', 'recovery') order by id`)).rows;

  it('classifies polls: faults are no data, empty is data (unless told otherwise)', () => {
    expect(sourceSawData(failing(T0))).toEqual({ ok: false, error: 'SOURCE_UNAVAILABLE: HTTP 503 from us.sentry.io' });
    expect(sourceSawData(rateLimited(T0))).toEqual({ ok: false, error: 'rate_limited on 1 flag (X-Sentry-Rate-Limit-Remaining: 0)' });
    expect(sourceSawData(healthy(T0))).toEqual({ ok: true });
    expect(sourceSawData(empty(T0))).toEqual({ ok: true });
    expect(sourceSawData(empty(T0), true).ok).toBe(false);
  });

  it('one blindness alert per channel after blindness_after, none repeated by failing polls or a second replica, one recovery', async () => {
    // Two trackers on the same database: two replicas, or one before and after a restart.
    const a = new BlindnessTracker({ store, blindAfterMs: 10 * 60_000, channels, logger: silentLogger() });
    const b = new BlindnessTracker({ store: new SqlOutboxStore(db.sql), blindAfterMs: 10 * 60_000, channels, logger: silentLogger() });

    expect((await a.observe([healthy(min(0))]))[0]!.transition).toBe('ok');
    expect((await a.observe([failing(min(1))]))[0]).toMatchObject({ transition: 'failing', alertsWritten: 0 });
    expect((await b.observe([rateLimited(min(5))]))[0]).toMatchObject({ transition: 'failing', alertsWritten: 0 });
    expect(await alerts()).toEqual([]);

    // Ten minutes after the first failing poll: blind, one alert per channel.
    const blind = (await a.observe([failing(min(11))]))[0]!;
    expect(blind).toMatchObject({ transition: 'blind', alertsWritten: 2 });
    expect(blind.blindSince?.toISOString()).toBe(min(1).toISOString());
    // Both replicas keep seeing failures: nothing more is written.
    for (let m = 12; m < 40; m++) {
      const [r] = await (m % 2 ? a : b).observe([failing(min(m))]);
      expect(r!.alertsWritten).toBe(0);
    }
    expect(await alerts()).toEqual([
      { topic: 'blindness', channel: 'email' },
      { topic: 'blindness', channel: 'slack' },
    ]);

    // Data again: one recovery per channel, once.
    expect((await b.observe([healthy(min(41))]))[0]).toMatchObject({ transition: 'recovered', alertsWritten: 2 });
    expect((await a.observe([healthy(min(42))]))[0]).toMatchObject({ transition: 'ok', alertsWritten: 0 });
    expect((await alerts()).map((r) => r.topic)).toEqual(['blindness', 'blindness', 'recovery', 'recovery']);

    // A new blind spell alerts again (once).
    await a.observe([failing(min(50))]);
    expect((await a.observe([failing(min(61))]))[0]).toMatchObject({ transition: 'blind', alertsWritten: 2 });
    expect((await b.observe([failing(min(62))]))[0]!.alertsWritten).toBe(0);

    // Delivered once each through the real channels.
    const notifiers = new Map<Channel, Notifier>([
      ['slack', new SlackNotifier({ webhookUrl: hook.url })],
      ['email', new EmailNotifier({ from: 'guardian@example.com', to: ['oncall@example.com'], smtpUrl: smtp.url })],
    ]);
    const worker = new OutboxWorker({ store, notifiers, logger: silentLogger(), holder: 'blind-test' });
    const run = await worker.runOnce();
    expect(run).toMatchObject({ claimed: 6, delivered: 6, failed: 0 });
    expect((await worker.runOnce()).claimed).toBe(0);
    for (const n of notifiers.values()) await n.close?.();
    expect(hook.requests).toHaveLength(3);
    expect(smtp.mails).toHaveLength(3);
    const slackTexts = hook.requests.map((r) => JSON.stringify(r.body));
    expect(slackTexts[0]).toContain('Guardian is blind: no data from sentry');
    expect(slackTexts[0]).toContain('HTTP 503');
    expect(slackTexts.some((t) => /sentry/i.test(t) && /again|recover/i.test(t))).toBe(true);
    // Delivery order across rows is not guaranteed: the alert is one of the three mails.
    expect(smtp.mails.some((m) => decodeQuotedPrintable(m.raw).includes('no data from sentry'))).toBe(true);
  }, 30_000);
});
