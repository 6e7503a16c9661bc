// Rules from packets: one PacketPath and the model -> the findings it shows. Each finding says what
// the packet did (observed) against where it should have gone (expected, and why). Pure.
import type { ClusterModel, NodeModel } from '../cluster/model.js';
import type { PacketPath } from '../correlate/path.js';
import type { HopEvent, OuterHeaders } from '../datapath/hop.js';
import type { Finding } from './finding.js';
import {
  classifyOuterDst, duplicatePublicIpFinding, ipv6Keyed, ownAddresses, publicIpName, fdbDstLocalFinding, holderNote, list, makeFinding,
  mtuFinding, oddOnesOut, portMismatchFinding, portOf, underlayWhy, vniMismatchFinding,
  vniOf, vtepMacMismatchFinding, vxlanName, wrongUnderlayDstFinding, wrongUnderlaySrcFinding,
} from './context.js';
import { badChecksumFinding, dropFinding } from './drop.js';
import { ifaceFixCheck } from './reach.js';


/** What else must change before --iface on n reaches every peer ('' when it does). */
const ifaceNote = (model: ClusterModel, n: NodeModel): string => {
  const c = n.underlay.interface ? ifaceFixCheck(model, n, n.underlay.interface) : undefined;
  return c?.note ? `; but ${c.note}` : '';
};
import { verifyOuterUdpChecksum } from './checksum.js';
import { formatProtocol } from '../datapath/describe.js';

const describePacket = (p: PacketPath): string => {
  const who = (pod: string | undefined, ip: string): string => (pod ? `${pod} (${ip})` : ip);
  return `${who(p.srcPod, p.inner.src)} -> ${who(p.dstPod, p.inner.dst)} ${formatProtocol(p.inner)}`;
};

const firstHop = (p: PacketPath, pred: (e: HopEvent) => boolean): HopEvent | undefined => p.hops.find((h) => pred(h.event))?.event;

function notUnicast(ip: string): boolean {
  const first = Number(ip.split('.')[0]);
  return ip === '255.255.255.255' || (first >= 224 && first <= 239) || ip.toLowerCase().startsWith('ff');
}

/** Every finding one path shows (each with packetCount 1); none for a delivered packet on a healthy cluster. */
export interface PathContext {
  /**
   * The tracer lost records (ring buffer full) while this path was traced: a hop missing from it
   * may be a lost record, so nothing is concluded from missing hops (no NO_DECAP).
   */
  recordsLost?: boolean;
}

/**
 * An IPv6 packet is judged by the VTEPs that carry IPv6 (the model's `v6` view: flannel-v6.1,
 * public-ipv6, backend-v6-data), its findings keyed as the state rules key them there (`:v6`).
 */
export function diagnosePath(path: PacketPath, model: ClusterModel, context: PathContext = {}): Finding[] {
  const view = model.forFamily(path.inner.family);
  const fs = diagnosePathIn(path, view, context);
  return view.family === 6 ? fs.map(ipv6Keyed) : fs;
}

