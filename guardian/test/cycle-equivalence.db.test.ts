/**
 * The cycle's decisions, pinned: a fixed input (flags, stage ages, target lists, rules on two
 * sources with different windows, and per-poll answers that breach, stay healthy, go missing,
 * break the rules of the data or run backwards) is judged over nine cycles, and every verdict,
 * its reason and evidence, every action and the rule state left in the database must equal
 * the recorded file byte for byte. The file was written by the cycle before its speed work
 * (decide, stats, the history read, the cycle's bookkeeping), so a faster cycle that decides
 * anything differently fails here. PostgreSQL and PGlite must both give the same file.
 */
import { afterEach, describe, expect, it } from 'vitest';

import { createTestDatabase, createTestPglite, type TestDatabase } from '../../test/helpers/db.ts';
import { runCycle } from '../src/cycle/run.ts';
import type { CycleReport } from '../src/cycle/types.ts';
import { SqlStore } from '../src/store/sql-store.ts';
import { MemoryLogger, rulesFrom, ScriptedSource, type Scripted } from './cycle-helpers.ts';

const FLAGS = Array.from({ length: 16 }, (_, i) => `eq_flag_${String(i).padStart(2, '0')}`);
/** The stage start of every flag (some are moved 25 minutes earlier, so they start in a later segment). */
const STAGE = new Date('2026-03-02T09:00:00.000Z');
const CYCLE_MS = 7 * 60_000;
const CYCLES = 9;

const RULES = `
interval: 1m
defaults: { min_users: 250, min_samples: 700, consecutive: 2 }
rules:
  - id: relative-all
    flags: [${FLAGS.join(', ')}]
    source: posthog
    condition: { relative: { max_increase: 0.01 } }
    window: 20m
    action: step_back
  - id: absolute-some
    flags: [${FLAGS.slice(0, 7).join(', ')}]
    source: posthog
    condition: { absolute: { error_rate_above: 0.08 } }
    window: 30m
    action: notify_only
  - id: sentry-absolute
    flags: [${FLAGS.join(', ')}]
    source: sentry
    condition: { absolute: { error_rate_above: 0.05, confidence: 0.99 } }
    window: 15m
    consecutive: 1
    action: disable
  - id: sentry-dry
    flags: [${FLAGS.slice(8).join(', ')}]
    source: sentry
    condition: { absolute: { error_rate_above: 0.018 } }
    window: 15m
    dry_run: true
    action: disable
`;

/** A small deterministic hash of (flag index, poll, salt): 0 … 999. */
function h(i: number, call: number, salt: number): number {
  let x = (i + 1) * 2_654_435_761 + (call + 1) * 40_503 + salt * 97;
  x = Math.imul(x ^ (x >>> 15), 0x2c1b3c6d);
  x = Math.imul(x ^ (x >>> 12), 0x297a2d39);
  return ((x ^ (x >>> 15)) >>> 0) % 1000;
}

/** The answer for flag i at a source's poll number `call` (1-based): classes by i % 6. */
function answer(source: 'posthog' | 'sentry', i: number, call: number): Scripted {
  const cls = i % 6;
  const users = 120 + 90 * call + h(i, call, 1) / 10;
  const onTotal = Math.round(users);
  const offTotal = Math.round(users * 1.4 + h(i, call, 2) / 20);
  const rateOn = cls === 1 ? 0.13 : cls === 2 ? 0.034 : cls === 3 && call >= 4 ? 0.11 : 0.021;
  const on = { total: onTotal, errors: Math.round(onTotal * rateOn + h(i, call, 3) / 250) };
  const off = { total: offTotal, errors: Math.round(offTotal * 0.02 + h(i, call, 4) / 300) };
  if (cls === 4 && call % 3 === 0) return { noData: 'unavailable' };
  if (cls === 5 && call === 3) return { treatment: { total: 10, errors: 11 }, control: off };
  if (cls === 5 && call === 5) return { treatment: { total: 5, errors: 0 }, control: { total: 5, errors: 0 } };
  if (source === 'sentry') return i % 5 === 0 ? { treatment: { total: on.total * 3, errors: on.errors * 2 }, unit: 'events' } : { treatment: on, ...(i % 2 === 0 ? { control: off } : {}) };
  return { treatment: on, control: off };
}

