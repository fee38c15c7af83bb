/**
 * Child process of test/faults/outbox-crash.db.test.ts: one outbox worker (Slack webhook and
 * real SMTP) that says "ready" once connected and warmed up, then delivers every due row; the
 * parent kills it with SIGKILL at a chosen moment.
 */
import pg from 'pg';
import { silentLogger } from '../../guardian/src/logger.ts';
import { EmailNotifier } from '../../guardian/src/notify/email.ts';
import { SqlOutboxStore } from '../../guardian/src/notify/outbox-store.ts';
import { SlackNotifier } from '../../guardian/src/notify/slack.ts';
import type { Channel, Notifier } from '../../guardian/src/notify/types.ts';
import { OutboxWorker } from '../../guardian/src/notify/worker.ts';
import { pgSqlClient } from '../../guardian/src/store/sql.ts';

const sql = pgSqlClient(new pg.Pool({ connectionString: process.env['CHILD_DATABASE_URL'], max: 2 }));
await sql.query('select 1', []);
const notifiers = new Map<Channel, Notifier>([
  ['slack', new SlackNotifier({ webhookUrl: process.env['CHILD_WEBHOOK_URL']!, timeoutMs: 5_000 })],
  ['email', new EmailNotifier({ smtpUrl: process.env['CHILD_SMTP_URL']!, from: 'guardian@example.com', to: ['oncall@example.com'], timeoutMs: 5_000 })],
]);
// Warm, as in a running guardian (whose sources have used fetch, and whose modules are loaded):
// the kill then lands in the delivery itself, not in module loading.
await fetch(new URL('/warmup', process.env['CHILD_WEBHOOK_URL']!)).then((r) => r.text());
const worker = new OutboxWorker({ store: new SqlOutboxStore(sql), notifiers, logger: silentLogger(), holder: 'crash-worker', lockSeconds: 1, sendTimeoutMs: 900 });
process.stdout.write('ready\n');
await worker.runOnce();
process.stdout.write('done\n');
for (const n of notifiers.values()) await n.close?.();
await sql.close();
