/**
 * PostHog metric source: one HogQL query per cycle for all watched flags (split into a few
 * queries when it would be larger than {@link MAX_QUERY_BYTES}), counting per
 * (flag, `$feature/<flag>` value) the distinct users and the distinct users with an `$exception`
 * since each flag's segment start. Rows are indexed by flag in one pass; every row is checked
 * as data: two rows for one (flag, cohort), counts that are not whole numbers ≥ 0 and more
 * error users than users make THAT flag `no_data` with the reason (sources/validate.ts).
 */
import { FLAG_NAME_PATTERN } from '../rules/schema.ts';
import { DEFAULT_RETRY, RequestBudget, requestJson, retryAfterMs, SourceFailure, type RetryPolicy } from './http.ts';
import type { CohortCounts, FlagObservation, FlagQuery, MetricSource, SourceDeps, SourceReport } from './types.ts';
import { isCount } from './validate.ts';

/** Settings of the PostHog source (from `sources.posthog` in the rules file). */
export interface PosthogSourceOptions {
  /** e.g. https://us.posthog.com, https://eu.posthog.com or a self-hosted URL. */
  readonly host: string;
  readonly project_id: string;
  /** Personal API key with `query:read`. Empty = not configured. */
  readonly api_key: string;
  /** Oldest data looked at, in ms (the largest rule window of the flags); each flag starts at max(since, now − lookback). */
  readonly lookbackMs?: number;
  readonly retry?: RetryPolicy;
  /** After a 401/403 the source stops; it tries again after this long (default 15 min). */
  readonly authRetryMs?: number;
  /** Largest HogQL text of one query in bytes (default {@link MAX_QUERY_BYTES}); more flags are split into several queries. */
  readonly maxQueryBytes?: number;
  /** Queries per cycle at most (default {@link MAX_QUERIES_PER_CYCLE}); flags beyond them rotate to the next cycles (`deferred`). */
  readonly maxQueriesPerCycle?: number;
}

/**
 * Largest HogQL text of one query: 64 KiB. PostHog documents no query-size limit; ClickHouse
 * refuses SQL above its `max_query_size` (default 262,144 bytes), and HogQL compiles to SQL a few
 * times longer (each `properties['$feature/x']` becomes a JSON extraction), so 64 KiB of HogQL
 * (about 400 flags) stays well under it.
 */
export const MAX_QUERY_BYTES = 65_536;

/**
 * Queries per cycle at most: 10 (PostHog allows 240/min, 2,400/h and 3 at once per project; 10 a
 * cycle at a 1-minute interval is 600/h; queries run 2 at a time).
 */
export const MAX_QUERIES_PER_CYCLE = 10;

/** PostHog's documented limits per project: 240 queries/minute, 2,400/hour. */
export const POSTHOG_BUDGET = [
  { max: 240, windowMs: 60_000 },
  { max: 2_400, windowMs: 3_600_000 },
] as const;

/** Quotes a value as a HogQL string literal (backslash and quote escaped). Flag keys are also pattern-checked before use. */
export function hogqlString(value: string): string {
  return `'${value.replaceAll('\\', '\\\\').replaceAll("'", "\\'")}'`;
}

function hogqlTime(d: Date): string {
  // 'YYYY-MM-DD HH:MM:SS' in UTC, with the timezone given explicitly (toDateTime(text, tz)).
  return `toDateTime(${hogqlString(d.toISOString().slice(0, 19).replace('T', ' '))}, 'UTC')`;
}

/** At most this many target-list users are left out per flag (the query stays small); the rest stay in. */
export const MAX_EXCLUDED_USERS = 1000;

/** ` AND distinct_id NOT IN (…)` for a flag's target list (quoted literals), or nothing. */
function excluded(f: FlagQuery): string {
  if (f.excludeUsers === undefined || f.excludeUsers.length === 0) return '';
  const users = [...new Set(f.excludeUsers)].filter((u) => typeof u === 'string' && u !== '').sort().slice(0, MAX_EXCLUDED_USERS);
  return users.length === 0 ? '' : ` AND distinct_id NOT IN (${users.map(hogqlString).join(', ')})`;
}

