/**
 * Release plans from the rules file to what the guardian runs: per-stage values merged, and the
 * checks across plans and rules that field-by-field validation cannot see (stages that go down,
 * guard rules that do not exist or do not watch the flag, a minimum time above the maximum), plus
 * a warning with the arithmetic when a stage's traffic can never reach its minimum users in its
 * minimum time.
 */
import type { z } from 'zod';

import { formatDuration } from '../rules/duration.ts';
import type { PlanInputSchema, Rule } from '../rules/schema.ts';
import type { Plan, PlanStage } from './schema.ts';

/** A problem or note with its path in the rules file. */
interface PathMessage {
  readonly path: string;
  readonly message: string;
}

/** Result of {@link resolvePlans}. */
export interface ResolvedPlans {
  readonly plans: Plan[];
  readonly problems: PathMessage[];
  readonly notes: PathMessage[];
}

type PlanOutput = z.output<typeof PlanInputSchema>;

function resolveStages(p: PlanOutput): PlanStage[] {
  return p.stages.map((s) =>
    typeof s === 'number'
      ? { percentage: s, minTimeMs: p.min_time, maxTimeMs: p.max_time, minUsers: p.min_users }
      : { percentage: s.percentage, minTimeMs: s.min_time ?? p.min_time, maxTimeMs: s.max_time ?? p.max_time, minUsers: s.min_users ?? p.min_users },
  );
}

/**
 * Resolves and cross-checks the `plans:` of a rules file against its resolved rules.
 *
 * @example
 * const { plans, problems, notes } = resolvePlans(file.plans ?? [], rules);
 */
export function resolvePlans(inputs: readonly PlanOutput[], rules: readonly Rule[]): ResolvedPlans {
  const problems: PathMessage[] = [];
  const notes: PathMessage[] = [];
  const plans: Plan[] = [];
  const ruleById = new Map(rules.map((r) => [r.id, r]));
  const planOf = new Map<string, number>();
  inputs.forEach((p, i) => {
    const at = `plans[${i}]`;
    const before = problems.length;
    const first = planOf.get(p.flag);
    if (first !== undefined) problems.push({ path: `${at}.flag`, message: `${p.flag} already has a plan (plans[${first}]): one plan per flag` });
    else planOf.set(p.flag, i);

    const stages = resolveStages(p);
    stages.forEach((s, k) => {
      const prev = stages[k - 1];
      if (prev !== undefined && s.percentage <= prev.percentage) {
        problems.push({ path: `${at}.stages[${k}]`, message: `must be higher than the stage before it (${prev.percentage}%): stages only go up, like [10, 50, 100]` });
      }
      if (s.minTimeMs > s.maxTimeMs) {
        problems.push({
          path: `${at}.stages[${k}]`,
          message: `min_time ${formatDuration(s.minTimeMs)} is longer than max_time ${formatDuration(s.maxTimeMs)}: the plan would pause before it could ever promote; raise max_time or lower min_time`,
        });
      }
    });

    let relative = false;
    p.guard.forEach((id, k) => {
      const rule = ruleById.get(id);
      if (!rule) {
        problems.push({ path: `${at}.guard[${k}]`, message: `no rule has id ${JSON.stringify(id)}: name a rule of this file (its id)` });
        return;
      }
      if (!rule.flags.includes(p.flag)) {
        problems.push({ path: `${at}.guard[${k}]`, message: `rule ${id} does not watch ${p.flag}: add ${p.flag} to its flags` });
        return;
      }
      if (rule.condition.kind === 'relative') relative = true;
    });
    if (!relative && problems.length === before) {
      problems.push({
        path: `${at}.guard`,
        message: `needs a relative rule watching ${p.flag}: promotion needs evidence that flag-on is not worse than flag-off, which only a relative rule's counts give`,
      });
    }
    if (problems.length > before) return;

    const perMinute = p.expected_users_per_minute;
    if (perMinute !== undefined) {
      stages.forEach((s, k) => {
        if (k === stages.length - 1) return; // the last stage is never promoted
        const reachable = Math.floor((perMinute * s.percentage * s.minTimeMs) / 100 / 60_000);
        if (reachable < s.minUsers) {
          const byMax = Math.floor((perMinute * s.percentage * s.maxTimeMs) / 100 / 60_000);
          notes.push({
            path: `${at}.stages[${k}]`,
            message:
              `at ${s.percentage}% of ${perMinute} users/min, min_time ${formatDuration(s.minTimeMs)} exposes at most ${perMinute} × ${s.percentage}% × ${s.minTimeMs / 60_000} min = ${reachable} flag-on users, ` +
              `below min_users ${s.minUsers}: this stage waits longer than its min_time` +
              (byMax < s.minUsers ? `, and even by max_time ${formatDuration(s.maxTimeMs)} reaches only ${byMax}: it will pause, never promote` : ''),
          });
        }
      });
    }
    plans.push({
      flag: p.flag,
      stages,
      guard: p.guard,
      onBreach: p.on_breach,
      margin: p.margin,
      alpha: Number((1 - p.confidence).toPrecision(12)),
      ...(perMinute === undefined ? {} : { expectedUsersPerMinute: perMinute }),
    });
  });
  return { plans, problems, notes };
}
