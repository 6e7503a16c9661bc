// A kernel drop on a followed path, explained: the cause and the fix come from the drop reason (its
// name from the running kernel's BTF, enum skb_drop_reason, never a number), the hop (node, device,
// inner or outer packet, sender or receiver) and that node's state (routes, rp_filter, the
// nftables ruleset, tc filters, the VXLAN device). A reason with a more specific code (FDB_MISSING,
// VNI_MISMATCH, ...) gives that code; one vxtrace knows nothing about gets an honest generic
// sentence. Pure.
import type { ClusterModel, NodeModel } from '../cluster/model.js';
import type { PacketPath } from '../correlate/path.js';
import type { DeviceRole, HopEvent, OuterHeaders } from '../datapath/hop.js';
import { lookupRoute, rpFilterOn, type NftChain } from '../cluster/kernel.js';
import type { Finding } from './finding.js';
import {
  fdbMissingFinding, list, makeFinding, mtuFinding, neighMissingFinding, noDecapStateFinding, oddOnesOut, podNetwork, portMismatchFinding,
  portOf, vniMismatchFinding, vniOf, vtepMacMismatchFinding, vxlanName,
} from './context.js';
import { chainName, isIptablesNft, whatDrops, type FirewallDrop, type FirewallPacket } from './firewall.js';
import { legacyDeleteCommand } from '../cluster/iptables.js';
import { routeByInterface, routeText } from './reach.js';

/** Where the kernel dropped it, and what it dropped. */
export interface DropSite {
  node: string;
  device: string;
  reason: string;
  /** The kernel function that freed it. */
  location?: string;
  role: DeviceRole;
  /** The node's model (undefined: not a node of the cluster). */
  at?: NodeModel;
  /** What the kernel freed: the VXLAN datagram (outer) or the pod's packet (inner). */
  layer: 'outer' | 'inner';
  /** The sending node (the pod's), the receiving node (the destination pod's), or neither. */
  side: 'sender' | 'receiver' | 'other';
  /** Decapsulated on this node before the drop. */
  decapsulated: boolean;
  /** Outer headers of the dropped datagram (else of the path's underlay leg). */
  outer?: OuterHeaders;
  /** The last hop seen on that node before the drop. */
  after?: HopEvent;
}

export interface DropContext {
  path: PacketPath;
  model: ClusterModel;
  sender?: NodeModel;
  peer?: NodeModel;
  /** The packet in words: `default/pod-a (10.244.1.10) -> default/pod-b (10.244.2.10) ICMP echo request id 7 seq 1`. */
  what: string;
  site: DropSite;
  /** `dropped on node2's eth1 (ip_rcv_core), reason X`, the evidence every drop finding starts from. */
  observed: string;
}

/** A drop reason's cause and fix as DROPPED, naming the node(s) to change. */
interface Verdict {
  cause: string;
  fix: string;
  nodes?: string[];
  facts?: Record<string, string | number | boolean | string[]>;
}

type Rule = (c: DropContext) => Finding | Verdict | undefined;

const isFinding = (x: Finding | Verdict): x is Finding => 'code' in x;

export const NEIGH_REASONS = ['NEIGH_FAILED', 'NEIGH_QUEUEFULL', 'NEIGH_DEAD', 'NEIGH_CREATEFAIL'];
export const MTU_REASONS = ['PKT_TOO_BIG', 'FRAG_REASM_TIMEOUT', 'IP_FRAG_TOO_BIG', 'FRAG_TOO_FAR', 'IPV6_FRAG_TOO_BIG', 'IP_FRAGMENTATION_FAILED'];

export function dropSite(path: PacketPath, model: ClusterModel, sender: NodeModel | undefined, peer: NodeModel | undefined): DropSite {
  const d = path.drop!;
  const at = model.node(d.node);
  const dropHop = path.hops.find((h) => h.event.kind === 'drop')?.event;
  const decapsulated = path.hops.some((h) => h.event.node === d.node && h.event.role === 'vtep' && h.event.direction === 'ingress' && h.event.kind === 'tc');
  const role: DeviceRole = dropHop?.role ?? (at && d.device === vxlanName(at) ? 'vtep' : 'other');
  const outer = dropHop?.outer ?? (path.outer && (role === 'uplink' || (!decapsulated && path.hops.some((h) => h.event.node === d.node && h.event.outer))) ? path.outer : undefined);
  const layer = dropHop?.outer || role === 'uplink' ? 'outer' : 'inner';
  const side = sender && d.node === sender.name ? 'sender' : peer && d.node === peer.name ? 'receiver' : 'other';
  const before = path.hops.filter((h) => h.event.kind === 'tc' && h.event.node === d.node);
  return { node: d.node, device: d.device, reason: d.reason, location: d.location, role, at, layer, side, decapsulated, outer, after: before[before.length - 1]?.event };
}

/** `node2's eth1 (ip_rcv_core)` */
const whereOf = (s: DropSite): string => `${s.node}'s ${s.device}${s.location ? ` (${s.location})` : ''}`;
/** `the VXLAN datagram 192.168.1.121 -> 192.168.1.122 UDP 8472` or `the pod's packet` */
const layerText = (s: DropSite): string => (s.layer === 'inner' ? "the pod's packet" : s.outer ? `the VXLAN datagram ${s.outer.src} -> ${s.outer.dst} UDP ${s.outer.dstPort}` : 'the VXLAN datagram');

// ---- the reasons ----

const udpCsum: Rule = (c) => {
  const { site: s, model, sender } = c;
  if (s.layer === 'outer' && (s.outer || c.path.outer)) {
    const src = (s.outer ?? c.path.outer)!.src;
    const culprit = model.nodeByUnderlay(src) ?? sender;
    if (culprit) return badChecksumFinding(culprit, c.observed);
  }
  return {
    cause: `${c.what} arrived at ${whereOf(s)} with a wrong UDP checksum, so the kernel discarded it.`,
    fix: `on ${s.node}: find where it is corrupted: capture on ${s.device} (tcpdump -vv -i ${s.device} udp) and on the interface it came from; a NIC or veth checksum offload (ethtool -K ${s.device} rx off tx off to rule it out) or a rule rewriting packets (nft list ruleset)`,
  };
};

