/**
 * What the daemon tells the admin API about itself (`GET /status`, rule thresholds in usage,
 * the channels a rollback notifies): a snapshot read on every request, so it is always the
 * current rules file and the last cycle.
 */
import type { Plan } from '../plans/schema.ts';
import type { Rule } from '../rules/schema.ts';
import type { Channel } from '../store/types.ts';

/**
 * One reading of the daemon's state.
 *
 * @example
 * const provider: StatusProvider = () => ({ lastCycle: null, intervalMs: 60_000, dryRun: false, sources: [], rulesFile: 'rules/guardian.yaml', rules: [], rulesLoadedAt: null, lastReloadError: null, channels: [] });
 */
export interface GuardianStatusSnapshot {
  readonly lastCycle: { readonly at: Date; readonly durationMs: number; readonly ok: boolean } | null;
  readonly intervalMs: number;
  readonly dryRun: boolean;
  /** Each kind of source and whether the rules file configures it. */
  readonly sources: readonly { readonly id: string; readonly configured: boolean; readonly detail: string }[];
  readonly rulesFile: string;
  /** The resolved rules in force. */
  readonly rules: readonly Pick<Rule, 'id' | 'source' | 'flags' | 'condition'>[];
  readonly rulesLoadedAt: Date | null;
  readonly lastReloadError: string | null;
  /** Channels a rollback notifies (from the rules file's notify section). */
  readonly channels: readonly Channel[];
  /** The release plans in force (none when absent). */
  readonly plans?: readonly Plan[];
}

/** Reads the daemon's state now. */
export type StatusProvider = () => GuardianStatusSnapshot;

/** The snapshot of a process with no daemon (tests, the CLI's own API): no cycle, no rules. */
export const NO_DAEMON: StatusProvider = () => ({
  lastCycle: null,
  intervalMs: 0,
  dryRun: false,
  sources: [],
  rulesFile: '',
  rules: [],
  rulesLoadedAt: null,
  lastReloadError: 'no guardian daemon in this process',
  channels: [],
});
