/**
 * `guardian restore <flag|event-id> [--reason TEXT] [--json]`: puts a rolled-back flag back
 * exactly as it was before its latest rollback (or before the given rollback event).
 *
 * Decisions: an unknown flag name or event id is a bad argument (exit 2); a flag with nothing to
 * restore (never rolled back, or its latest rollback already restored) is refused with exit 1 and
 * says what the flag's state is, because "as before the rollback" may no longer be true.
 */
import { randomUUID } from 'node:crypto';

import { GuardianError, isGuardianError } from '../../errors.ts';
import { checkText, MAX_REASON_LENGTH, printable } from '../../store/limits.ts';
import type { RollbackEvent, Store } from '../../store/types.ts';
import type { CliCommand, CliIo } from '../io.ts';
import { cliActor, COMMON_OPTIONS, COMMON_USAGE, openStore, parseCommandArgs, reportError, requireFlag, when } from '../shared.ts';

const usage = `Usage: guardian restore <flag|event-id> [--reason TEXT] [--actor NAME] [--json]

Restores a rolled-back flag: enabled, percentage and targets exactly as before its latest
rollback (or before the rollback event given by id). The flag is watched again (locked flags
stay locked). Writes a "restore" event and notifies the channels the rollback notified.

Options:
  --reason TEXT        why (stored with the event; at most 1000 characters, no control characters)
  --actor NAME         who restores (default cli:$USER)
${COMMON_USAGE}

Exit codes: 0 restored, 1 failure (nothing to restore, already restored, not the latest
rollback, database unreachable), 2 bad arguments (unknown flag or event id, …).
`;

const OPTIONS = { ...COMMON_OPTIONS, reason: { type: 'string' }, actor: { type: 'string' } } as const;

/** Checks that the target names a flag or an event, so a typo is a bad argument (exit 2). */
async function checkTarget(store: Store, target: string): Promise<void> {
  if (/^\d+$/.test(target)) {
    const event = await store.getEvent(target);
    if (!event) throw new GuardianError('BAD_ARGUMENT', `<flag|event-id>: there is no event with id ${target} (see "guardian events" for the ids)`);
    if (event.kind === 'restore' || event.kind === 'dry_run' || event.action === 'notify_only') {
      const what = event.kind === 'restore' ? `a restore (of event ${event.restoresEventId ?? '?'})` : event.kind === 'dry_run' ? 'a dry run (it changed nothing)' : 'a notify_only event (it changed nothing)';
      throw new GuardianError(
        'BAD_ARGUMENT',
        `<flag|event-id>: event ${target} is ${what}, not a rollback; give a rollback event id or the flag name (guardian restore ${event.flag})`,
      );
    }
    return;
  }
  await requireFlag(store, target, '<flag|event-id>');
}

/** A refusal rewritten with the flag's current state, for a person deciding what to do next. */
async function nothingToRestore(store: Store, target: string, err: GuardianError): Promise<GuardianError> {
  if (/^\d+$/.test(target)) return err;
  const flag = await store.getFlag(target);
  if (!flag) return err;
  const state = `${flag.enabled ? `enabled at ${flag.rolloutPercentage}%` : 'disabled'}, ${flag.guardState}`;
  const latest: RollbackEvent | undefined = (await store.listEvents({ flag: target, limit: 100 })).find((e) => e.kind !== 'dry_run' && e.action !== 'notify_only');
  const why =
    latest === undefined
      ? 'it has never been rolled back'
      : latest.kind === 'restore'
        ? `its latest rollback (event ${latest.restoresEventId ?? '?'}) was already restored by event ${latest.id} (${printable(latest.actor)} at ${when(latest.createdAt)})`
        : err.message;
  return new GuardianError(err.code, `nothing to restore for ${target}: ${why}. The flag is ${state}; change it with "guardian flags set ${target} …".`, { cause: err });
}

/**
 * What a restore dropped: the percentage and targets the flag was given after its rollback, which
 * the restore replaced with the state from before the rollback.
 */
async function droppedEdits(store: Store, restore: RollbackEvent): Promise<string[]> {
  const rollback = restore.restoresEventId === null || restore.restoresEventId === undefined ? undefined : await store.getEvent(restore.restoresEventId);
  if (!rollback) return [];
  const edited = restore.previousState;
  const out: string[] = [];
  if (edited.rolloutPercentage !== rollback.newState.rolloutPercentage) out.push(`percentage ${edited.rolloutPercentage}% (now ${restore.newState.rolloutPercentage}%)`);
  const added = edited.targets.filter((t) => !rollback.newState.targets.includes(t));
  const removed = rollback.newState.targets.filter((t) => !edited.targets.includes(t));
  if (added.length > 0) out.push(`added target(s) ${added.join(', ')}`);
  if (removed.length > 0) out.push(`removed target(s) ${removed.join(', ')}`);
  return out;
}

async function run(args: readonly string[], io: CliIo): Promise<number> {
  const json = args.includes('--json');
  try {
    const { values, positionals } = parseCommandArgs('restore', args, OPTIONS, 1);
    const target = positionals[0];
    if (target === undefined) throw new GuardianError('BAD_ARGUMENT', 'missing <flag|event-id>: guardian restore booking_agent_enabled (or an event id from "guardian events")');
    const actor = cliActor(io.env, values.actor);
    const reason = values.reason?.trim();
    if (reason !== undefined) checkText('--reason', 'reason', reason, MAX_REASON_LENGTH);
    const store = await openStore(io.env, values['database-url'], values.api);
    try {
      await checkTarget(store, target);
      let event: RollbackEvent;
      try {
        event = await store.restore({ target, actor, idempotencyKey: `restore:${randomUUID()}`, ...(reason ? { reason } : {}) });
      } catch (err) {
        if (isGuardianError(err, 'NOT_FOUND') || isGuardianError(err, 'STORE_CONFLICT')) throw await nothingToRestore(store, target, err);
        throw err;
      }
      const dropped = await droppedEdits(store, event);
      if (json) io.stdout(`${JSON.stringify({ event, dropped }, null, 2)}\n`);
      else {
        const s = event.newState;
        io.stdout(
          `Restored ${event.flag} (event ${event.id}, undoing rollback ${event.restoresEventId ?? '?'}): ${s.enabled ? 'enabled' : 'disabled'}, ${s.rolloutPercentage}%, ${s.targets.length} target(s), ${s.guardState}.\n`,
        );
        if (dropped.length > 0) io.stderr(`guardian restore: note: edits made while the flag was rolled back were dropped: ${dropped.join('; ')}.\n`);
      }
      return 0;
    } finally {
      await store.close();
    }
  } catch (err) {
    return reportError(io, 'restore', err, json);
  }
}

/** `guardian restore`. */
export const command: CliCommand = { name: 'restore', summary: 'Restore a rolled-back flag exactly as it was (by flag or event id)', usage, run };
