// The lab's faults: each reproduces a real failure the way it happens on a real cluster, in the
// kernel state AND in the annotations flanneld would have written. Faulted node: node1 (the sender
// of pod-a) or node2 (pod-b's node), as each fault says; `nat-public-ip` hits every node.
import type { ActiveFault, FaultName, LabNode } from './types.js';
import {
  MISMATCH_PORT, MISMATCH_VNI, NAT_IP, NAT_IP6, STALE_UNDERLAY_IP, STALE_UNDERLAY_IP6, vtepMac, vtepMac6, type LabPlan,
} from './plan.js';

/** Faults that change what a node is (its public-ip, VNI, port, MTU, MAC) before the node is built. */
export function applyPlanFaults(plan: LabPlan, faults: readonly FaultName[]): void {
  const node2 = plan.nodes[1];
  for (const f of faults) {
    switch (f) {
      case 'nat-public-ip':
        // flanneld picked the interface with the default route (eth0) on every node: for both families.
        for (const n of plan.nodes) {
          n.publicIp = NAT_IP;
          if (n.v6) n.v6.publicIp = NAT_IP6;
        }
        break;
      case 'vni-mismatch':
        if (node2) node2.vni = MISMATCH_VNI;
        break;
      case 'port-mismatch':
        if (node2) node2.vxlanPort = MISMATCH_PORT;
        break;
      case 'stale-vtep-mac':
        // node2's flannel.1 (and flannel-v6.1) was recreated: its new MAC is what node2 has and announces.
        if (node2) node2.vtepMac = vtepMac(2, 1);
        if (node2?.v6) node2.v6.vtepMac = vtepMac6(2, 1);
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

export function peerEntries(node: LabNode, peer: LabNode, faults: readonly FaultName[], family: 4 | 6 = 4): PeerEntries {
  const p6 = peer.v6;
  const mac = family === 6 && p6 ? p6.vtepMac : peer.vtepMac;
  const e: PeerEntries = { neighMac: mac, fdbMac: mac, fdbDst: family === 6 && p6 ? p6.publicIp : peer.publicIp };
  if (node.name !== 'node1' || peer.name !== 'node2') return e;
  if (faults.includes('stale-vtep-mac')) {
    // node1 missed the update: it still holds node2's old MAC in both tables.
    e.neighMac = family === 6 ? vtepMac6(2, 0) : vtepMac(2, 0);
    e.fdbMac = e.neighMac;
  }
  if (faults.includes('stale-fdb')) e.fdbDst = family === 6 ? STALE_UNDERLAY_IP6 : STALE_UNDERLAY_IP;
  if (faults.includes('missing-fdb')) e.fdbDst = undefined;
  return e;
}

/** The nftables family of a fault's table: `forward-drop` covers both IP families (inet) in a lab that has IPv6. */
export function nftFamilyOf(plan: Pick<LabPlan, 'stack'>, fault: FaultName): string | undefined {
  switch (fault) {
    case 'udp-blocked':
      return 'inet';
    case 'forward-drop':
    case 'forward-rule':
      return plan.stack === 'ipv4' ? 'ip' : 'inet';
    case 'bad-checksum':
      return 'netdev';
    default:
      return undefined;
  }
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
      ruleset: `table ${nftFamilyOf(plan, 'forward-drop')} ${NFT_TABLE}_fwd {
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
      ruleset: `table ${nftFamilyOf(plan, 'forward-rule')} ${NFT_TABLE}_fwdrule {
  chain forward {
    type filter hook forward priority filter; policy accept;
${[...(plan.stack !== 'ipv6' ? [`ip daddr ${node2.podCidr}`] : []), ...(node2.v6 ? [`ip6 daddr ${node2.v6.podCidr}`] : [])].map((m) => `    ${m} counter drop comment "vxtrace lab fault forward-rule"`).join('\n')}
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
  // The VTEPs and addresses the lab's stack has (IPv4: flannel.1; IPv6: flannel-v6.1; dual: both).
  const v4 = plan.stack !== 'ipv6';
  const v6 = plan.stack !== 'ipv4';
  const both = <T>(a: T, b: T): string => [...(v4 ? [a] : []), ...(v6 ? [b] : [])].join(' and ');
  const vtep = both('flannel.1', 'flannel-v6.1');
  const nat = both(NAT_IP, NAT_IP6);
  const mtu = v6 ? 1430 : 1450;
  return faults.map((fault): ActiveFault => {
    switch (fault) {
      case 'nat-public-ip':
        return {
          fault, node: '*', breaks: crossNodePairs(plan, () => true),
          detail: `flanneld chose eth0 on every node: every node registered ${both('public-ip', 'public-ipv6')} ${nat} (the shared NAT address), ${vtep} local ${nat} dev eth0, every FDB entry dst ${nat}`,
        };
      case 'stale-fdb':
        return {
          fault, node: node1.name, breaks: crossNodePairs(plan, between(node1.name, n2)),
          detail: `${node1.name}'s FDB entry for ${n2}'s VTEP points at ${both(STALE_UNDERLAY_IP, STALE_UNDERLAY_IP6)}, an address ${n2} no longer has (it is ${both(node2?.underlayIp, node2?.v6?.underlayIp)})`,
        };
      case 'stale-vtep-mac':
        return {
          fault, node: node1.name, breaks: crossNodePairs(plan, between(node1.name, n2)),
          detail: `${n2}'s ${vtep} was recreated with MAC ${both(node2?.vtepMac, node2?.v6?.vtepMac)}; ${node1.name} still holds the old MAC ${both(vtepMac(2, 0), vtepMac6(2, 0))} in its neighbour and FDB entries`,
        };
      case 'missing-fdb':
        return {
          fault, node: node1.name, breaks: crossNodePairs(plan, between(node1.name, n2)),
          detail: `${node1.name} has no FDB entry for ${n2}'s VTEP MAC ${both(node2?.vtepMac, node2?.v6?.vtepMac)}`,
        };
      case 'vni-mismatch':
        return {
          fault, node: n2, breaks: crossNodePairs(plan, touching(n2)),
          detail: `${n2}'s ${vtep} uses VNI ${MISMATCH_VNI} (annotation too); the other nodes use VNI 1`,
        };
      case 'port-mismatch':
        return {
          fault, node: n2, breaks: crossNodePairs(plan, touching(n2)),
          detail: `${n2}'s ${vtep} uses UDP port ${MISMATCH_PORT}; the other nodes use 8472`,
        };
      case 'mtu':
        return {
          fault, node: node1.name, breaks: [],
          detail: `pods on ${node1.name} have MTU 1500 while ${v6 ? 'flannel-v6.1' : 'flannel.1'} has ${mtu}: packets over ${mtu} bytes with DF set (ping -M do -s 1472) do not cross nodes; small packets do`,
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
          detail: `${n2}'s FORWARD policy drops (as Docker sets it; table ${nftFamilyOf(plan, fault)} ${NFT_TABLE}_fwd): decapsulated packets never reach cni0`,
        };
      case 'forward-rule':
        return {
          fault, node: n2, breaks: crossNodePairs(plan, touching(n2)),
          detail: `a rule in ${n2}'s FORWARD path drops traffic to its pods (${both(`ip daddr ${node2?.podCidr ?? ''}`, `ip6 daddr ${node2?.v6?.podCidr ?? ''}`)} drop; table ${nftFamilyOf(plan, fault)} ${NFT_TABLE}_fwdrule): decapsulated packets never reach cni0`,
        };
      case 'vxlan-closed':
        return {
          fault, node: n2, breaks: crossNodePairs(plan, touching(n2)),
          detail: `${n2}'s ${vtep} ${v4 && v6 ? 'are' : 'is'} down: its UDP ${node2?.vxlanPort ?? 8472} socket is closed (arriving VXLAN is dropped, NO_SOCKET) and its routes via ${vtep} are gone`,
        };
      case 'underlay-unreachable':
        return {
          fault, node: n2, breaks: crossNodePairs(plan, touching(n2)),
          detail: `${n2}'s port on the underlay switch is cut off (its cable in nothing): ${n2}'s state is intact, but ${both(node2?.underlayIp ?? '', node2?.v6?.underlayIp ?? '')} ${v4 && v6 ? 'do' : 'does'} not answer ${both('ARP', 'neighbour solicitations')}, so VXLAN to it is dropped (NEIGH_FAILED) on the senders' eth1`,
        };
    }
  });
}
