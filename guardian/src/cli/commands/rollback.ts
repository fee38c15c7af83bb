/**
 * `guardian rollback <flag> --reason "…" [--step-back] [--json]`: a manual rollback, instant:
 * the same atomic SQL function as the guardian's, recorded as a `manual_rollback` event and
 * notified on the channels the rules file configures.
 */
import { GuardianError } from '../../errors.ts';
import { loadRulesFile } from '../../rules/parse.ts';
import { channelsFromNotify } from '../../cycle/run.ts';
import type { Channel } from '../../store/types.ts';
import type { CliCommand, CliIo } from '../io.ts';
import { cliActor, commandConfig, COMMON_OPTIONS, COMMON_USAGE, parseCommandArgs, reportError } from '../shared.ts';
import { createStore } from '../../store/index.ts';

const usage = `Usage: guardian rollback <flag> --reason TEXT [--step-back] [--stages 10,50,100] [--no-notify] [--actor NAME] [--json]

Rolls a flag back now, by hand: disables it (percentage and targets kept for restore), or with
--step-back moves it to the previous rollout stage. Works on locked flags too (a lock only keeps
the guardian's hands off). Writes a "manual_rollback" event and notifies the channels of the
rules file (RULES_FILE, default rules/guardian.yaml) unless --no-notify.

Options:
  --reason TEXT        why (required; stored with the event and shown in alerts)
  --step-back          previous stage instead of disabling
  --stages LIST        stages for --step-back (default: the flag's own history)
  --no-notify          write no notifications
  --actor NAME         who rolls back (default cli:$USER)
${COMMON_USAGE}

Exit codes: 0 rolled back, 1 failure (unknown flag, already disabled, database unreachable), 2 bad arguments.
`;

const OPTIONS = {
  ...COMMON_OPTIONS,
  reason: { type: 'string' },
  'step-back': { type: 'boolean' },
  stages: { type: 'string' },
  'no-notify': { type: 'boolean' },
  actor: { type: 'string' },
} as const;

async function channelsFor(io: CliIo, rulesFile: string): Promise<Channel[]> {
  const result = await loadRulesFile(rulesFile, io.env);
  return result.ok ? channelsFromNotify(result.rules.notify) : [];
}

async function run(args: readonly string[], io: CliIo): Promise<number> {
  const json = args.includes('--json');
  try {
    const { values, positionals } = parseCommandArgs('rollback', args, OPTIONS, 1);
    const flag = positionals[0];
    if (flag === undefined) throw new GuardianError('BAD_ARGUMENT', 'missing <flag>: guardian rollback booking_agent_enabled --reason "checkout errors"');
    if (values.reason === undefined || values.reason.trim() === '') throw new GuardianError('BAD_ARGUMENT', '--reason: required, say why (it is stored with the event and shown in alerts)');
    let stages: number[] | undefined;
    if (values.stages !== undefined) {
      stages = values.stages.split(',').map((s) => Number(s.trim()));
      if (stages.some((s) => !Number.isInteger(s) || s < 1 || s > 100)) throw new GuardianError('BAD_ARGUMENT', `--stages: must be whole percentages 1..100 separated by commas, got "${values.stages}"`);
    }
    const actor = cliActor(io.env, values.actor);
    const config = commandConfig(io.env, values['database-url']);
    const channels = values['no-notify'] ? [] : await channelsFor(io, config.rulesFile);
    const store = await createStore(config);
    try {
      const current = await store.getFlag(flag);
      if (!current) throw new GuardianError('NOT_FOUND', `flag "${flag}" does not exist (see "guardian flags list")`);
      const event = await store.rollback({
        flag,
        action: values['step-back'] ? 'step_back' : 'disable',
        actor,
        idempotencyKey: `manual:${flag}:${current.version}`,
        channels,
        reason: values.reason,
        kind: 'manual_rollback',
        ...(stages ? { stages } : {}),
      });
      if (json) io.stdout(`${JSON.stringify({ event }, null, 2)}\n`);
      else {
        const s = event.newState;
        io.stdout(
          `Rolled back ${flag} (event ${event.id}): now ${s.enabled ? `enabled at ${s.rolloutPercentage}%` : 'disabled'}, ${s.guardState}. Notified: ${channels.length ? channels.join(', ') : 'nobody'}.\nRestore with: guardian restore ${flag}\n`,
        );
      }
      return 0;
    } finally {
      await store.close();
    }
  } catch (err) {
    return reportError(io, 'rollback', err, json);
  }
}

/** `guardian rollback`. */
export const command: CliCommand = { name: 'rollback', summary: 'Roll a flag back by hand, now (--reason required)', usage, run };
