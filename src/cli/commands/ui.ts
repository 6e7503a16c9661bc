// `vxtrace ui`: the page, ready to open. Starts the hub (the same HubServer `vxtrace hub` runs; it
// serves the page at `/`) and, for every node this machine hosts (a lab node, by its
// vxtrace.io/netns annotation), one `vxtrace agent` process; prints the URL to open. On a real
// cluster the agents run on the nodes: it says how to point them at this hub. Thin: parse flags ->
// cluster source -> HubServer -> agent processes -> run until a signal.
import type { Command } from 'commander';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { CliContext, RegisterCommand } from '../command.js';
import { ExitStatus, UsageError } from '../../errors.js';
import { requirePrivileges } from '../../util/privileges.js';
import { loadCluster, watchCluster, type ClusterSourceOptions } from '../../cluster/source.js';
import { VXTRACE_NETNS } from '../../cluster/k8s.js';
import { DEFAULT_LISTEN, parseListen, requireTokenWhereReachable } from '../../hub/access.js';
import { HubServer } from '../../hub/server.js';
import { readTokenFile } from '../../wire/endpoint.js';

const CLI = fileURLToPath(new URL('../../../../bin/vxtrace.js', import.meta.url));

interface UiOptions {
  listen: string;
  cluster?: string;
  kubeconfig?: string;
  lab?: string;
  tokenFile?: string;
  agents: boolean;
}

/** The flags that name the same cluster for an agent process. */
function sourceFlags(o: ClusterSourceOptions, lab: string | undefined): string[] {
  if (o.cluster !== undefined) return ['--cluster', o.cluster];
  if (o.kubeconfig !== undefined) return ['--kubeconfig', o.kubeconfig];
  return lab !== undefined ? ['--lab', lab] : [];
}

async function runUi(o: UiOptions, ctx: CliContext): Promise<void> {
  const listen = parseListen(o.listen);
  if (listen.kind === 'unix') throw new UsageError(`--listen ${o.listen}: a browser cannot open a unix socket: give HOST:PORT (default ${DEFAULT_LISTEN})`);
  const token = o.tokenFile !== undefined ? readTokenFile(o.tokenFile) : undefined;
  requireTokenWhereReachable(listen, token);
  const source: ClusterSourceOptions = { cluster: o.cluster, kubeconfig: o.kubeconfig, lab: o.lab };
  const { objects, from, lab } = await loadCluster(source);
  // Nodes that live on this machine (the lab's): their agents are started here, and need root.
  const local = o.agents ? objects.nodes.filter((n) => n.metadata.annotations?.[VXTRACE_NETNS]).map((n) => n.metadata.name) : [];
  if (local.length) requirePrivileges(`vxtrace ui (it starts the agents of ${local.join(', ')})`, 'trace');

  const log = (line: string) => ctx.stderr.write(`${new Date().toISOString().slice(11, 23)} hub: ${line}\n`);
  const { server, url } = await HubServer.start({ listen, token, objects, clusterFrom: from, log });
  const watch = await watchCluster(source, (next) => server.hub.setObjects(next), (err) => log(`cannot re-read the cluster (${err.message}): the last good state stays in use`)).catch((err: Error) => {
    log(`cannot watch the cluster (${err.message}): its objects stay as read at the start`);
    return undefined;
  });
  ctx.stderr.write(`cluster: ${from}\n`);

  let stopping = false;
  const agents = new Map<string, ChildProcess>();
  for (const node of local) {
    const args = [CLI, 'agent', '--hub', url, '--node', node, ...sourceFlags(source, lab), ...(o.tokenFile !== undefined ? ['--token-file', o.tokenFile] : [])];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => ctx.stderr.write(d));
    child.on('exit', (code, signal) => {
      agents.delete(node);
      if (!stopping) log(`the agent of ${node} exited (${signal ?? `status ${code}`}): ${node} is unwatched`);
    });
    agents.set(node, child);
  }

  const page = `http://${url.slice('ws://'.length)}/${token !== undefined ? '?token=<the token>' : ''}`;
  ctx.stdout.write(`${page}\n`);
  ctx.stderr.write(
    `vxtrace ui: open ${page} in a browser${local.length ? `; agents of ${local.join(', ')} started here` : ''}` +
      (local.length < objects.nodes.length
        ? `; for the other nodes run \`vxtrace agent --hub ${url}${token !== undefined ? ' --token-file F' : ''}\` on each${listen.loopback ? ` (this hub listens on loopback only: give --listen ADDR:PORT and --token-file F so that other machines reach it)` : ''}`
        : '') +
      '; Ctrl-C to stop\n',
  );

  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  stopping = true;
  // Each agent detaches what it attached before it exits.
  await Promise.all(
    [...agents.values()].map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          const kill = setTimeout(() => child.kill('SIGKILL'), 10_000);
          child.once('exit', () => {
            clearTimeout(kill);
            resolve();
          });
          child.kill('SIGTERM');
        }),
    ),
  );
  watch?.stop();
  await server.close();
  ctx.stderr.write('vxtrace ui stopped\n');
}

export const registerUi: RegisterCommand = (program: Command, ctx: CliContext) => {
  program
    .command('ui')
    .description('the live web page: start a hub (and the agents of the nodes on this machine) and print the URL to open')
    .option('--listen <addr>', 'HOST:PORT the hub (and the page) listens on', DEFAULT_LISTEN)
    .option('--lab <name>', 'the lab to show (default: the lab named `lab`, or the only lab that is up)')
    .option('--cluster <file>', 'cluster state: the output of `kubectl get nodes,pods -A -o json`')
    .option('--kubeconfig <file>', 'read (and watch) the cluster from the Kubernetes API with this kubeconfig')
    .option('--token-file <file>', 'agents and the page must present the token on its first line (needed for a non-loopback --listen)')
    .option('--no-agents', 'start no agent here, only the hub and its page')
    .addHelpText('after', `
In the lab (as root):
  vxtrace lab up --fault nat-public-ip
  vxtrace ui                      # hub + one agent process per lab node; prints http://127.0.0.1:4280/
Open that URL in a browser on this machine (from another one: ssh -L 4280:127.0.0.1:4280 HOST, then
the same URL). The page shows every path live (where it died, and why), the findings with their
fixes, and the node map; filters narrow what the hub and the agents' in-kernel filters send.

On a cluster (agents run on the nodes, e.g. a DaemonSet):
  vxtrace ui --kubeconfig ~/.kube/config --listen 0.0.0.0:4280 --token-file /etc/vxtrace/token
  # on every node: vxtrace agent --hub ws://HUB:4280 --token-file /etc/vxtrace/token
then open http://HUB:4280/?token=TOKEN. \`vxtrace hub\` serves the same page at / too.

The page loads nothing from any other host.

Exit status: 0 stopped by Ctrl-C/SIGTERM; 2 usage (bad --listen, a unix: socket, no token for a
reachable address); 3 environment (no privileges to trace for the lab's agents, the address is in
use, no cluster state).`)
    .action(async (o: UiOptions) => {
      await runUi(o, ctx);
      ctx.setExitStatus(ExitStatus.OK);
    });
};
