// The lab's plan: every name and address, computed from the options alone (pure, unit-tested).
// Addresses follow flannel's defaults and the seed: pod network 10.244.0.0/16 with one /24 per
// node, underlay 192.168.1.0/24 (node i at .120+i, as the seed's 192.168.1.12x), and the Vagrant
// NAT network 10.0.2.0/24 where every node is 10.0.2.15 behind gateway 10.0.2.2.
import { UsageError } from '../errors.js';
import { FAULTS, type FaultName, type LabNode, type LabOptions, type LabPod, type LabStack } from './types.js';

export { DEFAULT_LAB_NAME } from '../cluster/labs.js';
export const MAX_NODES = 20;
export const MAX_PODS_PER_NODE = 20;
export const UNDERLAY_CIDR = '192.168.1.0/24';
export const NAT_IP = '10.0.2.15';
export const NAT_GATEWAY = '10.0.2.2';
export const FLANNEL_VNI = 1;
export const FLANNEL_PORT = 8472;
export const FLANNEL_MTU = 1450;
/** Where the "stale-fdb" fault says node2 used to live before it was renumbered. */
export const STALE_UNDERLAY_IP = '192.168.1.200';
// IPv6 (dual-stack and IPv6 labs): the same plan in ULA space. Underlay fd00:192:168:1::12N/64,
// NAT fd00:10:0:2::15 behind fd00:10:0:2::2 on every node, pod CIDRs fd00:10:244:N::/64.
export const UNDERLAY_CIDR6 = 'fd00:192:168:1::/64';
export const NAT_IP6 = 'fd00:10:0:2::15';
export const NAT_GATEWAY6 = 'fd00:10:0:2::2';
export const STALE_UNDERLAY_IP6 = 'fd00:192:168:1::200';
/** flannel-v6.1's MTU: 70 bytes of IPv6/UDP/VXLAN headers below eth1's 1500. */
export const FLANNEL_MTU6 = 1430;
/** Port and VNI a misconfigured node uses in the port-mismatch / vni-mismatch faults. */
export const MISMATCH_PORT = 4789;
export const MISMATCH_VNI = 2;

export function validateOptions(opts: LabOptions): void {
  if (!/^[a-z0-9]{1,12}$/.test(opts.name)) {
    throw new UsageError(`lab name '${opts.name}' is not valid: use 1 to 12 lower-case letters or digits (e.g. --name lab2)`);
  }
  if (!Number.isInteger(opts.nodes) || opts.nodes < 1 || opts.nodes > MAX_NODES) {
    throw new UsageError(`--nodes ${opts.nodes} is out of range: a lab has 1 to ${MAX_NODES} nodes`);
  }
  if (!Number.isInteger(opts.podsPerNode) || opts.podsPerNode < 1 || opts.podsPerNode > MAX_PODS_PER_NODE) {
    throw new UsageError(`--pods-per-node ${opts.podsPerNode} is out of range: use 1 to ${MAX_PODS_PER_NODE}`);
  }
  for (const f of opts.faults) {
    if (!(FAULTS as readonly string[]).includes(f)) {
      throw new UsageError(`unknown fault '${f}': choose from ${FAULTS.join(', ')}`);
    }
  }
  if (opts.faults.length && opts.nodes < 2) {
    throw new UsageError(`faults need at least 2 nodes (the faults break traffic between node1 and node2): use --nodes 2 or more`);
  }
  if (opts.stack !== undefined && !['ipv4', 'dual', 'ipv6'].includes(opts.stack)) throw new UsageError(`stack '${opts.stack}' is not one of ipv4, dual, ipv6`);
  const dup = opts.faults.find((f, i) => opts.faults.indexOf(f) !== i);
  if (dup) throw new UsageError(`fault '${dup}' is given twice`);
}

export function parseFault(s: string): FaultName {
  if (!(FAULTS as readonly string[]).includes(s)) throw new UsageError(`unknown fault '${s}': choose from ${FAULTS.join(', ')}`);
  return s as FaultName;
}

export const prefixOf = (name: string): string => `vxt-${name}-`;

