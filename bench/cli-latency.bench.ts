// `npm run bench -- cli-latency`: how long a `guardian` command takes, as a person types it
// (`node guardian/bin/guardian.js …`, a new process each time), on the embedded database:
//  1. `--version` and `--help` (no command module loaded, no database);
//  2. `flags list`, `events`, `flags set --percentage` against a RUNNING daemon (the command reaches
//     the daemon's database through its socket: no PGlite start in the command);
//  3. the same without a daemon (the command opens PGlite itself: WebAssembly compile + start);
//  4. the very first open of a new data folder (initdb, every migration, the seed).
// Printed per command: median, min and max wall time of BENCH_RUNS runs (default 7), and the
// machine's load average (on a shared machine wall time includes waiting for a CPU). Each command
// runs as installed (the bundled CLI that `npm ci` builds, guardian/dist/cli) and, for comparison,
// from the sources (GUARDIAN_CLI_FROM_SOURCE=1: what every command cost before the bundle).
// Goal (issue 9): under 300 ms per command against a running daemon.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { readLock } from '../guardian/src/store/lock.ts';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const BIN = join(ROOT, 'guardian/bin/guardian.js');
const RUNS = Number(process.env['BENCH_RUNS'] ?? 7);

function runOnce(args: readonly string[], env: Record<string, string>): Promise<number> {
  const started = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: { PATH: process.env['PATH'] ?? '', HOME: tmpdir(), USER: 'bench', ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString('utf8')));
    child.once('error', reject);
    child.once('exit', (code) => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      if (code !== 0) reject(new Error(`guardian ${args.join(' ')} exited ${code}: ${err}`));
      else resolve(ms);
    });
  });
}

interface Row {
  readonly what: string;
  readonly runs: number[];
}

async function measure(what: string, args: (i: number) => readonly string[], env: Record<string, string>, runs = RUNS): Promise<Row> {
  const out: number[] = [];
  for (let i = 0; i < runs; i++) out.push(await runOnce(args(i), env));
  return { what, runs: out };
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function print(title: string, rows: readonly Row[]): void {
  console.log(`\n${title}`);
  console.log(`  ${'command'.padEnd(44)} ${'median'.padStart(8)} ${'min'.padStart(8)} ${'max'.padStart(8)}  runs`);
  for (const r of rows) {
    const f = (n: number) => `${n.toFixed(0)} ms`.padStart(8);
    console.log(`  ${r.what.padEnd(44)} ${f(median(r.runs))} ${f(Math.min(...r.runs))} ${f(Math.max(...r.runs))}  ${r.runs.length}`);
  }
}

async function until<T>(fn: () => Promise<T | undefined>, ms: number): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 100));
  }
}

const data = mkdtempSync(join(tmpdir(), 'guardian-bench-cli-'));
const fresh = mkdtempSync(join(tmpdir(), 'guardian-bench-cli-fresh-'));
const env = { GUARDIAN_DATA_DIR: data };
const source = { ...env, GUARDIAN_CLI_FROM_SOURCE: '1' };
try {
  console.log(`cli-latency: node ${process.versions.node}, ${cpus().length} CPU(s), load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
  const build = execFileSync(process.execPath, [BIN, '--version'], { encoding: 'utf8' }).trim();
  console.log(`as installed: ${build}${build.includes('bundled') ? '' : '  (no fresh bundle: run `npm run build -w guardian`)'}`);
  const first = await measure('first open of a new folder: flags list', () => ['flags', 'list'], { GUARDIAN_DATA_DIR: fresh }, 1);
  const plain = [
    await measure('guardian --version', () => ['--version'], env),
    await measure('guardian --help', () => ['--help'], env),
    await measure('guardian --help (from source)', () => ['--help'], source),
  ];

  const daemon = spawn(process.execPath, [BIN, 'start'], { cwd: ROOT, env: { PATH: process.env['PATH'] ?? '', HOME: tmpdir(), GUARDIAN_DATA_DIR: data, PORT: '0', HOST: '127.0.0.1' }, stdio: 'ignore' });
  await until(async () => ((await readLock(data))?.socket ? true : undefined), 180_000);
  const through = [
    await measure('flags list', () => ['flags', 'list'], env),
    await measure('events', () => ['events'], env),
    await measure('flags set booking_agent_enabled --percentage', (i) => ['flags', 'set', 'booking_agent_enabled', '--percentage', String(20 + (i % 2) * 5)], env),
  ];
  const throughSource = [
    await measure('flags list (from source)', () => ['flags', 'list'], source),
    await measure('events (from source)', () => ['events'], source),
    await measure('flags set … --percentage (from source)', (i) => ['flags', 'set', 'booking_agent_enabled', '--percentage', String(20 + (i % 2) * 5)], source),
  ];
  const exited = new Promise((r) => daemon.once('exit', r));
  daemon.kill('SIGTERM');
  await exited;

  const alone = [
    await measure('flags list', () => ['flags', 'list'], env, Math.min(RUNS, 3)),
    await measure('events', () => ['events'], env, Math.min(RUNS, 3)),
  ];
  print('No database (the command modules are not loaded):', plain);
  print('Against a running daemon (through its socket):', [...through, ...throughSource]);
  print('Without a daemon (the command starts PGlite itself):', alone);
  print('First open of a new data folder (initdb, migrations, seed):', [first]);
  const worst = Math.max(...through.map((r) => median(r.runs)));
  console.log(`\nGoal: under 300 ms per command against a running daemon: ${worst < 300 ? 'met' : 'NOT met'} (slowest median ${worst.toFixed(0)} ms; load average now ${loadavg()[0]!.toFixed(1)})`);
} finally {
  rmSync(data, { recursive: true, force: true });
  rmSync(fresh, { recursive: true, force: true });
}
