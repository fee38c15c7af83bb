/**
 * `guardian flags list` and `guardian flags set <flag> [--enable|--disable|--percentage N|
 * --add-target U|--remove-target U|--lock|--unlock|--message TEXT]`: read and change flags by
 * hand. Each `set` is one audited change (the audit log names the person).
 */
import { GuardianError } from '../../errors.ts';
import { checkText, MAX_MESSAGE_LENGTH, MAX_USER_ID_LENGTH, printable } from '../../store/limits.ts';
import type { Flag, FlagPatch } from '../../store/types.ts';
import type { CliCommand, CliIo } from '../io.ts';
import { FLAG_NAME_PATTERN } from '../../rules/schema.ts';
import { cliActor, COMMON_OPTIONS, COMMON_USAGE, intOption, openStore, parseCommandArgs, renderTable, reportError, requireFlag, when } from '../shared.ts';

const usage = `Usage: guardian flags [list] [--json]
       guardian flags set <flag> [--enable | --disable] [--percentage N] [--add-target USER]...
                                 [--remove-target USER]... [--lock | --unlock] [--message TEXT | --clear-message]
                                 [--actor NAME] [--json]
       guardian flags create <flag> [--description TEXT] [--bucket-group NAME] [--actor NAME] [--json]
       guardian flags delete <flag> [--actor NAME] [--json]

list   every flag: enabled, rollout percentage, guard state, version, targets, stage start.
set    change one flag in one audited transaction. A rolled-back flag is re-enabled only by
       "guardian restore"; --lock keeps the guardian from ever acting on the flag.
create a new flag, disabled at 0%. delete: a disabled flag (its history stays).

Options (set):
  --enable / --disable     turn the flag on or off
  --percentage N           rollout percentage 0..100
  --add-target USER        always on for this user id, 1..1024 characters (repeatable)
  --remove-target USER     remove a target (repeatable)
  --lock / --unlock        lock the flag against the guardian / watch it again
  --message TEXT           text shown to users after a rollback, at most 500 characters, no control
                           characters (--clear-message removes it)
  --actor NAME             who changes it (default cli:$USER)
${COMMON_USAGE}

Exit codes: 0 ok, 1 failure (refused change such as --enable on a rolled-back flag, database
unreachable), 2 bad arguments (unknown flag, percentage outside 0..100, …).
`;

const OPTIONS = {
  ...COMMON_OPTIONS,
  enable: { type: 'boolean' },
  disable: { type: 'boolean' },
  percentage: { type: 'string' },
  'add-target': { type: 'string', multiple: true },
  'remove-target': { type: 'string', multiple: true },
  lock: { type: 'boolean' },
  unlock: { type: 'boolean' },
  message: { type: 'string' },
  'clear-message': { type: 'boolean' },
  actor: { type: 'string' },
  description: { type: 'string' },
  'bucket-group': { type: 'string' },
} as const;

type ParsedValues = ReturnType<typeof parseCommandArgs<typeof OPTIONS>>['values'];

function flagJson(f: Flag): Record<string, unknown> {
  return { ...f, updatedAt: f.updatedAt.toISOString(), stageStartedAt: f.stageStartedAt.toISOString() };
}

/** `flags create <flag> [--description TEXT] [--bucket-group NAME]` and `flags delete <flag>` (a disabled flag). */
async function createOrDelete(sub: 'create' | 'delete', name: string | undefined, values: ParsedValues, io: CliIo, json: boolean): Promise<number> {
  if (name === undefined) throw new GuardianError('BAD_ARGUMENT', `missing <flag>: guardian flags ${sub} new_checkout_enabled`);
  if (!FLAG_NAME_PATTERN.test(name)) throw new GuardianError('BAD_ARGUMENT', `<flag>: "${name}" must match ^[a-z][a-z0-9_]{1,63}$ (lower-case letter first, then letters, digits, _)`);
  if (values['bucket-group'] !== undefined && !FLAG_NAME_PATTERN.test(values['bucket-group'])) throw new GuardianError('BAD_ARGUMENT', '--bucket-group: must match ^[a-z][a-z0-9_]{1,63}$');
  if (sub === 'delete' && (values.description !== undefined || values['bucket-group'] !== undefined)) throw new GuardianError('BAD_ARGUMENT', '--description and --bucket-group: only for "guardian flags create"');
  const actor = cliActor(io.env, values.actor);
  const store = await openStore(io.env, values['database-url'], values.api);
  try {
    if (sub === 'create') {
      const flag = await store.createFlag({ name, ...(values.description !== undefined ? { description: values.description } : {}), bucketGroup: values['bucket-group'] ?? null }, actor);
      if (json) io.stdout(`${JSON.stringify({ flag: flagJson(flag) }, null, 2)}\n`);
      else io.stdout(`Created ${flag.name} (disabled, 0%, version ${flag.version}). Turn it on with: guardian flags set ${flag.name} --enable --percentage 10\n`);
      return 0;
    }
    const flag = await requireFlag(store, name, '<flag>');
    if (flag.enabled) throw new GuardianError('STORE_CONFLICT', `flag "${name}" is enabled: disable it first (guardian flags set ${name} --disable), so nobody loses a live feature by accident`);
    await store.deleteFlag(name, flag.version, actor);
    if (json) io.stdout(`${JSON.stringify({ deleted: name, version: flag.version }, null, 2)}\n`);
    else io.stdout(`Deleted ${name} (its history stays in the audit log and the event log).\n`);
    return 0;
  } finally {
    await store.close();
  }
}

