// The lab's faults: each reproduces a real failure the way it happens on a real cluster, in the
// kernel state AND in the annotations flanneld would have written. Faulted node: node1 (the sender
// of pod-a) or node2 (pod-b's node), as each fault says; `nat-public-ip` hits every node.
import type { ActiveFault, FaultName, LabNode } from './types.js';
import {
  MISMATCH_PORT, MISMATCH_VNI, NAT_IP, STALE_UNDERLAY_IP, vtepMac, type LabPlan,
} from './plan.js';

/** Faults that change what a node is (its public-ip, VNI, port, MTU, MAC) before the node is built. */
export function applyPlanFaults(plan: LabPlan, faults: readonly FaultName[]): void {
  const node2 = plan.nodes[1];
  for (const f of faults) {
    switch (f) {
      case 'nat-public-ip':
        // flanneld picked the interface with the default route (eth0) on every node.
        for (const n of plan.nodes) n.publicIp = NAT_IP;
        break;
      case 'vni-mismatch':
        if (node2) node2.vni = MISMATCH_VNI;
        break;
      case 'port-mismatch':
        if (node2) node2.vxlanPort = MISMATCH_PORT;
        break;
      case 'stale-vtep-mac':
        // node2's flannel.1 was recreated: its new MAC is what node2 has and announces.
        if (node2) node2.vtepMac = vtepMac(2, 1);
        break;
      case 'mtu':
        for (const p of plan.pods) if (p.node === 'node1') p.podMtu = 1500;
        break;
      default:
        break;
    }
  }
}

/** What `node` programs for `peer` (neighbour, FDB), as flanneld would, with the faults applied. */
export interface PeerEntries {
  neighMac: string;
  fdbMac: string;
  /** undefined: no FDB entry at all (missing-fdb). */
  fdbDst: string | undefined;
}

export function peerEntries(node: LabNode, peer: LabNode, faults: readonly FaultName[]): PeerEntries {
  const e: PeerEntries = { neighMac: peer.vtepMac, fdbMac: peer.vtepMac, fdbDst: peer.publicIp };
  if (node.name !== 'node1' || peer.name !== 'node2') return e;
  if (faults.includes('stale-vtep-mac')) {
    // node1 missed the update: it still holds node2's old MAC in both tables.
    e.neighMac = vtepMac(2, 0);
    e.fdbMac = vtepMac(2, 0);
  }
  if (faults.includes('stale-fdb')) e.fdbDst = STALE_UNDERLAY_IP;
  if (faults.includes('missing-fdb')) e.fdbDst = undefined;
  return e;
}

/** An nftables ruleset a fault loads into a node's namespace (table names are ours alone). */
export interface NftFault {
  node: string;
  ruleset: string;
  /** Interfaces whose checksum offloads must be off for the fault to show, per namespace. */
  offloadOff?: { netns: string; devices: string[] }[];
}

export const NFT_TABLE = 'vxtrace_lab_fault';

export function nftFaults(plan: LabPlan, faults: readonly FaultName[]): NftFault[] {
  const out: NftFault[] = [];
  const [node1, node2] = plan.nodes;
  if (!node1 || !node2) return out;
  if (faults.includes('udp-blocked')) {
    out.push({
      node: node2.name,
      ruleset: `table inet ${NFT_TABLE}_udp {
  chain input {
    type filter hook input priority filter; policy accept;
    udp dport ${node2.vxlanPort} counter drop comment "vxtrace lab fault udp-blocked"
  }
}`,
    });
  }
  if (faults.includes('forward-drop')) {
    out.push({
      node: node2.name,
      ruleset: `table ip ${NFT_TABLE}_fwd {
  chain forward {
    type filter hook forward priority filter; policy drop;
  }
}`,
    });
  }
  if (faults.includes('forward-rule')) {
    // One rule, not a policy: an administrator's (or a policy controller's) rule in the FORWARD
    // path that drops traffic to node2's pods.
    out.push({
      node: node2.name,
      ruleset: `table ip ${NFT_TABLE}_fwdrule {
  chain forward {
    type filter hook forward priority filter; policy accept;
    ip daddr ${node2.podCidr} counter drop comment "vxtrace lab fault forward-rule"
  }
}`,
    });
  }
  if (faults.includes('bad-checksum')) {
    // Rewrite the outer UDP checksum of node1's VXLAN packets on their way out of eth1 (raw
    // payload write: nft does not fix the checksum up). Offloads off on every underlay veth on
    // the way, else veth marks the packet CHECKSUM_UNNECESSARY and the receiver never checks.
    out.push({
      node: node1.name,
      ruleset: `table netdev ${NFT_TABLE}_csum {
  chain egress {
    type filter hook egress device "eth1" priority filter; policy accept;
    udp dport ${node1.vxlanPort} @th,48,16 set 0xbad0 counter comment "vxtrace lab fault bad-checksum"
  }
}`,
      offloadOff: [
        { netns: node1.netns, devices: ['eth1'] },
        { netns: plan.underlayNetns, devices: plan.nodes.map((_, i) => `n${i + 1}`) },
        ...plan.nodes.slice(1).map((n) => ({ netns: n.netns, devices: ['eth1'] })),
      ],
    });
  }
  return out;
}

