// `vxtrace lab up|down|status|exec`: the embedded flannel VXLAN cluster in network namespaces.
import { Option, type Command } from 'commander';
import type { CliContext, RegisterCommand } from '../command.js';
import { ExitStatus, UsageError } from '../../errors.js';
import {
  DEFAULT_LAB_NAME, FAULTS, HEAL_ACTIONS, labDown, labHeal, labExec, labUp, listLabs, readLabState, requireLab, type FaultName, type LabState,
} from '../../lab/index.js';
import { parseFault } from '../../lab/plan.js';
import { labClusterList } from '../../lab/cluster.js';
import { parseIntOption } from '../options.js';

const nameOption = (orOnlyOne = true) =>
  new Option('--name <name>', `lab name (namespaces are vxt-<name>-*; default: '${DEFAULT_LAB_NAME}'${orOnlyOne ? ', or the only lab that is up' : ''})`);
/** `--lab NAME` too, as follow, capture and diagnose spell it. */
const labOption = () => new Option('--lab <name>', 'the same as --name').conflicts('name');
/** The lab a command means: the one named, else 'lab' when it is up, else the only one up (as follow picks it). */
const labName = (o: { name?: string; lab?: string }): string => {
  const named = o.lab ?? o.name;
  if (named !== undefined) return named;
  const up = listLabs();
  if (up.includes(DEFAULT_LAB_NAME) || up.length === 0) return DEFAULT_LAB_NAME;
  if (up.length === 1) return up[0]!;
  throw new UsageError(`several labs are up (${up.join(', ')}): choose one with --name NAME`);
};

function collectFaults(value: string, previous: FaultName[]): FaultName[] {
  return [...previous, ...value.split(',').filter(Boolean).map(parseFault)];
}

export function formatLabStatus(state: LabState): string {
  const stack = state.stack ?? 'ipv4';
  const lines = [`lab '${state.name}' (namespaces ${state.prefix}*${stack === 'ipv4' ? '' : stack === 'dual' ? ', dual stack' : ', IPv6'}), up since ${state.createdAt}`, '', 'nodes:'];
  for (const n of state.nodes) {
    if (stack !== 'ipv6') {
      lines.push(
        `  ${n.name.padEnd(7)} eth1 ${n.underlayIp.padEnd(15)} eth0 ${n.natIp} (NAT)  public-ip ${n.publicIp.padEnd(15)} podCIDR ${n.podCidr.padEnd(15)} ` +
          `flannel.1 ${n.vtepIp} ${n.vtepMac} vni ${n.vni} port ${n.vxlanPort}`,
      );
    }
    if (n.v6) {
      lines.push(
        `  ${(stack === 'ipv6' ? n.name : '').padEnd(7)} eth1 ${n.v6.underlayIp} eth0 ${n.v6.natIp} (NAT)  public-ipv6 ${n.v6.publicIp} podCIDR ${n.v6.podCidr} ` +
          `flannel-v6.1 ${n.v6.vtepIp} ${n.v6.vtepMac} vni ${n.vni} port ${n.vxlanPort}`,
      );
    }
  }
  lines.push('', 'pods:');
  for (const p of state.pods) lines.push(`  ${p.namespace}/${p.name.padEnd(8)} ${p.ip.padEnd(14)}${p.ip6 ? ` ${p.ip6.padEnd(20)}` : ''} on ${p.node}`);
  lines.push('', state.faults.length ? 'faults:' : 'faults: none (healthy)');
  for (const f of state.faults) {
    lines.push(`  ${f.fault} on ${f.node === '*' ? 'every node' : f.node}: ${f.detail}`);
    // Ping needs both directions, so a pair is listed once: a ⇄ b.
    const pairs = [...new Set(f.breaks.map(([a, b]) => (a < b ? `${a} ⇄ ${b}` : `${b} ⇄ ${a}`)))];
    if (pairs.length) lines.push(`    breaks ${pairs.join(', ')}`);
  }
  lines.push('', `cluster state: ${state.clusterFile}`);
  return lines.join('\n') + '\n';
}

