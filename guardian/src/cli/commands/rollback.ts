/**
 * `guardian rollback <flag> --reason "…" [--step-back] [--urgent] [--json]`: a manual rollback, instant:
 * the same atomic SQL function as the guardian's, recorded as a `manual_rollback` event and
 * notified on the channels the rules file configures.
 *
 * Decisions: rolling back a flag that is already off changes nothing, records nothing, notifies
 * nobody and exits 0 (the flag is off, which is what the person asked for; two people in one
 * incident must not get an error for agreeing). A locked flag is refused unless `--force`: a lock
 * says someone chose to keep hands off this flag, so overriding it must be deliberate.
 */
import type { GuardianConfig } from '../../config.ts';
import { GuardianError, isGuardianError } from '../../errors.ts';
import { loadRulesFile } from '../../rules/parse.ts';
import { checkText, MAX_REASON_LENGTH, printable } from '../../store/limits.ts';
import { channelsFromNotify } from '../../cycle/run.ts';
import type { Channel, Flag, RollbackEvent, Store } from '../../store/types.ts';
import type { CliCommand, CliIo } from '../io.ts';
import { cliActor, commandConfig, COMMON_OPTIONS, COMMON_USAGE, openStore, parseCommandArgs, reportError, requireFlag, when } from '../shared.ts';

const usage = `Usage: guardian rollback <flag> --reason TEXT [--step-back [--stages 10,50,100]] [--urgent] [--force]
                         [--no-notify] [--rules FILE] [--actor NAME] [--json]

Rolls a flag back now, by hand: disables it (percentage and targets kept for restore), or with
--step-back moves it to the previous rollout stage. Writes a "manual_rollback" event and
notifies the channels of the rules file (--rules, else RULES_FILE, else rules/guardian.yaml)
unless --no-notify. A flag that is already off is left alone (exit 0, nothing recorded).
A locked flag is refused unless --force (it stays locked; a restore puts it back locked).
--step-back on a flag with no earlier stage is refused unless --force (which disables it).

Options:
  --reason TEXT        why (required; stored with the event and shown in alerts; at most 1000
                       characters, no control characters)
  --step-back          previous stage instead of disabling
  --stages LIST        stages for --step-back (default: the flag's own history)
  --urgent             users must leave the feature at once: the flag carries the mark until it is
                       restored, and SDK clients ignore the app's holdUntil(safePoint) (the
                       onRollback save hook still runs within its bound)
  --force              roll back even a locked flag; with --step-back, disable a flag that has
                       no earlier stage (refused without it)
  --no-notify          write no notifications
  --rules FILE         rules file whose notify section names the channels
  --actor NAME         who rolls back (default cli:$USER)
${COMMON_USAGE}

Exit codes: 0 rolled back (or already off), 1 failure (locked flag, database unreachable),
2 bad arguments (unknown flag, missing --reason, …).
`;

const OPTIONS = {
  ...COMMON_OPTIONS,
  reason: { type: 'string' },
  'step-back': { type: 'boolean' },
  urgent: { type: 'boolean' },
  stages: { type: 'string' },
  force: { type: 'boolean' },
  'no-notify': { type: 'boolean' },
  rules: { type: 'string' },
  actor: { type: 'string' },
} as const;

/**
 * The channels the rules file configures and the environment can deliver (email needs SMTP_URL
 * and a sender too); a file that cannot be used gives none, with a warning.
 */
async function channelsFor(io: CliIo, rulesFile: string, config: GuardianConfig): Promise<{ channels: Channel[]; warning?: string }> {
  const result = await loadRulesFile(rulesFile, io.env);
  if (result.ok) {
    const channels = channelsFromNotify(result.rules.notify, config);
    if (!channels.includes('email') && channelsFromNotify(result.rules.notify).includes('email')) {
      return { channels, warning: 'notify.email names a recipient but SMTP_URL or a sender (notify.email.from or EMAIL_FROM) is not set, so nobody is notified by email.' };
    }
    return { channels };
  }
  const problems = result.problems.map((p) => `${p.path}: ${p.message}`).join('; ');
  return {
    channels: [],
    warning: `rules file ${rulesFile} is not usable (${problems}), so nobody is notified of this rollback. Pass --rules FILE (or set RULES_FILE), or --no-notify to say that is intended.`,
  };
}

/** The latest event that changed the flag's state (a rollback or a restore), if any. */
async function latestStateEvent(store: Store, flag: string): Promise<RollbackEvent | undefined> {
  const events = await store.listEvents({ flag, limit: 100 });
  return events.find((e) => e.kind !== 'dry_run' && e.action !== 'notify_only');
}

/**
 * Exit 0 without acting: the flag is off already, or `event` (someone else's rollback of the same
 * flag version, committed while we asked) did the act.
 */
