// The embedded lab's public shapes. The lab builds nodes the way flanneld and the CNI bridge plugin
// do, in network namespaces; everything else in vxtrace reads the lab only through the cluster List
// it writes (cluster.json), exactly as it would read a real cluster.

export const FAULTS = [
  'nat-public-ip',
  'stale-fdb',
  'stale-vtep-mac',
  'missing-fdb',
  'vni-mismatch',
  'port-mismatch',
  'mtu',
  'udp-blocked',
  'bad-checksum',
  'forward-drop',
  'forward-rule',
  'vxlan-closed',
  'underlay-unreachable',
] as const;
export type FaultName = (typeof FAULTS)[number];

/** Which families the overlay carries: IPv4 (flannel's default), both (EnableIPv6), or IPv6 only (EnableIPv4=false). */
export type LabStack = 'ipv4' | 'dual' | 'ipv6';

export interface LabOptions {
  /** Lab name: [a-z0-9]{1,8}; namespaces are named `vxt-<name>-...`. Default `lab`. */
  name: string;
  nodes: number;
  podsPerNode: number;
  faults: FaultName[];
  /** Default 'ipv4'. */
  stack?: LabStack;
}

/** A node's IPv6 VTEP and addresses (dual-stack and IPv6 labs): what flanneld with EnableIPv6 makes. */
export interface LabNode6 {
  /** Unique IPv6 underlay address on eth1 (fd00:192:168:1::12N). */
  underlayIp: string;
  /** The NAT network's IPv6 address, the same on every node (fd00:10:0:2::15). */
  natIp: string;
  /** The IPv6 pod CIDR (fd00:10:244:N::/64). */
  podCidr: string;
  /** flannel-v6.1's address: the network address of podCidr (/128), e.g. fd00:10:244:1::. */
  vtepIp: string;
  vtepMac: string;
  /** Address flanneld registered as public-ipv6 (and flannel-v6.1 `local`). */
  publicIp: string;
  vxlanDevice: 'flannel-v6.1';
}

export interface LabNode {
  /** Kubernetes node name: node1, node2, ... */
  name: string;
  /** Network namespace holding the node's own stack (eth0, eth1, cni0, flannel.1). */
  netns: string;
  /** The private NAT namespace behind the node's eth0 (the Vagrant NAT network). */
  natNetns: string;
  /** Unique underlay address on eth1 (e.g. 192.168.1.121). */
  underlayIp: string;
  /** The NAT address on eth0, the same on every node (10.0.2.15). */
  natIp: string;
  podCidr: string;
  /** flannel.1's address: the network address of podCidr (/32), e.g. 10.244.1.0. */
  vtepIp: string;
  vtepMac: string;
  vni: number;
  vxlanPort: number;
  /** Address flanneld registered as public-ip (and vxlan `local`): underlayIp, or natIp under nat-public-ip. */
  publicIp: string;
  uplink: 'eth1';
  natInterface: 'eth0';
  vxlanDevice: 'flannel.1';
  bridge: 'cni0';
  /** The IPv6 VTEP (dual-stack and IPv6 labs). An IPv6-only lab has no flannel.1: its IPv4 fields describe only eth0 and eth1. */
  v6?: LabNode6;
}

export interface LabPod {
  name: string;
  namespace: string;
  node: string;
  netns: string;
  /** The pod's address: IPv4, or IPv6 in an IPv6-only lab. */
  ip: string;
  /** Its IPv6 address in a dual-stack lab. */
  ip6?: string;
  mac: string;
}

export interface ActiveFault {
  fault: FaultName;
  /** The node whose state is faulted (for nat-public-ip: every node, listed as '*'). */
  node: string;
  /** Plain description of what was changed, for `lab status`. */
  detail: string;
  /** Pod pairs [from, to] this fault breaks, by pod name (cross-node pairs not listed keep working). */
  breaks: [string, string][];
}

export interface LabState {
  name: string;
  /** Namespace name prefix, `vxt-<name>-`; `lab down` removes every namespace with it. */
  prefix: string;
  createdAt: string;
  underlayCidr: string;
  underlayNetns: string;
  /** Absent: 'ipv4' (labs made before IPv6). */
  stack?: LabStack;
  nodes: LabNode[];
  pods: LabPod[];
  faults: ActiveFault[];
  /** Path of the cluster state (a v1 List, as `kubectl get nodes,pods -A -o json` prints). */
  clusterFile: string;
}
