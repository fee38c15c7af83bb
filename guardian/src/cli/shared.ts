/**
 * What the store-backed CLI commands (start, check, rollback, restore, flags, events) share:
 * strict argument parsing with messages that name the argument, opening the store from
 * `--database-url` / `DATABASE_URL` / Supabase / the embedded PGlite, plain-text tables, and
 * one way to print an error (exit 2 for bad arguments, 1 for everything else).
 */
import { parseArgs, type ParseArgsOptionsConfig } from 'node:util';

import { loadConfig, type GuardianConfig } from '../config.ts';
import { GuardianError, isGuardianError } from '../errors.ts';
import { parseDuration } from '../rules/duration.ts';
import { apiStore } from '../api/client.ts';
import { createStore, safeUrl } from '../store/index.ts';
import { checkText, MAX_ACTOR_LENGTH, printable } from '../store/limits.ts';
import type { Flag, Store } from '../store/types.ts';
import type { CliIo } from './io.ts';

/** Options every store-backed command takes. */
export const COMMON_OPTIONS = {
  json: { type: 'boolean' },
  'database-url': { type: 'string' },
  api: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsOptionsConfig;

/** Lines of usage text for {@link COMMON_OPTIONS}. */
export const COMMON_USAGE = `  --database-url URL   PostgreSQL to use (default: env DATABASE_URL; with neither, Supabase from
                       SUPABASE_URL + SUPABASE_SERVICE_ROLE_KEY, else the embedded database in
                       GUARDIAN_DATA_DIR, default ./.data)
  --api URL            go through a guardian's admin API instead (default: env GUARDIAN_API_URL;
                       needs GUARDIAN_ADMIN_TOKEN; changes are audited as admin-token)
  --json               print JSON instead of text`;

/**
 * `parseArgs` in strict mode; an unknown option, a missing value or a wrong type becomes a
 * `BAD_ARGUMENT` GuardianError naming the argument.
 *
 * @example
 * const { values, positionals } = parseCommandArgs('events', args, { ...COMMON_OPTIONS, flag: { type: 'string' } }, 0);
 */
export function parseCommandArgs<T extends ParseArgsOptionsConfig>(command: string, args: readonly string[], options: T, maxPositionals: number) {
  let parsed;
  try {
    parsed = parseArgs({ args: joinNegativeValues(args, options), options, strict: true, allowPositionals: true });
  } catch (err) {
    const raw = (err as Error).message;
    const missing = /^Option '(--[^' ]+)[^']*' argument (missing|is ambiguous)/.exec(raw);
    const msg = missing
      ? `${missing[1]}: needs a value${missing[2] === 'missing' ? '' : ` (a value that starts with "-" is written ${missing[1]}=-value)`}`
      : raw
          .replace(/\. To specify a positional argument.*$/s, '')
          .replace(/\s+/g, ' ')
          .trim()
          .replace(/\.$/, '');
    throw new GuardianError('BAD_ARGUMENT', `${msg}. Run "guardian ${command} --help" for the options.`, { cause: err });
  }
  if (parsed.positionals.length > maxPositionals) {
    throw new GuardianError(
      'BAD_ARGUMENT',
      `unexpected argument "${parsed.positionals[maxPositionals]}"${maxPositionals === 0 ? ` (guardian ${command} takes no positional arguments)` : ''}. Run "guardian ${command} --help".`,
    );
  }
  return parsed;
}

/**
 * `--percentage -1` → `--percentage=-1`, so a negative number given to a string option is
 * checked (and refused) by the option's own validation instead of being read as an option.
 */
function joinNegativeValues(args: readonly string[], options: ParseArgsOptionsConfig): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    const next = args[i + 1];
    const name = arg.startsWith('--') ? arg.slice(2) : undefined;
    if (name !== undefined && options[name]?.type === 'string' && next !== undefined && /^-\d/.test(next)) {
      out.push(`${arg}=${next}`);
      i++;
    } else out.push(arg);
  }
  return out;
}

