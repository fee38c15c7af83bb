import { readFileSync } from 'node:fs';

import type { CliCommand, CliIo } from './io.ts';

/**
 * Command name → its one-line summary (for `guardian --help`, which must not load every command)
 * and the module that exports `command: CliCommand`. One file per command, loaded only when run.
 */
const COMMANDS: Readonly<Record<string, { readonly summary: string; readonly load: () => Promise<{ command: CliCommand }> }>> = {
  validate: { summary: 'check a rules file and list every problem', load: () => import('./commands/validate.ts') },
  start: { summary: 'Run the guardian daemon (embedded database when none is configured)', load: () => import('./commands/start.ts') },
  check: { summary: 'Run one cycle now and print every verdict with its evidence (--dry-run: change nothing)', load: () => import('./commands/check.ts') },
  rollback: { summary: 'Roll a flag back by hand, now (--reason required)', load: () => import('./commands/rollback.ts') },
  restore: { summary: 'Restore a rolled-back flag exactly as it was (by flag or event id)', load: () => import('./commands/restore.ts') },
  flags: { summary: 'List flags, or change one (enable, percentage, targets, lock, message)', load: () => import('./commands/flags.ts') },
  events: { summary: 'List rollback events (filters: --flag, --kind, --since, --limit)', load: () => import('./commands/events.ts') },
  plans: { summary: 'Release plans: stage, evidence, pause/resume/abort', load: () => import('./commands/plans.ts') },
  demo: { summary: 'Play a whole incident on a throwaway embedded database (SDK traffic, error spike, rollback, alert)', load: () => import('./commands/demo.ts') },
};

/** The commands `guardian --help` lists, with their summaries (tests check each module agrees). */
export const COMMAND_TABLE = COMMANDS;

/** The guardian's version (guardian/package.json). */
export function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
  return pkg.version ?? '0.0.0';
}

/**
 * Runs `guardian <command> [args]` and returns the exit code. Unknown commands and `--help`
 * print the list of commands; `--version` prints the version.
 *
 * @example
 * const code = await main(['validate', 'rules/guardian.yaml'], io);
 */
export async function main(argv: readonly string[], io: CliIo): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    // Not asked for: it is the answer to a mistake, so it goes where errors go.
    io.stderr(`guardian: missing command.\n${helpText()}`);
    return 2;
  }
  if (name === '--help' || name === '-h' || name === 'help') {
    io.stdout(helpText());
    return 0;
  }
  if (name === '--version' || name === '-v' || name === 'version') {
    // Which build answered: the bundle (guardian/dist/cli, made by `npm ci`) or the sources.
    const build = import.meta.url.includes('/dist/cli/') ? 'bundled CLI' : 'from source';
    io.stdout(`guardian ${version()} (node ${process.versions.node}, ${build})\n`);
    return 0;
  }
  const entry = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!entry) {
    io.stderr(`guardian: unknown command "${name}". Run "guardian --help" for the list of commands.\n`);
    return 2;
  }
  const { command } = await entry.load();
  if (rest.includes('--help') || rest.includes('-h')) {
    io.stdout(`${command.usage.trimEnd()}\n`);
    return 0;
  }
  return command.run(rest, io);
}

function helpText(): string {
  const lines = ['Usage: guardian <command> [options]   (every command takes --json and --help; guardian --version)', '', 'Commands:'];
  for (const [name, { summary }] of Object.entries(COMMANDS)) lines.push(`  ${name.padEnd(10)} ${summary}`);
  return `${lines.join('\n')}\n`;
}
