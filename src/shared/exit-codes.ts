/** SPEC §7 CLI exit codes. */
export const EXIT = {
  ok: 0,
  /** A runtime error, an unknown id, or (with --wait) at least one job failed. */
  runtime: 1,
  /** Invalid input, usage or configuration. */
  usage: 2,
} as const;

/** A CLI error with its exit code; its message is the one line printed. */
export class CliError extends Error {
  override readonly name = 'CliError';
  readonly exitCode: number;
  /** More lines, each printed on its own (e.g. one per bad JSONL line). */
  readonly lines: string[];

  constructor(message: string, exitCode: number, lines: string[] = []) {
    super(message);
    this.exitCode = exitCode;
    this.lines = lines;
  }
}