/**
 * Builds the one HogQL query for all flags. Users on a flag's target list (`excludeUsers`, at
 * most {@link MAX_EXCLUDED_USERS}) are left out of its counts: they were picked, not randomised. Every flag must match the flag-name pattern
 * (`^[a-z][a-z0-9_]{1,63}$`); anything else throws, so nothing unvalidated reaches the query.
 *
 * @example
 * buildPosthogQuery([{ flag: 'booking_agent_enabled', since: new Date('2026-01-01T10:00:00Z') }]);
 */
export function buildPosthogQuery(flags: readonly FlagQuery[]): string {
  if (flags.length === 0) throw new Error('buildPosthogQuery: no flags');
  for (const f of flags) {
    if (!FLAG_NAME_PATTERN.test(f.flag)) throw new Error(`buildPosthogQuery: ${JSON.stringify(f.flag)} is not a valid flag name`);
  }
  const earliest = new Date(Math.min(...flags.map((f) => f.since.getTime())));
  // Each flag's quoted key once, and each distinct start time once (flags of one stage share it).
  const quoted = flags.map((f) => hogqlString(f.flag));
  const times = new Map<number, string>();
  const time = (d: Date): string => {
    let t = times.get(d.getTime());
    if (t === undefined) times.set(d.getTime(), (t = hogqlTime(d)));
    return t;
  };
  const keys = quoted.join(', ');
  const variant = flags.map((f, i) => `flag = ${quoted[i]!}, properties[${hogqlString(`$feature/${f.flag}`)}]`).join(', ');
  const since = flags.map((f, i) => `flag = ${quoted[i]!}, timestamp >= ${time(f.since)}${excluded(f)}`).join(', ');
  return [
    'SELECT',
    `  arrayJoin([${keys}]) AS flag,`,
    `  toString(multiIf(${variant}, NULL)) AS variant,`,
    '  uniq(distinct_id) AS users,',
    "  uniqIf(distinct_id, event = '$exception') AS error_users",
    'FROM events',
    `WHERE timestamp >= ${hogqlTime(earliest)}`,
    `  AND multiIf(${since}, false)`,
    'GROUP BY flag, variant',
    `LIMIT ${Math.max(100, flags.length * 4)}`,
  ].join('\n');
}

interface Row {
  readonly flag: string;
  readonly variant: string | null;
  readonly users: unknown;
  readonly errorUsers: unknown;
}

/** The rows of one flag in an answer, by cohort; `problem` is why the flag has no data. */
export interface FlagRows {
  on?: { users: number; errorUsers: number };
  off?: { users: number; errorUsers: number };
  problem?: { reason: string; detail: string };
  rows: number;
}

/**
 * Parses a HogQLQueryResponse by its `columns` names; throws SourceFailure('bad_response') on a
 * shape problem that cannot be pinned to one flag (no `results`, a missing column, a row that is
 * not a list or has no flag name). Counts are checked per flag later ({@link indexRows}).
 */
export function parsePosthogResponse(body: unknown): { rows: Row[]; hasMore: boolean } {
  const bad = (why: string) => new SourceFailure('SOURCE_BAD_RESPONSE', 'bad_response', `posthog: unexpected response: ${why}`);
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw bad('not a JSON object');
  const b = body as Record<string, unknown>;
  if (!Array.isArray(b.results)) throw bad('"results" is not a list');
  if (b.results.length === 0 && b.columns === undefined) return { rows: [], hasMore: false };
  if (!Array.isArray(b.columns) || !b.columns.every((c) => typeof c === 'string')) throw bad('"columns" is not a list of names');
  const cols = b.columns as string[];
  const at = (name: string): number => {
    const i = cols.indexOf(name);
    if (i < 0) throw bad(`column "${name}" is missing (got ${cols.join(', ')})`);
    return i;
  };
  const [fi, vi, ui, ei] = [at('flag'), at('variant'), at('users'), at('error_users')];
  const rows: Row[] = [];
  for (const [n, raw] of b.results.entries()) {
    if (!Array.isArray(raw)) throw bad(`results[${n}] is not a row`);
    const flag: unknown = raw[fi];
    const variant: unknown = raw[vi];
    if (typeof flag !== 'string') throw bad(`results[${n}].flag is ${typeof flag}, expected text`);
    if (variant !== null && typeof variant !== 'string' && typeof variant !== 'boolean') throw bad(`results[${n}].variant is ${typeof variant}, expected text or null`);
    rows.push({ flag, variant: variant === null ? null : String(variant), users: raw[ui], errorUsers: raw[ei] });
  }
  return { rows, hasMore: b.hasMore === true };
}

