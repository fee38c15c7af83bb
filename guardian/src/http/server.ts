/**
 * The guardian's HTTP server on node:http: `/healthz` (liveness), `/readyz` (readiness: database
 * reachable, rules loaded, a cycle within the last two intervals) and `/metrics` (Prometheus).
 * Other parts (admin API, dashboard, OFREP) plug in as {@link HttpRoute}s. GET and HEAD only on
 * the built-in paths; unknown paths get 404.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { GuardianMetrics, Metrics } from './metrics.ts';
import { PROMETHEUS_CONTENT_TYPE } from './metrics.ts';

/**
 * What `/readyz` judges, read fresh on every request.
 *
 * @example
 * const health = async (): Promise<HealthState> => ({
 *   database: await store.ping().then(() => ({ ok: true }), (err) => ({ ok: false, error: err.message })),
 *   rules: { loaded: rules !== undefined },
 *   lastCycleAt, cycleIntervalMs: rules.interval,
 * });
 */
export interface HealthState {
  readonly database: { readonly ok: boolean; readonly error?: string };
  readonly rules: { readonly loaded: boolean; readonly error?: string };
  /** End of the last completed cycle (null before the first). */
  readonly lastCycleAt: Date | null;
  /** The poll interval: ready while the last cycle is at most two intervals old. */
  readonly cycleIntervalMs: number;
}

/** One readiness check's outcome. */
export interface CheckResult {
  readonly ok: boolean;
  readonly error?: string;
  readonly [key: string]: unknown;
}

/** The `/readyz` body. */
export interface Readiness {
  readonly status: 'ready' | 'not_ready';
  /** Names of the failing checks. */
  readonly failing: readonly string[];
  readonly checks: Readonly<Record<string, CheckResult>>;
}

/** The logging the server does (a pino logger fits). */
export interface HttpLogger {
  info(obj: Record<string, unknown>, msg: string): void;
  warn(obj: Record<string, unknown>, msg: string): void;
  error(obj: Record<string, unknown>, msg: string): void;
}

/**
 * An extra route: return true when it handled the request (it then owns the response).
 *
 * @example
 * const admin: HttpRoute = { handle: async (req, res, url) => url.pathname.startsWith('/api/') && (await adminApi(req, res, url), true) };
 */
export interface HttpRoute {
  handle(req: IncomingMessage, res: ServerResponse, url: URL): boolean | Promise<boolean>;
}

/** Options of {@link startHttpServer}. */
export interface HttpServerOptions {
  /** Port; 0 picks a free one (see `port` of the result). */
  readonly port: number;
  /** Listen address. Default `0.0.0.0`. */
  readonly host?: string;
  readonly health: () => Promise<HealthState>;
  /** The registry (or the guardian metrics holding it) rendered at `/metrics`. */
  readonly metrics: Metrics | GuardianMetrics;
  readonly logger: HttpLogger;
  /** Extra routes, tried after the built-in paths. */
  readonly routes?: readonly HttpRoute[];
  /** Clock. Default `() => new Date()`. */
  readonly now?: () => Date;
  /** Deadline of `health()` in `/readyz`. Default 5 s. */
  readonly healthTimeoutMs?: number;
}

/** A running server. */
export interface RunningHttpServer {
  readonly server: Server;
  readonly port: number;
  /** `http://<host>:<port>` (127.0.0.1 when listening on all addresses). */
  readonly url: string;
  /** Stops accepting, closes idle keep-alive connections, resolves when closed. */
  close(): Promise<void>;
}

/**
 * Judges readiness from a health state (pure; exported for tests and `guardian check`).
 *
 * @example
 * const r = readiness(state, new Date());
 * if (r.status !== 'ready') console.log(r.failing);
 */
