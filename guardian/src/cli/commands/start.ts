/**
 * `guardian start`: runs the daemon until SIGTERM/SIGINT, then finishes the cycle in flight
 * and exits 0.
 */
import { startDaemon } from '../../daemon.ts';
import type { CliCommand, CliIo } from '../io.ts';
import { commandConfig, commandEnv, COMMON_OPTIONS, COMMON_USAGE, explainUnreachable, parseCommandArgs, reportError } from '../shared.ts';

const usage = `Usage: guardian start [--database-url URL] [--rules FILE] [--dry-run]

Runs the guardian: polls the sources at the rules file's interval, decides per rule and flag,
rolls flags back, delivers notifications. With no database configured it runs on the embedded
database in GUARDIAN_DATA_DIR (default ./.data), created and seeded on first start. Several
replicas may run against one database: a lease picks the one that runs each cycle.
SIGTERM or SIGINT finishes the cycle in flight and exits 0.

Options:
  --rules FILE         rules file (default: env RULES_FILE, else rules/guardian.yaml)
  --dry-run            decide and record dry_run events, never change a flag
${COMMON_USAGE}

Environment: DATABASE_URL, SUPABASE_URL + SUPABASE_SERVICE_ROLE_KEY, GUARDIAN_DATA_DIR,
RULES_FILE, PORT, HOST, SMTP_URL, EMAIL_FROM, GUARDIAN_DASHBOARD_URL, LOG_LEVEL, GUARDIAN_DRY_RUN.

Exit codes: 0 stopped cleanly, 1 failure (bad configuration or rules, database unreachable), 2 bad arguments.
`;

const OPTIONS = { ...COMMON_OPTIONS, rules: { type: 'string' }, 'dry-run': { type: 'boolean' } } as const;

async function run(args: readonly string[], io: CliIo): Promise<number> {
  const json = args.includes('--json');
  try {
    const { values } = parseCommandArgs('start', args, OPTIONS, 0);
    const env = commandEnv(io.env, { databaseUrl: values['database-url'], rules: values.rules, dryRun: values['dry-run'] });
    const config = commandConfig(env, values['database-url']);
    // Signal handlers first: a SIGTERM during start-up (the banner is out, the scheduler not yet)
    // is kept and honoured as soon as the daemon exists, never left to Node's default (exit by signal).
    let daemon: Awaited<ReturnType<typeof startDaemon>> | undefined;
    let requested: string | undefined;
    const onSignal = (sig: string) => {
      requested ??= sig;
      if (daemon) {
        daemon.parts.logger.info({ signal: sig }, `guardian: ${sig} received`);
        void daemon.stop();
      }
    };
    const term = () => onSignal('SIGTERM');
    const int = () => onSignal('SIGINT');
    process.on('SIGTERM', term);
    process.on('SIGINT', int);
    try {
      try {
        // The banner is for people: stderr, so stdout stays pure JSON log lines.
        daemon = await startDaemon({ env, stdout: (t) => io.stderr(t) });
      } catch (err) {
        throw explainUnreachable(err, config, values['database-url'] !== undefined);
      }
      if (requested !== undefined) onSignal(requested);
      await daemon.stopped;
    } finally {
      process.off('SIGTERM', term);
      process.off('SIGINT', int);
    }
    return 0;
  } catch (err) {
    return reportError(io, 'start', err, json);
  }
}

/** `guardian start`. */
export const command: CliCommand = { name: 'start', summary: 'Run the guardian daemon (embedded database when none is configured)', usage, run };
