/**
 * Sentry metric source. Per flag and value: errors from the errors dataset
 * (`flags["<flag>"]:true`, set by Sentry's featureFlagsIntegration) and traffic from the
 * transactions dataset (`flag.<flag>:true`, the tag our SDK sets), via
 * `GET /api/0/organizations/{org}/events/`. Requests per cycle are bounded (flags beyond the
 * bound rotate to the next cycles), run a few at a time, and `X-Sentry-Rate-Limit-*` headers are
 * honoured (Sentry sends no Retry-After: wait until `-Reset`, skip a flag rather than exceed).
 */
import { FLAG_NAME_PATTERN } from '../rules/schema.ts';
import { DEFAULT_RETRY, requestJson, SourceFailure, type RetryPolicy } from './http.ts';
import type { FlagObservation, FlagQuery, MetricSource, SourceDeps, SourceReport } from './types.ts';

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
  /** Upper bound of requests per cycle (each flag costs 4). */
  readonly max_requests_per_cycle: number;
  /** Requests in flight at once. */
  readonly concurrency: number;
  /** Oldest data looked at, in ms (the rule window); each flag starts at max(since, now − lookback). */
  readonly lookbackMs?: number;
  readonly retry?: RetryPolicy;
  /** After a 401/403 the source stops; it tries again after this long (default 15 min). */
  readonly authRetryMs?: number;
}

/** Requests one flag needs: errors on/off and traffic on/off. */
export const SENTRY_REQUESTS_PER_FLAG = 4;

interface Counts {
  readonly count: number;
  readonly users: number;
}

/** Parses an `/events/` aggregate body; throws SourceFailure for bad shapes and for the no-project answer. */
export function parseSentryEvents(body: unknown): Counts {
  const bad = (why: string) => new SourceFailure('SOURCE_BAD_RESPONSE', 'bad_response', `sentry: unexpected response: ${why}`);
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw bad('not a JSON object');
  const b = body as Record<string, unknown>;
  if (!Array.isArray(b.data)) throw bad('"data" is not a list');
  const meta = typeof b.meta === 'object' && b.meta !== null ? (b.meta as Record<string, unknown>) : undefined;
  const tips = meta && typeof meta.tips === 'object' && meta.tips !== null ? (meta.tips as Record<string, unknown>) : undefined;
  if (b.data.length === 0) {
    if (typeof tips?.query === 'string' && tips.query !== '' && (meta?.fields === undefined)) {
      throw new SourceFailure('SOURCE_BAD_QUERY', 'bad_query', `sentry: ${tips.query} (check sources.sentry.project and the token's access)`);
    }
    return { count: 0, users: 0 };
  }
  const row: unknown = b.data[0];
  if (typeof row !== 'object' || row === null) throw bad('data[0] is not an object');
  const r = row as Record<string, unknown>;
  const read = (key: string): number => {
    const v = r[key];
    if (v === null || v === undefined) return 0;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || !Number.isInteger(v)) throw bad(`data[0]["${key}"] is ${JSON.stringify(v)}, expected a whole number`);
    return v;
  };
  if (!('count()' in r)) throw bad('data[0] has no "count()"');
  return { count: read('count()'), users: read('count_unique(user)') };
}

/**
 * Creates the Sentry source. Never throws from `query`: every failure becomes per-flag `no_data`.
 *
 * @example
 * const source = createSentrySource({ base_url: 'https://us.sentry.io', org: 'acme', project: [42], token, max_requests_per_cycle: 40, concurrency: 3 }, deps);
 */