const ipCsum: Rule = (c) => {
  const { site: s, model, sender } = c;
  if (s.layer === 'outer' && s.outer) {
    const culprit = model.nodeByUnderlay(s.outer.src) ?? sender;
    const from = culprit && culprit.name !== s.node ? culprit : undefined;
    return {
      cause: `the outer IPv4 header of ${c.what} had a wrong checksum when it reached ${whereOf(s)}: it was corrupted after ${from ? `${from.name} sent it` : 'it was sent'} (a NIC, a packet-rewriting rule, or the underlay).`,
      fix: `${from ? `on ${from.name}: look for a rule rewriting VXLAN packets (nft list ruleset) and rule out the NIC (ethtool -K ${from.underlay.interface ?? 'eth1'} tx off); ` : ''}on ${s.node}: capture on ${s.device} (tcpdump -vv -i ${s.device} udp port ${s.outer.dstPort} shows "bad cksum") and compare with a capture where it was sent`,
      nodes: [s.node, ...(from ? [from.name] : [])],
    };
  }
  return {
    cause: `${c.what} had a wrong IPv4 header checksum when it reached ${whereOf(s)}, so the kernel discarded it.`,
    fix: `on ${s.node}: capture on ${s.device} (tcpdump -vv -i ${s.device}) to see who sends it so; a checksum offload (ethtool -K ${s.device} tx off) or a packet-rewriting rule (nft list ruleset) on the way`,
  };
};

const vniNotFound: Rule = (c) => {
  const { site: s, model, sender } = c;
  const odd = oddOnesOut(model, vniOf, 1);
  const o = odd?.odd.find((x) => x.node === s.at || x.node === sender);
  if (odd && o) return vniMismatchFinding(o.node, o.value, odd.expected, odd.agreeing, c.observed);
  if (c.site.reason !== 'VXLAN_VNI_NOT_FOUND') return undefined;
  const vni = s.outer?.vni ?? c.path.outer?.vni;
  const vx = s.at?.kernel?.vxlan;
  const why = vni === undefined
    ? `the VXLAN datagram ${c.what} came in had a VNI no VXLAN device on ${s.node} uses${vx ? ` (its ${vx.name} uses VNI ${vx.vni})` : ''}`
    : vx && vx.vni === vni
      ? `the datagram's VNI ${vni} is ${vx.name}'s own, yet no device took it: ${vx.name} was down or being recreated when it arrived`
      : `${s.node} has no VXLAN device with VNI ${vni}${vx ? ` (its ${vx.name} uses VNI ${vx.vni})` : ''}`;
  return {
    cause: `${why}, so the kernel discarded it on ${whereOf(s)}.`,
    fix: `on ${s.node}: check ip -d link show ${vxlanName(s.at)} (id, and that it is up) against the cluster's Backend VNI and restart flanneld`,
  };
};

const invalidHeader: Rule = (c) => {
  const found = vniNotFound(c);
  if (found) return found;
  const { site: s, model } = c;
  const sentBy = s.outer ? model.nodeByUnderlay(s.outer.src) : undefined;
  const from = sentBy && sentBy.name !== s.node ? sentBy : undefined;
  const port = s.outer?.dstPort ?? (s.at ? portOf(s.at) : undefined) ?? 8472;
  return {
    cause: `the UDP ${port} datagram that reached ${whereOf(s)} carrying ${c.what} is not valid VXLAN (its flags lack the I bit or set reserved bits): something other than a VTEP sends to that port, or the sender's device uses an extension (GBP, GPE) that ${s.node}'s ${vxlanName(s.at)} is not set up for.`,
    fix: from
      ? `on ${from.name}: ip -d link show ${vxlanName(from)} (look for gbp or gpe) and recreate it as flanneld does (restart flanneld); compare with ${s.node}'s ${vxlanName(s.at)}`
      : `on ${s.node}: capture on ${s.device} (tcpdump -i ${s.device} -vv udp port ${port}) to see who sends it, and compare its VXLAN options with ${vxlanName(s.at)}'s (ip -d link show)`,
    nodes: from ? [from.name] : [s.node],
  };
};

const noSocket: Rule = (c) => {
  const { site: s, model, sender } = c;
  if (s.layer !== 'outer') return undefined;
  const odd = oddOnesOut(model, portOf, 8472);
  const o = odd?.odd.find((x) => x.node === s.at || x.node === sender);
  if (odd && o) return portMismatchFinding(o.node, o.value, odd.expected, odd.agreeing, c.observed);
  const port = s.outer?.dstPort ?? c.path.outer?.dstPort ?? 8472;
  if (s.at?.kernel && (!s.at.kernel.vxlan || !s.at.kernel.vxlan.up)) return noDecapStateFinding(s.at, c.observed);
  const vx = s.at?.kernel?.vxlan;
  if (vx && vx.port !== port && sender) {
    return {
      cause: `${sender.name} sent ${c.what} to UDP ${port}, but ${s.node}'s ${vx.name} listens on UDP ${vx.port}: nothing on ${s.node} listens on ${port}.`,
      fix: `give every node's flanneld the same Backend Port (net-conf.json; flannel's default is 8472): on ${sender.name}: ip -d link show ${vxlanName(sender)} (dstport), and restart flanneld there`,
      nodes: [sender.name],
    };
  }
  return {
    cause: `nothing on ${s.node} listens on UDP ${port}: no VXLAN device there uses that port.`,
    fix: `on ${s.node}: check ip -d link show ${vxlanName(s.at)} (dstport, and that it is up) and restart flanneld with the cluster's Backend Port (default 8472)`,
  };
};

const noRemote: Rule = (c) => {
  const { site: s, model, sender, peer } = c;
  if (sender && peer && s.side === 'sender' && (s.reason === 'VXLAN_NO_REMOTE' || s.device === vxlanName(sender))) {
    return fdbMissingFinding(model, sender, peer, model.currentVtepMac(peer) ?? 'unknown', c.observed);
  }
  return undefined;
};

