/**
 * The confirmation poll. A rule with `consecutive: 2` (the default) breaches when two polls in a
 * row breach; waiting a whole interval for the second one made a rollback take up to two
 * intervals after the first poll that could see the harm. Instead, after a cycle in which a
 * pair's condition held at fewer than `consecutive` polls in a row, the daemon runs a focused
 * cycle for those flags `confirm_after` later (default 20 s). The second poll is still a real,
 * recorded poll judged by the same `decide` (an anytime-valid test: looking sooner never raises
 * the false-breach bound), so the guard against a one-off bad reading is kept, without the wait.
 * 20 s, not less: the confirmation must see some new users to filter a chance crossing (at 100
 * users/min, A/A over 24 h with 30 s polls: 0.72% with a 20 s confirmation, 1.30% with 10 s,
 * 0.70% for the old 1-minute polls; 4,000 simulated stages each).
 */
import type { CycleReport } from './types.ts';

/**
 * The flags to poll again soon, per source: every pair of the report whose condition held at
 * some, but not yet `consecutive`, polls in a row. `undefined` when there is none.
 *
 * @example
 * const focus = confirmationFocus(report); // Map { 'posthog' => Set { 'ai_beta_users' } }
 * if (focus) setTimeout(() => void runCycle({ ...deps, focus }), rules.confirm_after);
 */
export function confirmationFocus(report: CycleReport): Map<string, Set<string>> | undefined {
  if (!report.ran) return undefined;
  let focus: Map<string, Set<string>> | undefined;
  for (const r of report.results) {
    if (r.action !== 'none' || r.verdict?.kind !== 'healthy' || r.verdict.consecutive <= 0) continue;
    focus ??= new Map();
    const flags = focus.get(r.source);
    if (flags) flags.add(r.flag);
    else focus.set(r.source, new Set([r.flag]));
  }
  return focus;
}
