// vxtrace CLI entry: parse flags, hand each command its context, map errors to exit statuses.
// Commands live in ./commands/, one file each; this file only wires them.
import { Command, CommanderError } from 'commander';
import { ExitStatus, VxtraceError, type ExitStatusCode } from '../errors.js';
import type { CliContext } from './command.js';
import { VERSION } from '../version.js';
import { registerLab } from './commands/lab.js';
import { registerFollow } from './commands/follow.js';
import { registerDiagnose } from './commands/diagnose.js';
import { registerCapture } from './commands/capture.js';
import { registerRead } from './commands/read.js';
import { registerDemo } from './commands/demo.js';
import { registerHub } from './commands/hub.js';
import { registerAgent } from './commands/agent.js';
import { registerObserve } from './commands/observe.js';
import { registerCheck } from './commands/check.js';
import { registerUi } from './commands/ui.js';

const EPILOG = `
Exit status: 0 ok (everything delivered, no error finding); 1 findings, undelivered packets or a
pair of nodes that does not work (check); 2 usage error (bad flag, unknown pod or fault, unreadable
file); 3 environment (missing capabilities, missing tool or kernel feature, lab not up); 70 internal
error (a bug: please report it).

Run as root (or with sudo), or with the capabilities granted: tracing needs CAP_BPF, CAP_PERFMON,
CAP_NET_ADMIN and CAP_SYS_ADMIN, the lab CAP_NET_ADMIN and CAP_SYS_ADMIN (and CAP_DAC_OVERRIDE
when not root); read needs none.`;

/**
 * A reader that went away (`vxtrace follow ... | head`) is like Ctrl-C: a tracing command stops
 * cleanly and finishes its trace file; nothing more is written to the closed pipe.
 */
function stopOnClosedPipe(stream: NodeJS.WritableStream): void {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    stream.write = () => true;
    process.emit('SIGINT');
  });
}

export async function run(argv: string[], io: Partial<Pick<CliContext, 'stdout' | 'stderr'>> = {}): Promise<number> {
  if (!io.stdout) stopOnClosedPipe(process.stdout);
  let status: ExitStatusCode = ExitStatus.OK;
  const ctx: CliContext = {
    setExitStatus: (s) => (status = s),
    stdout: io.stdout ?? process.stdout,
    stderr: io.stderr ?? process.stderr,
  };
  const program = new Command('vxtrace')
    .description('Follow pod-to-pod packets through a VXLAN overlay (flannel) hop by hop, and say why they do not arrive.')
    .version(VERSION, '-V, --version')
    .addHelpText('after', EPILOG)
    .exitOverride();
  for (const register of [registerCheck, registerFollow, registerDiagnose, registerCapture, registerRead, registerLab, registerDemo, registerHub, registerAgent, registerObserve, registerUi]) register(program, ctx);
  // Parser errors read like every other error: one line, `vxtrace:` first, where to look next.
  const output = {
    writeOut: (s: string) => ctx.stdout.write(s),
    writeErr: (s: string) => ctx.stderr.write(s),
    outputError: (s: string, write: (s: string) => void) => write(`vxtrace: ${s.replace(/^error: /, '').trim()} (see --help)\n`),
  };
  program.configureOutput(output);
  const configure = (c: Command): void => {
    c.exitOverride().configureOutput(output);
    c.commands.forEach(configure);
  };
  program.commands.forEach(configure);

  try {
    await program.parseAsync(argv);
    return status;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end here with code 0; everything else is a usage error.
      return err.exitCode === 0 ? ExitStatus.OK : ExitStatus.USAGE;
    }
    if (err instanceof VxtraceError) {
      ctx.stderr.write(`vxtrace: ${err.message}\n`);
      return err.exitStatus;
    }
    const e = err as Error;
    ctx.stderr.write(`vxtrace: internal error: ${e?.message ?? String(err)}\n${process.env.VXTRACE_DEBUG ? `${e?.stack}\n` : 'set VXTRACE_DEBUG=1 for the stack trace\n'}`);
    return ExitStatus.INTERNAL;
  }
}