/** What a neighbour does not answer: ARP (IPv4) or neighbour solicitations (IPv6), and how to ask it by hand. */
const ask = (ip: string): string => (ip.includes(':') ? 'neighbour solicitations' : 'ARP');
const probe = (dev: string, ip: string): string => (ip.includes(':') ? `ping -c 1 -I ${dev} ${ip}` : `arping -I ${dev} ${ip}`);

const neighbour: Rule = (c) => {
  const { site: s, model, sender, peer, path } = c;
  const k = s.at?.kernel;
  const vx = vxlanName(s.at);
  // On the sender, toward a pod on another node: the peer's VTEP neighbour entry on the VXLAN
  // device (flanneld's, permanent) is missing.
  const innerRoute = k ? lookupRoute(k.routes, path.inner.dst) : undefined;
  if (sender && peer && s.side === 'sender' && s.layer === 'inner' && (s.device === vx || innerRoute?.device === vx)) {
    return neighMissingFinding(sender, peer, model.currentVtepMac(peer), c.observed);
  }
  // On the receiver: the destination pod does not answer ARP on the pod bridge.
  if (s.side === 'receiver' || (s.side === 'other' && s.layer === 'inner')) {
    const dev = innerRoute?.device ?? s.device;
    return {
      cause: `${path.dstPod ?? path.inner.dst} (${path.inner.dst}) does not answer ${ask(path.inner.dst)} on ${s.node}'s ${dev}${innerRoute ? ` (route ${routeText(innerRoute)})` : ''}, so the kernel gave up on ${c.what}: the pod is gone, or its interface is down.`,
      fix: `on ${s.node}: ip neigh show ${path.inner.dst} dev ${dev}; check that the pod is running with that address and that its veth is up and on ${dev} (bridge link show master ${dev})`,
    };
  }
  // On the sender's underlay: the next hop does not answer ARP.
  const fdbDst = sender && path.hops.find((h) => h.event.node === sender.name && h.event.role === 'vtep')?.event.innerDstMac;
  const dst = s.outer?.dst ?? path.outer?.dst ?? (fdbDst ? sender?.kernel?.fdb.find((e) => e.mac === fdbDst.toLowerCase())?.dst : undefined) ?? peer?.underlay.address;
  if (!dst) return undefined;
  const route = k ? lookupRoute(k.routes, dst) : undefined;
  const nextHop = route?.gateway ?? dst;
  const dev = route?.device ?? s.device;
  const how = route ? ` (route ${routeText(route)})` : '';
  const owner = model.nodeByUnderlay(dst);
  if (route?.gateway) {
    return {
      cause: `${s.node} sends ${layerText(s)} to ${dst} through the gateway ${nextHop} on ${dev}${how}, and ${nextHop} does not answer ${ask(nextHop)}, so the kernel gave up on it.`,
      fix: `on ${s.node}: check that the gateway ${nextHop} is up and on ${dev}'s network (ip neigh show ${nextHop} dev ${dev}; ${probe(dev, nextHop)}), or route ${dst} by the interface that reaches the other nodes`,
    };
  }
  if (owner && owner.name !== s.node) {
    const lower = owner.underlay.interface ? owner.kernel?.links.find((l) => l.name === owner.underlay.interface) : undefined;
    if (lower && (!lower.up || lower.noCarrier)) {
      return {
        cause: `${owner.name}'s underlay address ${dst} does not answer ${ask(dst)} on ${s.node}'s ${dev}${how}: ${owner.name}'s ${lower.name} is ${!lower.up ? 'down' : 'without carrier'}.`,
        fix: `on ${owner.name}: ${!lower.up ? `ip link set ${lower.name} up` : `reconnect ${lower.name} (no carrier: its cable, switch port or peer is down)`}`,
        nodes: [owner.name],
        facts: { peer: owner.name, address: dst, nextHop },
      };
    }
    return {
      cause: `${owner.name}'s underlay address ${dst} does not answer ${ask(dst)} on ${s.node}'s ${dev}${how}: ${owner.name} is not reachable on the underlay from ${s.node} (the link, switch port or VLAN between them), although the address is right.`,
      fix: `check the underlay between ${s.node}'s ${dev} and ${owner.name}: from ${s.node}: ${probe(dev, dst)} and ip neigh show ${dst} dev ${dev}; on ${owner.name}: ip addr show ${owner.underlay.interface ?? 'eth1'} (it must hold ${dst} and be up), then the switch port and VLAN that connect them`,
      nodes: [s.node, owner.name],
      facts: { peer: owner.name, address: dst, nextHop },
    };
  }
  return {
    cause: `${nextHop} does not answer ${ask(nextHop)} on ${s.node}'s ${dev}${how}, so the kernel gave up on ${layerText(s)}; ${nextHop} is not an address of any node.`,
    fix: `on ${s.node}: check why it sends to ${nextHop} (ip route get ${dst}; the FDB entry on ${vx}: bridge fdb show dev ${vx}) and that ${nextHop} is on ${dev}'s network`,
  };
};

