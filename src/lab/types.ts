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

export interface LabOptions {
  /** Lab name: [a-z0-9]{1,8}; namespaces are named `vxt-<name>-...`. Default `lab`. */
  name: string;
  nodes: number;
  podsPerNode: number;
  faults: FaultName[];
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
}

export interface LabPod {
  name: string;
  namespace: string;
  node: string;
  netns: string;
  ip: string;
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
  nodes: LabNode[];
  pods: LabPod[];
  faults: ActiveFault[];
  /** Path of the cluster state (a v1 List, as `kubectl get nodes,pods -A -o json` prints). */
  clusterFile: string;
}
