/**
 * `guardian validate FILE [--json]`: checks a rules file and lists every problem.
 * Exit codes: 0 valid, 1 invalid (every problem listed), 2 bad arguments or unreadable file.
 */
import { access, constants } from 'node:fs/promises';
import { loadConfig } from '../../config.ts';
import { loadRulesFile, type RulesNote } from '../../rules/parse.ts';
import { formatDuration } from '../../rules/duration.ts';
import type { RulesConfig } from '../../rules/schema.ts';
import type { CliCommand, CliIo } from '../io.ts';
import { openStore } from '../shared.ts';

/** How long validate waits for the database before it skips the flag-name check. */
const FLAG_CHECK_TIMEOUT_MS = 5_000;

/**
 * Notes for rules naming flags that do not exist, when a database is configured (DATABASE_URL,
 * or Supabase) and reachable; otherwise one note saying the check was skipped. Never fails
 * validation: a rule may be written before its flag is created.
 */
async function flagNotes(config: RulesConfig, env: CliIo['env']): Promise<RulesNote[]> {
  let opening: ReturnType<typeof openStore> | undefined;
  let timer: NodeJS.Timeout | undefined;
  try {
    if (loadConfig(env).store === 'pglite') return [];
    opening = openStore(env, undefined);
    const store = opening;
    const names = await Promise.race([
      store.then(async (s) => new Set((await s.listFlags()).map((f) => f.name))),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${FLAG_CHECK_TIMEOUT_MS / 1000} s`)), FLAG_CHECK_TIMEOUT_MS);
      }),
    ]);
    const notes: RulesNote[] = [];
    config.rules.forEach((rule, i) =>
      rule.flags.forEach((flag, k) => {
        if (!names.has(flag)) notes.push({ path: `rules[${i}].flags[${k}]`, message: `flag ${JSON.stringify(flag)} does not exist in the database: create it or fix the name (this rule watches nothing until then)` });
      }),
    );
    return notes;
  } catch (err) {
    return [{ path: 'flags', message: `not checked against the database (${(err as Error).message.split('\n')[0]}): rule flag names may not exist` }];
  } finally {
    clearTimeout(timer);
    // Closed whenever it opens, even after the timeout.
    void opening?.then((s) => s.close()).catch(() => {});
  }
}

const usage = `Usage: guardian validate FILE [--json]

Checks a rules file (YAML): schema, \${VAR} references (read from the environment), durations,
flag names, duplicate ids, size and alias limits, secrets outside credential fields. Prints every
problem with its path and a hint. When DATABASE_URL (or Supabase) is set and reachable, it also
warns about rules naming flags that do not exist.

Options:
  --json    print {"valid", "file", "problems" | "rules", "notes"} as JSON

Exit codes: 0 valid, 1 invalid, 2 bad arguments or unreadable file.
`;

async function run(args: readonly string[], io: CliIo): Promise<number> {
  let json = false;
  const files: string[] = [];
  for (const arg of args) {
    if (arg === '--json') json = true;
    else if (arg.startsWith('-')) {
      io.stderr(`guardian validate: unknown option "${arg}". Usage: guardian validate FILE [--json]\n`);
      return 2;
    } else files.push(arg);
  }
  const file = files[0];
  if (file === undefined || files.length > 1) {
    const message = file === undefined ? 'missing FILE' : `expected one FILE, got ${files.length}`;
    if (json) io.stdout(`${JSON.stringify({ valid: false, error: { code: 'BAD_ARGUMENT', message: `${message}: guardian validate FILE [--json]` } })}\n`);
    else io.stderr(`guardian validate: ${message}. Usage: guardian validate FILE [--json]\n`);
    return 2;
  }
  try {
    await access(file, constants.R_OK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unreadable';
    const message = `cannot read ${file} (${code}): check the path and its permissions`;
    if (json) io.stdout(`${JSON.stringify({ valid: false, file, error: { code: 'BAD_ARGUMENT', message } })}\n`);
    else io.stderr(`guardian validate: ${message}\n`);
    return 2;
  }
  const result = await loadRulesFile(file, io.env);
  if (!result.ok) {
    if (json) io.stdout(`${JSON.stringify({ valid: false, file, problems: result.problems }, null, 2)}\n`);
    else {
      const n = result.problems.length;
      io.stderr(`${file}: invalid, ${n} problem${n === 1 ? '' : 's'}:\n${result.problems.map((p) => `  ${p.path}: ${p.message}`).join('\n')}\n`);
    }
    return 1;
  }
  const config = result.rules;
  const notes = [...result.notes, ...(await flagNotes(config, io.env))];
  if (json) {
    io.stdout(
      `${JSON.stringify(
        {
          valid: true,
          file,
          rules: config.rules.map((r) => ({ id: r.id, flags: r.flags, source: r.source, condition: r.condition, action: r.action, dry_run: r.dry_run || config.dry_run })),
          interval: config.interval,
          blindness_after: config.blindness_after,
          notes,
        },
        null,
        2,
      )}\n`,
    );
    return 0;
  }
  const lines = [`${file}: valid, ${config.rules.length} rule${config.rules.length === 1 ? '' : 's'} (poll every ${formatDuration(config.interval)}${config.dry_run ? ', global dry run' : ''})`];
  for (const r of config.rules) {
    const cond = r.condition.kind === 'absolute' ? `error rate > ${r.condition.error_rate_above}` : `increase > ${r.condition.max_increase} over flag-off (alpha ${r.condition.alpha})`;
    lines.push(`  ${r.id}: ${r.flags.join(', ')} via ${r.source}, ${cond} → ${r.action}${r.dry_run ? ' (dry run)' : ''}`);
  }
  for (const n of notes) lines.push(`  note: ${n.path}: ${n.message}`);
  io.stdout(`${lines.join('\n')}\n`);
  return 0;
}

/** The `validate` command. */
export const command: CliCommand = { name: 'validate', summary: 'check a rules file and list every problem', usage, run };