export const registerLab: RegisterCommand = (program: Command, ctx: CliContext) => {
  const lab = program
    .command('lab')
    .description('the embedded flannel VXLAN cluster, in network namespaces on this machine (as root)')
    .addHelpText('after', `
The lab builds nodes as flanneld and the CNI bridge plugin do: an underlay switch that every
node's eth1 joins (192.168.1.12N), eth0 into a private NAT network with the same address on every
node (10.0.2.15, the Vagrant case), cni0 with the pod CIDR's gateway (10.244.N.0/24), flannel.1
(VXLAN, VNI 1, UDP 8472, nolearning, MTU 1450) with the routes, neighbours and FDB entries flanneld
programs. Pods pod-a, pod-b, ... are spread round-robin: pod-a on node1, pod-b on node2, ...
--ipv6 builds it IPv6-only (flannel-v6.1 over fd00:192:168:1::12N, pods in fd00:10:244:N::/64,
NAT fd00:10:0:2::15), --dual-stack with both families; faults apply to the IPv6 VTEPs too.
Nothing is routed from the root namespace into the lab; no traffic leaves it.

Faults (combinable; each breaks what it says in \`lab status\`):
  nat-public-ip   every node registered public-ip 10.0.2.15 (flanneld chose eth0): the seed's case
  stale-fdb       node1's FDB entry for node2 points at an address node2 no longer has
  stale-vtep-mac  node2's flannel.1 was recreated with a new MAC; node1 still holds the old one
  missing-fdb     node1 has no FDB entry for node2's VTEP MAC
  vni-mismatch    node2 uses VNI 2        port-mismatch  node2 uses UDP port 4789
  mtu             node1's pods at MTU 1500 over flannel.1 at 1450 (DF set)
  udp-blocked     nftables on node2 drops inbound UDP 8472
  bad-checksum    node1's VXLAN packets carry a corrupt outer UDP checksum
  forward-drop    node2's FORWARD policy drops (as Docker sets it)
  forward-rule    a rule in node2's FORWARD path drops traffic to its pods
  vxlan-closed    node2's flannel.1 is down: nothing listens on UDP 8472 there
  underlay-unreachable  node2's underlay port is cut off: its address does not answer ARP`);

  lab
    .command('up')
    .description('build a lab (refused if one of that name is up)')
    .addOption(nameOption(false))
    .addOption(labOption())
    .option('--nodes <n>', 'number of nodes', (v) => parseIntOption('--nodes', v), 3)
    .option('--pods-per-node <n>', 'pods on each node', (v) => parseIntOption('--pods-per-node', v), 2)
    .option('--fault <fault>', `inject a fault (repeat, or comma-separate): ${FAULTS.join(', ')}`, collectFaults, [] as FaultName[])
    .addOption(new Option('--ipv6', 'an IPv6-only overlay, as flanneld with EnableIPv6 and EnableIPv4=false makes it: flannel-v6.1 over an IPv6 underlay').conflicts('dualStack'))
    .option('--dual-stack', 'IPv4 and IPv6, as flanneld with EnableIPv6 makes it: flannel.1 and flannel-v6.1 on every node, pods with both addresses')
    .action(async (o: { name?: string; lab?: string; nodes: number; podsPerNode: number; fault: FaultName[]; ipv6?: boolean; dualStack?: boolean }) => {
      const stack = o.ipv6 ? 'ipv6' : o.dualStack ? 'dual' : 'ipv4';
      const state = await labUp({ name: o.lab ?? o.name ?? DEFAULT_LAB_NAME, nodes: o.nodes, podsPerNode: o.podsPerNode, faults: o.fault, stack }, (m) =>
        ctx.stderr.write(`lab: ${m}\n`),
      );
      ctx.stdout.write(formatLabStatus(state));
    });

  lab
    .command('down')
    .description('remove everything a lab made (namespaces, links, nft tables, files), also after a crash')
    .addOption(nameOption(false))
    .addOption(labOption())
    .option('--all', 'remove every vxtrace lab on this machine')
    .action(async (o: { name?: string; lab?: string; all?: boolean }) => {
      // Never a lab nobody named: without --name, the default one only.
      const names = o.all ? listLabs() : [o.lab ?? o.name ?? DEFAULT_LAB_NAME];
      for (const name of names) {
        const n = await labDown(name);
        ctx.stderr.write(`lab: '${name}' ${n ? `down (${n} namespaces removed)` : 'was not up'}\n`);
      }
    });

  lab
    .command('status')
    .description('what the lab is: nodes, pods, active faults (--json: its cluster state as a v1 List)')
    .addOption(nameOption())
    .addOption(labOption())
    .option('--json', 'print the cluster state, as `kubectl get nodes,pods -A -o json` prints it')
    .action((o: { name?: string; lab?: string; json?: boolean }) => {
      const state = requireLab(labName(o));
      ctx.stdout.write(
        o.json ? JSON.stringify(labClusterList(state.name, state.nodes, state.pods, state.createdAt, state.stack), null, 2) + '\n' : formatLabStatus(state),
      );
    });

  lab
    .command('heal')
    .description('undo one fault the way the real fix would (nat-public-ip: flanneld restarted with --iface=eth1)')
    .addOption(nameOption())
    .addOption(labOption())
    .argument('<fault>', 'the active fault to heal')
    .action(async (fault: string, o: { name?: string; lab?: string }) => {
      const f = parseFault(fault);
      const state = await labHeal(labName(o), f);
      ctx.stderr.write(`lab: healed ${f}: ${HEAL_ACTIONS[f]}\n`);
      ctx.stdout.write(formatLabStatus(state));
    });

  lab
    .command('exec')
    .description('run a command inside a pod, e.g. `vxtrace lab exec pod-a -- ping -c 3 10.244.2.10`')
    .addOption(nameOption())
    .addOption(labOption())
    .argument('<pod>', 'pod name or namespace/name')
    .argument('[command...]', 'the command and its arguments, after --')
    .action((pod: string, command: string[], o: { name?: string; lab?: string }) => {
      if (!command.length) throw new UsageError('lab exec needs a command after --, e.g. `vxtrace lab exec pod-a -- ping -c 3 10.244.2.10`');
      const state = requireLab(labName(o));
      const r = labExec(state, pod, command);
      ctx.setExitStatus(r.status === 0 ? ExitStatus.OK : ExitStatus.FINDINGS);
    });
};
