/**
 * `guardian restore <flag|event-id> [--reason TEXT] [--json]`: puts a rolled-back flag back
 * exactly as it was before its latest rollback (or before the given rollback event).
 */
import { randomUUID } from 'node:crypto';

import { GuardianError } from '../../errors.ts';
import type { CliCommand, CliIo } from '../io.ts';
import { cliActor, COMMON_OPTIONS, COMMON_USAGE, openStore, parseCommandArgs, reportError } from '../shared.ts';

const usage = `Usage: guardian restore <flag|event-id> [--reason TEXT] [--actor NAME] [--json]

Restores a rolled-back flag: enabled, percentage and targets exactly as before its latest
rollback (or before the rollback event given by id). The flag is watched again (locked flags
stay locked). Writes a "restore" event and notifies the channels the rollback notified.

Options:
  --reason TEXT        why (stored with the event)
  --actor NAME         who restores (default cli:$USER)
${COMMON_USAGE}

Exit codes: 0 restored, 1 failure (nothing to restore, already restored, database unreachable), 2 bad arguments.
`;

const OPTIONS = { ...COMMON_OPTIONS, reason: { type: 'string' }, actor: { type: 'string' } } as const;

async function run(args: readonly string[], io: CliIo): Promise<number> {
  const json = args.includes('--json');
  try {
    const { values, positionals } = parseCommandArgs('restore', args, OPTIONS, 1);
    const target = positionals[0];
    if (target === undefined) throw new GuardianError('BAD_ARGUMENT', 'missing <flag|event-id>: guardian restore booking_agent_enabled (or an event id from "guardian events")');
    const actor = cliActor(io.env, values.actor);
    const store = await openStore(io.env, values['database-url']);
    try {
      const event = await store.restore({ target, actor, idempotencyKey: `restore:${randomUUID()}`, ...(values.reason !== undefined ? { reason: values.reason } : {}) });
      if (json) io.stdout(`${JSON.stringify({ event }, null, 2)}\n`);
      else {
        const s = event.newState;
        io.stdout(
          `Restored ${event.flag} (event ${event.id}, undoing rollback ${event.restoresEventId ?? '?'}): ${s.enabled ? 'enabled' : 'disabled'}, ${s.rolloutPercentage}%, ${s.targets.length} target(s), ${s.guardState}.\n`,
        );
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
