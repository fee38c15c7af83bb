/**
 * Blindness per flag (issue 10, item 7) on the real PostgreSQL: while a source answers for other
 * flags, a watched flag whose every query fails for longer than `blindness_after` raises ONE
 * alert per channel naming the flag and the reason, and ONE recovery when its data returns; no
 * per-source alert, and no per-flag alert while the whole source is down.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.ts';
import { silentLogger } from '../src/logger.ts';
import { BlindnessTracker } from '../src/notify/blindness.ts';
import { messageFromOutbox, messageText } from '../src/notify/message.ts';
import { SqlOutboxStore, toOutboxRow } from '../src/notify/outbox-store.ts';
import type { Channel } from '../src/notify/types.ts';
import type { SourceReport } from '../src/sources/types.ts';

const T0 = new Date('2026-11-25T10:00:00Z');
const min = (n: number) => new Date(T0.getTime() + n * 60_000);
const good = { status: 'ok', unit: 'users', treatment: { total: 400, errors: 3 }, control: { total: 900, errors: 8 } } as const;

/** booking answers; search's query fails (its answer broke the rules: errors above total). */
const oneFlagBroken = (at: Date): SourceReport => ({
  source: 'sentry',
  at,
  requests: 2,
  observations: [
    { flag: 'booking_agent_enabled', ...good },
    { flag: 'search_v2', status: 'no_data', reason: 'bad_response', detail: 'errors 120 above total 80 for flag-on' },
  ],
});
const bothFine = (at: Date): SourceReport => ({ source: 'sentry', at, requests: 2, observations: [{ flag: 'booking_agent_enabled', ...good }, { flag: 'search_v2', ...good }] });
const sourceDown = (at: Date): SourceReport => ({ source: 'sentry', at, requests: 1, observations: [], error: { code: 'SOURCE_UNAVAILABLE', message: 'HTTP 503' } });

describe('blindness per flag (real PostgreSQL)', () => {
  let db: TestDatabase;
  let store: SqlOutboxStore;
  const channels: Channel[] = ['slack', 'email'];
  beforeAll(async () => {
    db = await createTestDatabase();
    store = new SqlOutboxStore(db.sql);
  });
  afterAll(async () => {
    await db.drop();
  });

  it('one alert naming the flag and the reason after blindness_after, one recovery, none for the source', async () => {
    const tracker = new BlindnessTracker({ store, blindAfterMs: 10 * 60_000, channels, logger: silentLogger() });
    for (let m = 0; m <= 30; m++) await tracker.observe([oneFlagBroken(min(m))]);
    // The whole source down meanwhile: the source alert speaks; no second per-flag alert.
    for (let m = 31; m <= 45; m++) await tracker.observe([sourceDown(min(m))]);
    await tracker.observe([bothFine(min(46))]);
    await tracker.observe([bothFine(min(47))]);

    const { rows } = await db.sql.query<Record<string, unknown>>(`select * from notification_outbox where topic in ('blindness', 'recovery') order by id`);
    const summary = rows.map((r) => `${String(r['topic'])}:${String((r['payload'] as { source: string }).source)}:${String(r['channel'])}`);
    expect([...summary].sort()).toEqual([
      'blindness:flag:search_v2@sentry:slack',
      'blindness:flag:search_v2@sentry:email',
      'blindness:sentry:slack',
      'blindness:sentry:email',
      'recovery:sentry:slack',
      'recovery:sentry:email',
      'recovery:flag:search_v2@sentry:slack',
      'recovery:flag:search_v2@sentry:email',
    ].sort());
    const row = (topic: string, source: string) => toOutboxRow(rows.find((r) => r['topic'] === topic && (r['payload'] as { source: string }).source === source)!);
    const alert = messageFromOutbox(row('blindness', 'flag:search_v2@sentry'));
    expect(alert).toMatchObject({ topic: 'blindness', flag: 'search_v2', source: 'sentry' });
    expect(alert.title).toBe('Guardian is blind on search_v2: no usable data from sentry for 10 min');
    expect(messageText(alert)).toContain('Reason: bad_response (errors 120 above total 80 for flag-on)');
    const recovery = messageFromOutbox(row('recovery', 'flag:search_v2@sentry'));
    expect(recovery.title).toBe('Guardian sees search_v2 again on sentry');
  });
});
