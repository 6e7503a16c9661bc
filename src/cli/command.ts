// The contract between the CLI entry and each command module: a command registers itself on the
// commander program and its action resolves to the process exit status.
import type { Command } from 'commander';
import type { ExitStatusCode } from '../errors.js';

export interface CliContext {
  /** Set by a command's action: the exit status of the process. */
  setExitStatus(status: ExitStatusCode): void;
  /** Human output (stdout) and diagnostics (stderr); tests may swap them. */
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
}

export type RegisterCommand = (program: Command, ctx: CliContext) => void;
