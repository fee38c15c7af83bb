/**
 * The guardian's HTTP server: one Hono app served by `@hono/node-server` on node:http.
 * Built in: `/healthz` (liveness), `/readyz` (readiness: database reachable, rules loaded, a cycle
 * within the last two intervals) and `/metrics` (Prometheus, prom-client). Everything else plugs
 * in as a {@link HttpMount}: a Hono sub-app at a path (`mountApp('/api/v1', createAdminApi(…))`).
 *
 * The library answers HEAD for every GET route and 405 with `Allow` for a known path with another
 * method; every error (404, 405, 413, thrown {@link HttpError}s, unexpected failures as 500) has
 * the one JSON shape of errors.ts. A request line the URL parser refuses (`GET //`) is a 404.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

import { getRequestListener, type HttpBindings } from '@hono/node-server';
import { Hono, type Env, type Schema } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { methodNotAllowed } from 'hono/method-not-allowed';

import { errorResponse, HttpError, toHttpError } from './errors.ts';
import type { GuardianMetrics } from './metrics.ts';

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
 * The Hono environment of the guardian's server: `c.env.incoming` / `c.env.outgoing` are the
 * node:http request and response (client address via `getConnInfo(c)` from
 * `@hono/node-server/conninfo`, closing a refused connection). Sub-apps may use any env; declare
 * this one to reach the bindings.
 */
export interface GuardianHttpEnv {
  Bindings: HttpBindings;
}

/**
 * A sub-app mounted on the server at a path; build it with {@link mountApp}.
 */
export interface HttpMount {
  /** Where the sub-app is mounted (`/api/v1`, `/admin`, `/` for apps that route full paths). */
  readonly path: string;
  /** Largest request body (bytes) of any route under `path`, or null when the sub-app enforces its own. */
  readonly maxBodyBytes: number | null;
  /** Adds the sub-app's routes to the server's app (called once, before listening). */
  attach(root: Hono<GuardianHttpEnv>): void;
}

/** Default largest request body under a mount (1 MB). */
export const DEFAULT_MAX_BODY_BYTES = 1_048_576;

/**
 * A Hono app to mount at `path`. Its routes join the server's (so 404, 405 and HEAD are the
 * server's, in the one error shape); its own `onError`, if set, handles its errors, else the
 * server's does (throw an `HttpError`). Bodies over `maxBodyBytes` (default 1 MB; null: the
 * app reads bodies itself within its own bounds) are refused with 413 before a handler runs.
 *
 * @example
 * const api = new Hono<GuardianHttpEnv>().get('/me', (c) => c.json({ actor: 'admin-token' }));
 * await startHttpServer({ port: 8787, health, metrics, logger, mounts: [mountApp('/api/v1', api, { maxBodyBytes: 8 << 20 })] });
 * // GET /api/v1/me → 200; DELETE /api/v1/me → 405 (Allow: GET, HEAD); GET /api/v1/nope → 404 { error: { code: 'not_found', … } }
 */
export function mountApp<E extends Env, S extends Schema, B extends string>(
  path: string,
  app: Hono<E, S, B>,
  options: { readonly maxBodyBytes?: number | null } = {},
): HttpMount {
  if (!path.startsWith('/')) throw new HttpError('internal', `mountApp: the path must start with "/", got "${path}"`);
  const maxBodyBytes = options.maxBodyBytes === undefined ? DEFAULT_MAX_BODY_BYTES : options.maxBodyBytes;
  return {
    path,
    maxBodyBytes,
    attach(root) {
      if (maxBodyBytes !== null) {
        const limit = bodyLimit({
          maxSize: maxBodyBytes,
          onError: (c) => errorResponse(c, new HttpError('payload_too_large', `the body is larger than ${maxBodyBytes} bytes: send less`, { headers: { connection: 'close' } })),
        });
        const base = path === '/' ? '' : path.replace(/\/+$/, '');
        root.use(base === '' ? '*' : base, limit);
        if (base !== '') root.use(`${base}/*`, limit);
      }
      root.route(path, app);
    },
  };
}

/** Options of {@link startHttpServer}. */
export interface HttpServerOptions {
  /** Port; 0 picks a free one (see `port` of the result). */
  readonly port: number;
  /** Listen address. Default `0.0.0.0`. */
  readonly host?: string;
  readonly health: () => Promise<HealthState>;
  /** The guardian metrics whose registry `/metrics` renders. */
  readonly metrics: GuardianMetrics;
  readonly logger: HttpLogger;
  /** Sub-apps beside the built-in paths ({@link mountApp}; ingestion and OFREP are mounts too). */
  readonly mounts?: readonly HttpMount[];
  /** Clock. Default `() => new Date()`. */
  readonly now?: () => Date;
  /** Deadline of `health()` in `/readyz`. Default 5 s. */
  readonly healthTimeoutMs?: number;
}

