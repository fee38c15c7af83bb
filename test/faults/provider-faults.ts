/**
 * Provider faults for the fault suite: an honest world of healthy flags (about 1% of users with
 * errors on both sides, far below every rule), Sentry- and PostHog-shaped answers computed from it
 * for the exact requests the sources send, and a generator of faults that a lying or broken
 * provider could send instead. Any breach verdict while the world is healthy is a rollback CAUSED
 * by a fault.
 *
 * The Sentry fake answers both request forms: the grouped one (`field=tags[flag.<name>]`,
 * `start`/`end`) and the per-value one of earlier versions (`query=flags["<name>"]:true`,
 * `statsPeriod`), so the same faults can be run against an older source to show what they did.
 */
import { createHash } from 'node:crypto';

/** A random number in [0, 1) (`rng(seed)` from guardian/src/random.ts). */
type Random = () => number;

/** Every fault kind the generator makes, per provider. */
export const SENTRY_FAULTS = [
  'errors_above_total',
  'empty_traffic',
  'null_count',
  'backwards',
  'duplicate_rows',
  'non_integer',
  'negative',
  'string_count',
  'infinite',
  'missing_field',
  'traffic_without_users',
  'event_flood',
  'http_500',
  'http_429',
  'malformed_json',
  'wrong_shape',
  'unknown_value_rows',
] as const;
export const POSTHOG_FAULTS = [
  'duplicate_rows',
  'backwards',
  'errors_above_total',
  'null_count',
  'non_integer',
  'negative',
  'string_count',
  'infinite',
  'truncated',
  'unknown_flag_rows',
  'http_500',
  'http_429',
  'malformed_json',
  'wrong_columns',
] as const;
export const BUILTIN_FAULTS = ['user_flood'] as const;

export type SentryFault = (typeof SENTRY_FAULTS)[number];
export type PosthogFault = (typeof POSTHOG_FAULTS)[number];

/** Counts of one cohort at one time: users, users with errors, events, error events. */
interface Truth {
  readonly users: number;
  readonly errorUsers: number;
  readonly events: number;
  readonly errorEvents: number;
}

/**
 * The honest world: per flag and cohort, users arrive at a steady rate and about 1% of them hit an
 * error; counts are cumulative since a given time, so they only grow as time passes.
 */
export class HonestWorld {
  /** Users per minute per cohort. */
  readonly perMinute: number;
  constructor(perMinute = 120) {
    this.perMinute = perMinute;
  }

  truth(flag: string, on: boolean, sinceMs: number, nowMs: number): Truth {
    const minutes = Math.max(0, (nowMs - sinceMs) / 60_000);
    // a per-flag, per-cohort wobble of the rate (0.8%..1.2%) keeps the flags different
    const wobble = (parseInt(createHash('sha256').update(`${flag}:${on}`).digest('hex').slice(0, 6), 16) % 40) / 10_000;
    const users = Math.floor(this.perMinute * minutes);
    const errorUsers = Math.floor(users * (0.008 + wobble));
    return { users, errorUsers, events: users * 5, errorEvents: errorUsers * 2 };
  }
}

/** What a fake provider did: requests answered and faults sent, by kind. */
export class FaultLedger {
  requests = 0;
  readonly faults = new Map<string, number>();
  get total(): number {
    let n = 0;
    for (const v of this.faults.values()) n += v;
    return n;
  }
  note(kind: string): void {
    this.faults.set(kind, (this.faults.get(kind) ?? 0) + 1);
  }
}

/** Which fault (if any) to send for one flag's answer. */
export type FaultPlan<K extends string> = (flag: string) => K | undefined;

const json = (body: unknown, status = 200, headers: Record<string, string> = {}) => new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json', ...headers } });
const text = (body: string, status = 200) => new Response(body, { status, headers: { 'content-type': 'application/json' } });

/**
 * A `fetch` that answers Sentry's `/events/` for the honest world, with the faults `plan` picks.
 *
 * @example
 * const fetch = sentryFetch(world, () => clock.now, plan, ledger);
 */