/**
 * Indexes an answer's rows by flag in ONE pass (linear in rows), checking each cohort row as
 * data: a count that is not a whole number ≥ 0 (`null` included) is `bad_count`, more error users
 * than users is `errors_above_total`, a second row for the same (flag, cohort) is
 * `duplicate_rows` (neither row is used). Rows of other variants (multivariate) are counted, not used.
 *
 * @example
 * indexRows(parsePosthogResponse(body).rows).get('ai_beta_users'); // { on: { users: 812, errorUsers: 9 }, rows: 2 }
 */
export function indexRows(rows: readonly Row[]): Map<string, FlagRows> {
  const out = new Map<string, FlagRows>();
  for (const r of rows) {
    let entry = out.get(r.flag);
    if (!entry) {
      entry = { rows: 0 };
      out.set(r.flag, entry);
    }
    entry.rows++;
    if (entry.problem || (r.variant !== 'true' && r.variant !== 'false')) continue;
    const cohort = r.variant === 'true' ? 'on' : 'off';
    const name = r.variant === 'true' ? 'flag-on' : 'flag-off';
    if (entry[cohort]) {
      entry.problem = { reason: 'duplicate_rows', detail: `two rows for (${r.flag}, ${r.variant}); neither is used` };
    } else if (!isCount(r.users) || !isCount(r.errorUsers)) {
      entry.problem = { reason: 'bad_count', detail: `${name} counts are not whole numbers ≥ 0 (users ${JSON.stringify(r.users) ?? 'missing'}, error_users ${JSON.stringify(r.errorUsers) ?? 'missing'}); a missing count is not 0` };
    } else if (r.errorUsers > r.users) {
      entry.problem = { reason: 'errors_above_total', detail: `${name}: ${r.errorUsers} error users out of ${r.users} users` };
    } else entry[cohort] = { users: r.users, errorUsers: r.errorUsers };
  }
  return out;
}

/**
 * Splits flags into query chunks whose HogQL text stays within `maxBytes` (a flag larger than
 * that alone gets its own chunk), in the given order.
 *
 * @example
 * chunkFlags(flags, MAX_QUERY_BYTES).length; // 1 up to about 400 flags
 */