/** A running server. */
export interface RunningHttpServer {
  readonly server: Server;
  /** The Hono app (all routes): `app.request('/healthz')` answers without a socket. */
  readonly app: Hono<GuardianHttpEnv>;
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

/** The paths the server answers itself. */
const BUILT_IN = '/healthz, /readyz or /metrics';

/**
 * The server's Hono app without a socket: the built-in paths, the mounts, one error shape.
 *
 * @example
 * const app = createHttpApp({ health, metrics, logger, mounts: [ingest] });
 * const res = await app.request('/healthz'); // 200 { status: 'alive', … }
 */
export function createHttpApp(options: Omit<HttpServerOptions, 'port' | 'host'>): Hono<GuardianHttpEnv> {
  const registry = options.metrics.registry;
  const now = options.now ?? (() => new Date());
  const healthTimeoutMs = options.healthTimeoutMs ?? 5_000;
  const started = now();
  const app = new Hono<GuardianHttpEnv>();

  app.onError((err, c) => {
    const e = toHttpError(err);
    if (e.status >= 500) options.logger.error({ err: { message: err.message }, method: c.req.method, path: c.req.path }, 'http: request failed');
    return errorResponse(c, e);
  });
  app.notFound((c) => errorResponse(c, new HttpError('not_found', `no route for ${c.req.method} ${c.req.path}; try ${BUILT_IN}`)));
  app.use(
    methodNotAllowed({
      app,
      onMethodNotAllowed: (c, methods) =>
        errorResponse(c, new HttpError('method_not_allowed', `${c.req.path} accepts ${methods.join(', ')}`, { headers: { allow: methods.join(', ') } })),
    }),
  );
  // Answers of the built-in paths are never cached.
  app.use('/healthz', noStore).use('/readyz', noStore).use('/metrics', noStore);

  app.get('/healthz', (c) => c.json({ status: 'alive', uptimeSeconds: Math.round((now().getTime() - started.getTime()) / 1000) }));
  app.get('/metrics', async (c) => c.body(await registry.metrics(), 200, { 'content-type': registry.contentType }));
  app.get('/readyz', async (c) => {
    let state: HealthState;
    let timer: NodeJS.Timeout | undefined;
    try {
      state = await Promise.race([
        options.health(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`health check took longer than ${healthTimeoutMs} ms`)), healthTimeoutMs);
          timer.unref();
        }),
      ]);
    } catch (err) {
      const body: Readiness = { status: 'not_ready', failing: ['health'], checks: { health: { ok: false, error: (err as Error).message } } };
      return c.json(body, 503);
    } finally {
      clearTimeout(timer);
    }
    const r = readiness(state, now());
    return c.json(r, r.status === 'ready' ? 200 : 503);
  });
  for (const m of options.mounts ?? []) m.attach(app);
  return app;
}

async function noStore(c: { header(name: string, value: string): void }, next: () => Promise<void>): Promise<void> {
  await next();
  c.header('cache-control', 'no-store');
}

/** A request target the URL parser refuses (`//`, `//host`…): answered here, before routing. */
function refuseUnroutable(req: IncomingMessage, res: ServerResponse): boolean {
  const target = req.url ?? '/';
  if (!target.startsWith('//') && URL.canParse(target, 'http://guardian.local')) return false;
  const body = `${JSON.stringify({ error: { code: 'not_found', message: `no route for ${req.method ?? 'GET'} ${JSON.stringify(target.slice(0, 200))}; try ${BUILT_IN}` } })}\n`;
  res.writeHead(404, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(req.method === 'HEAD' ? undefined : body);
  return true;
}

/**
 * Starts the server and resolves once it listens.
 *
 * @example
 * const http = await startHttpServer({ port: config.port, host: config.host, health, metrics, logger,
 *   mounts: [createExposureIngestRoute({ … }), mountApp('/api/v1', createAdminApi({ … }))] });
 * logger.info({ url: http.url }, 'http listening');
 * // on SIGTERM:
 * await http.close();
 */
export async function startHttpServer(options: HttpServerOptions): Promise<RunningHttpServer> {
  const app = createHttpApp(options);
  const listener = getRequestListener(app.fetch, {
    // The library's default: its lightweight Request/Response (subclasses of the platform's)
    // become the globals; hono's bodyLimit needs them (it re-creates a Request from the incoming one).
    errorHandler: (err) => {
      options.logger.error({ err: { message: (err as Error).message } }, 'http: request failed');
      return new Response(`${JSON.stringify({ error: { code: 'internal', message: 'internal error; see the guardian logs' } })}\n`, {
        status: 500,
        headers: { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' },
      });
    },
  });
  const server = createServer((req, res) => {
    if (refuseUnroutable(req, res)) return;
    void listener(req, res);
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
    app,
    port,
    url: `http://${shownHost}:${port}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeIdleConnections();
      }),
  };
}