const otherHost: Rule = (c) => {
  const { site: s, model, sender, peer } = c;
  if (sender && peer && s.node === peer.name && s.decapsulated) {
    const seen = c.path.hops.find((h) => h.event.node === sender.name && h.event.role === 'vtep')?.event.innerDstMac?.toLowerCase();
    const current = model.currentVtepMac(peer);
    if (seen && current && seen !== current) return vtepMacMismatchFinding(model, sender, peer, seen, current, c.observed);
  }
  const link = s.at?.kernel?.links.find((l) => l.name === s.device);
  if (s.layer === 'outer' && s.outer && link && sender && sender.name !== s.node && s.outer.dstMac.toLowerCase() !== link.mac) {
    const dev = sender.underlay.interface ?? 'eth1';
    return {
      cause: `the VXLAN frame reached ${s.node}'s ${s.device} addressed to MAC ${s.outer.dstMac.toLowerCase()}, which is not ${s.device}'s (${link.mac}): ${sender.name}'s ARP entry for ${s.outer.dst} is stale (${s.node}'s NIC changed, or another host answers for that address).`,
      fix: `on ${sender.name}: ip neigh replace ${s.outer.dst} lladdr ${link.mac} dev ${dev} (or ip neigh flush ${s.outer.dst} dev ${dev}, and find who else answers ARP for ${s.outer.dst})`,
      nodes: [sender.name],
    };
  }
  const vtep = s.at && s.device === vxlanName(s.at);
  return {
    cause: `the frame reached ${s.node}'s ${s.device} with a destination MAC that is not that device's, so the kernel discarded it.`,
    fix: vtep
      ? `on ${s.node}: compare ${s.device}'s MAC (ip link show ${s.device}) with the sender's neighbour entry for ${peer?.vtepIp ?? "the peer's VTEP"}, and restart flanneld on the sender`
      : `on ${s.node}: compare ${s.device}'s MAC (ip link show ${s.device}) with the destination MAC of the frames that arrive (tcpdump -e -i ${s.device}); the sender's neighbour entry for this address is stale`,
  };
};

const tooBig: Rule = (c) => {
  const { sender, site: s } = c;
  const n = sender ?? s.at;
  if (!n) return undefined;
  const mtu = n.kernel?.vxlan?.mtu ?? 1450;
  return mtuFinding(n, 'error', `${c.what} (${c.path.inner.ipLength} bytes) is too big for the path (${vxlanName(n)} MTU ${mtu}), so the kernel dropped it (${s.reason}).`,
    c.observed, `at most ${mtu} bytes`, { ipLength: c.path.inner.ipLength, reason: s.reason });
};

/** The firewall packet and the hooks it passes at this drop, in the order it meets them. */
function firewallView(c: DropContext): { packet: FirewallPacket; hooks: string[]; receiving: boolean } {
  const { site: s, model, path } = c;
  const vx = vxlanName(s.at);
  if (s.layer === 'outer' && s.outer) {
    const receiving = model.nodesHoldingAddress(s.outer.dst).some((n) => n.name === s.node) || s.side === 'receiver';
    const o = s.outer;
    const packet: FirewallPacket = { family: o.family, src: o.src, dst: o.dst, protocol: 17, srcPort: o.srcPort, dstPort: o.dstPort, ...(receiving ? { iif: s.device } : { oif: s.device }) };
    return { packet, hooks: receiving ? ['ingress', 'prerouting', 'input'] : ['output', 'postrouting', 'egress'], receiving };
  }
  const i = path.inner;
  const bridge = s.at?.kernel?.routes.find((r) => s.at!.podCidrs.includes(r.dst) && r.device !== vx)?.device ?? 'cni0';
  const receiving = s.side === 'receiver' || s.decapsulated;
  const packet: FirewallPacket = { family: i.family, src: i.src, dst: i.dst, protocol: i.protocol, srcPort: i.srcPort, dstPort: i.dstPort, iif: receiving ? vx : bridge, oif: receiving ? bridge : vx };
  return { packet, hooks: ['ingress', 'prerouting', 'forward', 'postrouting'], receiving };
}

/**
 * The iptables command (with its table) that changes a chain, when one does: a legacy chain's own
 * (`iptables-legacy`), or iptables for the tables iptables-nft made. undefined: nft only.
 */
function iptablesOf(ch: NftChain): string | undefined {
  const table = ch.table === 'filter' ? '' : ` -t ${ch.table}`;
  if (ch.legacy) return `${ch.legacy}${table}`;
  if (isIptablesNft(ch)) return `${ch.family === 'ip6' ? 'ip6tables' : 'iptables'}${table}`;
  return undefined;
}

/** `nft insert rule inet filter input ip saddr { 192.168.1.121, 192.168.1.123 } udp dport 8472 accept` and friends. */
function acceptCommands(c: DropContext, drop: FirewallDrop, outer: boolean): string[] {
  const { site: s, model } = c;
  const ch = drop.chain;
  const where = `${ch.family} ${ch.table} ${ch.name}`;
  const verb = drop.rule ? 'insert' : 'add';
  const fam = (c.site.outer?.family ?? c.path.inner.family) === 6 ? 'ip6' : 'ip';
  if (outer) {
    const port = s.outer?.dstPort ?? 8472;
    const peers = model.nodes.filter((n) => n.name !== s.node && n.underlay.address && n.underlay.address.includes(':') === (fam === 'ip6')).map((n) => n.underlay.address!);
    const from = peers.length ? `${fam} saddr ${peers.length === 1 ? peers[0] : `{ ${peers.join(', ')} }`} ` : '';
    const nft = `nft ${verb} rule ${where} ${from}udp dport ${port} accept`;
    const ipt = iptablesOf(ch);
    const accept = ipt ? `${ipt} -I ${ch.name} -p udp --dport ${port}${peers.length ? ` -s ${peers.join(',')}` : ''} -j ACCEPT` : undefined;
    // A legacy chain is changed with its own command only; iptables-nft's tables with nft too.
    return ch.legacy ? [accept!] : accept ? [accept, nft] : [nft];
  }
  const net = podNetwork(model, c.path.inner.family) ?? (fam === 'ip6' ? '::/0' : '10.244.0.0/16');
  const ipt = iptablesOf(ch);
  if (ipt) return [`${ipt} -I ${ch.name} -s ${net} -j ACCEPT && ${ipt} -I ${ch.name} -d ${net} -j ACCEPT`];
  return [`nft ${verb} rule ${where} ${fam} saddr ${net} accept && nft ${verb} rule ${where} ${fam} daddr ${net} accept`];
}

