// SQL evaluation against the shared vectors and against the TypeScript SDK, on a real
// PostgreSQL and on PGlite: flag_bucket, is_feature_enabled, evaluate_flags, get_my_flags.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { bucket, evaluate, type FlagDefinition } from '../../sdk/src/core/evaluate.ts';
import type { TestDatabase } from '../../test/helpers/db.ts';
import { evaluationVectors, type EvaluationVector } from '../../test/vectors/index.ts';
import { asRole, BACKENDS, num } from './support.ts';
import { rng } from '../../guardian/src/random.ts';

const { buckets, unleash, evaluations } = evaluationVectors;

/**
 * Random Unicode strings PostgreSQL can store: every plane, no NUL (text cannot hold it) and no
 * lone surrogates (not valid UTF-8); lengths 0..40 so every tail length and several blocks occur.
 */
function randomUnicodeIds(n: number, seed: number): string[] {
  const next = rng(seed);
  const pools = [[0x01, 0x7f], [0x80, 0x7ff], [0x800, 0xd7ff], [0xe000, 0xfffd], [0x10000, 0x10ffff], [0x1f300, 0x1faff]] as const;
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    let s = '';
    const len = Math.floor(next() * 41);
    for (let j = 0; j < len; j++) {
      const [lo, hi] = pools[Math.floor(next() * pools.length)]!;
      s += String.fromCodePoint(lo + Math.floor(next() * (hi - lo + 1)));
    }
    out.push(s);
  }
  return out;
}

function definitionOf(v: EvaluationVector): FlagDefinition {
  return { name: v.flag.name, enabled: v.flag.enabled, rolloutPercentage: v.flag.rollout_percentage, bucketGroup: v.flag.bucket_group, targets: v.flag.targets };
}

/** A v4-shaped UUID from the generator (auth.uid() is a uuid). */
function uuid(next: () => number): string {
  const h = (n: number): string => Array.from({ length: n }, () => Math.floor(next() * 16).toString(16)).join('');
  return `${h(8)}-${h(4)}-4${h(3)}-a${h(3)}-${h(12)}`;
}

