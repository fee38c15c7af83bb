import type { CliCommand, CliIo } from './io.ts';

/** Command name → module that exports `command: CliCommand`. One file per command. */
const COMMANDS: Readonly<Record<string, () => Promise<{ command: CliCommand }>>> = {
  validate: () => import('./commands/validate.ts'),
  start: () => import('./commands/start.ts'),
  check: () => import('./commands/check.ts'),
  rollback: () => import('./commands/rollback.ts'),
  restore: () => import('./commands/restore.ts'),
  flags: () => import('./commands/flags.ts'),
  events: () => import('./commands/events.ts'),
  plans: () => import('./commands/plans.ts'),
  demo: () => import('./commands/demo.ts'),
};

/**
 * Runs `guardian <command> [args]` and returns the exit code. Unknown commands and `--help`
 * print the list of commands.
 *
 * @example
 * const code = await main(['validate', 'rules/guardian.yaml'], io);
 */
export async function main(argv: readonly string[], io: CliIo): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    // Not asked for: it is the answer to a mistake, so it goes where errors go.
    io.stderr(`guardian: missing command.\n${await helpText()}`);
    return 2;
  }
  if (name === '--help' || name === '-h' || name === 'help') {
    io.stdout(await helpText());
    return 0;
  }
  const load = COMMANDS[name];
  if (!load) {
    io.stderr(`guardian: unknown command "${name}". Run "guardian --help" for the list of commands.\n`);
    return 2;
  }
  const { command } = await load();
  if (rest.includes('--help') || rest.includes('-h')) {
    io.stdout(`${command.usage.trimEnd()}\n`);
    return 0;
  }
  return command.run(rest, io);
}

async function helpText(): Promise<string> {
  const lines = ['Usage: guardian <command> [options]   (every command takes --json and --help)', '', 'Commands:'];
  for (const load of Object.values(COMMANDS)) {
    const { command } = await load();
    lines.push(`  ${command.name.padEnd(10)} ${command.summary}`);
  }
  return `${lines.join('\n')}\n`;
}
