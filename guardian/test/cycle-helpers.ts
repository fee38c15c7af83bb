/**
 * Typed test doubles for cycle, replica, CLI, route and e2e tests: a scripted MetricSource, a
 * silent logger that records what was logged, rules built from YAML through the real parser, a
 * log destination that keeps its lines, and the real HTTP server around one route.
 */
import { Writable } from 'node:stream';

import type { GuardianMetrics } from '../src/http/metrics.ts';
import { startHttpServer, type HttpLogger, type HttpMount, type RunningHttpServer } from '../src/http/server.ts';
import { parseRules } from '../src/rules/parse.ts';
import type { RulesConfig } from '../src/rules/schema.ts';
import type { CycleLogger } from '../src/cycle/types.ts';
import type { CohortCounts, FlagObservation, FlagQuery, MetricSource, SourceReport } from '../src/sources/types.ts';

/** Parses rules YAML with the real parser; throws with every problem when it is invalid. */
export function rulesFrom(yamlText: string, env: Record<string, string> = {}): RulesConfig {
  const result = parseRules(yamlText, env);
  if (!result.ok) throw new Error(`test rules invalid:\n${result.problems.map((p) => `${p.path}: ${p.message}`).join('\n')}`);
  return result.rules;
}

/** What a scripted source answers for one flag: counts, or a no_data reason. */
export type Scripted = { treatment: CohortCounts; control?: CohortCounts; unit?: 'users' | 'events' } | { noData: string };

/** A MetricSource whose answers come from a function; counts its calls and the flags asked. */
export class ScriptedSource implements MetricSource {
  readonly id: string;
  calls = 0;
  asked: FlagQuery[][] = [];
  answer: (flag: string, call: number) => Scripted;
  throws: Error | undefined;
  delayMs = 0;

  constructor(id: string, answer: (flag: string, call: number) => Scripted) {
    this.id = id;
    this.answer = answer;
  }

  async query(flags: readonly FlagQuery[], signal: AbortSignal): Promise<SourceReport> {
    this.calls++;
    this.asked.push([...flags]);
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
    signal.throwIfAborted();
    if (this.throws) throw this.throws;
    const observations: FlagObservation[] = flags.map((q) => {
      const a = this.answer(q.flag, this.calls);
      if ('noData' in a) return { flag: q.flag, status: 'no_data', reason: a.noData };
      return { flag: q.flag, status: 'ok', unit: a.unit ?? 'users', treatment: a.treatment, ...(a.control ? { control: a.control } : {}) };
    });
    return { source: this.id, at: new Date(), observations, requests: 1 };
  }
}

/** A logger that keeps every line (level, message, fields) for assertions. */
export class MemoryLogger implements CycleLogger {
  readonly lines: { level: string; msg: string; obj: Record<string, unknown> }[] = [];
  debug(obj: Record<string, unknown>, msg: string): void {
    this.lines.push({ level: 'debug', msg, obj });
  }
  info(obj: Record<string, unknown>, msg: string): void {
    this.lines.push({ level: 'info', msg, obj });
  }
  warn(obj: Record<string, unknown>, msg: string): void {
    this.lines.push({ level: 'warn', msg, obj });
  }
  error(obj: Record<string, unknown>, msg: string): void {
    this.lines.push({ level: 'error', msg, obj });
  }
}

/** A clock that advances by `stepMs` on every read. */
export function steppingClock(start: Date, stepMs: number): () => Date {
  let t = start.getTime();
  return () => {
    const d = new Date(t);
    t += stepMs;
    return d;
  };
}

/**
 * A log destination (for `startDaemon`'s `logDestination`) that keeps every chunk written to it.
 *
 * @example
 * const logLines: string[] = [];
 * await startDaemon({ env, logDestination: linesSink(logLines) });
 */
export function linesSink(lines: string[]): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(chunk.toString('utf8'));
      cb();
    },
  });
}

/**
 * The guardian's real HTTP server on a free local port with one mount and a healthy
 * `/readyz`: how the route tests (ingest, OFREP) serve what they test.
 *
 * @example
 * const http = await serveRoute(createOfrepRoute({ store, apiKey, logger, metrics }), { metrics, logger });
 */
export function serveRoute(route: HttpMount, deps: { readonly metrics: GuardianMetrics; readonly logger: HttpLogger }): Promise<RunningHttpServer> {
  return startHttpServer({
    port: 0,
    host: '127.0.0.1',
    health: async () => ({ database: { ok: true }, rules: { loaded: true }, lastCycleAt: new Date(), cycleIntervalMs: 60_000 }),
    metrics: deps.metrics,
    logger: deps.logger,
    mounts: [route],
  });
}
