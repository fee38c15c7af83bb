/**
 * Sentry metric source. Per flag, TWO requests to `GET /api/0/organizations/{org}/events/`, each
 * grouped by the flag's tag so one answer holds both cohorts (`tags[flag.<name>]` = `true` /
 * `false`, the tag our SDK sets on errors and transactions alike):
 *
 * - errors: `dataset=errors&field=tags[flag.<name>]&field=count_unique(user)&field=count()&query=has:flag.<name>`
 * - traffic: the same on `dataset=transactions`.
 *
 * Units never mix: by default users are counted on both sides (`count_unique(user)`; the SDK's
 * Sentry adapter sets the user), so one user flooding errors moves a rate by one user. Where a
 * side carries no users the flag has no data (`no_user_traffic` / `no_user_errors`), never a
 * silent switch to events. `unit: events` (opt-in) counts events on both sides, with each user's
 * errors capped (`max_errors_per_user`), and the evidence says `events`.
 *
 * The time range is the flag's segment, `start`..`end` (absolute ISO times), so cumulative counts
 * of a segment only grow between polls. Every answer is checked as data (sources/validate.ts):
 * a missing count is never 0, two rows for one cohort are no data, errors never exceed traffic.
 *
 * Scale: Sentry's query language has no per-group unique count, so exact user counts need one
 * grouping per flag (several tags in one request group by their combination, whose per-row user
 * counts cannot be added up). Requests are therefore spread instead: the flags polled longest ago
 * go first, at most `max_requests_per_cycle` a cycle, at most `max_requests_per_second`, and a
 * poll that does not fit in a short wait goes on in the background and is reported at the next
 * cycle (`deferred` until then: never a breach). `X-Sentry-Rate-Limit-Remaining/-Reset` are
 * honoured (Sentry sends no Retry-After).
 */
import { FLAG_NAME_PATTERN } from '../rules/schema.ts';
import { DEFAULT_RETRY, RequestBudget, requestJson, SourceFailure, type RetryPolicy } from './http.ts';
import type { CohortCounts, FlagObservation, FlagQuery, MetricSource, SourceDeps, SourceReport } from './types.ts';
import { cohortProblem, isCount } from './validate.ts';

/** Settings of the Sentry source (from `sources.sentry` in the rules file). */
export interface SentrySourceOptions {
  /** Region or self-hosted base URL, e.g. https://us.sentry.io or https://de.sentry.io. */
  readonly base_url: string;
  readonly org: string;
  /** Project ids (empty: every project the token can see). */
  readonly project: readonly number[];
  readonly environment?: string;
  /** Auth token with `org:read`. Empty = not configured. */
  readonly token: string;
  /** Upper bound of requests started per cycle (each flag costs {@link SENTRY_REQUESTS_PER_FLAG}). */
  readonly max_requests_per_cycle: number;
  /** Requests in flight at once. */
  readonly concurrency: number;
  /** Requests per second at most (default {@link DEFAULT_SENTRY_RATE}: a third of Sentry's 30/s per organization). */
  readonly max_requests_per_second?: number;
  /** What is counted: `users` (default, `count_unique(user)` on both sides) or `events` (opt-in, per-user capped). */
  readonly unit?: 'users' | 'events';
  /** `unit: events`: at most this many error events count per erroring user (default 10). */
  readonly max_errors_per_user?: number;
  /** How long a cycle waits for this cycle's polls before leaving them to the background (default 5 s). */
  readonly wait_ms?: number;
  /** Oldest data looked at, in ms (the rule window); each flag starts at max(since, now − lookback). */
  readonly lookbackMs?: number;
  readonly retry?: RetryPolicy;
  /** After a 401/403 the source stops; it tries again after this long (default 15 min). */
  readonly authRetryMs?: number;
}

/** Requests one flag needs: errors and traffic, each grouped by the flag's value. */
export const SENTRY_REQUESTS_PER_FLAG = 2;

/** Default request rate: 10/s, a third of the 30/s Sentry allows per organization on `/events/`. */
export const DEFAULT_SENTRY_RATE = 10;

/** Longest the background poll waits for a rate-limit window before giving the round up. */
const MAX_PUMP_WAIT_MS = 5_000;

/** One cohort's counts in one dataset. */
export interface SentryCohort {
  readonly count: number;
  readonly users: number;
}

/** One dataset's answer for one flag: per cohort (`true` = flag on, `false` = flag off). */
export interface SentryGroups {
  readonly on: SentryCohort;
  readonly off: SentryCohort;
}

