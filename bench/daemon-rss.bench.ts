// Daemon-RSS benchmark: the real `guardian start` (a child process, as npm start runs it) on
// PostgreSQL with N flags, each watched by a PostHog relative rule and a Sentry absolute rule (the
// provider doubles of cycle-scale, in another child process), at the shipped 30 s interval. Reads the
// daemon's RSS and high-water mark from /proc every few seconds for DURATION_S, so what is measured
// is everything the daemon holds: the cycle, the HTTP server, the admin API, Sentry's paced
// background requests. cycle-scale measures the cycle alone, in process, cycles back to back.
// Run: npm run bench -- daemon-rss   (FLAGS=10000 DURATION_S=300 SAMPLE_S=5)
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';

import { createTestDatabase } from '../test/helpers/db.ts';
import { scaleNames, scaleRulesYaml, seedScaleFlags } from './scale-setup.ts';

const ROOT = resolve(import.meta.dirname, '..');
const n = Number(process.env['FLAGS'] ?? 10_000);
const durationS = Number(process.env['DURATION_S'] ?? 300);
const sampleS = Number(process.env['SAMPLE_S'] ?? 5);
const GOAL_MB = 300;

function memory(pid: number): { rss: number; hwm: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
    return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024 };
  } catch {
    return undefined;
  }
}

const doubles = spawn(process.execPath, [join(ROOT, 'bench/cycle-scale.bench.ts'), '--serve'], { stdio: ['ignore', 'pipe', 'inherit'] });
const port = await new Promise<number>((r) => createInterface({ input: doubles.stdout! }).once('line', (l) => r(Number(l))));
const db = await createTestDatabase();
const dir = mkdtempSync(join(tmpdir(), 'guardian-rss-'));
try {
  const names = scaleNames(n);
  await seedScaleFlags(db.sql, names);
  const rules = join(dir, 'rules.yaml');
  writeFileSync(rules, scaleRulesYaml(names, `http://127.0.0.1:${port}`, { intervalMs: 30_000 }));
  const daemon = spawn(process.execPath, [join(ROOT, 'guardian/bin/guardian.js'), 'start'], {
    cwd: ROOT,
    env: { PATH: process.env['PATH'] ?? '', DATABASE_URL: db.url, RULES_FILE: rules, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', GUARDIAN_ADMIN_TOKEN: 'bench-admin-token-0123456789abcdef' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let cycles = 0;
  createInterface({ input: daemon.stdout! }).on('line', (l) => {
    if (l.includes('cycle done')) cycles++;
  });
  daemon.stderr!.resume();
  console.log(`Daemon-RSS benchmark: guardian start, ${n.toLocaleString('en-US')} flags × 2 rules (PostHog relative, Sentry absolute), interval 30s, ${durationS} s, RSS read every ${sampleS} s.`);
  const rss: number[] = [];
  let hwm = 0;
  const started = Date.now();
  while (Date.now() - started < durationS * 1000 && daemon.exitCode === null) {
    await sleep(sampleS * 1000);
    const m = memory(daemon.pid!);
    if (!m) break;
    rss.push(m.rss);
    hwm = m.hwm;
  }
  daemon.kill('SIGTERM');
  const code = await new Promise<number | null>((r) => (daemon.exitCode !== null ? r(daemon.exitCode) : daemon.once('exit', (c) => r(c))));
  const f0 = (x: number) => x.toFixed(0);
  const half = rss.slice(Math.floor(rss.length / 2));
  console.log('flags    cycles  RSS MB first → last   min / median / max      high-water MB   second half max   goal       exit');
  const sorted = [...rss].sort((a, b) => a - b);
  console.log(
    `${String(n).padEnd(8)} ${String(cycles).padEnd(7)} ${`${f0(rss[0] ?? NaN)} → ${f0(rss.at(-1) ?? NaN)}`.padEnd(21)} ${`${f0(sorted[0] ?? NaN)} / ${f0(sorted[Math.floor(sorted.length / 2)] ?? NaN)} / ${f0(sorted.at(-1) ?? NaN)}`.padEnd(23)} ${f0(hwm).padEnd(15)} ${f0(Math.max(...half)).padEnd(17)} ${`< ${GOAL_MB} MB`.padEnd(10)} ${code}`,
  );
  console.log(`Goal (issue 13): RSS < ${GOAL_MB} MB and flat at 10,000 flags. High-water ${f0(hwm)} MB is ${(hwm / GOAL_MB).toFixed(2)}× the goal.`);
} finally {
  doubles.kill('SIGTERM');
  await db.drop();
  rmSync(dir, { recursive: true, force: true });
}
