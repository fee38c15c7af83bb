/**
 * Several guardian replicas against one PostgreSQL: three Stores with three separate pg pools
 * see the same breach at the same moment. In 100 out of 100 runs there must be exactly one
 * flip, one event and one outbox row per channel — with the cycle lease, and also with the
 * lease bypassed (the SQL function's idempotency key alone must hold).
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.ts';
import { runLeasedCycle } from '../src/cycle/leased.ts';
import { runCycle } from '../src/cycle/run.ts';
import type { CycleReport } from '../src/cycle/types.ts';
import { SqlStore } from '../src/store/sql-store.ts';
import { pgSqlClient } from '../src/store/sql.ts';
import { MemoryLogger, rulesFrom, ScriptedSource } from './cycle-helpers.ts';

const RUNS = 100;

describe('three replicas, one breach', () => {
  let db: TestDatabase;
  let stores: SqlStore[];

  beforeAll(async () => {
    db = await createTestDatabase({ seed: false });
    // One flag per run: events are append-only, so runs are kept apart by flag, not by deleting.
    await db.sql.query(
      `insert into feature_flags (name, enabled, rollout_percentage)
       select 'replica_flag_' || i, true, 50 from generate_series(0, $1::int - 1) as i`,
      [RUNS],
    );
    stores = [0, 1, 2].map((i) => {
      const pool = new pg.Pool({ connectionString: db.url, max: 3 });
      // As createStore does: a connection cut off (drop() at the end) must not be an unhandled 'error'.
      pool.on('error', () => {});
      return new SqlStore({ sql: pgSqlClient(pool), kind: 'pg', location: `replica-${i}` });
    });
  });
  afterAll(async () => {
    await Promise.all(stores.map((s) => s.close()));
    await db.drop();
  });

  it(`acts exactly once in ${RUNS} of ${RUNS} concurrent runs`, async () => {
    const failures: string[] = [];
    const t0 = Date.now();
    for (let run = 0; run < RUNS; run++) {
      const flag = `replica_flag_${run}`;
      const rules = rulesFrom(`
interval: 1m
notify:
  slack: { webhook_url: "https://hooks.slack.com/services/T000/B000/XXXX" }
  email: { to: [oncall@example.com] }
rules:
  - id: replica-rule
    flags: [${flag}]
    source: posthog
    condition: { absolute: { error_rate_above: 0.05 } }
    action: disable
    consecutive: 1
    min_users: 100
`);
      await db.sql.query('delete from guardian_leases');
      const at = new Date();
      const useLease = run % 2 === 0;
      const reports: CycleReport[] = await Promise.all(
        stores.map((store, i) => {
          const deps = {
            now: () => at,
            store,
            sources: new Map([['posthog', new ScriptedSource('posthog', () => ({ treatment: { total: 1000, errors: 300 } }))]]),
            rules,
            logger: new MemoryLogger(),
            signal: new AbortController().signal,
          };
          return useLease ? runLeasedCycle({ ...deps, holder: `replica-${i}`, leaseTtlMs: 60_000 }) : runCycle(deps);
        }),
      );
      const { rows } = await db.sql.query<{ events: number; outbox: number; slack: number; email: number; flips: number; enabled: boolean }>(
        `select (select count(*)::int from rollback_events where flag_name = $1) as events,
                (select count(*)::int from notification_outbox o join rollback_events e on e.id = o.event_id where e.flag_name = $1) as outbox,
                (select count(*)::int from notification_outbox o join rollback_events e on e.id = o.event_id where e.flag_name = $1 and o.channel = 'slack') as slack,
                (select count(*)::int from notification_outbox o join rollback_events e on e.id = o.event_id where e.flag_name = $1 and o.channel = 'email') as email,
                (select count(*)::int from flag_changes where flag_name = $1 and op = 'update' and (old_row->>'enabled')::boolean and not (new_row->>'enabled')::boolean) as flips,
                (select enabled from feature_flags where name = $1) as enabled`,
        [flag],
      );
      const r = rows[0];
      const ran = reports.filter((x) => x.ran).length;
      const ok = r && r.events === 1 && r.outbox === 2 && r.slack === 1 && r.email === 1 && r.flips === 1 && !r.enabled && (useLease ? ran === 1 : ran === 3);
      if (!ok) failures.push(`run ${run} (${useLease ? 'lease' : 'no lease'}): ${JSON.stringify({ ...r, ran })}`);
    }
    const perRunMs = (Date.now() - t0) / RUNS;
    console.log(`replicas: ${RUNS} runs, ${RUNS - failures.length} exact, ${perRunMs.toFixed(1)} ms per run`);
    expect(failures).toEqual([]);
  });

  it("a dead replica's lease lapses within one interval and another replica takes the cycle", async () => {
    await db.sql.query('delete from guardian_leases');
    const ttl = 300;
    expect(await stores[0]!.tryLease('cycle', 'replica-0', ttl)).toBe(true);
    expect(await stores[1]!.tryLease('cycle', 'replica-1', ttl)).toBe(false);
    // replica-0 dies (never renews); within one interval the lease is free again.
    await new Promise((r) => setTimeout(r, ttl + 50));
    expect(await stores[1]!.tryLease('cycle', 'replica-1', ttl)).toBe(true);
    expect(await stores[0]!.tryLease('cycle', 'replica-0', ttl)).toBe(false);
  });
});
