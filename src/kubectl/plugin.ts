// `kubectl vxtrace COMMAND ...` (bin/kubectl-vxtrace, a kubectl plugin): run a hub client from an
// operator's laptop against the hub installed on the cluster. Thin: the plugin's own flags
// (--context, --kubeconfig, -n/--namespace, --vxtrace-namespace) -> the hub's pod and token through
// the API -> a local port-forward -> the same command as `vxtrace COMMAND ... --hub ws://127.0.0.1:PORT`.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { KubeConfig } from '@kubernetes/client-node';
import { EnvironmentError, ExitStatus, UsageError, VxtraceError } from '../errors.js';
import type { CliContext, RegisterCommand } from '../cli/command.js';
import { run } from '../cli/main.js';
import { registerFollow } from '../cli/commands/follow.js';
import { registerObserve } from '../cli/commands/observe.js';
import { findHubPod, readHubToken, HUB_SERVICE, HUB_TOKEN_SECRET } from './hub-service.js';
import { LocalPortForward } from './port-forward.js';

export const DEFAULT_INSTALL_NAMESPACE = 'vxtrace';

const HELP = `Usage: kubectl vxtrace [--context NAME] [--kubeconfig FILE] [-n NAMESPACE] [--vxtrace-namespace NS] COMMAND ...

vxtrace from your laptop, against the hub installed on the cluster (deploy/, docs/install.md):
  kubectl vxtrace follow POD_A POD_B [--count N] [--duration S] [--json] ...   as vxtrace follow
  kubectl vxtrace observe [--from POD] [--to POD] [--pod P] [--node N] ...      as vxtrace observe
  kubectl vxtrace diagnose [--json] [--watch]   every node's kernel state against the cluster, as
                                                the hub knows them (vxtrace diagnose --hub)
  kubectl vxtrace ui [--port N]        the hub's page on http://127.0.0.1:PORT/ until Ctrl-C

The cluster is your current kubeconfig context (KUBECONFIG or ~/.kube/config), or:
  --context NAME            another context of the kubeconfig
  --kubeconfig FILE         another kubeconfig
  -n, --namespace NS        namespace of pods named without one (default: the context's namespace;
                            without one, vxtrace looks in every namespace)
  --vxtrace-namespace NS    where vxtrace is installed (default ${DEFAULT_INSTALL_NAMESPACE})

It finds a ready pod of Service ${HUB_SERVICE}, port-forwards to it through the API server (as
\`kubectl port-forward\` does) and reads the hub's token from Secret ${HUB_TOKEN_SECRET}: your user needs
get services and secrets, list pods and create pods/portforward in that namespace. Then it runs the
same code as \`vxtrace COMMAND ... --hub URL\`: the same output, flags and exit status (see
\`kubectl vxtrace COMMAND --help\`). Plain \`vxtrace follow\` on a node needs no hub.`;

const HUB_COMMANDS = ['follow', 'observe', 'ui', 'diagnose'] as const;
type HubCommand = (typeof HUB_COMMANDS)[number];

interface PluginFlags {
  context?: string;
  kubeconfig?: string;
  namespace?: string;
  installNamespace: string;
  localPort?: number;
}

/** Takes the plugin's own flags out of argv (wherever they are); the rest goes to the command. */
export function splitPluginFlags(argv: string[]): { flags: PluginFlags; rest: string[] } {
  const flags: PluginFlags = { installNamespace: DEFAULT_INSTALL_NAMESPACE };
  const rest: string[] = [];
  const names: Record<string, keyof PluginFlags> = { '--context': 'context', '--kubeconfig': 'kubeconfig', '-n': 'namespace', '--namespace': 'namespace', '--vxtrace-namespace': 'installNamespace' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      rest.push(...argv.slice(i));
      break;
    }
    const eq = a.indexOf('=');
    const name = a.startsWith('--') && eq > 0 ? a.slice(0, eq) : a;
    const key = names[name];
    if (!key) {
      rest.push(a);
      continue;
    }
    const value = eq > 0 && a.startsWith('--') ? a.slice(eq + 1) : argv[++i];
    if (value === undefined || value === '' || (eq < 0 && value.startsWith('-'))) throw new UsageError(`${name} needs a value`);
    (flags as unknown as Record<string, string>)[key] = value;
  }
  return { flags, rest };
}

