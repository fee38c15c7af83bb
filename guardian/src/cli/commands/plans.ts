/**
 * `guardian plans [list]` and `guardian plans pause|resume|abort <flag>`: the release plans of the
 * rules file with their state in the database — stage, time in stage, users, the current evidence
 * for safety and for harm, the earliest time a stage could be promoted — and a person's hand on
 * them. Pausing, resuming and aborting are recorded as events (and alerted, unless --no-notify).
 */
import { randomUUID } from 'node:crypto';

import { channelsFromNotify } from '../../cycle/run.ts';
import { GuardianError } from '../../errors.ts';
import type { Plan } from '../../plans/schema.ts';
import { finiteOrNull, PLAN_CHANGES, planView } from '../../plans/view.ts';
import { formatDuration } from '../../rules/duration.ts';
import { loadRulesFile } from '../../rules/parse.ts';
import type { Channel } from '../../store/types.ts';
import type { CliCommand, CliIo } from '../io.ts';
import { cliActor, commandConfig, COMMON_OPTIONS, COMMON_USAGE, openStore, parseCommandArgs, renderTable, reportError, requireFlag, when } from '../shared.ts';

const usage = `Usage: guardian plans [list] [--rules FILE] [--json]
       guardian plans pause <flag> --reason TEXT [--no-notify] [--actor NAME] [--json]
       guardian plans resume <flag> [--reason TEXT] [--no-notify] [--actor NAME] [--json]
       guardian plans abort <flag> --reason TEXT [--no-notify] [--actor NAME] [--json]

list    every release plan of the rules file: its status, the flag's stage and time in stage,
        flag-on users, the evidence for safety (promotion) and for harm (rollback) the guardian
        last saw, and the earliest time the stage could be promoted.
pause   stop promoting the flag (the guardian still rolls it back on harm).
resume  promote again, from the flag's current state (after a pause, a person's change, or a
        restore after a rollback); the current stage starts its minimum time again only if the
        flag changes.
abort   end the plan for good: the flag stays where it is, the guardian never promotes it.

Options:
  --rules FILE         rules file with the plans (default: env RULES_FILE, else rules/guardian.yaml);
                       its notify section names the channels alerted
  --reason TEXT        why (stored with the event, shown in alerts; required for pause and abort)
  --no-notify          record the event but alert nobody
  --actor NAME         who acts (default cli:$USER)
${COMMON_USAGE}

Exit codes: 0 ok, 1 failure (the plan is not in a state that allows it, database unreachable),
2 bad arguments (unknown flag, no plan for it, missing --reason, …).
`;

const OPTIONS = {
  ...COMMON_OPTIONS,
  rules: { type: 'string' },
  reason: { type: 'string' },
  'no-notify': { type: 'boolean' },
  actor: { type: 'string' },
} as const;

type Sub = 'list' | 'pause' | 'resume' | 'abort';
const SUBS: readonly Sub[] = ['list', 'pause', 'resume', 'abort'];


function safetyText(s: Record<string, unknown> | null): string {
  if (s === null) return '-';
  const logE = finiteOrNull(s['logE']);
  const threshold = finiteOrNull(s['threshold']);
  if (logE === null || threshold === null) return '-';
  return `${Math.exp(logE).toPrecision(3)} of ${Math.exp(threshold).toPrecision(3)}${s['safe'] === true ? ' (safe)' : ''}`;
}

function harmText(h: readonly Record<string, unknown>[]): string {
  if (h.length === 0) return '-';
  return h.map((g) => `${String(g['ruleId'])} ${String(g['kind'])}${finiteOrNull(g['logE']) !== null && finiteOrNull(g['threshold']) !== null ? ` ${Math.exp(finiteOrNull(g['logE'])!).toPrecision(2)}/${Math.exp(finiteOrNull(g['threshold'])!).toPrecision(2)}` : ''}`).join(', ');
}

async function loadPlans(io: CliIo, rulesFile: string): Promise<{ plans: readonly Plan[]; channels: Channel[] }> {
  const result = await loadRulesFile(rulesFile, io.env);
  if (!result.ok) {
    throw new GuardianError('RULES_INVALID', `rules file ${rulesFile} is not valid: ${result.problems.map((p) => `${p.path}: ${p.message}`).join('; ')}`);
  }
  return { plans: result.rules.plans ?? [], channels: channelsFromNotify(result.rules.notify) };
}