/** The parts of a report that are decisions (no ids, durations or wall-clock times). */
function decisions(k: number, report: CycleReport): string[] {
  return report.results.map((r) =>
    JSON.stringify({
      cycle: k,
      rule: r.ruleId,
      flag: r.flag,
      action: r.action,
      ...(r.ruleAction ? { ruleAction: r.ruleAction } : {}),
      ...(r.skipped ? { skipped: r.skipped } : {}),
      ...(r.error ? { error: r.error.code } : {}),
      ...(r.verdict ? { verdict: r.verdict } : {}),
    }),
  );
}

const backends: [string, () => Promise<TestDatabase>][] = [
  ['PostgreSQL', () => createTestDatabase({ seed: false })],
  ['PGlite', () => createTestPglite({ seed: false })],
];

describe.each(backends)('the cycle decides as recorded (%s)', (_name, open) => {
  let db: TestDatabase | undefined;
  afterEach(async () => {
    await db?.drop();
    db = undefined;
  });

  it('nine cycles over a fixed input give the recorded verdicts, evidence, actions and rule state', { timeout: 120_000 }, async () => {
    db = await open();
    const sql = db.sql;
    await sql.query(`insert into public.feature_flags (name, enabled, rollout_percentage) select x, true, 50 from unnest($1::text[]) as x`, [FLAGS]);
    await sql.query(`insert into public.flag_targets (flag_name, user_id) values ($1, 'vip-1'), ($1, 'vip-2'), ($2, 'vip-3')`, [FLAGS[2], FLAGS[7]]);
    // Fixed stage starts (the write trigger would set now()): every flag at STAGE, every fourth 25 minutes earlier.
    await sql.query('alter table public.feature_flags disable trigger user');
    await sql.query(`update public.feature_flags set stage_started_at = $1::timestamptz - case when right(name, 2)::int % 4 = 0 then interval '25 minutes' else interval '0' end`, [STAGE.toISOString()]);
    await sql.query('alter table public.feature_flags enable trigger user');

    const store = new SqlStore({ sql, kind: db.url.startsWith('pglite') ? 'pglite' : 'pg', location: 'test' });
    const posthog = new ScriptedSource('posthog', (flag, call) => answer('posthog', FLAGS.indexOf(flag), call));
    const sentry = new ScriptedSource('sentry', (flag, call) => answer('sentry', FLAGS.indexOf(flag), call));
    const rules = rulesFrom(RULES);
    const lines: string[] = [];
    for (let k = 1; k <= CYCLES; k++) {
      const at = new Date(STAGE.getTime() + 60_000 + (k - 1) * CYCLE_MS);
      const report = await runCycle({
        now: () => at,
        store,
        sources: new Map([
          ['posthog', posthog],
          ['sentry', sentry],
        ]),
        rules,
        logger: new MemoryLogger(),
        signal: new AbortController().signal,
        channels: [],
      });
      expect(report.errors).toEqual([]);
      lines.push(...decisions(k, report));
      lines.push(JSON.stringify({ cycle: k, sources: report.sources }));
    }
    const state = await sql.query<Record<string, unknown>>(
      'select rule_id, flag_name, consecutive_breaches, last_verdict, last_evidence from public.guardian_rule_state order by rule_id, flag_name',
    );
    for (const r of state.rows) {
      const evidence = typeof r['last_evidence'] === 'string' ? (JSON.parse(r['last_evidence']) as unknown) : r['last_evidence'];
      lines.push(JSON.stringify({ state: `${String(r['rule_id'])}:${String(r['flag_name'])}`, consecutive: r['consecutive_breaches'], verdict: r['last_verdict'], evidence }));
    }
    const acted = await sql.query<Record<string, unknown>>('select name, enabled, rollout_percentage, guard_state from public.feature_flags order by name');
    for (const r of acted.rows) lines.push(JSON.stringify(r));
    // Sanity: the fixed input covers breaches, actions, dry runs, missing and rejected data, and later segments.
    const text = lines.join('\n');
    for (const needle of ['"kind":"breach"', '"action":"acted"', '"action":"dry_run"', '"kind":"no_data"', 'errors_above_total', 'counts_backwards', '"segments":2', '"unit":"events"', '"kind":"insufficient_data"']) {
      expect(text, needle).toContain(needle);
    }
    await expect(`${text}\n`).toMatchFileSnapshot('fixtures/cycle-equivalence.jsonl');
  });
});