/**
 * Validated configuration for a command: the environment, with `--database-url` winning over
 * `DATABASE_URL`.
 *
 * @example
 * const config = commandConfig(io.env, values['database-url']);
 */
export function commandConfig(env: CliIo['env'], databaseUrl: string | undefined): GuardianConfig {
  if (databaseUrl !== undefined && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    throw new GuardianError('BAD_ARGUMENT', `--database-url: must be a postgres:// URL (postgres://user:password@host:5432/db), got something else`);
  }
  return loadConfig(databaseUrl === undefined ? env : { ...env, DATABASE_URL: databaseUrl });
}

/**
 * The environment a daemon-backed command (start, check) runs with: the process environment with
 * `--database-url`, `--rules` and `--dry-run` put in place of DATABASE_URL, RULES_FILE and
 * GUARDIAN_DRY_RUN.
 *
 * @example
 * const env = commandEnv(io.env, { databaseUrl: values['database-url'], rules: values.rules });
 */
export function commandEnv(env: CliIo['env'], o: { databaseUrl?: string | undefined; rules?: string | undefined; dryRun?: boolean | undefined }): CliIo['env'] {
  return {
    ...env,
    ...(o.databaseUrl !== undefined ? { DATABASE_URL: o.databaseUrl } : {}),
    ...(o.rules !== undefined ? { RULES_FILE: o.rules } : {}),
    ...(o.dryRun ? { GUARDIAN_DRY_RUN: 'true' } : {}),
  };
}

/**
 * Opens the store a command works on (see {@link commandConfig}). An unreachable database is a
 * `STORE_UNREACHABLE` error that names the database (without its password), where its address
 * came from, and what to check.
 *
 * @example
 * const store = await openStore(io.env, values['database-url']);
 * try { ... } finally { await store.close(); }
 */
export async function openStore(env: CliIo['env'], databaseUrl: string | undefined, apiUrl?: string): Promise<Store> {
  const viaApi = apiStoreFor(env, apiUrl);
  if (viaApi) return viaApi;
  const config = commandConfig(env, databaseUrl);
  try {
    return await createStore(config);
  } catch (err) {
    throw explainUnreachable(err, config, databaseUrl !== undefined);
  }
}

/**
 * The admin-API store when `--api URL` or GUARDIAN_API_URL is given (the one place the CLI
 * chooses it), else undefined. Needs GUARDIAN_ADMIN_TOKEN.
 *
 * @example
 * const store = apiStoreFor(io.env, values.api) ?? (await openStore(io.env, values['database-url']));
 */
export function apiStoreFor(env: CliIo['env'], apiUrl: string | undefined): Store | undefined {
  const url = apiUrl ?? (env['GUARDIAN_API_URL'] || undefined);
  if (url === undefined) return undefined;
  if (!/^https?:\/\/[^\s]+$/.test(url)) throw new GuardianError('BAD_ARGUMENT', `--api: must be the guardian's http(s) URL (https://guardian.example.com), got "${url}"`);
  const token = env['GUARDIAN_ADMIN_TOKEN'];
  if (!token) throw new GuardianError('BAD_ARGUMENT', `--api ${url}: set GUARDIAN_ADMIN_TOKEN to the guardian's admin token`);
  return apiStore({ url, token });
}

/**
 * Rewrites a `STORE_UNREACHABLE` error for a person at a terminal: which database (password
 * hidden), from `--database-url` or the environment, the driver's words, and what to do. Other
 * errors pass through unchanged.
 *
 * @example
 * catch (err) { throw explainUnreachable(err, config, true); }
 */
export function explainUnreachable(err: unknown, config: GuardianConfig, fromOption: boolean): unknown {
  if (!isGuardianError(err, 'STORE_UNREACHABLE')) return err;
  const cause = err.cause instanceof Error && err.cause.message !== '' ? err.cause.message : err.message;
  let where: string;
  if (config.store === 'pg' && config.databaseUrl !== undefined) where = `PostgreSQL at ${safeUrl(config.databaseUrl)} (from ${fromOption ? '--database-url' : 'DATABASE_URL'})`;
  else if (config.store === 'supabase' && config.supabase) where = `Supabase at ${config.supabase.url} (from SUPABASE_URL)`;
  else return err; // the embedded database's own message already names its folder
  return new GuardianError(
    'STORE_UNREACHABLE',
    `cannot reach the database: ${where}: ${cause}. Check the address and that the database is running and accepts connections.`,
    { cause: err },
  );
}