export function sentryFetch(world: HonestWorld, now: () => number, plan: FaultPlan<SentryFault>, ledger: FaultLedger): typeof globalThis.fetch {
  return async (input) => {
    ledger.requests++;
    const u = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
    const dataset = u.searchParams.get('dataset');
    const fields = u.searchParams.getAll('field');
    const query = u.searchParams.get('query') ?? '';
    const nowMs = now();
    const grouped = /^tags\[flag\.([a-z][a-z0-9_]*)\]$/.exec(fields[0] ?? '');
    let flag: string;
    let sinceMs: number;
    let endMs = nowMs;
    let values: ('true' | 'false')[];
    if (grouped) {
      flag = grouped[1]!;
      sinceMs = Date.parse(u.searchParams.get('start') ?? '');
      endMs = Math.min(nowMs, Date.parse(u.searchParams.get('end') ?? '') || nowMs);
      values = ['true', 'false'];
    } else {
      const m = /^(?:flags\["([a-z][a-z0-9_]*)"\]|flag\.([a-z][a-z0-9_]*)):(true|false)$/.exec(query);
      if (!m) return json({ detail: `fake sentry: unknown query ${query}` }, 400);
      flag = m[1] ?? m[2]!;
      values = [m[3] as 'true' | 'false'];
      const period = /^(\d+)m$/.exec(u.searchParams.get('statsPeriod') ?? '');
      sinceMs = nowMs - Number(period?.[1] ?? 10) * 60_000;
    }
    const fault = plan(flag);
    const errorsSet = dataset === 'errors';
    const rowFor = (value: 'true' | 'false', t: Truth) => {
      const users = errorsSet ? t.errorUsers : t.users;
      const count = errorsSet ? t.errorEvents : t.events;
      return grouped ? { [`tags[flag.${flag}]`]: value, 'count_unique(user)': users, 'count()': count } : { 'count_unique(user)': users, 'count()': count };
    };
    let rows: Record<string, unknown>[] = values.map((v) => rowFor(v, world.truth(flag, v === 'true', sinceMs, endMs)));
    const meta = { fields: { 'count_unique(user)': 'integer', 'count()': 'integer' }, units: {}, isMetricsData: false, isMetricsExtractedData: false, tips: { query: null, columns: null }, datasetReason: 'unchanged', dataset };
    const onRow = () => rows[0]!;
    if (fault) ledger.note(`sentry:${fault}`);
    switch (fault) {
      case undefined:
        break;
      case 'errors_above_total':
        // more users with errors than users in all (issue 10: `flag-on 211863/211863 users`)
        if (errorsSet) rows = values.map((v) => {
          const t = world.truth(flag, v === 'true', sinceMs, endMs);
          return { ...rowFor(v, t), 'count_unique(user)': t.users * 2 + 100, 'count()': t.events * 2 + 100 };
        });
        break;
      case 'empty_traffic':
        if (!errorsSet) rows = [];
        break;
      case 'null_count':
        onRow()[errorsSet ? 'count()' : 'count_unique(user)'] = null;
        if (!errorsSet) onRow()['count()'] = null;
        break;
      case 'backwards': {
        // counts as of a much earlier time on the traffic side only: the rate jumps up
        if (!errorsSet) rows = values.map((v) => rowFor(v, world.truth(flag, v === 'true', sinceMs, sinceMs + (endMs - sinceMs) * 0.1)));
        break;
      }
      case 'duplicate_rows':
        if (grouped) rows = [{ ...onRow(), 'count_unique(user)': errorsSet ? 900 : 1000, 'count()': errorsSet ? 900 : 1000 }, ...rows];
        else if (!errorsSet) rows = [{ ...onRow(), 'count_unique(user)': 10, 'count()': 10 }, ...rows];
        break;
      case 'non_integer':
        onRow()['count_unique(user)'] = 1.5;
        break;
      case 'negative':
        onRow()[errorsSet ? 'count_unique(user)' : 'count()'] = -7;
        if (!errorsSet) onRow()['count_unique(user)'] = -7;
        break;
      case 'string_count':
        onRow()['count_unique(user)'] = String(onRow()['count_unique(user)']);
        break;
      case 'infinite':
        return text(JSON.stringify({ data: rows, meta }).replace(/"count_unique\(user\)":\d+/, '"count_unique(user)":1e999'));
      case 'missing_field':
        delete onRow()['count_unique(user)'];
        break;
      case 'traffic_without_users':
        if (!errorsSet) rows = rows.map((r) => ({ ...r, 'count_unique(user)': 0 }));
        break;
      case 'event_flood':
        // one user floods errors; transactions carry no user (issue 10 #4)
        if (errorsSet) onRow()['count()'] = Number(onRow()['count()']) + 5000;
        if (errorsSet) onRow()['count_unique(user)'] = Number(onRow()['count_unique(user)']) + 1;
        if (!errorsSet) rows = rows.map((r) => ({ ...r, 'count_unique(user)': 0 }));
        break;
      case 'http_500':
        return text('{"detail":"Internal Error"}', 500);
      case 'http_429':
        return json({ detail: 'You are attempting to use this endpoint too frequently. Limit is 30 requests in 1 seconds' }, 429, {
          'X-Sentry-Rate-Limit-Remaining': '0',
          'X-Sentry-Rate-Limit-Limit': '30',
          'X-Sentry-Rate-Limit-Reset': String(Math.ceil(nowMs / 1000) + 2),
        });
      case 'malformed_json':
        return text('{"data": [{"count()": 1');
      case 'wrong_shape':
        return json({ data: { 'count()': 5 }, meta });
      case 'unknown_value_rows':
        if (grouped) rows = [...rows, { [`tags[flag.${flag}]`]: 'maybe', 'count_unique(user)': 10_000, 'count()': 10_000 }];
        break;
    }
    return json({ data: rows, meta }, 200, { 'X-Sentry-Rate-Limit-Remaining': '1000', 'X-Sentry-Rate-Limit-Limit': '1000', 'X-Sentry-Rate-Limit-Reset': String(Math.ceil(nowMs / 1000) + 1) });
  };
}