describe.each(BACKENDS)('SQL evaluation on $name', ({ name, create }) => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await create({ seed: false });
    // Every flag of the evaluation vectors, once (vectors that share a name share a definition).
    const flags = new Map<string, EvaluationVector['flag']>();
    for (const v of evaluations) {
      const seen = flags.get(v.flag.name);
      if (seen) expect(seen).toEqual(v.flag);
      flags.set(v.flag.name, v.flag);
    }
    for (const f of flags.values()) {
      await db.sql.query('insert into public.feature_flags (name, enabled, rollout_percentage, bucket_group) values ($1, $2, $3, $4)', [
        f.name,
        f.enabled,
        f.rollout_percentage,
        f.bucket_group,
      ]);
      for (const t of f.targets) await db.sql.query('insert into public.flag_targets (flag_name, user_id) values ($1, $2)', [f.name, t]);
    }
  });

  afterAll(async () => {
    await db?.drop();
  });

  test('flag_bucket matches every bucket vector', async () => {
    const { rows } = await db.sql.query<{ i: number | string; b: number }>(
      'select x.i, public.flag_bucket(x.g, x.u) as b from unnest($1::text[], $2::text[]) with ordinality as x(g, u, i) order by x.i',
      [buckets.map((v) => v.group), buckets.map((v) => v.user_id)],
    );
    expect(rows).toHaveLength(buckets.length);
    rows.forEach((r, i) => expect({ note: buckets[i]!.note, bucket: r.b }).toEqual({ note: buckets[i]!.note, bucket: buckets[i]!.expected }));
  });

  test('flag_bucket agrees with Unleash client-specification rollout examples', async () => {
    for (const v of unleash) {
      const { rows } = await db.sql.query<{ b: number }>('select public.flag_bucket($1, $2) as b', [v.group, v.user_id]);
      expect(rows[0]!.b, v.source).toBe(v.bucket);
      expect(rows[0]!.b <= v.percentage, v.source).toBe(v.expected_enabled);
    }
  });

  test('flag_bucket is null for a null input (STRICT) and always 1..100', async () => {
    const { rows } = await db.sql.query<{ a: number | null; b: number | null }>('select public.flag_bucket(null, $1) as a, public.flag_bucket($1, null) as b', ['u']);
    expect(rows[0]).toEqual({ a: null, b: null });
  });

  test('evaluate_flags and is_feature_enabled give every evaluation vector', async () => {
    for (const v of evaluations) {
      const { rows } = await db.sql.query<{ value: boolean; reason: string }>('select value, reason from public.evaluate_flags($1) where name = $2', [v.user_id, v.flag.name]);
      expect({ d: v.description, ...rows[0] }).toEqual({ d: v.description, ...v.expected });
      const one = await db.sql.query<{ on: boolean }>('select public.is_feature_enabled($1, $2) as on', [v.flag.name, v.user_id]);
      expect(one.rows[0]!.on, v.description).toBe(v.expected.value);
      // And the TypeScript SDK says the same.
      const ts = evaluate(definitionOf(v), v.user_id);
      expect({ value: ts.value, reason: ts.reason }).toEqual(v.expected);
    }
  });

  test('is_feature_enabled: unknown flag and null user are false', async () => {
    const { rows } = await db.sql.query<{ a: boolean; b: boolean }>('select public.is_feature_enabled($1, $2) as a, public.is_feature_enabled($3, null) as b', ['no_such_flag', 'u1', 'eval_full']);
    expect(rows[0]).toEqual({ a: false, b: false });
  });

  test('evaluate_flags returns every flag once, ordered by name, with version and guard state', async () => {
    const { rows } = await db.sql.query<{ name: string; version: string | number; guard_state: string; rollback_message: string | null }>('select * from public.evaluate_flags($1)', ['someone']);
    const names = rows.map((r) => r.name);
    expect(names).toEqual([...new Set(evaluations.map((v) => v.flag.name))].sort());
    for (const r of rows) {
      expect(num(r.version)).toBeGreaterThanOrEqual(1);
      expect(r.guard_state).toBe('watching');
    }
  });

  test('evaluate_flags(null): disabled flags say DISABLED, the rest are off with reason ERROR (like the SDK)', async () => {
    const { rows } = await db.sql.query<{ name: string; value: boolean; reason: string }>('select name, value, reason from public.evaluate_flags(null)');
    expect(rows.length).toBeGreaterThan(0);
    for (const r of rows) {
      expect(r.value).toBe(false);
      expect(r.reason).toBe(r.name.startsWith('eval_disabled') ? 'DISABLED' : 'ERROR');
    }
  });

  test("property: flag_bucket equals the SDK's bucket() for 10,000 random Unicode ids", async () => {
    const ids = randomUnicodeIds(10_000, name === 'postgres' ? 1 : 2);
    const groups = ['ai_rollout', 'booking_agent_enabled', 'grüppe_日本', ''];
    let compared = 0;
    for (let start = 0; start < ids.length; start += 2500) {
      const batch = ids.slice(start, start + 2500);
      const group = groups[(start / 2500) % groups.length]!;
      const { rows } = await db.sql.query<{ i: number | string; b: number }>(
        'select x.i, public.flag_bucket($1, x.u) as b from unnest($2::text[]) with ordinality as x(u, i) order by x.i',
        [group, batch],
      );
      expect(rows).toHaveLength(batch.length);
      const mismatches = rows.filter((r, i) => r.b !== bucket(group, batch[i]!)).map((r) => ({ id: batch[num(r.i) - 1], sql: r.b }));
      expect(mismatches).toEqual([]);
      compared += rows.length;
    }
    expect(compared).toBe(10_000);
  });

  test('property: evaluate_flags equals the SDK for the seed-like staged rollout over 1,000 ids', async () => {
    await db.sql.query(`insert into public.feature_flags (name, enabled, rollout_percentage, bucket_group) values
      ('prop_alpha', true, 10, 'prop_rollout'), ('prop_beta', true, 50, 'prop_rollout'), ('prop_agent', true, 25, null)`);
    const defs: FlagDefinition[] = [
      { name: 'prop_alpha', enabled: true, rolloutPercentage: 10, bucketGroup: 'prop_rollout' },
      { name: 'prop_beta', enabled: true, rolloutPercentage: 50, bucketGroup: 'prop_rollout' },
      { name: 'prop_agent', enabled: true, rolloutPercentage: 25, bucketGroup: null },
    ];
    const ids = randomUnicodeIds(1000, 99);
    for (const id of ids) {
      const { rows } = await db.sql.query<{ name: string; value: boolean }>("select name, value from public.evaluate_flags($1) where name like 'prop\\_%'", [id]);
      const got = Object.fromEntries(rows.map((r) => [r.name, r.value]));
      const want = Object.fromEntries(defs.map((d) => [d.name, evaluate(d, id).value]));
      expect(got).toEqual(want);
    }
  });

  test('get_my_flags evaluates the caller (auth.uid()) exactly as the SDK does', async () => {
    const next = rng(5);
    const defs = new Map<string, FlagDefinition>();
    for (const v of evaluations) defs.set(v.flag.name, definitionOf(v));
    for (let i = 0; i < 50; i++) {
      const uid = uuid(next);
      const rows = await asRole(db.sql, 'authenticated', { sub: uid, role: 'authenticated' }, async (tx) =>
        (await tx.query<{ name: string; value: boolean; reason: string }>('select name, value, reason from public.get_my_flags()')).rows,
      );
      for (const r of rows) {
        const def = defs.get(r.name);
        if (!def) continue;
        const ts = evaluate(def, uid);
        expect({ name: r.name, value: r.value, reason: r.reason }).toEqual({ name: r.name, value: ts.value, reason: ts.reason });
      }
    }
  });
});
