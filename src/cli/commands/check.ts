// `vxtrace check`: every ordered pair of nodes probed over the overlay, each probe followed hop by
// hop and judged, shown as a matrix with the findings that explain its broken cells. Thin: parse
// flags -> checkPairs (src/cli/check-run.ts) -> exit status.
import { Option, type Command } from 'commander';
import type { CliContext, RegisterCommand } from '../command.js';
import { parseDurationOption, parseIntOption } from '../options.js';
import { checkPairs, type CheckOptions } from '../check-run.js';

export const registerCheck: RegisterCommand = (program: Command, ctx: CliContext) => {
  program
    .command('check')
    .description('probe every pair of nodes over the overlay, follow each probe hop by hop, and show which pairs work and why the others do not (as root)')
    .option('--cluster <file>', 'cluster state: the output of `kubectl get nodes,pods -A -o json`')
    .option('--kubeconfig <file>', 'read the cluster from the Kubernetes API with this kubeconfig')
    .option('--lab <name>', 'use the cluster of this lab (default: the lab named `lab`, or the only lab that is up)')
    .option('--json', 'NDJSON: one record per pair, then the findings and a summary (docs/ndjson.md)')
    .addOption(new Option('--protocol <p>', 'what the probes are (the --size probe is always an ICMP echo)').choices(['icmp', 'udp', 'tcp']).default('icmp'))
    .option('--size <bytes>', 'IP length of the second probe, sent with DF set (default: the sender\'s VXLAN device MTU)', (v) => parseIntOption('--size', v, 68, 65535))
    .option('--timeout <s>', 'how long a probe waits for its reply before it is tried once more (default 1s)', (v) => parseDurationOption('--timeout', v))
    .option('--hub <url>', "check through a hub (ws://HOST:PORT, http://HOST:PORT or unix:/path.sock): each node's agent sends that node's probes")
    .option('--token-file <file>', "with --hub: the hub's token (first line), sent as Authorization: Bearer")
    .addHelpText('after', `
For every ordered pair of nodes (A, B) a probe goes from A's pod-bridge address (cni0's gateway in
A's pod CIDR: the route, neighbour and FDB entries A's pods use) to a running pod on B (or B's
bridge address when B has none) and back, and a second one of --size bytes with DF set. Every
probe is followed through every hook it passes, as \`follow\` follows pods' packets, and judged by
the same rules. A probe a node sends itself skips its own cni0 ingress, and its reply skips cni0
egress; B's probe to A passes both, so each cell (A, B) holds both probes between A and B and
covers all six hooks of pod traffic each way. In the lab every node sends its probes in its
namespace; on a real node, vxtrace sends that node's only; with --hub, the hub plans the check on
its cluster and its agents' kernel state, asks each node's agent to send that node's probes, and
follows and judges them as this command does (the same matrix, for every node with an agent).

Probes are marked (ICMP echo identifier, or UDP/TCP source and destination port, 30208-30463) and
are never shown, judged or written by a \`follow\` or \`capture\` running meanwhile. They are few (one
per pair, one of --size, one retry for a lost one) and bounded: at most 4 at a time and 50 a second
from each node, 32 at a time in all.

Output: rows are senders, columns receivers; ✔ or ✖ with a short reason per cell ("loop on node1
flannel.1", "dropped at node2 eth1: UDP_CSUM", "left node1 eth1 to 192.168.1.200"; "back:" when the
packet going from the column's node to the row's failed); then each finding once, with the cells
it explains, its cause and its fix (docs/findings.md).

Exit status: 0 every pair works; 1 a pair does not; 2 usage; 3 environment (not root, no BPF, no
node this machine can send from). Pairs of two nodes this machine cannot send from (on a real node:
every pair without it) are shown as not probed and not judged.`)
    .action(async (o: CheckOptions) => ctx.setExitStatus(await checkPairs(o, ctx)));
};