/** Pod names by index: pod-a .. pod-z, pod-aa, pod-ab, ... */
export function podName(index: number): string {
  let s = '';
  let n = index;
  do {
    s = String.fromCharCode(97 + (n % 26)) + s;
    n = Math.floor(n / 26) - 1;
  } while (n >= 0);
  return `pod-${s}`;
}

const hex2 = (n: number) => n.toString(16).padStart(2, '0');
/** flannel.1's MAC on node i (generation 0), or after a recreation (generation 1). Locally administered. */
export const vtepMac = (nodeIndex: number, generation = 0): string => `0e:76:78:00:${hex2(generation)}:${hex2(nodeIndex)}`;
/** flannel-v6.1's MAC on node i (its own device, its own MAC). */
export const vtepMac6 = (nodeIndex: number, generation = 0): string => `0e:76:78:06:${hex2(generation)}:${hex2(nodeIndex)}`;

export interface LabPlan {
  name: string;
  stack: LabStack;
  prefix: string;
  underlayNetns: string;
  nodes: LabNode[];
  pods: (Omit<LabPod, 'mac'> & { nodeIndex: number; hostVeth: string; podMtu: number })[];
}

/** Every name and address of a healthy lab (faults are applied on top, see faults.ts). */
export function planLab(opts: LabOptions): LabPlan {
  validateOptions(opts);
  const stack = opts.stack ?? 'ipv4';
  const prefix = prefixOf(opts.name);
  const nodes: LabNode[] = [];
  for (let i = 1; i <= opts.nodes; i++) {
    const underlayIp = `192.168.1.${120 + i}`;
    nodes.push({
      name: `node${i}`,
      netns: `${prefix}node${i}`,
      natNetns: `${prefix}node${i}-nat`,
      underlayIp,
      natIp: NAT_IP,
      podCidr: `10.244.${i}.0/24`,
      vtepIp: `10.244.${i}.0`,
      vtepMac: vtepMac(i),
      vni: FLANNEL_VNI,
      vxlanPort: FLANNEL_PORT,
      publicIp: underlayIp,
      uplink: 'eth1',
      natInterface: 'eth0',
      vxlanDevice: 'flannel.1',
      bridge: 'cni0',
      ...(stack !== 'ipv4' ? {
        v6: {
          underlayIp: `fd00:192:168:1::${120 + i}`,
          natIp: NAT_IP6,
          podCidr: `fd00:10:244:${i}::/64`,
          vtepIp: `fd00:10:244:${i}::`,
          vtepMac: vtepMac6(i),
          publicIp: `fd00:192:168:1::${120 + i}`,
          vxlanDevice: 'flannel-v6.1' as const,
        },
      } : {}),
    });
  }
  // Pods round-robin over nodes, so pod-a (node1) and pod-b (node2) are a cross-node pair.
  const pods: LabPlan['pods'] = [];
  const total = opts.nodes * opts.podsPerNode;
  for (let k = 0; k < total; k++) {
    const nodeIndex = (k % opts.nodes) + 1;
    const slot = Math.floor(k / opts.nodes);
    const name = podName(k);
    pods.push({
      name,
      namespace: 'default',
      node: `node${nodeIndex}`,
      netns: `${prefix}${name}`,
      // An IPv6-only pod has only its IPv6 address; a dual-stack pod both.
      ip: stack === 'ipv6' ? `fd00:10:244:${nodeIndex}::${10 + slot}` : `10.244.${nodeIndex}.${10 + slot}`,
      ...(stack === 'dual' ? { ip6: `fd00:10:244:${nodeIndex}::${10 + slot}` } : {}),
      nodeIndex,
      hostVeth: `veth${name.slice(4)}`,
      // Pods take the smallest VTEP MTU: flannel-v6.1's 1430 when there is one.
      podMtu: stack === 'ipv4' ? FLANNEL_MTU : FLANNEL_MTU6,
    });
  }
  return { name: opts.name, stack, prefix, underlayNetns: `${prefix}under`, nodes, pods };
}