const netfilter: Rule = (c) => {
  const { site: s, model, peer, path } = c;
  const port = s.outer?.dstPort ?? path.outer?.dstPort ?? (s.at ? portOf(s.at) : undefined) ?? 8472;
  const vx = vxlanName(s.at);
  const outer = s.layer === 'outer' || (!s.decapsulated && s.device !== 'cni0' && !!path.outer && s.role === 'uplink');
  const chains = s.at?.kernel?.firewall;
  const view = chains ? firewallView(c) : undefined;
  const drop = chains && view ? whatDrops(chains, view.packet, view.hooks, s.device) : undefined;
  const net = podNetwork(model, path.inner.family) ?? '10.244.0.0/16';
  if (drop) {
    const what = drop.rule ? `${chainName(drop.chain)}, ${drop.chain.legacy ? `rule ${drop.rule.handle}` : `rule handle ${drop.rule.handle}`}: ${drop.rule.text}` : `${chainName(drop.chain)} (hook ${drop.hook}) has policy drop and no rule in it accepts this packet`;
    const maybe = drop.certain ? '' : ' (as far as vxtrace can evaluate the ruleset: some conditions, e.g. ct state or named sets, are unknown)';
    const remove = !drop.rule ? undefined : drop.chain.legacy ? legacyDeleteCommand(drop.chain, drop.rule) : `nft delete rule ${drop.chain.family} ${drop.chain.table} ${drop.chain.name} handle ${drop.rule.handle}`;
    const accept = acceptCommands(c, drop, outer && !!view?.receiving);
    const policy = drop.rule ? undefined : iptablesOf(drop.chain) ? `${iptablesOf(drop.chain)} -P ${drop.chain.name} ACCEPT` : `nft chain ${drop.chain.family} ${drop.chain.table} ${drop.chain.name} '{ policy accept; }'`;
    const facts = { table: drop.chain.legacy ? `${drop.chain.legacy} ${drop.chain.table}` : `${drop.chain.family} ${drop.chain.table}`, chain: drop.chain.name, hook: drop.hook, ...(drop.rule ? { handle: drop.rule.handle, rule: drop.rule.text } : { policy: 'drop' }) };
    if (outer && view?.receiving) {
      return {
        cause: `a firewall rule on ${s.node} drops inbound VXLAN (UDP ${port}) before ${vx} can decapsulate it: ${what}${maybe}.`,
        fix: `on ${s.node}: ${remove ? `accept UDP ${port} from the other nodes ahead of the rule that drops it: ${accept.join(', or ')}; or remove that rule: ${remove}` : `accept UDP ${port} from the other nodes in that chain: ${accept.join(', or ')}`}`,
        facts,
      };
    }
    if (view?.receiving && drop.hook === 'forward' && !drop.rule) {
      return {
        cause: `${s.node}'s FORWARD chain drops forwarded pod traffic by its policy: ${what} (a policy of drop, as Docker sets it), so decapsulated packets never reach ${peer && peer.name === s.node ? 'cni0' : 'their pod'}${maybe}.`,
        fix: `on ${s.node}: allow the pod network ${net} through it, as flanneld does unless --iptables-forward-rules=false: ${accept.join(', or ')}; or ${policy}`,
        facts,
      };
    }
    return {
      cause: `a firewall rule on ${s.node} drops ${outer ? `VXLAN (UDP ${port})` : `pod traffic ${path.inner.src} -> ${path.inner.dst}`} in the ${drop.hook === 'forward' ? 'FORWARD path' : `${drop.hook} hook`}${s.decapsulated ? ` after ${vx} decapsulated it` : ''}: ${what}${maybe}.`,
      fix: `on ${s.node}: ${remove ? `remove it (${remove}), or accept ${outer ? 'VXLAN from the other nodes' : `the pod network ${net}`} ahead of it: ${accept.join(', or ')}` : `${accept.join(', or ')}; or ${policy}`}`,
      facts,
    };
  }
  if (outer && s.side === 'sender') {
    return {
      cause: `a firewall rule on ${s.node} drops its own outbound VXLAN (UDP ${port}) after ${vx} encapsulated it.`,
      fix: `on ${s.node}: accept UDP ${port} to the other nodes in the output and postrouting chains (nft list ruleset${chains ? '' : '; vxtrace could not read the ruleset there'}), and remove the rule that drops it`,
    };
  }
  if (outer) {
    return {
      cause: `a firewall rule on ${s.node} drops inbound VXLAN (UDP ${port}) before ${vx} can decapsulate it.`,
      fix: `on ${s.node}: accept UDP ${port} from the other nodes (nft insert rule inet filter input udp dport ${port} accept, or iptables -I INPUT -p udp --dport ${port} -j ACCEPT) and remove the rule that drops it (nft list ruleset${chains ? '' : '; vxtrace could not read the ruleset there'})`,
    };
  }
  return {
    cause: `${s.node}'s FORWARD chain drops forwarded pod traffic (a policy of drop, as Docker sets it), so decapsulated packets never reach ${peer && peer.name === s.node ? 'cni0' : 'their pod'}.`,
    fix: `on ${s.node}: allow the pod network through FORWARD: iptables -A FORWARD -s ${net} -j ACCEPT && iptables -A FORWARD -d ${net} -j ACCEPT (flanneld adds these unless --iptables-forward-rules=false), or iptables -P FORWARD ACCEPT; with nftables, accept ${net} in the forward chain whose policy is drop (nft list ruleset${chains ? '' : '; vxtrace could not read the ruleset there'})`,
  };
};