/** The long and short names of a vxtrace command's options that take a value. */
function valueOptions(register: RegisterCommand): Set<string> {
  const p = new Command();
  register(p, { setExitStatus: () => {}, stdout: process.stdout, stderr: process.stderr });
  return new Set(p.commands[0]!.options.filter((o) => o.required || o.optional).flatMap((o) => [o.long, o.short].filter((x): x is string => !!x)));
}

/**
 * Pods named without a namespace get `namespace` (kubectl's -n): follow's two pod arguments,
 * observe's --from, --to and --pod.
 */
export function qualifyPods(command: 'follow' | 'observe', args: string[], namespace: string | undefined): string[] {
  if (!namespace) return args;
  const q = (pod: string) => (pod.includes('/') ? pod : `${namespace}/${pod}`);
  const takesValue = valueOptions(command === 'follow' ? registerFollow : registerObserve);
  const podOptions = new Set(['--from', '--to', '--pod']);
  const out: string[] = [];
  let positional = 0;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') {
      out.push(...args.slice(i));
      break;
    }
    if (a.startsWith('-')) {
      const eq = a.indexOf('=');
      const name = eq > 0 ? a.slice(0, eq) : a;
      const pod = command === 'observe' && podOptions.has(name);
      if (eq > 0) out.push(pod ? `${name}=${q(a.slice(eq + 1))}` : a);
      else {
        out.push(a);
        if (takesValue.has(name) && i + 1 < args.length) {
          const v = args[++i]!;
          out.push(pod ? q(v) : v);
        }
      }
      continue;
    }
    out.push(command === 'follow' && positional++ < 2 ? q(a) : a);
  }
  return out;
}

function loadKubeConfig(flags: PluginFlags): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (flags.kubeconfig) kc.loadFromFile(flags.kubeconfig);
    else kc.loadFromDefault();
  } catch (err) {
    throw new UsageError(`cannot load the kubeconfig${flags.kubeconfig ? ` ${flags.kubeconfig}` : ''}: ${(err as Error).message.split('\n')[0]}`);
  }
  if (flags.context) {
    if (!kc.getContextObject(flags.context)) throw new UsageError(`no context ${flags.context} in the kubeconfig (contexts: ${kc.getContexts().map((c) => c.name).join(', ') || 'none'})`);
    kc.setCurrentContext(flags.context);
  }
  if (!kc.getCurrentCluster()) throw new EnvironmentError('the kubeconfig has no current cluster: choose one with --context NAME or `kubectl config use-context`');
  return kc;
}

const FORBIDDEN: Record<string, string> = {
  '--hub': 'kubectl vxtrace finds the hub itself (Service vxtrace-hub); to give a hub yourself, run vxtrace COMMAND --hub URL',
  '--token-file': "kubectl vxtrace reads the hub's token from the Secret vxtrace-hub-token",
  '--cluster': 'the hub has the cluster; kubectl vxtrace shows what it sees',
  '--lab': 'the hub has the cluster; kubectl vxtrace shows what it sees',
};

