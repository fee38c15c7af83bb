/** What a CLI command may touch: output streams and the environment (injected for tests). */
export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
  readonly env: Readonly<Record<string, string | undefined>>;
}

/** A CLI command: one file per command under `commands/`, exporting `command`. */
export interface CliCommand {
  readonly name: string;
  /** One line for `guardian --help`. */
  readonly summary: string;
  /** Full usage text for `guardian <name> --help`. */
  readonly usage: string;
  /** Returns the process exit code (0 ok, 1 failure, 2 bad arguments). */
  run(args: readonly string[], io: CliIo): Promise<number>;
}
