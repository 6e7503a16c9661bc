// `vxtrace follow POD_A POD_B`: follow the traffic between two pods hop by hop on every node this
// machine can trace, print each packet's path as it completes, and findings as soon as they are
// certain. Thin: parse flags -> followPods (src/cli/follow-run.ts) -> exit status.
import { Option, type Command } from 'commander';
import type { CliContext, RegisterCommand } from '../command.js';
import { parseDurationOption, parseIntOption, parseSizeOption } from '../options.js';
import { followPods, type FollowOptions } from '../follow-run.js';
import { followThroughHub } from '../hub-run.js';

export const registerFollow: RegisterCommand = (program: Command, ctx: CliContext) => {
  program
    .command('follow')
    .description('follow the packets between two pods hop by hop across nodes, and say why they do not arrive (as root, or with the capabilities: see --help of vxtrace)')
    .argument('<pod-a>', 'a pod: name or namespace/name')
    .argument('<pod-b>', 'the other pod (both directions are followed)')
    .option('--cluster <file>', 'cluster state: the output of `kubectl get nodes,pods -A -o json`')
    .option('--kubeconfig <file>', 'read the cluster from the Kubernetes API with this kubeconfig')
    .option('--lab <name>', 'use the cluster of this lab (default: the lab named `lab`, or the only lab that is up)')
    .option('--count <n>', 'stop after N packet paths', (v) => parseIntOption('--count', v, 1))
    .option('--duration <s>', 'stop after this long (10, 10s, 500ms, 2m)', (v) => parseDurationOption('--duration', v))
    .option('--json', 'NDJSON: one object per path, per finding, and a summary (docs/ndjson.md)')
    .option('--write <file>', 'also write every hop of every path to a pcapng trace (docs/trace-format.md)')
    .option('--rotate-size <size>', 'with --write: start a new file past this size (e.g. 100M)', (v) => parseSizeOption('--rotate-size', v))
    .option('--rotate-count <n>', 'with --rotate-size: keep at most N files', (v) => parseIntOption('--rotate-count', v, 1))
    .option('--snaplen <n>', 'bytes of each packet kept (default: the headers, 128, and packets up to 256 bytes whole; with --write 256; at most 2048)', (v) => parseIntOption('--snaplen', v, 1, 2048))
    .addOption(new Option('--protocol <p>', 'only this protocol').choices(['icmp', 'tcp', 'udp']))
    .option('--port <p>', 'only TCP/UDP packets with this source or destination port', (v) => parseIntOption('--port', v, 1, 65535))
    .option('--hub <url>', 'take the paths from a hub (ws://HOST:PORT, unix:/path.sock) that joins the agents of every node')
    .option('--token-file <file>', "with --hub: the hub's token (first line)")
    .addHelpText('after', `
Without --cluster/--kubeconfig/--lab it reads the cluster of KUBECONFIG or ~/.kube/config when there
is one, else the running lab, and says which. It traces every node this machine can see (the lab's
nodes by their network namespaces; on a real cluster, this node) with an in-kernel filter, so other
traffic costs nothing. Stops after --count paths, --duration, or Ctrl-C, and detaches everything.

Each line: time, pod → pod, protocol, the hop chain with per-hop latency, and the outcome:
  12:00:01.123 default/pod-a → default/pod-b ICMP echo request id 7 seq 1  node1 cni0 ▸ flannel.1 +9µs ▸ eth1 +4µs
      ⇢ 192.168.1.122:8472 vni 1 ⇢ node2 eth1 +31µs ▸ flannel.1 +5µs ▸ cni0 +3µs  delivered in 52µs
Findings (docs/findings.md) print as soon as they are certain, with cause and fix.

With --hub URL the paths come from a hub (\`vxtrace hub\`) that joins the agents of every node
(\`vxtrace agent\`): the same output, for pods on any machine; the hub resolves the pods. The
per-hop table is the hub's, from every agent's counters (counted from the subscription on); the
hub finds PACKET_LOSS once a flow is quiet at every hop (two agents are read up to 1 s apart).

The summary ends with the kernel's count of every packet of each flow at every hop (sent at
node1 cni0, left node1 eth1, arrived at node2 eth1, reached the pod), exact even when records are
sampled out ("N records sampled out"; records lost to a full ring buffer are counted apart).
Without --write the kernel keeps records for the first 32 packets of each flow at each hop per
100 ms, every drop, SYN/FIN/RST and ICMP (a bulk flow shows a few paths, and costs the node no
CPU for the rest); with --write it keeps every record until vxtrace falls behind.
Packets that vanish between two hops at a rate are a finding (PACKET_LOSS) with the two hops and
the numbers.

Exit status: 0 every path delivered (or gone on to a node that is not traced) and no error finding;
1 an error finding, an undelivered packet (a PACKET_LOSS finding too, whatever its severity) or
no packet seen; 2 usage (unknown pod, bad flag, unreadable cluster file); 3 environment (missing
capabilities, no BPF, the trace cannot be written).`)
    .action(async (podA: string, podB: string, o: FollowOptions & { hub?: string; tokenFile?: string }) =>
      ctx.setExitStatus(o.hub ? await followThroughHub(podA, podB, { ...o, hub: o.hub }, ctx) : (await followPods(podA, podB, o, ctx)).status));
};