async function run(args: readonly string[], io: CliIo): Promise<number> {
  const json = args.includes('--json');
  try {
    const { values, positionals } = parseCommandArgs('flags', args, OPTIONS, 2);
    const [sub = 'list', name] = positionals;
    if (sub === 'create' || sub === 'delete') return await createOrDelete(sub, name, values, io, json);
    if (sub !== 'list' && sub !== 'set') {
      throw new GuardianError('BAD_ARGUMENT', `unknown subcommand "${sub}": use "guardian flags list", "guardian flags set <flag> …", "guardian flags create <flag>" or "guardian flags delete <flag>"`);
    }
    const setOnly = ['enable', 'disable', 'percentage', 'add-target', 'remove-target', 'lock', 'unlock', 'message', 'clear-message', 'actor'] as const;
    if (sub === 'list') {
      const used = setOnly.find((k) => values[k] !== undefined);
      if (used) throw new GuardianError('BAD_ARGUMENT', `--${used}: only for "guardian flags set <flag>"`);
      if (name !== undefined) throw new GuardianError('BAD_ARGUMENT', `unexpected argument "${name}": guardian flags list takes no flag name`);
    }
    let patch: FlagPatch = {};
    if (sub === 'set') {
      if (name === undefined) throw new GuardianError('BAD_ARGUMENT', 'missing <flag>: guardian flags set booking_agent_enabled --percentage 50');
      if (values.enable && values.disable) throw new GuardianError('BAD_ARGUMENT', '--enable and --disable: choose one');
      if (values.lock && values.unlock) throw new GuardianError('BAD_ARGUMENT', '--lock and --unlock: choose one');
      if (values.message !== undefined && values['clear-message']) throw new GuardianError('BAD_ARGUMENT', '--message and --clear-message: choose one');
      patch = {
        ...(values.enable ? { enabled: true } : values.disable ? { enabled: false } : {}),
        ...(values.percentage !== undefined ? { rolloutPercentage: intOption('--percentage', values.percentage, 0, 100) } : {}),
        ...(values['add-target'] ? { addTargets: values['add-target'] } : {}),
        ...(values['remove-target'] ? { removeTargets: values['remove-target'] } : {}),
        ...(values.lock ? { lock: true } : values.unlock ? { lock: false } : {}),
        ...(values.message !== undefined ? { rollbackMessage: values.message } : values['clear-message'] ? { rollbackMessage: null } : {}),
      };
      for (const option of ['add-target', 'remove-target'] as const) {
        if ((values[option] ?? []).some((u) => u.trim() === '')) throw new GuardianError('BAD_ARGUMENT', `--${option}: the user id must not be empty`);
        for (const u of values[option] ?? []) checkText(`--${option}`, 'user id', u, MAX_USER_ID_LENGTH);
      }
      if (values.message !== undefined) checkText('--message', 'message', values.message, MAX_MESSAGE_LENGTH);
      const both = (values['add-target'] ?? []).find((u) => (values['remove-target'] ?? []).includes(u));
      if (both !== undefined) throw new GuardianError('BAD_ARGUMENT', `--add-target and --remove-target: both name "${both}"; choose one`);
      if (Object.keys(patch).length === 0) {
        throw new GuardianError('BAD_ARGUMENT', 'nothing to change: give at least one of --enable, --disable, --percentage, --add-target, --remove-target, --lock, --unlock, --message');
      }
    }
    const actor = sub === 'set' ? cliActor(io.env, values.actor) : '';
    const store = await openStore(io.env, values['database-url'], values.api);
    try {
      if (sub === 'list') {
        const flags = await store.listFlags();
        if (json) io.stdout(`${JSON.stringify({ flags: flags.map(flagJson) }, null, 2)}\n`);
        else
          io.stdout(
            renderTable(
              ['flag', 'enabled', 'rollout', 'guard', 'version', 'targets', 'stage since', 'updated by'],
              flags.map((f) => [f.name, f.enabled ? 'yes' : 'no', `${f.rolloutPercentage}%`, f.rollbackUrgent ? `${f.guardState} (urgent)` : f.guardState, String(f.version), String(f.targets.length), when(f.stageStartedAt), f.updatedBy ?? '-']),
            ),
          );
        return 0;
      }
      const before = await requireFlag(store, name as string, '<flag>');
      const editsState = patch.rolloutPercentage !== undefined || patch.addTargets !== undefined || patch.removeTargets !== undefined;
      const notes = [
        ...(editsState && before.guardState === 'rolled_back'
          ? [
              `${before.name} is rolled back: "guardian restore ${before.name}" puts back the percentage and targets from before the rollback and drops this edit (it says so when it does). To keep the edit, restore first, then change the flag.`,
            ]
          : []),
        ...(values['add-target'] ?? []).filter((u) => before.targets.includes(u)).map((u) => `--add-target ${u}: already a target, left as is`),
        ...(values['remove-target'] ?? []).filter((u) => !before.targets.includes(u)).map((u) => `--remove-target ${u}: not a target of ${before.name}, nothing removed`),
      ];
      const flag = await store.setFlag(before.name, patch, actor);
      if (!json) for (const n of notes) io.stderr(`guardian flags: note: ${n}\n`);
      if (json) io.stdout(`${JSON.stringify({ flag: flagJson(flag), notes }, null, 2)}\n`);
      else
        io.stdout(
          `${flag.name}: ${flag.enabled ? 'enabled' : 'disabled'}, ${flag.rolloutPercentage}%, ${flag.guardState}${flag.rollbackUrgent ? ' (urgent)' : ''}, ${flag.targets.length} target(s), version ${flag.version}${flag.rollbackMessage ? `, message "${printable(flag.rollbackMessage)}"` : ''}\n`,
        );
      return 0;
    } finally {
      await store.close();
    }
  } catch (err) {
    return reportError(io, 'flags', err, json);
  }
}

/** `guardian flags`. */
export const command: CliCommand = { name: 'flags', summary: 'List flags, or change one (enable, percentage, targets, lock, message)', usage, run };