function diagnosePathIn(path: PacketPath, model: ClusterModel, context: PathContext): Finding[] {
  const out: Finding[] = [];
  const srcOwner = model.podCidrOwner(path.inner.src)?.node;
  const dstOwner = model.podCidrOwner(path.inner.dst);
  // Only the overlay's unicast traffic is judged: a node's own packets (IGMP reports from cni0's
  // gateway address, multicast, broadcast, underlay chatter) seen by a capture of everything say
  // nothing about pod-to-pod delivery; flannel's VXLAN carries no multicast.
  if ((!srcOwner && !dstOwner) || notUnicast(path.inner.dst) || path.inner.src === '0.0.0.0' || path.inner.src === '::') return out;
  const sender: NodeModel | undefined =
    model.node(firstHop(path, (e) => e.role === 'vtep' && e.direction === 'egress')?.node ?? '') ??
    model.node(firstHop(path, (e) => e.role === 'pod-bridge' && e.direction === 'ingress')?.node ?? '') ??
    srcOwner ?? (path.srcNode ? model.node(path.srcNode) : undefined);
  const peer = dstOwner?.node;
  const what = describePacket(path);
  const sample = [path.fingerprint];
  const add = (f: Finding): void => {
    if (out.some((x) => x.key === f.key)) return; // one packet counts once per cause
    f.packetCount = 1;
    f.evidence = { ...f.evidence, packets: sample, facts: { ...f.evidence.facts, packet: what } };
    out.push(f);
  };
  const crossNode = sender && peer && sender !== peer;

  // The encapsulation the sender chose.
  const vtepEgress = sender ? firstHop(path, (e) => e.node === sender.name && e.role === 'vtep' && e.direction === 'egress') : undefined;
  const uplinkEgress = sender ? firstHop(path, (e) => e.node === sender.name && e.role === 'uplink' && e.direction === 'egress' && !!e.outer) : undefined;
  const outer: OuterHeaders | undefined = uplinkEgress?.outer ?? path.outer;
  let explained = false;

  if (crossNode && sender && peer) {
    // Inner destination MAC: must be the peer's current VTEP MAC.
    const currentMac = model.currentVtepMac(peer);
    if (vtepEgress && currentMac && vtepEgress.innerDstMac && vtepEgress.innerDstMac.toLowerCase() !== currentMac) {
      add(vtepMacMismatchFinding(model, sender, peer, vtepEgress.innerDstMac.toLowerCase(), currentMac,
        `${what} left ${sender.name}'s ${vtepEgress.device} with inner dst MAC ${vtepEgress.innerDstMac.toLowerCase()}`));
      explained = true;
    }

    // Outer destination: observed on the wire, or (when it never reached an uplink, e.g. looped back) what the sender's FDB says for that MAC.
    let dst = outer?.dst;
    let dstSource = dst ? `outer dst ${dst} on ${uplinkEgress ? `${sender.name}'s ${uplinkEgress.device}` : 'the underlay'}` : '';
    if (!dst && vtepEgress?.innerDstMac) {
      const fdb = sender.kernel?.fdb.find((e) => e.mac === vtepEgress.innerDstMac.toLowerCase() && e.dst);
      if (fdb?.dst) {
        dst = fdb.dst;
        dstSource = `never left by an uplink; ${sender.name}'s FDB sends ${fdb.mac} to ${dst}`;
      }
    }
    if (dst) {
      const v = classifyOuterDst(model, sender, peer, dst);
      const observed = `${what}: ${dstSource} (${holderNote(model, dst)})`;
      if (v.kind === 'duplicate-public-ip') {
        add(duplicatePublicIpFinding(model, v.ip, v.group, observed));
        // The packet shows where it looped: on the sender, whose FDB points at its own (shared) address.
        if (ownAddresses(sender).includes(dst)) {
          add(fdbDstLocalFinding(model, sender, peer, vtepEgress?.innerDstMac?.toLowerCase(), dst, observed,
            `every node registered ${publicIpName(dst)} ${dst} (DUPLICATE_PUBLIC_IP): restart flanneld on ${sender.name} with ${sender.underlay.interface ? `--iface=${sender.underlay.interface}` : `--${publicIpName(dst)}=${sender.underlay.address ?? 'its unique address'}`}, and on every node likewise; flanneld then rewrites this FDB entry${ifaceNote(model, sender)}`));
        }
      }
      else if (v.kind === 'peer-registered-wrong') add(wrongUnderlaySrcFinding(model, peer, `${peer.name} registered flannel ${publicIpName(dst)} ${dst}; ${observed}`));
      else if (v.kind === 'local') add(fdbDstLocalFinding(model, sender, peer, vtepEgress?.innerDstMac?.toLowerCase(), dst, observed));
      else if (v.kind === 'wrong') add(wrongUnderlayDstFinding(model, sender, peer, vtepEgress?.innerDstMac?.toLowerCase(), observed, { observed: dst }));
      if (v.kind !== 'ok' && v.kind !== 'unknown') explained = true;
    }

    if (outer) {
      // Outer source and the interface it left by.
      const srcBad = sender.underlay.address && outer.src !== sender.underlay.address;
      const ifBad = uplinkEgress && sender.underlay.interface && uplinkEgress.device !== sender.underlay.interface;
      if ((srcBad || ifBad) && !(sender.publicIp && model.nodes.filter((n) => n.publicIp === sender.publicIp).length > 1)) {
        add(wrongUnderlaySrcFinding(model, sender, `${what}: outer src ${outer.src}${uplinkEgress ? ` left by ${uplinkEgress.device}` : ''}`, { observedSrc: outer.src }));
        explained = true;
      }
      // VNI and port against the receiver's VXLAN device.
      const rvx = peer.kernel?.vxlan;
      if (rvx && outer.vni !== rvx.vni) {
        const odd = oddOnesOut(model, vniOf, 1);
        const blame = odd?.odd.find((o) => o.node === peer || o.node === sender) ?? { node: peer, value: rvx.vni };
        add(vniMismatchFinding(blame.node, blame.value, odd?.expected ?? outer.vni, odd?.agreeing ?? [sender.name], `${what}: outer VNI ${outer.vni}; ${peer.name}'s ${rvx.name} has VNI ${rvx.vni}`));
        explained = true;
      }
      if (rvx && outer.dstPort !== rvx.port) {
        const odd = oddOnesOut(model, portOf, 8472);
        const blame = odd?.odd.find((o) => o.node === peer || o.node === sender) ?? { node: peer, value: rvx.port };
        add(portMismatchFinding(blame.node, blame.value, odd?.expected ?? outer.dstPort, odd?.agreeing ?? [sender.name], `${what}: outer UDP dport ${outer.dstPort}; ${peer.name}'s ${rvx.name} listens on ${rvx.port}`));
        explained = true;
      }
      // Outer UDP checksum, when the whole datagram was captured.
      const wire = uplinkEgress ?? firstHop(path, (e) => e.role === 'uplink' && !!e.outer);
      if (wire && verifyOuterUdpChecksum(wire.frame) === false) {
        add(badChecksumFinding(sender, `${what}: outer UDP checksum 0x${outer.udpChecksum.toString(16).padStart(4, '0')} on ${wire.node}'s ${wire.device} does not match the datagram`));
        explained = true;
      }
    }

    // Too big for the VXLAN device: judged on the packets the wire carries (a GSO packet is
    // segmented to its segment size on the way out, whatever its own length), and only when it
    // did not arrive (a delivered packet was not too big).
    const svx = sender.kernel?.vxlan;
    const wire = wireIpLength(path);
    // (IPv6 is never fragmented on the way: every IPv6 packet is as good as DF.)
    if (svx && path.outcome !== 'delivered' && (path.inner.dontFragment || path.inner.family === 6) && wire > svx.mtu) {
      add(mtuFinding(sender, 'error', `${what} is ${wire} bytes with DF set, larger than ${svx.name}'s MTU ${svx.mtu} on ${sender.name}, so it cannot be sent across nodes.`,
        `${what}: inner IP length ${wire}, DF set`, `at most ${svx.mtu} bytes (${svx.name} MTU on ${sender.name})`, { ipLength: wire }));
      explained = true;
    }
  }

  // What the kernel said when it dropped it.
  if (path.outcome === 'dropped' && path.drop) {
    const f = dropFinding(path, model, sender, peer, what, explained);
    if (f) add(f);
  } else if (path.outcome === 'lost-in-underlay' && !explained && crossNode && sender && peer && !uplinkEgress?.gso && !context.recordsLost) {
    // (A GSO packet may be segmented by the sender's NIC after the last hook: its segments reach
    // the peer as other packets, which this one cannot be matched to. Not evidence of a loss.)
    const reached = firstHop(path, (e) => e.node === peer.name && e.role === 'uplink' && e.direction === 'ingress');
    add(makeFinding('NO_DECAP', 'error', `NO_DECAP:${sender.name}:${peer.name}`, reached ? [peer.name] : [sender.name, peer.name],
      reached
        ? `${what} reached ${peer.name}'s ${reached.device} but ${peer.name}'s ${vxlanName(peer)} never decapsulated it.`
        : `${what} left ${sender.name}${outer ? ` for ${outer.dst}` : ''} and never reached ${peer.name}: the underlay between them lost it.`,
      reached
        ? `on ${peer.name}: check that nothing drops UDP ${outer?.dstPort ?? portOf(peer) ?? 8472} on input (nft list ruleset; iptables -S INPUT) and that ${vxlanName(peer)} is up with VNI ${outer?.vni ?? vniOf(peer) ?? 1}`
        : `check the underlay path from ${sender.name} to ${peer.underlay.address ?? peer.name}: ip route get ${outer?.dst ?? peer.underlay.address ?? ''} and ip neigh on ${sender.name}, and any firewall or switch between them`,
      { observed: `${what}: last seen ${describeLast(path)}`, expected: `to reach ${peer.name}'s ${vxlanName(peer)}, because ${underlayWhy(peer)}`, facts: { sender: sender.name, receiver: peer.name } }));
  } else if (path.outcome === 'vanished' && !explained && crossNode && sender && peer && !context.recordsLost) {
    // Only with the packet seen leaving the sender: arriving pieces of a packet segmented on the
    // way (GSO), or merged on arrival (GRO), have no sender-side hops and prove nothing.
    const reached = firstHop(path, (e) => e.node === peer.name && e.role === 'uplink' && e.direction === 'ingress');
    const left = firstHop(path, (e) => e.node === sender.name && e.role === 'uplink' && e.direction === 'egress');
    if (reached && left && !firstHop(path, (e) => e.node === peer.name && e.role === 'vtep')) {
      add(makeFinding('NO_DECAP', 'error', `NO_DECAP:${sender.name}:${peer.name}`, [peer.name],
        `${what} reached ${peer.name}'s ${reached.device} but ${peer.name}'s ${vxlanName(peer)} never decapsulated it.`,
        `on ${peer.name}: check that nothing drops UDP ${outer?.dstPort ?? 8472} on input (nft list ruleset; iptables -S INPUT) and that ${vxlanName(peer)} is up with VNI ${outer?.vni ?? vniOf(peer) ?? 1}`,
        { observed: `${what}: last seen ${describeLast(path)}`, expected: `decapsulated by ${peer.name}'s ${vxlanName(peer)}`, facts: { sender: sender.name, receiver: peer.name } }));
    }
  }
  return out;
}