/**
 * A `fetch` that answers PostHog's query API for the guardian's HogQL (flags and their starts read
 * from the query text), with the faults `plan` picks per flag.
 *
 * @example
 * const fetch = posthogFetch(world, () => clock.now, plan, ledger);
 */
export function posthogFetch(world: HonestWorld, now: () => number, plan: FaultPlan<PosthogFault>, ledger: FaultLedger): typeof globalThis.fetch {
  return async (_input, init) => {
    ledger.requests++;
    const body = JSON.parse(String(init?.body ?? '{}')) as { query?: { query?: string } };
    const hogql = body.query?.query ?? '';
    const nowMs = now();
    const flags = [...hogql.matchAll(/flag = '([a-z][a-z0-9_]*)', timestamp >= toDateTime\('([0-9: -]+)', 'UTC'\)/g)].map((m) => ({ flag: m[1]!, sinceMs: Date.parse(`${m[2]!.replace(' ', 'T')}Z`) }));
    const results: unknown[][] = [];
    let whole: Response | undefined;
    for (const { flag, sinceMs } of flags) {
      const fault = plan(flag);
      if (fault) ledger.note(`posthog:${fault}`);
      const row = (v: 'true' | 'false', t: Truth): unknown[] => [flag, v, t.users, t.errorUsers];
      let rows = (['true', 'false'] as const).map((v) => row(v, world.truth(flag, v === 'true', sinceMs, nowMs)));
      switch (fault) {
        case undefined:
          break;
        case 'duplicate_rows':
          // a first row that would breach if "first row wins"
          rows = [[flag, 'true', 400, 300], ...rows];
          break;
        case 'backwards':
          rows = (['true', 'false'] as const).map((v) => {
            const t = world.truth(flag, v === 'true', sinceMs, nowMs);
            return [flag, v, Math.floor(t.users * 0.1), t.errorUsers];
          });
          break;
        case 'errors_above_total':
          rows[0]![3] = Number(rows[0]![2]) + 50;
          break;
        case 'null_count':
          rows[0]![2] = null;
          break;
        case 'non_integer':
          rows[0]![3] = 2.5;
          break;
        case 'negative':
          rows[0]![2] = -1;
          break;
        case 'string_count':
          rows[0]![2] = String(rows[0]![2]);
          break;
        case 'infinite':
          rows[0]![2] = 'INFINITY';
          break;
        case 'truncated':
          rows = [];
          break;
        case 'unknown_flag_rows':
          rows.push(['not_watched_flag', 'true', 5, 5]);
          break;
        case 'http_500':
          whole ??= text('{"type":"server_error","code":"error","detail":"A server error occurred.","attr":null}', 500);
          break;
        case 'http_429':
          whole ??= json({ type: 'throttled_error', code: 'throttled', detail: 'Request was throttled. Expected available in 2 seconds.', attr: null }, 429, { 'Retry-After': '2' });
          break;
        case 'malformed_json':
          whole ??= text('{"columns": ["flag",');
          break;
        case 'wrong_columns':
          whole ??= json({ columns: ['breakdown_value', 'count'], results: [['x', 1]], hasMore: false });
          break;
      }
      results.push(...rows);
    }
    if (whole) return whole;
    let text2 = JSON.stringify({
      columns: ['flag', 'variant', 'users', 'error_users'],
      types: [
        ['flag', 'String'],
        ['variant', 'Nullable(String)'],
        ['users', 'UInt64'],
        ['error_users', 'UInt64'],
      ],
      results,
      hasMore: false,
      hogql,
      is_cached: false,
      limit: 100,
      offset: 0,
      timezone: 'UTC',
    });
    text2 = text2.replaceAll('"INFINITY"', '1e999');
    return text(text2);
  };
}

/**
 * A fault plan: on each poll, each flag's answer is faulted with probability `p` by a random kind,
 * except flags under a targeted fault, which get the same kind poll after poll.
 */
export class FaultSchedule<K extends string> {
  readonly #kinds: readonly K[];
  readonly #random: Random;
  readonly #p: number;
  readonly targeted = new Map<string, { kind: K; left: number }>();
  constructor(kinds: readonly K[], random: Random, p: number) {
    this.#kinds = kinds;
    this.#random = random;
    this.#p = p;
  }
  /** The same fault on `flag` for the next `polls` polls. */
  target(flag: string, kind: K, polls: number): void {
    this.targeted.set(flag, { kind, left: polls });
  }
  /** Decides this poll's faults once per flag (call at the start of each cycle). */
  decide(flags: readonly string[]): Map<string, K> {
    const out = new Map<string, K>();
    for (const f of flags) {
      const t = this.targeted.get(f);
      if (t && t.left > 0) {
        out.set(f, t.kind);
        t.left--;
        continue;
      }
      if (this.#random() < this.#p) out.set(f, this.#kinds[Math.floor(this.#random() * this.#kinds.length)]!);
    }
    return out;
  }
}
