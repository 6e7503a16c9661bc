// What `vxtrace check` probes: for every ordered pair of overlay nodes (A, B) where A can send here,
// a probe from A's pod-bridge address (cni0's gateway in A's pod CIDR: the route, neighbour and FDB
// entries A uses for its pods' traffic) to a running pod on B, or B's bridge address when B has none;
// plus a second one of --size bytes with DF set. Pure: from the cluster model alone.
import type { ClusterModel, NodeModel } from '../cluster/model.js';
import { cidrContains, intToIpv4, parseCidr } from '../net/address.js';
import type { ProbeProtocol } from './mark.js';

/** One end of a probe on a node. */
export interface ProbeEnd {
  node: string;
  address: string;
  /** "pod default/pod-b" or "cni0 10.244.2.1". */
  label: string;
  /** The pod, when the end is one. */
  pod?: string;
}

/** A node as check sees it: whether it can send probes, and where probes to it go. */
export interface CheckNode {
  name: string;
  /** The address its probes are sent from (its pod bridge's), when this machine can send there. */
  source?: ProbeEnd & { device: string };
  /** Where probes to it go. */
  target: ProbeEnd;
  /** The MTU of its VXLAN device (the default --size of its probes). */
  vxlanMtu?: number;
  /** Why it sends no probes (not on this machine; no pod bridge address). */
  notSending?: string;
}

export type ProbeKind = 'base' | 'size';

/** One probe: one packet from `from` to `to` and its reply (retried once when lost). */
export interface PlannedProbe {
  id: string;
  from: string;
  to: string;
  kind: ProbeKind;
  protocol: ProbeProtocol;
  src: ProbeEnd;
  dst: ProbeEnd;
  /** IP length of the request (ICMP echo: 84 for the base probe, --size for the other). */
  bytes: number;
  /** Don't Fragment set (the size probe). */
  df: boolean;
}

export interface CheckPlan {
  /** Overlay nodes in matrix order (node1, node2, ..., node10). */
  nodes: CheckNode[];
  /** Ordered pairs [from, to] of the matrix's cells. */
  pairs: [string, string][];
  probes: PlannedProbe[];
  /** Nodes left out of the matrix (no pod CIDR: not on the overlay) and why. */
  skipped: { node: string; why: string }[];
}

export interface PlanOptions {
  /** The nodes this machine can send from (lab nodes by namespace; a real node itself). */
  senders: ReadonlySet<string>;
  protocol: ProbeProtocol;
  /** IP length of the DF probe; default: the sender's VXLAN device MTU. */
  size?: number;
  /** Pods known not to be running (by namespace/name): not chosen as targets. */
  notRunning?: ReadonlySet<string>;
  /** Why a node not among the senders sends nothing (default: this machine cannot send from it). */
  whyNotSending?: string;
}

/** The base probe's IP length: an ICMP echo as ping sends it (56 bytes of data), or 84 bytes of UDP / a bare TCP SYN. */
export const BASE_PROBE_BYTES = 84;

const byName = (a: string, b: string) => a.localeCompare(b, 'en', { numeric: true });

/** The node's pod-bridge address: an IPv4 address in its own pod CIDR on a device that is not the VXLAN device (kernel state). */
export function podBridgeAddress(n: NodeModel): { address: string; device: string } | undefined {
  const cidrs = n.podCidrs.flatMap((c) => parseCidr(c) ?? []);
  const vx = n.kernel?.vxlan?.name;
  const bridges = new Set(n.kernel?.links.filter((l) => l.kind === 'bridge').map((l) => l.name) ?? []);
  const held = (n.kernel?.addresses ?? []).filter((a) => a.family === 4 && a.device !== vx && cidrs.some((c) => cidrContains(c, a.address)));
  const pick = held.find((a) => bridges.has(a.device)) ?? held[0];
  return pick ? { address: pick.address, device: pick.device } : undefined;
}

export function planCheck(model: ClusterModel, o: PlanOptions): CheckPlan {
  const skipped: CheckPlan['skipped'] = [];
  const nodes: CheckNode[] = [];
  for (const n of [...model.nodes].sort((a, b) => byName(a.name, b.name))) {
    const cidr = n.podCidrs.map((c) => parseCidr(c)).find((c) => c !== undefined);
    if (!cidr) {
      skipped.push({ node: n.name, why: 'it has no pod CIDR (not on the overlay)' });
      continue;
    }
    const bridge = podBridgeAddress(n);
    const pod = model.pods
      .filter((p) => p.node === n.name && !p.hostNetwork && !o.notRunning?.has(p.ref))
      .map((p) => ({ p, ip: p.ips.find((ip) => cidrContains(cidr, ip)) }))
      .filter((x): x is { p: typeof x.p; ip: string } => x.ip !== undefined)
      .sort((a, b) => byName(a.p.ref, b.p.ref))[0];
    // Without a pod, the bridge address; without kernel state, the bridge plugin's convention (the first address).
    const gateway = bridge?.address ?? intToIpv4(cidr.network + 1);
    const target: ProbeEnd = pod
      ? { node: n.name, address: pod.ip, label: `pod ${pod.p.ref}`, pod: pod.p.ref }
      : { node: n.name, address: gateway, label: `${bridge?.device ?? 'the pod bridge'} ${gateway}` };
    const node: CheckNode = { name: n.name, target, ...(n.kernel?.vxlan ? { vxlanMtu: n.kernel.vxlan.mtu } : {}) };
    if (!o.senders.has(n.name)) node.notSending = o.whyNotSending ?? 'this machine cannot send from it (run vxtrace there, or use --hub)';
    else if (!bridge) node.notSending = `it has no address in its pod CIDR ${cidr.text} outside ${n.kernel?.vxlan?.name ?? 'the VXLAN device'} (no pod bridge: is the CNI bridge up?)`;
    else node.source = { node: n.name, address: bridge.address, device: bridge.device, label: `${bridge.device} ${bridge.address}` };
    nodes.push(node);
  }
  const pairs: [string, string][] = [];
  const probes: PlannedProbe[] = [];
  for (const a of nodes) {
    for (const b of nodes) {
      if (a === b) continue;
      pairs.push([a.name, b.name]);
      if (!a.source) continue;
      const base = { from: a.name, to: b.name, src: a.source, dst: b.target };
      probes.push({ ...base, id: `${a.name}>${b.name}`, kind: 'base', protocol: o.protocol, bytes: BASE_PROBE_BYTES, df: false });
      const size = o.size ?? a.vxlanMtu;
      if (size !== undefined) probes.push({ ...base, id: `${a.name}>${b.name}/size`, kind: 'size', protocol: 'icmp', bytes: size, df: true });
    }
  }
  return { nodes, pairs, probes, skipped };
}