/**
 * Parses a grouped `/events/` answer (rows keyed by the requested fields) for one flag. Throws a
 * SourceFailure with the no-data reason: `bad_response` (shape), `bad_count` (a count that is not
 * a whole number ≥ 0, `null` included), `duplicate_rows` (two rows for one cohort), `bad_query`
 * (the no-project answer). A cohort without a row has no events: zeros.
 *
 * @example
 * parseSentryGroups({ data: [{ 'tags[flag.f]': 'true', 'count_unique(user)': 3, 'count()': 9 }], meta: {} }, 'f');
 */
export function parseSentryGroups(body: unknown, flag: string): SentryGroups {
  const bad = (why: string, reason = 'bad_response') => new SourceFailure('SOURCE_BAD_RESPONSE', reason, `sentry: unexpected response for ${flag}: ${why}`);
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw bad('not a JSON object');
  const b = body as Record<string, unknown>;
  if (!Array.isArray(b.data)) throw bad('"data" is not a list');
  const meta = typeof b.meta === 'object' && b.meta !== null ? (b.meta as Record<string, unknown>) : undefined;
  const tips = meta && typeof meta.tips === 'object' && meta.tips !== null ? (meta.tips as Record<string, unknown>) : undefined;
  if (b.data.length === 0 && typeof tips?.query === 'string' && tips.query !== '' && meta?.fields === undefined) {
    throw new SourceFailure('SOURCE_BAD_QUERY', 'bad_query', `sentry: ${tips.query} (check sources.sentry.project and the token's access)`);
  }
  const key = tagField(flag);
  const seen = new Map<string, SentryCohort>();
  for (const [i, raw] of b.data.entries()) {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad(`data[${i}] is not an object`);
    const r = raw as Record<string, unknown>;
    const value = r[key];
    if (typeof value !== 'string') throw bad(`data[${i}]["${key}"] is ${JSON.stringify(value) ?? 'missing'}, expected the flag value as text`);
    if (value !== 'true' && value !== 'false') continue; // not a value our SDK writes: not a cohort
    const count = r['count()'];
    const users = r['count_unique(user)'];
    if (!isCount(count) || !isCount(users)) {
      throw bad(`data[${i}] (${value}) counts are not whole numbers ≥ 0 (count() ${JSON.stringify(count) ?? 'missing'}, count_unique(user) ${JSON.stringify(users) ?? 'missing'}); a missing count is not 0`, 'bad_count');
    }
    if (seen.has(value)) throw bad(`two rows for ${key} = ${value}; neither is used`, 'duplicate_rows');
    seen.set(value, { count, users });
  }
  const zero = { count: 0, users: 0 };
  return { on: seen.get('true') ?? zero, off: seen.get('false') ?? zero };
}

/** The field that groups by a flag's tag: `tags[flag.<name>]`. */
function tagField(flag: string): string {
  return `tags[flag.${flag}]`;
}

/**
 * Turns one flag's errors and traffic answers into an observation in ONE unit. Users: both sides
 * must carry users (`no_user_traffic`/`no_user_errors` otherwise). Events: errors per user capped
 * at `cap` (Sentry gives the erroring users, so a flood from a few users counts as few).
 * Errors above traffic is `errors_above_total`, never max(traffic, errors).
 *
 * @example
 * sentryObservation('f', errors, traffic, 'users', 10);
 */
export function sentryObservation(flag: string, errors: SentryGroups, traffic: SentryGroups, unit: 'users' | 'events', cap: number): FlagObservation {
  const noData = (reason: string, detail: string): FlagObservation => ({ flag, status: 'no_data', reason, detail });
  const cohort = (e: SentryCohort, t: SentryCohort, name: string): CohortCounts | FlagObservation => {
    if (unit === 'users') {
      if (t.count > 0 && t.users === 0) return noData('no_user_traffic', `${name} transactions carry no user (${t.count} events, 0 users): set the user in the SDK (the Sentry adapter does) or set sources.sentry.unit: events`);
      if (e.count > 0 && e.users === 0) return noData('no_user_errors', `${name} errors carry no user (${e.count} events, 0 users): set the user in the SDK (the Sentry adapter does)`);
      return { total: t.users, errors: e.users };
    }
    return { total: t.count, errors: Math.min(e.count, cap * e.users) };
  };
  const on = cohort(errors.on, traffic.on, 'flag-on');
  if ('status' in on) return on;
  const off = cohort(errors.off, traffic.off, 'flag-off');
  if ('status' in off) return off;
  if (on.total === 0) {
    return on.errors > 0 ? noData('errors_above_total', `flag-on: ${on.errors} ${unit} with errors but no flag-on traffic`) : noData('empty', 'no flag-on transactions or errors since the segment start');
  }
  const problem = cohortProblem(on, 'flag-on') ?? (off.total > 0 || off.errors > 0 ? cohortProblem(off, 'flag-off') : undefined);
  if (problem) return noData(problem.reason, `${problem.detail} (${unit})`);
  return off.total > 0 ? { flag, status: 'ok', unit, treatment: on, control: off } : { flag, status: 'ok', unit, treatment: on };
}