export function readiness(state: HealthState, now: Date): Readiness {
  const maxAgeMs = 2 * state.cycleIntervalMs;
  const ageMs = state.lastCycleAt === null ? null : now.getTime() - state.lastCycleAt.getTime();
  const cycle: CheckResult =
    ageMs === null
      ? { ok: false, error: 'no cycle has completed yet', lastCycleAt: null, maxAgeMs }
      : ageMs <= maxAgeMs
        ? { ok: true, lastCycleAt: state.lastCycleAt!.toISOString(), ageMs, maxAgeMs }
        : { ok: false, error: `last cycle ended ${Math.round(ageMs / 1000)} s ago, more than two intervals (${Math.round(maxAgeMs / 1000)} s)`, lastCycleAt: state.lastCycleAt!.toISOString(), ageMs, maxAgeMs };
  const checks: Record<string, CheckResult> = {
    database: state.database.ok ? { ok: true } : { ok: false, error: state.database.error ?? 'database unreachable' },
    // Loaded rules with an error: the last good rules run while a refused edit waits to be fixed.
    rules: state.rules.loaded ? { ok: true, ...(state.rules.error ? { warning: state.rules.error } : {}) } : { ok: false, error: state.rules.error ?? 'rules not loaded' },
    cycle,
  };
  const failing = Object.entries(checks)
    .filter(([, c]) => !c.ok)
    .map(([n]) => n);
  return { status: failing.length === 0 ? 'ready' : 'not_ready', failing, checks };
}

function send(res: ServerResponse, req: IncomingMessage, status: number, contentType: string, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store', ...headers });
  res.end(req.method === 'HEAD' ? undefined : body);
}

/**
 * Answers with a JSON body (not for HEAD), `no-store`, and any extra headers: what every route sends.
 *
 * @example
 * sendJson(res, req, 202, { accepted: 3 });
 */
export function sendJson(res: ServerResponse, req: IncomingMessage, status: number, value: unknown, headers: Record<string, string> = {}): void {
  send(res, req, status, 'application/json; charset=utf-8', `${JSON.stringify(value)}\n`, headers);
}

const BUILT_IN = new Set(['/healthz', '/readyz', '/metrics']);

/**
 * Starts the server and resolves once it listens.
 *
 * @example
 * const http = await startHttpServer({ port: config.port, host: config.host, health, metrics, logger });
 * logger.info({ url: http.url }, 'http listening');
 * // on SIGTERM:
 * await http.close();
 */
export async function startHttpServer(options: HttpServerOptions): Promise<RunningHttpServer> {
  const registry: Metrics = 'registry' in options.metrics ? options.metrics.registry : options.metrics;
  const now = options.now ?? (() => new Date());
  const healthTimeoutMs = options.healthTimeoutMs ?? 5_000;
  const routes = options.routes ?? [];
  const started = now();

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://guardian.local');
    if (BUILT_IN.has(url.pathname)) {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        sendJson(res, req, 405, { error: 'method_not_allowed', message: `${url.pathname} accepts GET and HEAD` }, { allow: 'GET, HEAD' });
        return;
      }
      if (url.pathname === '/healthz') {
        sendJson(res, req, 200, { status: 'alive', uptimeSeconds: Math.round((now().getTime() - started.getTime()) / 1000) });
        return;
      }
      if (url.pathname === '/metrics') {
        send(res, req, 200, PROMETHEUS_CONTENT_TYPE, await registry.render());
        return;
      }
      let state: HealthState;
      try {
        state = await Promise.race([
          options.health(),
          new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`health check took longer than ${healthTimeoutMs} ms`)), healthTimeoutMs).unref()),
        ]);
      } catch (err) {
        const body: Readiness = { status: 'not_ready', failing: ['health'], checks: { health: { ok: false, error: (err as Error).message } } };
        sendJson(res, req, 503, body);
        return;
      }
      const r = readiness(state, now());
      sendJson(res, req, r.status === 'ready' ? 200 : 503, r);
      return;
    }
    for (const route of routes) {
      if (await route.handle(req, res, url)) return;
    }
    sendJson(res, req, 404, { error: 'not_found', message: `no route for ${req.method ?? 'GET'} ${url.pathname}; try /healthz, /readyz or /metrics` });
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      options.logger.error({ err: { message: (err as Error).message }, path: req.url }, 'http: request failed');
      if (!res.headersSent) sendJson(res, req, 500, { error: 'internal', message: 'internal error; see the guardian logs' });
      else res.destroy();
    });
  });
  server.keepAliveTimeout = 5_000;
  const host = options.host ?? '0.0.0.0';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const shownHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  return {
    server,
    port,
    url: `http://${shownHost}:${port}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeIdleConnections();
      }),
  };
}