export function createSentrySource(options: SentrySourceOptions, deps: SourceDeps): MetricSource {
  const retry = options.retry ?? DEFAULT_RETRY;
  const authRetryMs = options.authRetryMs ?? 15 * 60_000;
  const log = deps.logger;
  let cursor = 0;
  let remaining: number | undefined;
  let resetAt = 0;
  let blockedUntil = 0;
  let authStoppedAt: number | undefined;
  let authMessage = '';

  function noteHeaders(headers: Headers): void {
    const rem = headers.get('x-sentry-rate-limit-remaining');
    const reset = headers.get('x-sentry-rate-limit-reset');
    if (rem !== null && Number.isFinite(Number(rem))) remaining = Number(rem);
    if (reset !== null && Number.isFinite(Number(reset))) resetAt = Number(reset) * 1000;
  }

  function url(dataset: 'errors' | 'transactions', query: string, statsPeriod: string): string {
    const params = new URLSearchParams();
    params.set('dataset', dataset);
    params.append('field', 'count_unique(user)');
    params.append('field', 'count()');
    params.set('statsPeriod', statsPeriod);
    params.set('query', query);
    for (const p of options.project) params.append('project', String(p));
    if (options.environment) params.set('environment', options.environment);
    return `${options.base_url.replace(/\/+$/, '')}/api/0/organizations/${encodeURIComponent(options.org)}/events/?${params.toString()}`;
  }

  async function get(u: string, signal: AbortSignal): Promise<Counts> {
    const res = await requestJson(deps, u, { method: 'GET', headers: { Authorization: `Bearer ${options.token}`, Accept: 'application/json' } }, signal, retry, 'sentry');
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
    return parseSentryEvents(res.body);
  }

  async function one(f: FlagQuery, nowMs: number, signal: AbortSignal, count: () => void): Promise<FlagObservation> {
    const since = options.lookbackMs === undefined ? f.since.getTime() : Math.max(f.since.getTime(), nowMs - options.lookbackMs);
    const statsPeriod = `${Math.max(1, Math.ceil((nowMs - since) / 60_000))}m`;
    const results: Counts[] = [];
    for (const [dataset, q] of [
      ['errors', `flags["${f.flag}"]:true`],
      ['errors', `flags["${f.flag}"]:false`],
      ['transactions', `flag.${f.flag}:true`],
      ['transactions', `flag.${f.flag}:false`],
    ] as const) {
      const now = deps.now().getTime();
      if (now < blockedUntil) return { flag: f.flag, status: 'no_data', reason: 'rate_limited', detail: `sentry: waiting for the rate limit to reset at ${new Date(blockedUntil).toISOString()}` };
      if (remaining !== undefined && remaining <= 0 && now < resetAt) {
        return { flag: f.flag, status: 'no_data', reason: 'rate_limited', detail: `sentry: rate-limit budget used up until ${new Date(resetAt).toISOString()}; flag skipped` };
      }
      if (remaining !== undefined) remaining--;
      count();
      results.push(await get(url(dataset, q, statsPeriod), signal));
    }
    const [errOn, errOff, trafficOn, trafficOff] = results as [Counts, Counts, Counts, Counts];
    const byUsers = trafficOn.users > 0;
    const on = byUsers ? { total: Math.max(trafficOn.users, errOn.users), errors: errOn.users } : { total: Math.max(trafficOn.count, errOn.count), errors: errOn.count };
    const off = byUsers ? { total: Math.max(trafficOff.users, errOff.users), errors: errOff.users } : { total: Math.max(trafficOff.count, errOff.count), errors: errOff.count };
    if (on.total === 0) return { flag: f.flag, status: 'no_data', reason: 'empty', detail: 'no flag-on transactions or errors since the stage start' };
    return off.total > 0
      ? { flag: f.flag, status: 'ok', unit: byUsers ? 'users' : 'events', treatment: on, control: off }
      : { flag: f.flag, status: 'ok', unit: byUsers ? 'users' : 'events', treatment: on };
  }

  async function query(flags: readonly FlagQuery[], signal: AbortSignal): Promise<SourceReport> {
    const started = deps.now();
    const nowMs = started.getTime();
    let requests = 0;
    const all = (reason: string, detail: string, code?: string): SourceReport => ({
      source: 'sentry',
      at: started,
      requests,
      observations: flags.map((f): FlagObservation => ({ flag: f.flag, status: 'no_data', reason, detail })),
      ...(code ? { error: { code, message: detail } } : {}),
    });
    try {
      if (options.token === '' || options.org === '') return all('not_configured', 'sources.sentry has no org or token');
      if (authStoppedAt !== undefined && nowMs - authStoppedAt < authRetryMs) return all('auth', authMessage, 'SOURCE_AUTH');
      if (nowMs < blockedUntil) return all('rate_limited', `sentry: waiting for the rate limit to reset at ${new Date(blockedUntil).toISOString()}`, 'SOURCE_RATE_LIMITED');
      const out = new Map<string, FlagObservation>();
      const valid: FlagQuery[] = [];
      for (const f of flags) {
        if (FLAG_NAME_PATTERN.test(f.flag)) valid.push(f);
        else out.set(f.flag, { flag: f.flag, status: 'no_data', reason: 'bad_query', detail: `not a valid flag name: ${JSON.stringify(f.flag)}` });
      }
      // Bound the requests: at most floor(max / 4) flags this cycle, rotating so every flag gets its turn.
      const perCycle = Math.max(1, Math.floor(options.max_requests_per_cycle / SENTRY_REQUESTS_PER_FLAG));
      const start = valid.length === 0 ? 0 : cursor % valid.length;
      const ordered = [...valid.slice(start), ...valid.slice(0, start)];
      const now = ordered.slice(0, perCycle);
      for (const f of ordered.slice(perCycle)) out.set(f.flag, { flag: f.flag, status: 'no_data', reason: 'deferred', detail: `polled in a later cycle (at most ${perCycle} flags per cycle: max_requests_per_cycle ${options.max_requests_per_cycle})` });
      cursor = valid.length === 0 ? 0 : (start + now.length) % valid.length;

      let next = 0;
      let stop: SourceFailure | undefined;
      const worker = async (): Promise<void> => {
        while (next < now.length) {
          const f = now[next++]!;
          if (stop) {
            out.set(f.flag, { flag: f.flag, status: 'no_data', reason: stop.reason, detail: stop.message });
            continue;
          }
          try {
            out.set(f.flag, await one(f, nowMs, signal, () => requests++));
          } catch (err) {
            const failure = err instanceof SourceFailure ? err : new SourceFailure('SOURCE_UNAVAILABLE', 'unavailable', `sentry: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
            if (failure.reason === 'auth') log.error({ source: 'sentry', flag: f.flag }, failure.message);
            else log.warn({ source: 'sentry', flag: f.flag, err: { code: failure.code, message: failure.message } }, 'sentry: no data for this flag this cycle');
            out.set(f.flag, { flag: f.flag, status: 'no_data', reason: failure.reason, detail: failure.message });
            if (failure.reason === 'auth' || failure.reason === 'rate_limited' || failure.reason === 'timeout') stop = failure;
          }
        }
      };
      // Each flag's requests are sequential, so `concurrency` flags in parallel = that many requests in flight.
      await Promise.all(Array.from({ length: Math.min(options.concurrency, Math.max(1, now.length)) }, worker));
      const observations = flags.map((f) => out.get(f.flag)!);
      return { source: 'sentry', at: started, requests, observations, ...(stop?.reason === 'auth' ? { error: { code: stop.code, message: stop.message } } : {}) };
    } catch (err) {
      const message = `sentry: ${err instanceof Error ? err.message : String(err)}`;
      log.error({ source: 'sentry', err: { message } }, 'sentry: the source failed this cycle');
      return all('unavailable', message, 'SOURCE_UNAVAILABLE');
    }
  }

  return { id: 'sentry', query };
}