/**
 * The inner IP length of the packets the wire carries for this path: the packet's own, or for a
 * GSO packet its segment size plus its IP and transport headers (read from the captured frame).
 */
export function wireIpLength(path: PacketPath): number {
  const first = path.hops[0]?.event;
  const gso = path.hops.find((h) => h.event.gso)?.event;
  if (!gso?.gso) return path.inner.ipLength;
  const headers = innerHeaderLength(gso.frame, gso.outer !== undefined) ?? (path.inner.family === 4 ? 40 : 60);
  return Math.min(path.inner.ipLength, headers + gso.gso.size, first?.inner.ipLength ?? Infinity);
}

/** IP + TCP/UDP header bytes of the (inner) packet in an Ethernet frame; undefined when not readable. */
function innerHeaderLength(frame: Uint8Array, encapsulated: boolean): number | undefined {
  let off = 0;
  if (encapsulated) {
    // outer Ethernet, IPv4 (IHL), UDP 8, VXLAN 8, then the inner frame
    if (frame.length < 14 + 20 || ((frame[12]! << 8) | frame[13]!) !== 0x0800) return undefined;
    off = 14 + (frame[14]! & 0x0f) * 4 + 16;
  }
  if (frame.length < off + 14) return undefined;
  const type = (frame[off + 12]! << 8) | frame[off + 13]!;
  const ip = off + 14;
  let l4: number;
  let proto: number;
  if (type === 0x0800 && frame.length >= ip + 20) {
    l4 = ip + (frame[ip]! & 0x0f) * 4;
    proto = frame[ip + 9]!;
  } else if (type === 0x86dd && frame.length >= ip + 40) {
    l4 = ip + 40;
    proto = frame[ip + 6]!;
  } else return undefined;
  if (proto === 17) return l4 - ip + 8;
  if (proto === 6 && frame.length >= l4 + 13) return l4 - ip + (frame[l4 + 12]! >> 4) * 4;
  return undefined;
}

function describeLast(p: PacketPath): string {
  const h = p.hops[p.hops.length - 1]?.event;
  return h ? `on ${h.node} at ${h.device} ${h.direction}` : 'nowhere';
}

export { list };
