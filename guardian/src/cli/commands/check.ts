/**
 * `guardian check --once [--dry-run] [--json]`: one cycle now — polls the sources, prints each
 * rule's verdict and evidence, and acts on breaches unless --dry-run.
 */
import { access, constants } from 'node:fs/promises';

import { assemble, runOneCycle, type GuardianParts } from '../../daemon.ts';
import { GuardianError } from '../../errors.ts';
import { formatDuration } from '../../rules/duration.ts';
import { silentLogger } from '../../logger.ts';
import type { CycleReport, RuleFlagResult } from '../../cycle/types.ts';
import type { CliCommand, CliIo } from '../io.ts';
import { commandConfig, commandEnv, COMMON_OPTIONS, COMMON_USAGE, explainUnreachable, parseCommandArgs, renderTable, reportError } from '../shared.ts';

const usage = `Usage: guardian check --once [--dry-run] [--rules FILE] [--json]

Runs ONE cycle now: polls every configured source once, decides every rule for every flag,
prints each verdict with its evidence, and acts on breaches (rolls flags back, writes events
and notifications, delivers them) unless --dry-run, which records dry_run events only.

Options:
  --once               one cycle (the only mode; accepted for clarity)
  --dry-run            change no flag
  --rules FILE         rules file (default: env RULES_FILE, else rules/guardian.yaml)
${COMMON_USAGE}

Exit codes: 0 the cycle ran (whatever the verdicts), 1 failure (rules invalid, database
unreachable, a rollback that failed), 2 bad arguments (unknown option, unreadable --rules, …).
`;

const OPTIONS = { ...COMMON_OPTIONS, once: { type: 'boolean' }, 'dry-run': { type: 'boolean' }, rules: { type: 'string' } } as const;

function evidenceText(r: RuleFlagResult): string {
  const e = r.verdict?.evidence;
  if (!e) return '';
  const t = `on ${e.treatment.errors}/${e.treatment.total} ${e.unit} (${(e.treatment.rate * 100).toFixed(2)}%)`;
  const c = e.control ? `, off ${e.control.errors}/${e.control.total} (${(e.control.rate * 100).toFixed(2)}%)` : '';
  const bound = e.lower_bound !== undefined ? `, lower bound ${(e.lower_bound * 100).toFixed(2)}%` : '';
  const limit = e.threshold !== undefined ? ` vs ${(e.threshold * 100).toFixed(2)}%` : e.max_increase !== undefined ? ` vs +${(e.max_increase * 100).toFixed(2)}pt` : '';
  return `${t}${c}${bound}${limit}, window ${formatDuration(e.window)}`;
}

function text(report: CycleReport, parts: GuardianParts): string {
  const rows = report.results.map((r) => [
    r.ruleId,
    r.flag,
    r.source,
    r.verdict ? `${r.verdict.kind}${r.verdict.kind === 'breach' || r.verdict.consecutive > 0 ? ` (${r.verdict.consecutive} in a row)` : ''}` : '-',
    r.action === 'acted' ? `${r.ruleAction} (event ${r.eventId})` : r.action === 'dry_run' ? `dry run of ${r.ruleAction} (event ${r.eventId})` : r.action,
    evidenceText(r) || r.skipped || r.error?.message || '',
  ]);
  const lines = [renderTable(['rule', 'flag', 'source', 'verdict', 'action', 'evidence'], rows)];
  for (const r of report.results) if (r.verdict) lines.push(`  ${r.ruleId} / ${r.flag}: ${r.verdict.reason}\n`);
  for (const s of report.sources) {
    lines.push(`source ${s.source}: ${s.ok}/${s.flags} flag(s) with data, ${s.requests} request(s)${s.error ? `, error ${s.error.code}: ${s.error.message}` : ''}\n`);
  }
  const used = new Set<string>(parts.rules.rules.map((r) => r.source));
  for (const s of parts.sourceStatus) if (!s.configured && used.has(s.id)) lines.push(`source ${s.id}: not configured (${s.detail}); its rules see no data\n`);
  for (const e of report.errors) lines.push(`error ${e.code}: ${e.message}\n`);
  if (report.dryRun) lines.push('dry run: no flag was changed\n');
  return lines.join('');
}

async function run(args: readonly string[], io: CliIo): Promise<number> {
  const json = args.includes('--json');
  try {
    const { values } = parseCommandArgs('check', args, OPTIONS, 0);
    const env = commandEnv(io.env, { databaseUrl: values['database-url'], rules: values.rules });
    const config = commandConfig(env, values['database-url']);
    if (values.rules !== undefined) {
      try {
        await access(values.rules, constants.R_OK);
      } catch (err) {
        throw new GuardianError('BAD_ARGUMENT', `--rules: cannot read ${values.rules} (${(err as NodeJS.ErrnoException).code ?? 'unreadable'}): check the path`, { cause: err });
      }
    }
    let parts: GuardianParts;
    try {
      parts = await assemble({ env, stdout: (t) => io.stdout(t), logger: silentLogger() });
    } catch (err) {
      throw explainUnreachable(err, config, values['database-url'] !== undefined);
    }
    try {
      const report = await runOneCycle(parts, values['dry-run'] === true, AbortSignal.timeout(Math.max(parts.rules.interval * 3, 60_000)));
      const delivery = report.results.some((r) => r.action === 'acted' || r.action === 'dry_run') && parts.notifiers.size > 0 ? await parts.outbox.runOnce() : undefined;
      if (json) io.stdout(`${JSON.stringify({ report, delivery }, null, 2)}\n`);
      else io.stdout(`${text(report, parts)}${delivery ? `notifications: ${delivery.delivered} delivered, ${delivery.retried} to retry, ${delivery.failed} failed\n` : ''}`);
      return report.errors.length > 0 || report.results.some((r) => r.action === 'failed') ? 1 : 0;
    } finally {
      await parts.store.close();
    }
  } catch (err) {
    return reportError(io, 'check', err, json);
  }
}

/** `guardian check`. */
export const command: CliCommand = { name: 'check', summary: 'Run one cycle now and print every verdict with its evidence (--dry-run: change nothing)', usage, run };