/**
 * The flag a command names, or a `BAD_ARGUMENT` error (exit 2) naming the argument and where to
 * find the flag names.
 *
 * @example
 * const flag = await requireFlag(store, name, '<flag>');
 */
export async function requireFlag(store: Store, name: string, argument: string): Promise<Flag> {
  const flag = await store.getFlag(name);
  if (!flag) throw new GuardianError('BAD_ARGUMENT', `${argument}: there is no flag named "${name}" (see "guardian flags list" for the names)`);
  return flag;
}

/**
 * Who a person acting through the CLI is, for the audit log: `--actor`, else `cli:$USER`.
 *
 * @example
 * cliActor(io.env, undefined); // 'cli:alice'
 */
export function cliActor(env: CliIo['env'], actor: string | undefined): string {
  if (actor !== undefined) {
    if (actor.trim() === '') throw new GuardianError('BAD_ARGUMENT', '--actor: must not be empty');
    checkText('--actor', 'actor', actor.trim(), MAX_ACTOR_LENGTH);
    return actor.trim();
  }
  return `cli:${env['USER'] ?? env['LOGNAME'] ?? 'unknown'}`;
}

/**
 * `--since 24h` → the Date that long ago.
 *
 * @example
 * sinceOption('24h', new Date()); // yesterday, same time
 */
export function sinceOption(text: string, now: Date): Date {
  const ms = parseDuration(text);
  if (ms === undefined || ms <= 0) throw new GuardianError('BAD_ARGUMENT', `--since: must be a duration like 30m, 24h or 7d, got "${text}"`);
  return new Date(now.getTime() - ms);
}

/**
 * A positive integer option.
 *
 * @example
 * intOption('--limit', '20', 1, 1000); // 20
 */
export function intOption(name: string, text: string, min: number, max: number): number {
  if (!/^-?\d+$/.test(text.trim()) || Number(text) < min || Number(text) > max) {
    throw new GuardianError('BAD_ARGUMENT', `${name}: must be a whole number from ${min} to ${max}, got "${text}"`);
  }
  return Number(text);
}

/**
 * Renders rows as an aligned plain-text table (control characters in cells shown escaped).
 *
 * @example
 * renderTable(['flag', 'enabled'], [['booking_agent_enabled', 'yes']]);
 */
export function renderTable(headers: readonly string[], cells: readonly (readonly string[])[]): string {
  // Cells hold data (reasons, actors, ids): never let their control characters reach the terminal.
  const rows = cells.map((r) => r.map(printable));
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return `${[line(headers), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n')}\n`;
}

/**
 * Prints an error the way every command does and returns the exit code: 2 for `BAD_ARGUMENT`,
 * 1 otherwise (bad environment configuration or rules included). With `--json` the error goes to stdout as `{ "error": … }`.
 *
 * @example
 * catch (err) { return reportError(io, 'events', err, json); }
 */
export function reportError(io: CliIo, command: string, err: unknown, json: boolean): number {
  const e = isGuardianError(err) ? err : new GuardianError('STORE_FAILED', err instanceof Error ? err.message : String(err), { cause: err });
  if (json) io.stdout(`${JSON.stringify({ error: e.toJSON() })}\n`);
  else io.stderr(`guardian ${command}: ${e.message}\n`);
  return e.code === 'BAD_ARGUMENT' ? 2 : 1;
}

/**
 * Formats a Date for tables (UTC, to the second).
 *
 * @example
 * when(new Date('2026-01-01T10:00:00Z')); // '2026-01-01 10:00:00Z'
 */
export function when(d: Date | null): string {
  return d === null ? '-' : `${d.toISOString().slice(0, 19).replace('T', ' ')}Z`;
}