export function chunkFlags(flags: readonly FlagQuery[], maxBytes: number): FlagQuery[][] {
  const chunks: FlagQuery[][] = [];
  let current: FlagQuery[] = [];
  let size = QUERY_OVERHEAD_BYTES;
  for (const f of flags) {
    const cost = flagQueryBytes(f);
    if (current.length > 0 && size + cost > maxBytes) {
      chunks.push(current);
      current = [];
      size = QUERY_OVERHEAD_BYTES;
    }
    current.push(f);
    size += cost;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}

/** Bytes of the query text that do not depend on the flags (SELECT, FROM, GROUP BY, LIMIT). */
const QUERY_OVERHEAD_BYTES = 320;

/** Bytes one flag adds to the query text (its key, property, start and target list). */
function flagQueryBytes(f: FlagQuery): number {
  const key = hogqlString(f.flag).length;
  return key * 4 + f.flag.length + 100 + Buffer.byteLength(excluded(f), 'utf8');
}

function detailOf(body: unknown): { code?: string; detail?: string } {
  if (typeof body !== 'object' || body === null) return {};
  const b = body as Record<string, unknown>;
  return { ...(typeof b.code === 'string' ? { code: b.code } : {}), ...(typeof b.detail === 'string' ? { detail: b.detail } : {}) };
}

/**
 * Creates the PostHog source. Never throws from `query`: every failure becomes per-flag `no_data`.
 *
 * @example
 * const source = createPosthogSource({ host: 'https://us.posthog.com', project_id: '12345', api_key: process.env.POSTHOG_API_KEY ?? '' }, deps);
 * const report = await source.query([{ flag: 'ai_beta_users', since: stageStart }], AbortSignal.timeout(20_000));
 */
export function createPosthogSource(options: PosthogSourceOptions, deps: SourceDeps): MetricSource {
  const budget = new RequestBudget(POSTHOG_BUDGET);
  const retry = options.retry ?? DEFAULT_RETRY;
  const authRetryMs = options.authRetryMs ?? 15 * 60_000;
  let blockedUntil = 0;
  let authStoppedAt: number | undefined;
  let authMessage = '';
  let chunkCursor = 0;
  const log = deps.logger;

  async function query(flags: readonly FlagQuery[], signal: AbortSignal): Promise<SourceReport> {
    const started = deps.now();
    const nowMs = started.getTime();
    const all = (reason: string, detail: string, error?: { code: string; message: string }, requests = 0): SourceReport => ({
      source: 'posthog',
      at: started,
      requests,
      observations: flags.map((f): FlagObservation => ({ flag: f.flag, status: 'no_data', reason, detail })),
      ...(error ? { error } : {}),
    });
    try {
      if (options.api_key === '' || options.project_id === '') return all('not_configured', 'sources.posthog has no project_id or api_key');
      if (authStoppedAt !== undefined && nowMs - authStoppedAt < authRetryMs) return all('auth', authMessage, { code: 'SOURCE_AUTH', message: authMessage });
      if (flags.length === 0) return { source: 'posthog', at: started, requests: 0, observations: [] };
      const valid = flags.filter((f) => FLAG_NAME_PATTERN.test(f.flag));
      const invalid = flags.filter((f) => !FLAG_NAME_PATTERN.test(f.flag));
      const rejected = invalid.map((f): FlagObservation => ({ flag: f.flag, status: 'no_data', reason: 'bad_query', detail: `not a valid flag name: ${JSON.stringify(f.flag)}` }));
      if (valid.length === 0) return { source: 'posthog', at: started, requests: 0, observations: rejected };
      if (nowMs < blockedUntil) {
        const r = all('rate_limited', `PostHog asked to wait until ${new Date(blockedUntil).toISOString()}`);
        return { ...r, observations: [...r.observations.filter((o) => !invalid.some((f) => f.flag === o.flag)), ...rejected] };
      }
      if (!budget.take(nowMs)) {
        const r = all('rate_limited', 'client-side budget of 240 queries/minute, 2,400/hour reached');
        return { ...r, observations: [...r.observations.filter((o) => !invalid.some((f) => f.flag === o.flag)), ...rejected] };
      }
      const url = `${options.host.replace(/\/+$/, '')}/api/projects/${encodeURIComponent(options.project_id)}/query/`;
      const headers = { Authorization: `Bearer ${options.api_key}`, 'Content-Type': 'application/json', Accept: 'application/json' };
      const lookback = options.lookbackMs;
      const bounded = valid.map((f) => ({
        flag: f.flag,
        since: lookback === undefined ? f.since : new Date(Math.max(f.since.getTime(), nowMs - lookback)),
        ...(f.excludeUsers ? { excludeUsers: f.excludeUsers } : {}),
      }));
      for (const f of valid) {
        if ((f.excludeUsers?.length ?? 0) > MAX_EXCLUDED_USERS) {
          deps.logger.warn({ flag: f.flag, targets: f.excludeUsers!.length }, `posthog: ${f.flag} has more than ${MAX_EXCLUDED_USERS} target-list users; only the first ${MAX_EXCLUDED_USERS} are left out of its counts`);
        }
      }
      // One query when it is small enough, else a few (at most maxQueriesPerCycle, rotating).
      const chunks = chunkFlags(bounded, options.maxQueryBytes ?? MAX_QUERY_BYTES);
      const maxQueries = Math.max(1, options.maxQueriesPerCycle ?? MAX_QUERIES_PER_CYCLE);
      const first = chunks.length <= maxQueries ? 0 : chunkCursor % chunks.length;
      const picked = chunks.length <= maxQueries ? chunks : Array.from({ length: maxQueries }, (_, i) => chunks[(first + i) % chunks.length]!);
      chunkCursor = chunks.length <= maxQueries ? 0 : (first + maxQueries) % chunks.length;
      const out = new Map<string, FlagObservation>();
      let requests = 0;
      let firstFailure: SourceFailure | undefined;
      let next = 0;
      const runChunk = async (): Promise<void> => {
        while (next < picked.length) {
          const chunk = picked[next++]!;
          const noData = (reason: string, detail: string) => {
            for (const f of chunk) out.set(f.flag, { flag: f.flag, status: 'no_data', reason, detail });
          };
          if (deps.now().getTime() < blockedUntil) {
            noData('rate_limited', `PostHog asked to wait until ${new Date(blockedUntil).toISOString()}`);
            continue;
          }
          if (requests > 0 && !budget.take(deps.now().getTime())) {
            noData('rate_limited', 'client-side budget of 240 queries/minute, 2,400/hour reached');
            continue;
          }
          requests++;
          try {
            const res = await requestJson(deps, url, { method: 'POST', headers, body: JSON.stringify({ query: { kind: 'HogQLQuery', query: buildPosthogQuery(chunk) }, name: 'guardian-flag-errors', refresh: 'force_blocking' }) }, signal, retry, 'posthog');
            for (const o of interpret(res.status, res.headers, res.body, res.text, chunk, nowMs)) out.set(o.flag, o);
          } catch (err) {
            const failure = err instanceof SourceFailure ? err : new SourceFailure('SOURCE_UNAVAILABLE', 'unavailable', `posthog: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
            log.warn({ source: 'posthog', err: { code: failure.code, message: failure.message } }, 'posthog: no data this cycle');
            firstFailure ??= failure;
            noData(failure.reason, failure.message);
          }
        }
      };
      await Promise.all(Array.from({ length: Math.min(2, picked.length) }, runChunk));
      for (const f of valid) {
        if (!out.has(f.flag)) {
          out.set(f.flag, { flag: f.flag, status: 'no_data', reason: 'deferred', detail: `queried in a later cycle (${chunks.length} queries of at most ${Math.round((options.maxQueryBytes ?? MAX_QUERY_BYTES) / 1024)} KiB needed, ${maxQueries} a cycle)` });
        }
      }
      const observations = [...valid.map((f) => out.get(f.flag)!), ...rejected];
      const failed = observations.find((o) => o.status === 'no_data' && ['auth', 'rate_limited', 'bad_query', 'bad_response', 'unavailable', 'timeout'].includes(o.reason));
      return {
        source: 'posthog',
        at: started,
        requests,
        observations,
        ...(failed && failed.status === 'no_data' && observations.every((o) => o.status === 'no_data' && o.reason !== 'deferred')
          ? { error: { code: firstFailure?.code ?? codeOf(failed.reason), message: failed.detail ?? failed.reason } }
          : {}),
      };
    } catch (err) {
      const failure = err instanceof SourceFailure ? err : new SourceFailure('SOURCE_UNAVAILABLE', 'unavailable', `posthog: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      log.warn({ source: 'posthog', err: { code: failure.code, message: failure.message } }, 'posthog: no data this cycle');
      return all(failure.reason, failure.message, { code: failure.code, message: failure.message }, 1);
    }
  }

  function interpret(status: number, headers: Headers, body: unknown, text: string, flags: readonly FlagQuery[], nowMs: number): FlagObservation[] {
    const noData = (reason: string, detail: string) => flags.map((f): FlagObservation => ({ flag: f.flag, status: 'no_data', reason, detail }));
    const { code, detail } = detailOf(body);
    if (status === 401 || status === 403) {
      authStoppedAt = nowMs;
      authMessage = `posthog: HTTP ${status}${detail ? ` (${detail})` : ''}: the API key is wrong or lacks query:read on project ${options.project_id}; the source stops until the key is fixed (retried in ${Math.round(authRetryMs / 60_000)} min)`;
      log.error({ source: 'posthog', status, code }, authMessage);
      return noData('auth', authMessage);
    }
    if (status === 429) {
      const fromHeader = retryAfterMs(headers.get('retry-after'), nowMs);
      const fromDetail = /available in (\d+) seconds?/i.exec(detail ?? '');
      const until = fromHeader ?? (fromDetail ? nowMs + Number(fromDetail[1]) * 1000 : undefined);
      if (until !== undefined) blockedUntil = Math.max(blockedUntil, until);
      const msg = `posthog: throttled (429)${detail ? `: ${detail}` : ''}${until !== undefined ? `; next query after ${new Date(until).toISOString()}` : ''}`;
      log.warn({ source: 'posthog', status, retry_after: headers.get('retry-after') }, msg);
      return noData('rate_limited', msg);
    }
    if (status === 400) {
      const msg = `posthog: the query was refused (400${code ? ` ${code}` : ''})${detail ? `: ${detail.slice(0, 300)}` : ''}`;
      log.error({ source: 'posthog', status, code }, msg);
      return noData('bad_query', msg);
    }
    if (status === 202 || (status === 200 && typeof body === 'object' && body !== null && 'query_status' in body && !('results' in body))) {
      const msg = 'posthog: the query is still running (async answer, query_status incomplete); no data this cycle';
      log.warn({ source: 'posthog', status }, msg);
      return noData('unavailable', msg);
    }
    if (status !== 200) {
      const msg = `posthog: unexpected HTTP ${status}${detail ? `: ${detail}` : ''}`;
      log.warn({ source: 'posthog', status }, msg);
      return noData('bad_response', msg);
    }
    if (body === undefined) {
      const msg = `posthog: the response is not JSON (${JSON.stringify(text.slice(0, 80))})`;
      log.warn({ source: 'posthog' }, msg);
      return noData('bad_response', msg);
    }
    let parsed: ReturnType<typeof parsePosthogResponse>;
    try {
      parsed = parsePosthogResponse(body);
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err);
      log.warn({ source: 'posthog' }, msg);
      return noData('bad_response', msg);
    }
    if (parsed.hasMore) log.warn({ source: 'posthog', rows: parsed.rows.length }, 'posthog: the result was truncated (hasMore); flags without rows report no data');
    const byFlag = indexRows(parsed.rows);
    return flags.map((f): FlagObservation => {
      const rows = byFlag.get(f.flag);
      if (rows?.problem) {
        log.warn({ source: 'posthog', flag: f.flag, reason: rows.problem.reason }, `posthog: no data for ${f.flag}: ${rows.problem.detail}`);
        return { flag: f.flag, status: 'no_data', reason: rows.problem.reason, detail: rows.problem.detail };
      }
      const on = rows?.on;
      const off = rows?.off;
      if (!on || on.users === 0) {
        const truncated = parsed.hasMore && rows === undefined;
        return { flag: f.flag, status: 'no_data', reason: truncated ? 'bad_response' : 'empty', detail: truncated ? 'result truncated (hasMore)' : 'no flag-on users seen since the segment start' };
      }
      const treatment: CohortCounts = { total: on.users, errors: on.errorUsers };
      return off && off.users > 0
        ? { flag: f.flag, status: 'ok', unit: 'users', treatment, control: { total: off.users, errors: off.errorUsers } }
        : { flag: f.flag, status: 'ok', unit: 'users', treatment };
    });
  }

  return { id: 'posthog', query };
}

function codeOf(reason: string): string {
  switch (reason) {
    case 'auth':
      return 'SOURCE_AUTH';
    case 'rate_limited':
      return 'SOURCE_RATE_LIMITED';
    case 'bad_query':
      return 'SOURCE_BAD_QUERY';
    case 'bad_response':
      return 'SOURCE_BAD_RESPONSE';
    default:
      return 'SOURCE_UNAVAILABLE';
  }
}