interface Done {
  readonly since: number;
  readonly obs: FlagObservation;
}

/**
 * Creates the Sentry source. Never throws from `query`: every failure becomes per-flag `no_data`.
 *
 * @example
 * const source = createSentrySource({ base_url: 'https://us.sentry.io', org: 'acme', project: [42], token, max_requests_per_cycle: 600, concurrency: 3 }, deps);
 */
export function createSentrySource(options: SentrySourceOptions, deps: SourceDeps): MetricSource {
  const retry = options.retry ?? DEFAULT_RETRY;
  const authRetryMs = options.authRetryMs ?? 15 * 60_000;
  const unit = options.unit ?? 'users';
  const cap = Math.max(1, options.max_errors_per_user ?? 10);
  const rate = Math.max(1, options.max_requests_per_second ?? DEFAULT_SENTRY_RATE);
  const waitMs = options.wait_ms ?? 5_000;
  // `rate` a second on average over 10 s, bursts up to twice that in one second (at most 20/s at
  // the default, two thirds of Sentry's 30/s): a small set of flags is asked at once.
  const budget = new RequestBudget([
    { max: Math.min(30, rate * 2), windowMs: 1_000 },
    { max: rate * 10, windowMs: 10_000 },
  ]);
  const log = deps.logger;
  const background = new AbortController().signal; // background polls outlive a cycle; each request still has its timeout
  let remaining: number | undefined;
  let limit: number | undefined;
  let resetAt = 0;
  let blockedUntil = 0;
  let authStoppedAt: number | undefined;
  let authMessage = '';
  let requests = 0;
  let queue: FlagQuery[] = [];
  const inFlight = new Set<string>();
  const done = new Map<string, Done>();
  const lastPolled = new Map<string, number>();
  let pump: Promise<void> | undefined;
  let stop: SourceFailure | undefined;

  function noteHeaders(headers: Headers): void {
    const lim = headers.get('x-sentry-rate-limit-limit');
    if (lim !== null && lim.trim() !== '' && Number.isFinite(Number(lim)) && Number(lim) > 0) limit = Number(lim);
    const rem = headers.get('x-sentry-rate-limit-remaining');
    const reset = headers.get('x-sentry-rate-limit-reset');
    if (rem !== null && rem.trim() !== '' && Number.isFinite(Number(rem))) remaining = Number(rem);
    if (reset !== null && reset.trim() !== '' && Number.isFinite(Number(reset))) resetAt = Number(reset) * 1000;
  }

  function url(dataset: 'errors' | 'transactions', f: FlagQuery, start: number, end: number): string {
    const params = new URLSearchParams();
    params.set('dataset', dataset);
    params.append('field', tagField(f.flag));
    params.append('field', 'count_unique(user)');
    params.append('field', 'count()');
    params.set('query', `has:flag.${f.flag}`);
    params.set('start', new Date(start).toISOString());
    params.set('end', new Date(Math.max(end, start + 1000)).toISOString());
    params.set('per_page', '10');
    for (const p of options.project) params.append('project', String(p));
    if (options.environment) params.set('environment', options.environment);
    return `${options.base_url.replace(/\/+$/, '')}/api/0/organizations/${encodeURIComponent(options.org)}/events/?${params.toString()}`;
  }

  /**
   * Until when no request may start: a 429's wait, or the end of the provider's window once its
   * budget is down to the reserve (half of `X-Sentry-Rate-Limit-Limit`: the organization's people
   * and tools share that budget, so the guardian never takes the second half of it).
   */
  function blockedAt(): number {
    const reserve = limit === undefined ? 0 : Math.floor(limit / 2);
    return Math.max(blockedUntil, remaining !== undefined && remaining <= reserve ? resetAt : 0);
  }

  /** Waits for a request slot; throws SourceFailure('rate_limited') when the wait would be long. */
  async function slot(): Promise<void> {
    for (;;) {
      const now = deps.now().getTime();
      const until = blockedAt();
      if (until > now) {
        if (until - now > MAX_PUMP_WAIT_MS) throw new SourceFailure('SOURCE_RATE_LIMITED', 'rate_limited', `sentry: rate limit reached; waiting until ${new Date(until).toISOString()}`);
        await deps.sleep(until - now);
        if (remaining !== undefined && deps.now().getTime() >= resetAt) remaining = undefined;
        continue;
      }
      if (budget.take(now)) {
        if (remaining !== undefined) remaining--;
        requests++;
        return;
      }
      await deps.sleep(Math.max(1, Math.ceil(1000 / rate)));
    }
  }

  async function get(u: string, flag: string): Promise<SentryGroups> {
    await slot();
    const res = await requestJson(deps, u, { method: 'GET', headers: { Authorization: `Bearer ${options.token}`, Accept: 'application/json' } }, background, retry, 'sentry');
    noteHeaders(res.headers);
    const detail = typeof res.body === 'object' && res.body !== null && typeof (res.body as Record<string, unknown>).detail === 'string' ? String((res.body as Record<string, unknown>).detail) : undefined;
    const now = deps.now().getTime();
    if (res.status === 401 || res.status === 403) {
      authStoppedAt = now;
      authMessage = `sentry: HTTP ${res.status}${detail ? ` (${detail})` : ''}: the token is wrong or lacks org:read on ${options.org}; the source stops until it is fixed (retried in ${Math.round(authRetryMs / 60_000)} min)`;
      throw new SourceFailure('SOURCE_AUTH', 'auth', authMessage);
    }
    if (res.status === 429) {
      blockedUntil = Math.max(blockedUntil, resetAt > now ? resetAt : now + 60_000);
      throw new SourceFailure('SOURCE_RATE_LIMITED', 'rate_limited', `sentry: rate limited (429)${detail ? `: ${detail}` : ''}; waiting until ${new Date(blockedUntil).toISOString()}`);
    }
    if (res.status === 400) throw new SourceFailure('SOURCE_BAD_QUERY', 'bad_query', `sentry: the query was refused (400)${detail ? `: ${detail}` : ''}`);
    if (res.status !== 200) throw new SourceFailure('SOURCE_BAD_RESPONSE', 'bad_response', `sentry: unexpected HTTP ${res.status}`);
    if (res.body === undefined) throw new SourceFailure('SOURCE_BAD_RESPONSE', 'bad_response', `sentry: the response is not JSON (${JSON.stringify(res.text.slice(0, 80))})`);
    return parseSentryGroups(res.body, flag);
  }

  async function pollFlag(f: FlagQuery): Promise<FlagObservation> {
    const end = deps.now().getTime();
    const start = options.lookbackMs === undefined ? f.since.getTime() : Math.max(f.since.getTime(), end - options.lookbackMs);
    const errors = await get(url('errors', f, start, end), f.flag);
    const traffic = await get(url('transactions', f, start, end), f.flag);
    return sentryObservation(f.flag, errors, traffic, unit, cap);
  }

  async function worker(): Promise<void> {
    while (queue.length > 0 && !stop) {
      const f = queue.shift()!;
      inFlight.add(f.flag);
      lastPolled.set(f.flag, deps.now().getTime());
      let obs: FlagObservation;
      try {
        obs = await pollFlag(f);
        if (obs.status === 'no_data' && obs.reason !== 'empty') log.warn({ source: 'sentry', flag: f.flag, reason: obs.reason }, `sentry: no data for ${f.flag}: ${obs.detail ?? obs.reason}`);
      } catch (err) {
        const failure = err instanceof SourceFailure ? err : new SourceFailure('SOURCE_UNAVAILABLE', 'unavailable', `sentry: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
        if (failure.reason === 'auth') log.error({ source: 'sentry', flag: f.flag }, failure.message);
        else log.warn({ source: 'sentry', flag: f.flag, reason: failure.reason, err: { code: failure.code, message: failure.message } }, 'sentry: no data for this flag this cycle');
        obs = { flag: f.flag, status: 'no_data', reason: failure.reason, detail: failure.message };
        if (failure.reason === 'auth' || failure.reason === 'rate_limited') stop = failure;
      }
      done.set(f.flag, { since: f.since.getTime(), obs });
      inFlight.delete(f.flag);
    }
  }

  function startPump(): Promise<void> {
    if (pump) return pump;
    stop = undefined;
    const workers = Array.from({ length: Math.max(1, Math.min(options.concurrency, queue.length)) }, worker);
    pump = Promise.all(workers).then(
      () => {
        pump = undefined;
      },
      () => {
        pump = undefined;
      },
    );
    return pump;
  }

  async function query(flags: readonly FlagQuery[], signal: AbortSignal): Promise<SourceReport> {
    const started = deps.now();
    const nowMs = started.getTime();
    const report = (observations: FlagObservation[], error?: { code: string; message: string }): SourceReport => {
      const r: SourceReport = { source: 'sentry', at: started, requests, observations, ...(error ? { error } : {}) };
      requests = 0;
      return r;
    };
    const all = (reason: string, detail: string, code?: string): SourceReport =>
      report(
        flags.map((f): FlagObservation => ({ flag: f.flag, status: 'no_data', reason, detail })),
        code ? { code, message: detail } : undefined,
      );
    try {
      if (options.token === '' || options.org === '') return all('not_configured', 'sources.sentry has no org or token');
      if (authStoppedAt !== undefined && nowMs - authStoppedAt < authRetryMs) return all('auth', authMessage, 'SOURCE_AUTH');
      const out = new Map<string, FlagObservation>();
      const valid: FlagQuery[] = [];
      for (const f of flags) {
        if (FLAG_NAME_PATTERN.test(f.flag)) valid.push(f);
        else out.set(f.flag, { flag: f.flag, status: 'no_data', reason: 'bad_query', detail: `not a valid flag name: ${JSON.stringify(f.flag)}` });
      }
      // Answers and poll times of flags not asked this time are kept (a confirmation poll asks a
      // few flags; the next full cycle asks them all), but not for ever.
      for (const [flag, t] of lastPolled) {
        if (t < nowMs - 86_400_000) {
          lastPolled.delete(flag);
          done.delete(flag);
        }
      }

      // Answers that finished since the last cycle, for the flags' current segments.
      const taken = new Map<string, FlagObservation>();
      for (const f of valid) {
        const d = done.get(f.flag);
        if (d && d.since === f.since.getTime()) taken.set(f.flag, d.obs);
        done.delete(f.flag);
      }
      // Queue this cycle's polls: the flags polled longest ago first (never polled before all),
      // at most max_requests_per_cycle / 2 flags; a flag still in flight is not asked twice.
      const perCycle = Math.max(1, Math.floor(options.max_requests_per_cycle / SENTRY_REQUESTS_PER_FLAG));
      const blocked = blockedAt();
      if (nowMs >= blocked) {
        queue = valid
          .filter((f) => !inFlight.has(f.flag))
          .sort((a, b) => (lastPolled.get(a.flag) ?? -Infinity) - (lastPolled.get(b.flag) ?? -Infinity))
          .slice(0, perCycle);
        if (queue.length > 0) {
          const running = startPump();
          // A poll that fits in a short wait is waited for (small setups judge on this cycle's
          // counts); a longer one goes on in the background and is reported next cycle.
          const estimateMs = ((queue.length + inFlight.size) * SENTRY_REQUESTS_PER_FLAG * 1000) / rate;
          if (estimateMs <= waitMs) await Promise.race([running, aborted(signal)]);
        }
      } else queue = [];

      const blockedAfter = blockedAt();
      const waiting = blockedAfter > deps.now().getTime();
      for (const f of valid) {
        const d = done.get(f.flag);
        const earlier = taken.get(f.flag);
        if (d && d.since === f.since.getTime()) {
          out.set(f.flag, d.obs);
          done.delete(f.flag);
        } else if (earlier) out.set(f.flag, earlier);
        else if (stop?.reason === 'auth') out.set(f.flag, { flag: f.flag, status: 'no_data', reason: 'auth', detail: stop.message });
        else if (waiting) out.set(f.flag, { flag: f.flag, status: 'no_data', reason: 'rate_limited', detail: `sentry: waiting for the rate limit to reset at ${new Date(blockedAfter).toISOString()}` });
        else {
          const last = lastPolled.get(f.flag);
          out.set(f.flag, {
            flag: f.flag,
            status: 'no_data',
            reason: 'deferred',
            detail: `not polled this cycle${last === undefined ? '' : ` (last polled ${new Date(last).toISOString()})`}: at most ${perCycle} flags per cycle and ${rate} requests/s; the poll is under way or queued`,
          });
        }
      }
      const observations = flags.map((f) => out.get(f.flag)!);
      const authFailed = stop?.reason === 'auth' || (authStoppedAt !== undefined && deps.now().getTime() - authStoppedAt < authRetryMs);
      return report(observations, authFailed ? { code: 'SOURCE_AUTH', message: authMessage } : undefined);
    } catch (err) {
      const message = `sentry: ${err instanceof Error ? err.message : String(err)}`;
      log.error({ source: 'sentry', err: { message } }, 'sentry: the source failed this cycle');
      return all('unavailable', message, 'SOURCE_UNAVAILABLE');
    }
  }

  return { id: 'sentry', query };
}

/** A promise that resolves when `signal` aborts (never rejects). */
function aborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
}
