// Errors a user can act on. The CLI prints `vxtrace: <message>` (one line, no stack) and exits
// with the status of the error's kind. Anything else that escapes is a bug and is reported as one.

/** Process exit statuses, documented in README and `--help`. */
export const ExitStatus = {
  /** Everything followed was delivered and no finding of severity error. */
  OK: 0,
  /** Findings of severity error exist, or followed packets were not delivered. */
  FINDINGS: 1,
  /** Bad command line or input: unknown flag, pod, fault, unreadable or malformed file. */
  USAGE: 2,
  /** The machine cannot do it: missing capabilities (not root), missing tool or kernel feature, lab not up. */
  ENVIRONMENT: 3,
  /** A bug in vxtrace (an unexpected exception). */
  INTERNAL: 70,
} as const;
export type ExitStatusCode = (typeof ExitStatus)[keyof typeof ExitStatus];

export type ErrorKind = 'usage' | 'environment';

export class VxtraceError extends Error {
  readonly kind: ErrorKind;
  constructor(kind: ErrorKind, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'VxtraceError';
    this.kind = kind;
  }
  get exitStatus(): ExitStatusCode {
    return this.kind === 'usage' ? ExitStatus.USAGE : ExitStatus.ENVIRONMENT;
  }
}

/** Bad input from the user: say what is wrong and what to do. */
export class UsageError extends VxtraceError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('usage', message, options);
    this.name = 'UsageError';
  }
}

/** The machine lacks something (privilege, tool, kernel feature, running lab). */
export class EnvironmentError extends VxtraceError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('environment', message, options);
    this.name = 'EnvironmentError';
  }
}