async function run(args: readonly string[], io: CliIo): Promise<number> {
  const json = args.includes('--json');
  try {
    const { values, positionals } = parseCommandArgs('plans', args, OPTIONS, 2);
    const [subText = 'list', name] = positionals;
    if (!(SUBS as readonly string[]).includes(subText)) {
      throw new GuardianError('BAD_ARGUMENT', `unknown subcommand "${subText}": use list, pause, resume or abort`);
    }
    const sub = subText as Sub;
    const config = commandConfig(io.env, values['database-url']);
    const rulesFile = values.rules ?? config.rulesFile;
    if (sub === 'list') {
      if (name !== undefined) throw new GuardianError('BAD_ARGUMENT', `unexpected argument "${name}": "guardian plans list" takes no flag`);
      for (const o of ['reason', 'no-notify', 'actor'] as const) {
        if (values[o] !== undefined) throw new GuardianError('BAD_ARGUMENT', `--${o}: only with pause, resume or abort`);
      }
      const { plans } = await loadPlans(io, rulesFile);
      const store = await openStore(io.env, values['database-url']);
      try {
        const [flags, states] = await Promise.all([store.listFlags(), store.listPlanStates()]);
        const flagBy = new Map(flags.map((f) => [f.name, f]));
        const stateBy = new Map(states.map((s) => [s.flag, s]));
        const now = new Date();
        const rows = plans.map((p) => planView(p, flagBy.get(p.flag), stateBy.get(p.flag), now));
        if (json) {
          io.stdout(`${JSON.stringify({ plans: rows }, null, 2)}\n`);
          return 0;
        }
        if (rows.length === 0) {
          io.stdout(`No release plans in ${rulesFile} (add them under "plans:").\n`);
          return 0;
        }
        io.stdout(
          renderTable(
            ['flag', 'status', 'stage', 'in stage', 'users', 'safety', 'harm', 'promote from', 'last'],
            rows.map((r) => [
              r.flag,
              r.status,
              r.percentage === null ? '-' : `${r.enabled === false ? 'off ' : ''}${r.percentage}% of ${r.stages.join('→')}`,
              r.timeInStageMs === null ? '-' : formatDuration(r.timeInStageMs),
              r.users === null ? '-' : `${r.users}${r.minUsers === null ? '' : `/${r.minUsers}`}`,
              safetyText(r.safety),
              harmText(r.harm),
              r.earliestPromotionAt === null ? '-' : when(new Date(r.earliestPromotionAt)),
              r.status === 'active' ? (r.lastAction ?? '-') : (r.reason ?? '-'),
            ]),
          ),
        );
        return 0;
      } finally {
        await store.close();
      }
    }

    if (name === undefined) throw new GuardianError('BAD_ARGUMENT', `<flag>: missing; usage: guardian plans ${sub} <flag>${sub === 'resume' ? '' : ' --reason TEXT'}`);
    const reason = values.reason?.trim() ?? '';
    if (sub !== 'resume' && reason === '') throw new GuardianError('BAD_ARGUMENT', `--reason: required for ${sub}, say why (it is stored with the event and shown in alerts)`);
    const actor = cliActor(io.env, values.actor);
    const { plans, channels } = await loadPlans(io, rulesFile);
    if (!plans.some((p) => p.flag === name)) throw new GuardianError('BAD_ARGUMENT', `<flag>: ${name} has no release plan in ${rulesFile} (plans: ${plans.map((p) => p.flag).join(', ') || 'none'})`);
    const change = PLAN_CHANGES[sub];
    const store = await openStore(io.env, values['database-url']);
    try {
      const flag = await requireFlag(store, name, '<flag>');
      if (sub === 'resume' && flag.guardState === 'rolled_back') {
        throw new GuardianError('STORE_CONFLICT', `${name} is rolled back: restore it first ("guardian restore ${name}"), then resume its plan`);
      }
      await store.syncPlan(name, actor);
      const { plan, event } = await store.setPlanStatus({
        flag: name,
        status: change.status,
        reason: reason === '' ? `${sub}d by ${actor}` : reason,
        actor,
        expectedStatus: change.from,
        event: { kind: change.kind, idempotencyKey: `${change.kind}:${name}:${randomUUID()}`, channels: values['no-notify'] ? [] : channels },
      });
      if (json) {
        io.stdout(`${JSON.stringify({ plan, event: event ?? null }, null, 2)}\n`);
        return 0;
      }
      io.stdout(`Plan of ${name} is ${plan.status} (event ${event?.id ?? '-'}): ${plan.reason ?? ''}\n`);
      return 0;
    } finally {
      await store.close();
    }
  } catch (err) {
    return reportError(io, 'plans', err, json);
  }
}

/** `guardian plans`. */
export const command: CliCommand = { name: 'plans', summary: 'Release plans: stage, evidence, pause/resume/abort', usage, run };