async function notChanged(io: CliIo, store: Store, flag: Flag, json: boolean, warnings: readonly string[], event?: RollbackEvent): Promise<number> {
  const latest = event ?? (await latestStateEvent(store, flag.name));
  const byRollback = latest !== undefined && latest.kind !== 'restore' ? latest : undefined;
  if (json) {
    io.stdout(`${JSON.stringify({ changed: false, flag: flag.name, enabled: flag.enabled, guardState: flag.guardState, event: byRollback ?? null, notified: [], warnings }, null, 2)}\n`);
    return 0;
  }
  const how = byRollback
    ? `already rolled back by event ${byRollback.id} (${byRollback.kind} by ${printable(byRollback.actor)} at ${when(byRollback.createdAt)}${byRollback.reason ? `: "${printable(byRollback.reason)}"` : ''})`
    : `already disabled (by ${printable(flag.updatedBy ?? 'someone')} at ${when(flag.updatedAt)}, not by a rollback)`;
  io.stdout(`${flag.name} is ${how}. Nothing changed, nothing recorded, nobody notified.\n${byRollback ? `Restore with: guardian restore ${flag.name}\n` : ''}`);
  return 0;
}

async function run(args: readonly string[], io: CliIo): Promise<number> {
  const json = args.includes('--json');
  try {
    const { values, positionals } = parseCommandArgs('rollback', args, OPTIONS, 1);
    const name = positionals[0];
    if (name === undefined) throw new GuardianError('BAD_ARGUMENT', 'missing <flag>: guardian rollback booking_agent_enabled --reason "checkout errors"');
    const reason = values.reason?.trim() ?? '';
    if (reason === '') throw new GuardianError('BAD_ARGUMENT', '--reason: required, say why (it is stored with the event and shown in alerts)');
    checkText('--reason', 'reason', reason, MAX_REASON_LENGTH);
    let stages: number[] | undefined;
    if (values.stages !== undefined) {
      if (!values['step-back']) throw new GuardianError('BAD_ARGUMENT', '--stages: only with --step-back');
      stages = values.stages.split(',').map((s) => (/^\s*\d+\s*$/.test(s) ? Number(s) : Number.NaN));
      if (stages.some((s) => !Number.isInteger(s) || s < 1 || s > 100)) throw new GuardianError('BAD_ARGUMENT', `--stages: must be whole percentages 1..100 separated by commas, got "${values.stages}"`);
    }
    if (values['no-notify'] && values.rules !== undefined) throw new GuardianError('BAD_ARGUMENT', '--rules and --no-notify: choose one (--rules only names the channels to notify)');
    const actor = cliActor(io.env, values.actor);
    const config = commandConfig(io.env, values['database-url']);
    const warnings: string[] = [];
    let channels: Channel[] = [];
    if (!values['no-notify']) {
      const found = await channelsFor(io, values.rules ?? config.rulesFile, config);
      channels = found.channels;
      if (found.warning) warnings.push(found.warning);
    }
    if (!json) for (const w of warnings) io.stderr(`guardian rollback: warning: ${w}\n`);
    // The one way commands open the store: the admin API when given one, else the database (embedded:
    // through the daemon, or under the folder's lock).
    const store = await openStore(io.env, values['database-url'], values.api);
    try {
      const current = await requireFlag(store, name, '<flag>');
      if (!current.enabled) return await notChanged(io, store, current, json, warnings);
      if (current.guardState === 'locked' && !values.force) {
        throw new GuardianError(
          'STORE_CONFLICT',
          `flag "${name}" is locked (last changed by ${current.updatedBy ?? 'someone'} at ${when(current.updatedAt)}): nothing was changed. Pass --force to roll it back anyway (it stays locked), or unlock it first with "guardian flags set ${name} --unlock".`,
        );
      }
      if (values['step-back'] && !values.force && (await store.previousStage(name, current.rolloutPercentage, stages)) === undefined) {
        const why = stages ? `none of --stages ${values.stages} is below ${current.rolloutPercentage}%` : `its history has no percentage below ${current.rolloutPercentage}%; name the stages with --stages 10,50,100`;
        throw new GuardianError(
          'STORE_CONFLICT',
          `--step-back: ${name} has no earlier rollout stage (${why}), so stepping back would disable it. Nothing was changed. Roll back without --step-back to disable it, or add --force to let --step-back disable it.`,
        );
      }
      let event: RollbackEvent;
      try {
        event = await store.rollback({
          flag: name,
          action: values['step-back'] ? 'step_back' : 'disable',
          actor,
          idempotencyKey: `manual:${name}:${current.version}`,
          channels,
          reason,
          kind: 'manual_rollback',
          ...(stages ? { stages } : {}),
          ...(values.urgent ? { urgent: true } : {}),
        });
      } catch (err) {
        // Someone else turned it off between our read and our rollback: same answer as above.
        const now = isGuardianError(err, 'STORE_CONFLICT') ? await store.getFlag(name) : undefined;
        if (now && !now.enabled) return await notChanged(io, store, now, json, warnings);
        throw err;
      }
      if (event.actor !== actor || event.reason !== reason) {
        // The same flag version was rolled back by someone else a moment ago (same idempotency key).
        return await notChanged(io, store, (await store.getFlag(name)) ?? current, json, warnings, event);
      }
      if (json) io.stdout(`${JSON.stringify({ changed: true, event, notified: channels, warnings }, null, 2)}\n`);
      else {
        const s = event.newState;
        io.stdout(
          `Rolled back ${name} (event ${event.id}): now ${s.enabled ? `enabled at ${s.rolloutPercentage}%` : 'disabled'}, ${s.guardState}${s.rollbackUrgent ? ', urgent (apps do not wait for safe points)' : ''}. Notified: ${channels.length ? channels.join(', ') : 'nobody'}.\nRestore with: guardian restore ${name}\n`,
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
