/**
 * `guardian events [--flag F] [--kind K] [--since 24h] [--limit N] [--json]`: the rollback
 * event log, newest first.
 */
import { GuardianError } from '../../errors.ts';
import { EVENT_KINDS, type EventKind, type EventQuery, type RollbackEvent } from '../../store/types.ts';
import type { CliCommand, CliIo } from '../io.ts';
import { COMMON_OPTIONS, COMMON_USAGE, intOption, openStore, parseCommandArgs, renderTable, reportError, requireFlag, sinceOption, when } from '../shared.ts';

const usage = `Usage: guardian events [--flag F] [--kind K] [--rule R] [--actor A] [--since 24h] [--until 1h] [--before ID] [--limit N] [--json]

Lists rollback events (automatic and manual rollbacks, restores, dry runs), newest first.

Options:
  --flag F             only events of flag F
  --kind K             only events of kind K (${EVENT_KINDS.join(', ')})
  --rule R             only events of rule R
  --actor A            only events by actor A (guardian, cli:alice, alice@example.com, …)
  --since DURATION     only events newer than this (30m, 24h, 7d)
  --until DURATION     only events older than this (e.g. 1h: up to an hour ago)
  --before ID          only events with a smaller id (the next page after event ID)
  --limit N            at most N events (1..1000, default 50)
${COMMON_USAGE}

Exit codes: 0 ok, 1 failure (database unreachable, …), 2 bad arguments (unknown --flag or --kind,
bad --since or --limit, …).
`;

const OPTIONS = {
  ...COMMON_OPTIONS,
  flag: { type: 'string' },
  kind: { type: 'string' },
  rule: { type: 'string' },
  actor: { type: 'string' },
  since: { type: 'string' },
  until: { type: 'string' },
  before: { type: 'string' },
  limit: { type: 'string' },
} as const;

function stateText(s: RollbackEvent['newState']): string {
  return `${s.enabled ? 'on' : 'off'} ${s.rolloutPercentage}%`;
}

function summary(e: RollbackEvent): string {
  const change = `${stateText(e.previousState)} → ${stateText(e.newState)}`;
  if (e.kind === 'restore') return `undo of event ${e.restoresEventId ?? '?'}: ${change}`;
  return `${e.action ?? ''} ${change}${e.kind === 'dry_run' ? ' (not applied)' : ''}`;
}

async function run(args: readonly string[], io: CliIo): Promise<number> {
  const json = args.includes('--json');
  try {
    const { values } = parseCommandArgs('events', args, OPTIONS, 0);
    const query: { -readonly [K in keyof EventQuery]: EventQuery[K] } = {};
    if (values.flag !== undefined) query.flag = values.flag;
    if (values.kind !== undefined) {
      if (!(EVENT_KINDS as readonly string[]).includes(values.kind)) {
        throw new GuardianError('BAD_ARGUMENT', `--kind: must be one of ${EVENT_KINDS.join(', ')}, got "${values.kind}"`);
      }
      query.kind = values.kind as EventKind;
    }
    if (values.since !== undefined) query.since = sinceOption(values.since, new Date());
    if (values.until !== undefined) query.until = sinceOption(values.until, new Date());
    if (values.rule !== undefined) query.ruleId = values.rule;
    if (values.actor !== undefined) query.actor = values.actor;
    if (values.before !== undefined) {
      if (!/^\d{1,19}$/.test(values.before)) throw new GuardianError('BAD_ARGUMENT', `--before: must be an event id (digits), got "${values.before}"`);
      query.beforeId = values.before;
    }
    query.limit = values.limit === undefined ? 50 : intOption('--limit', values.limit, 1, 1000);
    const store = await openStore(io.env, values['database-url'], values.api);
    try {
      const events = await store.listEvents(query);
      // A typo in --flag would otherwise look like a quiet log. (Events of a deleted flag still list.)
      if (events.length === 0 && query.flag !== undefined) await requireFlag(store, query.flag, '--flag');
      if (json) {
        io.stdout(`${JSON.stringify({ events }, null, 2)}\n`);
        return 0;
      }
      if (events.length === 0) {
        io.stdout('No events.\n');
        return 0;
      }
      io.stdout(
        renderTable(
          ['id', 'when', 'flag', 'kind', 'rule', 'actor', 'what', 'reason'],
          events.map((e) => [e.id, when(e.createdAt), e.flag, e.kind, e.ruleId ?? '-', e.actor, summary(e), e.reason ?? '']),
        ),
      );
      return 0;
    } finally {
      await store.close();
    }
  } catch (err) {
    return reportError(io, 'events', err, json);
  }
}

/** `guardian events`. */
export const command: CliCommand = { name: 'events', summary: 'List rollback events (filters: --flag, --kind, --since, --limit)', usage, run };