const rpFilter: Rule = (c) => {
  const { site: s, model, path } = c;
  const k = s.at?.kernel;
  const src = s.layer === 'outer' && s.outer ? s.outer.src : path.inner.src;
  const rp = k ? rpFilterOn(k, s.device) : undefined;
  const mode = rp ? ['off', 'strict', 'loose'][rp.value] : undefined;
  const sysctl = rp ? ` (rp_filter ${mode} on ${s.device}: net.ipv4.conf.all.rp_filter=${rp.all}, net.ipv4.conf.${s.device}.rp_filter=${rp.device}; the larger is in force)` : '';
  const back = k ? lookupRoute(k.routes, src) : undefined;
  const backText = back ? `the route back to ${src} is ${routeText(back)}, which ${back.device === s.device ? `leaves by ${s.device} too (a policy-routing rule, ip rule, or a route that changed since, must have sent it elsewhere)` : `leaves by ${back.device}, not ${s.device}`}` : `there is no route back to ${src}`;
  // The route that would make the path symmetric, as flanneld (pod CIDRs) or the underlay (peers) has it.
  let routeFix: string | undefined;
  if (back?.device === s.device || (s.at && model.nodesHoldingAddress(src).includes(s.at))) {
    // Already symmetric by the main table (or its own address): no route to change here.
  } else if (s.layer === 'inner') {
    const owner = model.podCidrOwner(src);
    if (owner && owner.node.name !== s.node && owner.node.vtepIp) routeFix = `ip route replace ${owner.cidr} via ${owner.node.vtepIp} dev ${vxlanName(s.at)} onlink (flanneld's route for ${owner.node.name}'s pods)`;
  } else if (s.at) {
    routeFix = routeByInterface(model, s.at, src, s.device);
  }
  const loosen = `sysctl -w net.ipv4.conf.${s.device}.rp_filter=2 (loose mode: ${rp ? `the value in force is the larger of conf.all (${rp.all}) and conf.${s.device}` : `it takes the larger of conf.all and conf.${s.device}`}; or net.ipv4.conf.all.rp_filter=2 for every device)`;
  return {
    cause: `reverse-path filtering on ${s.node}${sysctl} dropped ${layerText(s)} from ${src} arriving on ${s.device}: ${backText}.`,
    fix: `on ${s.node}: ${routeFix ? `make the path symmetric: ${routeFix}; or loosen the filter: ${loosen}` : back?.device === s.device ? `look for the policy-routing rule that sends replies to ${src} elsewhere (ip rule; ip route get ${src} from <its address>), or loosen the filter: ${loosen}` : `route ${src} back by ${s.device}, or loosen the filter: ${loosen}`}`,
    facts: { source: src, ...(back ? { routeBack: routeText(back) } : {}), ...(rp ? { rpFilter: rp.value } : {}) },
  };
};

const inHeader: Rule = (c) => {
  const { site: s, model, path } = c;
  const counts = new Map<string, number>();
  for (const h of path.hops) if (h.event.kind === 'tc') counts.set(`${h.event.node}/${h.event.device}/${h.event.direction}`, (counts.get(`${h.event.node}/${h.event.device}/${h.event.direction}`) ?? 0) + 1);
  const passes = Math.max(0, ...counts.values()) + (path.hopsDiscarded ?? 0);
  const looping = [...counts.entries()].filter(([, n]) => n >= 2).map(([k]) => k);
  if (passes < 3 || !looping.length) {
    const ttl = path.hops[0]?.event.inner.ttl ?? path.inner.ttl;
    return {
      cause: `${c.what} had an invalid IP header when it reached ${whereOf(s)} (its TTL ran out, TTL ${ttl} when first seen, or its length or version fields are wrong), so the kernel discarded it.`,
      fix: `on ${s.node}: capture on ${s.device} (tcpdump -vv -i ${s.device}) to see the header${s.layer === 'outer' ? `; the sender's VXLAN device TTL (ip -d link show ${vxlanName(c.sender)}: ttl)` : ''}`,
    };
  }
  const nodes = [...new Set(looping.map((k) => k.split('/')[0]!))];
  const where = list(looping.map((k) => { const [n, d] = k.split('/'); return `${n}'s ${d}`; }).filter((x, i, a) => a.indexOf(x) === i));
  const owner = model.podCidrOwner(path.inner.dst);
  if (nodes.length >= 2 && owner) {
    // Back and forth between nodes: a node that is not the owner routes it back, or the owner does not keep it.
    const wrong = nodes.map((n) => model.node(n)).filter((n): n is NodeModel => !!n).map((n) => ({ n, r: n.kernel ? lookupRoute(n.kernel.routes, path.inner.dst) : undefined }));
    const ownerSide = wrong.find((x) => x.n === owner.node);
    if (ownerSide?.r && ownerSide.r.device === vxlanName(owner.node)) {
      return {
        cause: `${c.what} looped between ${list(nodes)} (${passes} passes through ${where}) until its TTL ran out: ${owner.node.name} owns ${owner.cidr} but routes ${path.inner.dst} back over ${ownerSide.r.device} (${routeText(ownerSide.r)}).`,
        fix: `on ${owner.node.name}: route its own pod CIDR to its pod bridge: ip route replace ${owner.cidr} dev cni0 (and remove ${routeText(ownerSide.r)}), or check that its podCIDR is what flanneld and the CNI use`,
        nodes: [owner.node.name],
      };
    }
    const other = wrong.find((x) => x.n !== owner.node && x.r);
    if (other?.r && owner.node.vtepIp) {
      return {
        cause: `${c.what} looped between ${list(nodes)} (${passes} passes through ${where}) until its TTL ran out: ${other.n.name} routes ${path.inner.dst} by ${routeText(other.r)}, not to ${owner.node.name}, which owns ${owner.cidr}.`,
        fix: `on ${other.n.name}: ip route replace ${owner.cidr} via ${owner.node.vtepIp} dev ${vxlanName(other.n)} onlink (flanneld's route)`,
        nodes: [other.n.name],
      };
    }
  }
  return {
    cause: `${c.what} looped (${passes} passes through ${where}) until its TTL ran out, and the kernel dropped it on ${whereOf(s)}.`,
    fix: `on ${list(nodes)}: find what sends it back (ip route get ${path.inner.dst}; bridge fdb show dev ${vxlanName(s.at)}: an entry pointing at an address of the node itself loops the packet)`,
    nodes,
  };
};