export async function runPlugin(argv: string[], io: Partial<Pick<CliContext, 'stdout' | 'stderr'>> = {}): Promise<number> {
  const ctx = { stdout: io.stdout ?? process.stdout, stderr: io.stderr ?? process.stderr };
  const say = (line: string) => ctx.stderr.write(`kubectl vxtrace: ${line}\n`);
  let forward: LocalPortForward | undefined;
  let tokenDir: string | undefined;
  const cleanup = () => {
    if (tokenDir) rmSync(tokenDir, { recursive: true, force: true });
    tokenDir = undefined;
  };
  process.once('exit', cleanup);
  try {
    const { flags, rest } = splitPluginFlags(argv);
    const command = rest[0];
    if (command === undefined || command === '-h' || command === '--help' || command === 'help') {
      ctx.stdout.write(`${HELP}\n`);
      return command === undefined ? ExitStatus.USAGE : ExitStatus.OK;
    }
    if (!(HUB_COMMANDS as readonly string[]).includes(command)) {
      throw new UsageError(`${command} is not a kubectl vxtrace command: use ${HUB_COMMANDS.slice(0, -1).join(', ')} or ${HUB_COMMANDS.at(-1)} (see kubectl vxtrace --help)${['capture', 'read', 'lab', 'demo', 'agent', 'hub'].includes(command) ? `; vxtrace ${command} runs on a node or this machine` : ''}`);
    }
    let args = rest.slice(1);
    if (args.includes('--help') || args.includes('-h')) return await run(['node', 'vxtrace', command === 'ui' ? 'observe' : command, '--help'], io);
    for (const a of args) {
      const name = a.split('=')[0]!;
      if (FORBIDDEN[name]) throw new UsageError(`${name}: ${FORBIDDEN[name]}`);
    }
    const kc = loadKubeConfig(flags);
    const namespace = flags.namespace ?? (kc.getContextObject(kc.getCurrentContext())?.namespace || undefined);
    if (command === 'ui') args = parseUiArgs(args, flags);
    else if (command !== 'diagnose') args = qualifyPods(command as 'follow' | 'observe', args, namespace);

    const hub = await findHubPod(kc, flags.installNamespace);
    const token = await readHubToken(kc, flags.installNamespace);
    forward = await LocalPortForward.open(kc, hub, { ...(flags.localPort !== undefined ? { localPort: flags.localPort } : {}), onProblem: say });
    const url = `ws://127.0.0.1:${forward.port}`;
    if (command === 'ui') return await serveUi(forward, token, hub.pod, ctx);
    tokenDir = mkdtempSync(join(tmpdir(), 'kubectl-vxtrace-'));
    const tokenFile = join(tokenDir, 'token');
    writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
    say(`hub ${flags.installNamespace}/${hub.pod} (context ${kc.getCurrentContext()}), port-forwarded to ${url}`);
    return await run(['node', 'vxtrace', command, ...args, '--hub', url, '--token-file', tokenFile], io);
  } catch (err) {
    if (err instanceof VxtraceError) {
      ctx.stderr.write(`kubectl vxtrace: ${err.message}\n`);
      return err.exitStatus;
    }
    const e = err as Error;
    ctx.stderr.write(`kubectl vxtrace: internal error: ${e?.message ?? String(err)}\n${process.env.VXTRACE_DEBUG ? `${e?.stack}\n` : 'set VXTRACE_DEBUG=1 for the stack trace\n'}`);
    return ExitStatus.INTERNAL;
  } finally {
    cleanup();
    process.off('exit', cleanup);
    await forward?.close();
  }
}

function parseUiArgs(args: string[], flags: PluginFlags): string[] {
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const v = a.startsWith('--port=') ? a.slice('--port='.length) : a === '--port' ? args[++i] : undefined;
    if (v === undefined) throw new UsageError(`kubectl vxtrace ui takes only --port N (the local port), not ${a}`);
    if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > 65535) throw new UsageError(`--port ${v}: give a port from 1 to 65535`);
    flags.localPort = Number(v);
  }
  return [];
}

/** `kubectl vxtrace ui`: keep the port-forward open and say where the page is, until Ctrl-C. */
async function serveUi(forward: LocalPortForward, token: string, pod: string, ctx: Pick<CliContext, 'stdout' | 'stderr'>): Promise<number> {
  // A browser cannot set an Authorization header: the hub takes the token from ?token= (docs/protocol.md).
  ctx.stdout.write(`http://127.0.0.1:${forward.port}/?token=${encodeURIComponent(token)}\n`);
  ctx.stderr.write(`kubectl vxtrace: the hub's page (pod ${pod}) is at the address above, port-forwarded until Ctrl-C\n`);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  return ExitStatus.OK;
}