const crossNodePairs = (plan: LabPlan, involves: (a: string, b: string) => boolean): [string, string][] => {
  const pairs: [string, string][] = [];
  for (const a of plan.pods) for (const b of plan.pods) {
    if (a.node !== b.node && involves(a.node, b.node)) pairs.push([a.name, b.name]);
  }
  return pairs;
};

/** `lab status` text and the pairs each fault breaks (for a ping, which needs both directions). */
export function describeFaults(plan: LabPlan, faults: readonly FaultName[]): ActiveFault[] {
  const node1 = plan.nodes[0]!;
  const node2 = plan.nodes[1];
  const n2 = node2?.name ?? 'node2';
  const between = (x: string, y: string) => (a: string, b: string) => (a === x && b === y) || (a === y && b === x);
  const touching = (x: string) => (a: string, b: string) => a === x || b === x;
  return faults.map((fault): ActiveFault => {
    switch (fault) {
      case 'nat-public-ip':
        return {
          fault, node: '*', breaks: crossNodePairs(plan, () => true),
          detail: `flanneld chose eth0 on every node: every node registered public-ip ${NAT_IP} (the shared NAT address), flannel.1 local ${NAT_IP} dev eth0, every FDB entry dst ${NAT_IP}`,
        };
      case 'stale-fdb':
        return {
          fault, node: node1.name, breaks: crossNodePairs(plan, between(node1.name, n2)),
          detail: `${node1.name}'s FDB entry for ${n2}'s VTEP points at ${STALE_UNDERLAY_IP}, an address ${n2} no longer has (it is ${node2?.underlayIp})`,
        };
      case 'stale-vtep-mac':
        return {
          fault, node: node1.name, breaks: crossNodePairs(plan, between(node1.name, n2)),
          detail: `${n2}'s flannel.1 was recreated with MAC ${node2?.vtepMac}; ${node1.name} still holds the old MAC ${vtepMac(2, 0)} in its neighbour and FDB entries`,
        };
      case 'missing-fdb':
        return {
          fault, node: node1.name, breaks: crossNodePairs(plan, between(node1.name, n2)),
          detail: `${node1.name} has no FDB entry for ${n2}'s VTEP MAC ${node2?.vtepMac}`,
        };
      case 'vni-mismatch':
        return {
          fault, node: n2, breaks: crossNodePairs(plan, touching(n2)),
          detail: `${n2}'s flannel.1 uses VNI ${MISMATCH_VNI} (annotation too); the other nodes use VNI 1`,
        };
      case 'port-mismatch':
        return {
          fault, node: n2, breaks: crossNodePairs(plan, touching(n2)),
          detail: `${n2}'s flannel.1 uses UDP port ${MISMATCH_PORT}; the other nodes use 8472`,
        };
      case 'mtu':
        return {
          fault, node: node1.name, breaks: [],
          detail: `pods on ${node1.name} have MTU 1500 while flannel.1 has 1450: packets over 1450 bytes with DF set (ping -M do -s 1472) do not cross nodes; small packets do`,
        };
      case 'udp-blocked':
        return {
          fault, node: n2, breaks: crossNodePairs(plan, touching(n2)),
          detail: `nftables on ${n2} drops inbound UDP ${node2?.vxlanPort ?? 8472} (table inet ${NFT_TABLE}_udp)`,
        };
      case 'bad-checksum':
        return {
          fault, node: node1.name, breaks: crossNodePairs(plan, touching(node1.name)),
          detail: `${node1.name}'s outgoing VXLAN packets carry a corrupt outer UDP checksum (0xbad0, written at eth1's nftables egress hook); checksum offloads are off on the underlay veths`,
        };
      case 'forward-drop':
        return {
          fault, node: n2, breaks: crossNodePairs(plan, touching(n2)),
          detail: `${n2}'s FORWARD policy drops (as Docker sets it; table ip ${NFT_TABLE}_fwd): decapsulated packets never reach cni0`,
        };
      case 'forward-rule':
        return {
          fault, node: n2, breaks: crossNodePairs(plan, touching(n2)),
          detail: `a rule in ${n2}'s FORWARD path drops traffic to its pods (ip daddr ${node2?.podCidr ?? ''} drop; table ip ${NFT_TABLE}_fwdrule): decapsulated packets never reach cni0`,
        };
      case 'vxlan-closed':
        return {
          fault, node: n2, breaks: crossNodePairs(plan, touching(n2)),
          detail: `${n2}'s flannel.1 is down: its UDP ${node2?.vxlanPort ?? 8472} socket is closed (arriving VXLAN is dropped, NO_SOCKET) and its routes via flannel.1 are gone`,
        };
      case 'underlay-unreachable':
        return {
          fault, node: n2, breaks: crossNodePairs(plan, touching(n2)),
          detail: `${n2}'s port on the underlay switch is cut off (its cable in nothing): ${n2}'s state is intact, but ${node2?.underlayIp ?? ''} does not answer ARP, so VXLAN to it is dropped (NEIGH_FAILED) on the senders' eth1`,
        };
    }
  });
}
