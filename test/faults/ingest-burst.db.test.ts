/**
 * Fault suite: an ingestion burst against the real daemon (issue 10, item 6). `guardian start`
 * runs as its own process on a throwaway PostgreSQL database with `GUARDIAN_INGEST_KEY` and a
 * builtin rule polling every 2 s; N concurrent `POST /v1/exposures` of 0.54 MB each (1,000
 * exposures) arrive at once. Measured in the daemon's process (/proc/<pid>/status VmRSS):
 * RSS before, at its peak and after; the answers by status; whether `/readyz` stayed ready
 * (a cycle within two intervals) and how many cycles ran during the burst.
 *
 * Bounded form (npm test / test:faults): 200 requests. Full form (`FAULTS_FULL=1`): 1,200.
 * Properties: no 503 and no 5xx while the database is up, excess answered 429 with
 * Retry-After (or its connection closed before the body was read), no cycle starved, RSS back
 * within 20% of the baseline.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const BIN = join(ROOT, 'guardian/bin/guardian.js');
const KEY = 'burst-ingest-key-0123456789abcdef';
const FLAG = 'booking_agent_enabled';
const FULL = process.env['FAULTS_FULL'] === '1';
const REQUESTS = FULL ? 1_200 : 200;
const INTERVAL_S = 2;

const RULES = `
interval: ${INTERVAL_S}s
defaults: { window: 1h, min_users: 100000, consecutive: 1 }
rules:
  - id: burst-builtin
    flags: [${FLAG}]
    source: builtin
    condition: { absolute: { error_rate_above: 0.5 } }
    action: disable
`;

/** Prints one figure (`FAULTS <suite> <name>: <value>`), the fault suite's format. */
function figure(name: string, value: number | string, extra: Record<string, unknown> = {}): void {
  const details = Object.entries(extra)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  process.stdout.write(`FAULTS ingest-burst ${name}: ${value}${details === '' ? '' : ` (${details})`}\n`);
}

/** The process's resident set size in bytes. */
function rssOf(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}

const mb = (bytes: number) => Math.round(bytes / 1_048_576);

/** One batch of 1,000 exposures, about 0.54 MB of JSON. */
function batchBody(): Uint8Array<ArrayBuffer> {
  const pad = 'x'.repeat(462);
  const exposures = Array.from({ length: 1_000 }, (_, i) => ({ flag: FLAG, user: `burst-${String(i).padStart(4, '0')}-${pad}`, value: i % 2 === 0, error: i % 50 === 0 }));
  return new TextEncoder().encode(JSON.stringify({ exposures }));
}

async function until<T>(what: string, fn: () => T | undefined | Promise<T | undefined>, timeoutMs: number, everyMs = 100): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

async function cyclesRun(base: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  return [...text.matchAll(/^guardian_cycles_total\{result="(?:ok|error)"\} (\d+)$/gm)].reduce((n, m) => n + Number(m[1]), 0);
}

describe(`fault suite: ingestion burst of ${REQUESTS} concurrent 0.54 MB batches against guardian start (real PostgreSQL)`, () => {
  let db: TestDatabase;
  let dir: string;
  let child: ChildProcess | undefined;
  let output = '';

  beforeAll(async () => {
    db = await createTestDatabase();
    dir = mkdtempSync(join(tmpdir(), 'guardian-burst-'));
    writeFileSync(join(dir, 'rules.yaml'), RULES);
  });
  afterAll(async () => {
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child!.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    await db?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers 202 or 429 (never 503), keeps cycling, and returns to its baseline RSS', async () => {
    child = spawn(process.execPath, [BIN, 'start'], {
      cwd: ROOT,
      env: { PATH: process.env['PATH'] ?? '', HOME: tmpdir(), DATABASE_URL: db.url, RULES_FILE: join(dir, 'rules.yaml'), PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'warn', GUARDIAN_INGEST_KEY: KEY },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout!.on('data', (b: Buffer) => (output += b.toString('utf8')));
    child.stderr!.on('data', (b: Buffer) => (output += b.toString('utf8')));
    const pid = child.pid!;
    const base = await until('the banner', () => /http:\s+(http:\/\/127\.0\.0\.1:\d+)\/healthz/.exec(output)?.[1], 60_000);
    await until('ready', async () => ((await fetch(`${base}/readyz`)).status === 200 ? true : undefined), 30_000);

    const body = batchBody();
    const post = async (): Promise<string> => {
      try {
        const res = await fetch(`${base}/v1/exposures`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` }, body });
        await res.arrayBuffer();
        return res.status === 429 && res.headers.get('retry-after') === null ? '429-without-retry-after' : String(res.status);
      } catch {
        // The daemon answered 429 and closed the connection while the body was still being sent.
        return 'closed';
      }
    };
    // Warm up (JIT, pools), then the baseline.
    for (let i = 0; i < 3; i++) expect(await post()).toBe('202');
    const baseline = rssOf(pid);
    const cyclesBefore = await cyclesRun(base);

    let peak = baseline;
    const notReady: number[] = [];
    // RSS and /readyz sampled every 50 ms while the burst runs (a sampling rate, not a wait).
    // Each probe on its own connection, as a load balancer's would: fetch would reuse a pooled
    // connection of the burst that the daemon is closing after a 429, and count that as not ready.
    const probe = (): Promise<number> =>
      new Promise((done) => {
        const req = get(`${base}/readyz`, { agent: false }, (res) => {
          res.resume();
          res.once('end', () => done(res.statusCode ?? 0));
        });
        req.once('error', () => done(0));
      });
    const sample = async (): Promise<void> => {
      peak = Math.max(peak, rssOf(pid));
      const ready = await probe();
      if (ready !== 200) notReady.push(ready);
    };
    let inFlight: Promise<void> | undefined;
    const sampler = setInterval(() => {
      inFlight ??= sample().finally(() => (inFlight = undefined));
    }, 50);
    const started = Date.now();
    const statuses = await Promise.all(Array.from({ length: REQUESTS }, post));
    const burstMs = Date.now() - started;
    // Cycles keep coming after the burst as during it: one more interval seen.
    const cyclesAfterBurst = await cyclesRun(base);
    clearInterval(sampler);
    await inFlight;

    const counts: Record<string, number> = {};
    for (const s of statuses) counts[s] = (counts[s] ?? 0) + 1;
    // Back to baseline: wait for the condition (GC and freed sockets), with a generous ceiling.
    let after = rssOf(pid);
    const settled = await until(
      'RSS back within 20% of the baseline',
      () => {
        after = rssOf(pid);
        return after <= baseline * 1.2 ? after : undefined;
      },
      60_000,
      500,
    ).catch(() => undefined);

    figure('requests', REQUESTS, { form: FULL ? 'full' : 'bounded', bodyBytes: body.length, burstMs });
    figure('answers', JSON.stringify(counts));
    figure('rss MB before/peak/after', `${mb(baseline)}/${mb(peak)}/${mb(after)}`, { withinPct: Math.round(((after - baseline) / baseline) * 100) });
    figure('cycles during burst', cyclesAfterBurst - cyclesBefore, { burstMs, intervalS: INTERVAL_S, notReadySamples: notReady.length });

    expect(counts['503'] ?? 0).toBe(0);
    expect(Object.keys(counts).filter((s) => !['202', '429', 'closed'].includes(s))).toEqual([]);
    expect(counts['202'] ?? 0).toBeGreaterThan(0);
    expect(notReady).toEqual([]);
    expect(settled).toBeDefined();
    // The daemon is still healthy and accepting.
    expect(await post()).toBe('202');
    expect(child.exitCode).toBeNull();
  }, 240_000);
});
