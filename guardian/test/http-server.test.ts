/**
 * The guardian's HTTP server (Hono on @hono/node-server) over real sockets: the built-in paths,
 * a sub-app mounted the way the admin API is (`mountApp('/api/v1', app)`), one error shape for
 * 404/405/413/500, HEAD from the library, `GET //` (a 404, not a 500), prom-client's
 * exposition with the process metrics, and `guardian_source_errors_total`'s split labels.
 */
import { request } from 'node:http';

import { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { CycleReport } from '../src/cycle/types.ts';
import { HttpError } from '../src/http/errors.ts';
import { createGuardianMetrics, recordCycleReport, type GuardianMetrics } from '../src/http/metrics.ts';
import { mountApp, startHttpServer, type GuardianHttpEnv, type RunningHttpServer } from '../src/http/server.ts';
import { MemoryLogger } from './cycle-helpers.ts';

/** A raw request (any request target, even one fetch would normalise). */
function raw(url: string, method: string, target: string): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, method, path: target }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('the HTTP server (Hono) with a mounted sub-app', () => {
  let http: RunningHttpServer;
  let metrics: GuardianMetrics;
  const logs = new MemoryLogger();

  beforeAll(async () => {
    metrics = createGuardianMetrics();
    const api = new Hono<GuardianHttpEnv>()
      .get('/me', (c) => c.json({ actor: 'admin-token' }))
      .post('/echo', async (c) => c.json({ got: await c.req.text() }))
      .get('/teapot', () => {
        throw new HttpError('conflict', 'the flag is locked: unlock it first', { field: 'body.enabled' });
      })
      .get('/boom', () => {
        throw new Error('secret internals');
      });
    http = await startHttpServer({
      port: 0,
      host: '127.0.0.1',
      health: async () => ({ database: { ok: true }, rules: { loaded: true }, lastCycleAt: new Date(), cycleIntervalMs: 60_000 }),
      metrics,
      logger: logs,
      mounts: [mountApp('/api/v1', api, { maxBodyBytes: 100 })],
    });
  });
  afterAll(async () => {
    await http?.close();
  });

  it('serves the built-in paths, HEAD without a body, and 405 with Allow in the one error shape', async () => {
    const health = await fetch(`${http.url}/healthz`);
    expect(health.status).toBe(200);
    expect(health.headers.get('cache-control')).toBe('no-store');
    expect(await health.json()).toMatchObject({ status: 'alive' });
    expect((await fetch(`${http.url}/readyz`)).status).toBe(200);
    const head = await raw(http.url, 'HEAD', '/healthz');
    expect(head.status).toBe(200);
    expect(head.body).toBe('');
    const post = await fetch(`${http.url}/healthz`, { method: 'POST' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
    expect(await post.json()).toEqual({ error: { code: 'method_not_allowed', message: '/healthz accepts GET, HEAD' } });
  });

  it('routes the mounted sub-app; its 404, 405, 413 and thrown errors have the one error shape', async () => {
    expect(await (await fetch(`${http.url}/api/v1/me`)).json()).toEqual({ actor: 'admin-token' });
    const missing = await fetch(`${http.url}/api/v1/nope`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({ error: { code: 'not_found', message: expect.stringContaining('no route for GET /api/v1/nope') } });
    const del = await fetch(`${http.url}/api/v1/me`, { method: 'DELETE' });
    expect(del.status).toBe(405);
    expect(del.headers.get('allow')).toBe('GET, HEAD');
    expect((await fetch(`${http.url}/api/v1/echo`, { method: 'POST', body: 'x'.repeat(100) })).status).toBe(200);
    const big = await fetch(`${http.url}/api/v1/echo`, { method: 'POST', body: 'x'.repeat(101) });
    expect(big.status).toBe(413);
    expect(await big.json()).toEqual({ error: { code: 'payload_too_large', message: 'the body is larger than 100 bytes: send less' } });
    const conflict = await fetch(`${http.url}/api/v1/teapot`);
    expect(conflict.status).toBe(409);
    expect(await conflict.json()).toEqual({ error: { code: 'conflict', message: 'the flag is locked: unlock it first', field: 'body.enabled' } });
    const boom = await fetch(`${http.url}/api/v1/boom`);
    expect(boom.status).toBe(500);
    const text = await boom.text();
    expect(JSON.parse(text)).toEqual({ error: { code: 'internal', message: 'internal error; see the guardian logs' } });
    expect(text).not.toContain('secret internals');
    expect(logs.lines.some((l) => l.level === 'error' && /request failed/.test(l.msg))).toBe(true);
  });

  it('answers GET // and other unparsable targets with 404, never 500 (issue 10)', async () => {
    for (const target of ['//', '//evil.example/x', '///healthz']) {
      const r = await raw(http.url, 'GET', target);
      expect(r.status, target).toBe(404);
      expect(JSON.parse(r.body), target).toMatchObject({ error: { code: 'not_found' } });
    }
    expect((await raw(http.url, 'HEAD', '//')).body).toBe('');
  });

  it('/metrics is prom-client\'s exposition: the guardian metrics by name and the default process metrics', async () => {
    const res = await fetch(`${http.url}/metrics`);
    expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    const text = await res.text();
    for (const name of [
      'guardian_cycles_total',
      'guardian_cycle_duration_seconds',
      'guardian_verdicts_total',
      'guardian_rollbacks_total',
      'guardian_source_errors_total',
      'guardian_outbox_backlog',
      'guardian_notifications_total',
      'guardian_last_cycle_timestamp_seconds',
      'guardian_rules_reloads_total',
      'guardian_exposures_total',
      'guardian_exposure_requests_total',
      'guardian_ofrep_requests_total',
      'process_resident_memory_bytes',
      'process_cpu_seconds_total',
      'nodejs_heap_size_used_bytes',
      'nodejs_eventloop_lag_seconds',
    ]) {
      expect(text, name).toContain(`# TYPE ${name} `);
    }
  });

  it('guardian_source_errors_total keeps error codes and no-data reasons in separate labels (issue 10)', async () => {
    const report: CycleReport = {
      at: new Date(),
      durationMs: 1200,
      ran: true,
      dryRun: false,
      results: [],
      errors: [],
      sourceReports: [],
      sources: [
        { source: 'sentry', flags: 2, ok: 0, noData: 2, requests: 1, error: { code: 'SOURCE_UNAVAILABLE', message: 'timeout' }, noDataReasons: { a: 'unavailable', b: 'unavailable' } },
        { source: 'posthog', flags: 3, ok: 1, noData: 2, requests: 2, noDataReasons: { a: 'rate_limited', b: 'empty', c: 'rate_limited' } },
      ],
    };
    recordCycleReport(metrics, report);
    const text = await metrics.registry.metrics();
    expect(text).toContain('guardian_source_errors_total{source="sentry",error="SOURCE_UNAVAILABLE",reason=""} 1');
    expect(text).toContain('guardian_source_errors_total{source="posthog",error="",reason="rate_limited"} 1');
    expect(text).not.toMatch(/guardian_source_errors_total\{[^}]*kind=/);
    expect(text).toMatch(/guardian_cycle_duration_seconds_count 1\n/);
  });
});
