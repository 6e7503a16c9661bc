// `vxtrace agent --hub URL`: one per node. Attaches to this node's hooks, reads and watches its
// kernel state, and sends both to the hub. Thin: parse flags -> which node, which namespace ->
// NodeAgent -> run until a signal (or a refusal by the hub).
import type { Command } from 'commander';
import { hostname } from 'node:os';
import type { CliContext, RegisterCommand } from '../command.js';
import { ExitStatus, UsageError, type VxtraceError } from '../../errors.js';
import { requirePrivileges } from '../../util/privileges.js';
import { NodeAgent } from '../../agent/agent.js';
import { agentNamespace } from '../../agent/where.js';
import { hubAddress, readTokenFile } from '../../wire/endpoint.js';
import { parseIntOption } from '../options.js';

interface AgentCliOptions {
  hub: string;
  node?: string;
  cluster?: string;
  kubeconfig?: string;
  lab?: string;
  tokenFile?: string;
  snaplen?: number;
  shed?: 'always' | 'auto';
}

/** For tests only: shift the agent's wall clock by this many ns, as if its machine's clock were off. */
function testClockOffset(): bigint | undefined {
  const v = process.env.VXTRACE_TEST_CLOCK_OFFSET_NS;
  if (v === undefined || v === '') return undefined;
  if (!/^-?\d+$/.test(v)) throw new UsageError(`VXTRACE_TEST_CLOCK_OFFSET_NS takes a whole number of nanoseconds, not '${v}'`);
  return BigInt(v);
}

async function runAgent(o: AgentCliOptions, ctx: CliContext): Promise<void> {
  const hub = hubAddress(o.hub, '/v1/agent');
  const token = o.tokenFile !== undefined ? readTokenFile(o.tokenFile) : undefined;
  const node = o.node ?? (process.env.NODE_NAME || hostname());
  const clockOffsetNs = testClockOffset();
  const where = await agentNamespace(node, { cluster: o.cluster, kubeconfig: o.kubeconfig, lab: o.lab });
  // Entering a lab node's namespace needs CAP_SYS_ADMIN; working in its own (a real node) does not.
  requirePrivileges('vxtrace agent', where.netns ? 'trace' : 'trace-here');
  const log = (line: string) => ctx.stderr.write(`${new Date().toISOString().slice(11, 23)} agent ${node}: ${line}\n`);
  let fatal: VxtraceError | undefined;
  let wake: () => void = () => {};
  const agent = await NodeAgent.start({
    hub, node, log, ...(token !== undefined ? { token } : {}), ...(where.netns ? { netns: where.netns } : {}),
    ...(clockOffsetNs !== undefined ? { clockOffsetNs } : {}), ...(o.snaplen ? { snaplen: o.snaplen } : {}),
    ...(o.shed ? { shed: o.shed } : {}),
    onFatal(err) {
      fatal = err;
      wake();
    },
  });
  ctx.stderr.write(
    `agent for ${node} (${where.why}): ${agent.hooks.length} hooks attached (${agent.hooks.join(', ')}); sending to the hub at ${hub.shown}${clockOffsetNs ? `; TEST clock offset ${clockOffsetNs} ns` : ''}; Ctrl-C to stop\n`,
  );
  await new Promise<void>((resolve) => {
    wake = resolve;
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await agent.stop();
  if (fatal) throw fatal;
  ctx.stderr.write(`agent for ${node} stopped: everything detached\n`);
}

function parseShed(v: string): 'always' | 'auto' {
  if (v === 'always' || v === 'auto') return v;
  throw new UsageError(`--shed ${v}: give 'always' (a few records per flow and hook, every packet counted) or 'auto' (a record for every packet while the ring buffer has room)`);
}

export const registerAgent: RegisterCommand = (program: Command, ctx: CliContext) => {
  program
    .command('agent')
    .description("one per node: trace this node's hooks and read its kernel state for the hub (as root, or with the capabilities: see --help of vxtrace)")
    .requiredOption('--hub <url>', 'the hub: ws://HOST:PORT, http://HOST:PORT or unix:/path.sock')
    .option('--node <name>', "this node's name in the cluster (default: NODE_NAME, else the hostname)")
    .option('--cluster <file>', "cluster state, to find a lab node's network namespace (vxtrace.io/netns)")
    .option('--kubeconfig <file>', 'read the cluster from the Kubernetes API with this kubeconfig')
    .option('--lab <name>', 'the lab whose node this is')
    .option('--token-file <file>', "the hub's token (first line), sent as Authorization: Bearer")
    .option('--snaplen <n>', 'bytes of each packet kept (default 256, at most 2048)', (v) => parseIntOption('--snaplen', v, 1, 2048))
    .option('--shed <when>', "'always' (default): records for the first packets of each flow and hook per 100 ms, every drop, SYN/FIN/RST and ICMP, every packet counted; 'auto': a record for every packet while the ring buffer has room", parseShed)
    .addHelpText('after', `
The node's hooks (cni0, flannel.1 and the uplink, both directions) and the kfree_skb drops are
attached at start; the in-kernel filter emits nothing until a client of the hub subscribes. A lab
node is entered by its vxtrace.io/netns annotation; an agent started inside its node's namespace
(\`ip netns exec vxt-lab-node1 vxtrace agent ...\`) or on a real node works in its own namespace.
In a pod (the DaemonSet, deploy/) without --cluster/--kubeconfig/--lab it reads no cluster state
and needs CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN only; entering a lab node's namespace also needs
CAP_SYS_ADMIN.
A flow followed at line rate costs the node a few records per flow and hook (--shed always): the
kernel's flow counters, streamed to the hub once a second, count every packet at every hop.
While the hub is away it reconnects with backoff, keeping hop records in a bounded queue (32 MiB)
and counting what it drops. A hub whose cluster does not have the node yet (a new node, before the
hub's watch brings its Node object) tells it to retry (close code 4012): it does, with the same
backoff, and says so at most every 10 s. Everything is detached when it stops (Ctrl-C, SIGTERM; tcx links also
die with the process).

VXTRACE_TEST_CLOCK_OFFSET_NS=N (tests only) shifts the wall clock the agent derives by N ns, as if
its machine's clock were off.

Exit status: 0 stopped by Ctrl-C/SIGTERM; 2 usage (bad --hub, the hub refused the token, another
agent replaced it for the node); 3 environment (missing capabilities, cannot attach).`)
    .action(async (o: AgentCliOptions) => {
      await runAgent(o, ctx);
      ctx.setExitStatus(ExitStatus.OK);
    });
};
