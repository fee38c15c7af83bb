/**
 * Child process of the crash test (outbox-worker.test.ts): a worker that claims a row and starts
 * delivering it to a webhook that never answers; the parent kills it with SIGKILL meanwhile.
 */
import pg from 'pg';
import { silentLogger } from '../src/logger.ts';
import { SqlOutboxStore } from '../src/notify/outbox-store.ts';
import { SlackNotifier } from '../src/notify/slack.ts';
import { OutboxWorker } from '../src/notify/worker.ts';
import { pgSqlClient } from '../src/store/sql.ts';

const sql = pgSqlClient(new pg.Pool({ connectionString: process.env['CHILD_DATABASE_URL'], max: 1 }));
const worker = new OutboxWorker({
  store: new SqlOutboxStore(sql),
  notifiers: new Map([['slack', new SlackNotifier({ webhookUrl: process.env['CHILD_WEBHOOK_URL']!, timeoutMs: 60_000 })]]),
  logger: silentLogger(),
  holder: 'crash-child',
  lockSeconds: 2,
  sendTimeoutMs: 1_900,
});
await worker.runOnce();
// Not reached in the test: the parent kills this process while the send hangs.
await sql.close();