const noRoute: Rule = (c) => {
  const { site: s, model, path, peer, sender } = c;
  const vx = vxlanName(s.at);
  // The VXLAN device cannot route its datagram to the peer's underlay address.
  if (s.at && (s.layer === 'outer' || (s.side === 'sender' && s.device === vx && peer && s.reason === 'IP_OUTNOROUTES'))) {
    const dst = s.outer?.dst ?? (peer?.underlay.address ?? path.outer?.dst);
    if (dst && model.nodesHoldingAddress(dst).includes(s.at)) {
      return {
        cause: `${s.node} received ${layerText(s)} for ${dst}, its own address, but found no route for it: the local route of ${dst} was missing (the address removed, or being re-added).`,
        fix: `on ${s.node}: ip addr show dev ${s.at.kernel?.addresses.find((a) => a.address === dst)?.device ?? s.device} (it must hold ${dst}) and ip route show table local ${dst}; re-adding the address restores the route`,
      };
    }
    if (dst) {
      const iface = s.at.underlay.interface ?? s.at.kernel?.vxlan?.lowerDevice;
      const now = s.at.kernel ? lookupRoute(s.at.kernel.routes, dst) : undefined;
      const cmd = iface ? routeByInterface(model, s.at, dst, iface) : undefined;
      const back = now && now.device === iface ? ` (its routes now have ${routeText(now)}: the route came back after the drop, or another routing table was used)` : now ? ` (its main table now sends it by ${routeText(now)})` : '';
      return {
        cause: `${s.node} had no route to ${dst}${peer && peer.underlay.address === dst ? `, ${peer.name}'s underlay address,` : ''} so ${vx} could not send the VXLAN datagram for ${c.what}${back}.`,
        fix: `on ${s.node}: ${cmd ?? `add a route to ${dst}${iface ? ` by ${iface}` : ''} (the interface that carries the routes to the other nodes)`}`,
      };
    }
  }
  const owner = model.podCidrOwner(path.inner.dst);
  if (owner && owner.node.name !== s.node && owner.node.vtepIp && s.at) {
    return {
      cause: `${s.node} has no route to ${path.inner.dst} (${owner.node.name}'s pod CIDR ${owner.cidr}), so it cannot send ${c.what} on.`,
      fix: `on ${s.node}: ip route replace ${owner.cidr} via ${owner.node.vtepIp} dev ${vx} onlink (the route flanneld programs for ${owner.node.name}; restart flanneld on ${s.node} if it is missing)`,
    };
  }
  if (owner && owner.node.name === s.node) {
    const gw = s.at?.kernel?.addresses.find((a) => a.device === 'cni0')?.address;
    return {
      cause: `${s.node} has no route to its own pod ${path.inner.dst} (${owner.cidr}), so it cannot hand ${c.what} to the pod bridge.`,
      fix: `on ${s.node}: ip route replace ${owner.cidr} dev cni0${gw ? ` src ${gw}` : ''} (the bridge's route; it comes with cni0's address${gw ? '' : ', e.g. ip addr add <gateway>/24 dev cni0'})`,
    };
  }
  return {
    cause: `${s.node} has no route for ${c.what} (dropped on ${whereOf(s)}, ${s.reason}).`,
    fix: `on ${s.node}: ip route get ${path.inner.dst} shows what is missing; ${sender ? `the pod CIDR routes flanneld programs (ip route show dev ${vx})` : 'check the routing table'}`,
  };
};

const tcDrop: Rule = (c) => {
  const { site: s } = c;
  const direction = s.reason === 'TC_EGRESS' ? 'egress' : 'ingress';
  const filters = (s.at?.kernel?.tcFilters ?? []).filter((f) => f.device === s.device && f.direction === direction);
  if (filters.length) {
    const named = filters.map((f) => `pref ${f.pref} ${f.text}`);
    return {
      cause: `a tc filter on ${s.node}'s ${s.device} ${direction} dropped ${layerText(s)} (it returned TC_ACT_SHOT): ${list(named)}.`,
      fix: `on ${s.node}: ${filters.map((f) => `tc filter del dev ${s.device} ${direction} pref ${f.pref}`).join('; ')} (or fix the program's policy); tc -s filter show dev ${s.device} ${direction} shows which one matches`,
      facts: { filters: named },
    };
  }
  return {
    cause: `a tc program on ${s.node}'s ${s.device} ${direction} dropped ${layerText(s)} (it returned TC_ACT_SHOT); it is not a tc filter vxtrace could list${s.at?.kernel?.tcFilters === undefined ? ' (the tc filters were not read)' : ' (a tcx program, not one of vxtrace\'s own)'}.`,
    fix: `on ${s.node}: bpftool net show dev ${s.device} lists the programs attached there (tcx and tc); detach the one that drops, or fix its policy`,
  };
};

const qdisc: Rule = (c) => {
  const { site: s } = c;
  const q = s.at?.kernel?.qdiscs?.find((x) => x.device === s.device && x.root);
  return {
    cause: `the ${q ? `${q.kind} ` : ''}qdisc on ${s.node}'s ${s.device} dropped ${layerText(s)}: its queue was full, or its policy drops it.`,
    fix: `on ${s.node}: tc -s qdisc show dev ${s.device} (drops, backlog, limit); raise the limit (or ip link set ${s.device} txqueuelen N), or slow the sender`,
  };
};

const invalidSourceMac: Rule = (c) => {
  const { site: s, sender } = c;
  const hop = c.path.hops.find((h) => h.event.kind === 'drop')?.event ?? s.after;
  const mac = hop?.innerSrcMac?.toLowerCase() ?? '?';
  if (s.decapsulated && sender && sender.name !== s.node) {
    return {
      cause: `the frame ${s.node}'s ${s.device} decapsulated has source MAC ${mac}, not a valid unicast address: ${sender.name}'s ${vxlanName(sender)} has no proper MAC.`,
      fix: `on ${sender.name}: ip link show ${vxlanName(sender)}; recreate it with a unicast MAC (ip link del ${vxlanName(sender)}, then restart flanneld, which creates it and announces the new MAC)`,
      nodes: [sender.name],
    };
  }
  return {
    cause: `the frame on ${whereOf(s)} has source MAC ${mac}, not a valid unicast address, so the kernel discarded it.`,
    fix: `on ${s.node}: find who sends it (tcpdump -e -i ${s.device}); a device with a zero or multicast MAC (ip link show)`,
  };
};

const localMac: Rule = (c) => {
  const { site: s, sender } = c;
  const vx = s.at?.kernel?.vxlan;
  if (sender && sender.name !== s.node && vx) {
    return {
      cause: `the frame ${s.node}'s ${vx.name} decapsulated comes from MAC ${vx.mac}, its own MAC: ${sender.name}'s ${vxlanName(sender)} and ${s.node}'s ${vx.name} have the same MAC, so ${s.node} takes it for its own echo.`,
      fix: `on ${sender.name}: ip link del ${vxlanName(sender)} and restart flanneld, which creates it with a new MAC and announces it (backend-data VtepMAC); every node then reprograms its neighbour and FDB entries`,
      nodes: [sender.name],
    };
  }
  return {
    cause: `${s.node}'s ${s.device} received its own frame back (source MAC ${vx?.mac ?? 'its own'}): the VXLAN datagram was sent to an address of ${s.node} itself.`,
    fix: `on ${s.node}: bridge fdb show dev ${vxlanName(s.at)}: an entry whose dst is an address of ${s.node} sends its traffic back to itself; restart flanneld with --iface naming the interface that holds its unique address`,
  };
};

const tunnelTxInfo: Rule = (c) => {
  const { site: s } = c;
  const vx = s.at?.kernel?.vxlan;
  const tunnel = vx?.name === s.device || s.at?.kernel?.links.find((l) => l.name === s.device)?.kind === 'vxlan';
  if (!tunnel) return undefined; // only a tunnel device sends with tunnel metadata
  return {
    cause: `${s.node}'s ${s.device} ${vx?.external ? 'is' : 'seems to be'} a collect-metadata (external) VXLAN device: it sends only packets that a BPF program or tc tunnel_key gave tunnel metadata, and this one had none.`,
    fix: `on ${s.node}: recreate ${s.device} without external as flanneld does (ip link del ${s.device}, restart flanneld), or fix the program that should set the tunnel key`,
  };
};

const RULES: Record<string, Rule> = {
  UDP_CSUM: udpCsum,
  IP_CSUM: ipCsum,
  VXLAN_VNI_NOT_FOUND: vniNotFound,
  VXLAN_INVALID_HDR: invalidHeader,
  NO_SOCKET: noSocket,
  VXLAN_NO_REMOTE: noRemote,
  NO_TX_TARGET: noRemote,
  OTHERHOST: otherHost,
  NETFILTER_DROP: netfilter,
  IP_RPFILTER: rpFilter,
  IP_INHDR: inHeader,
  IP_OUTNOROUTES: noRoute,
  IP_INNOROUTES: noRoute,
  TC_INGRESS: tcDrop,
  TC_EGRESS: tcDrop,
  QDISC_DROP: qdisc,
  MAC_INVALID_SOURCE: invalidSourceMac,
  LOCAL_MAC: localMac,
  TUNNEL_TXINFO: tunnelTxInfo,
  ...Object.fromEntries(NEIGH_REASONS.map((r) => [r, neighbour])),
  ...Object.fromEntries(MTU_REASONS.map((r) => [r, tooBig])),
};

/** The drop reasons vxtrace knows (docs/findings.md lists each with its evidence and fix). */
export const KNOWN_DROP_REASONS: readonly string[] = Object.keys(RULES);

/**
 * The finding a drop gives: a specific code where the reason and the state show one, else DROPPED
 * with the reason's cause and fix; undefined when `explained` (a more specific finding of this
 * path already names the cause) and the reason has no specific code of its own.
 */
export function dropFinding(path: PacketPath, model: ClusterModel, sender: NodeModel | undefined, peer: NodeModel | undefined, what: string, explained: boolean): Finding | undefined {
  const site = dropSite(path, model, sender, peer);
  const observed = `${what}: dropped on ${whereOf(site)}, reason ${site.reason}`;
  const ctx: DropContext = { path, model, sender, peer, what, site, observed };
  // A neighbour resolution that gave up frees its queued packets in neigh_invalidate; IPv6 (ndisc)
  // gives no reason there (NOT_SPECIFIED): the function says what happened.
  const rule = RULES[site.reason] ?? (site.location && /^neigh_invalidate\b/.test(site.location) ? neighbour : undefined);
  const v = rule?.(ctx);
  if (v && isFinding(v)) return v;
  if (explained) return undefined;
  const verdict = v ?? unknownReason(ctx);
  return makeFinding('DROPPED', 'error', `DROPPED:${site.node}:${site.device}:${site.reason}`, verdict.nodes ?? [site.node], verdict.cause, verdict.fix, {
    observed,
    expected: peer ? `delivered to ${path.dstPod ?? path.inner.dst} on ${peer.name}` : undefined,
    facts: { node: site.node, device: site.device, reason: site.reason, layer: site.layer, ...(site.location ? { location: site.location } : {}), ...verdict.facts },
  });
}

function unknownReason(c: DropContext): Verdict {
  const { site: s } = c;
  const after = s.after ? ` after ${s.after.device} ${s.after.direction}` : '';
  return {
    cause: `${c.what} was dropped by the kernel on ${s.node}'s ${s.device}${after} (${layerText(s)}) for reason ${s.reason}${s.location ? ` in ${s.location}` : ''}; vxtrace has no specific advice for this reason.`,
    fix: `on ${s.node}: look at what ${s.location ?? 'the kernel'} checks for ${s.reason} (include/net/dropreason-core.h in the kernel source documents each reason) against ${s.device}'s state (ip -d link show ${s.device}, ip route, nft list ruleset)`,
  };
}

export function badChecksumFinding(sender: NodeModel, observed: string): Finding {
  const vx = vxlanName(sender);
  return makeFinding('BAD_OUTER_CHECKSUM', 'error', `BAD_OUTER_CHECKSUM:${sender.name}`, [sender.name],
    `${sender.name}'s VXLAN packets leave with a wrong outer UDP checksum (the checksum offload bug), so receivers discard them.`,
    `on ${sender.name}: ethtool -K ${vx} tx-checksum-ip-generic off (and make it persistent, e.g. a udev rule or a flannel version with the fix)`,
    { observed, expected: 'a correct outer UDP checksum (or 0: none)', facts: { node: sender.name, device: vx } });
}
