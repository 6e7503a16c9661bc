// Test fixtures for the trace format: real frames (Ethernet/IPv4/ICMP, and VXLAN-encapsulated
// with correct lengths and checksums) and the HopEvents of a pod-to-pod path across two nodes.
import type { HopEvent, InnerPacket, OuterHeaders, DeviceRole, Direction } from '../../src/datapath/hop.js';
import type { PacketPath, PathOutcome } from '../../src/correlate/path.js';
import type { V1List } from '../../src/cluster/k8s.js';
import type { TraceSnapshot } from '../../src/pcapng/format.js';
import type { Finding } from '../../src/diagnose/finding.js';
import { encodeHopHeader } from '../../src/datapath/decode.js';

export function mac(text: string): Buffer {
  return Buffer.from(text.split(':').map((h) => parseInt(h, 16)));
}
export function ip4(text: string): Buffer {
  return Buffer.from(text.split('.').map(Number));
}

/** The Internet checksum (RFC 1071) of `parts`, concatenated. */
export function inetChecksum(...parts: Uint8Array[]): number {
  const buf = Buffer.concat(parts);
  let sum = 0;
  for (let i = 0; i < buf.length; i += 2) sum += (buf[i]! << 8) | (buf[i + 1] ?? 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

export function ethernet(dst: string, src: string, etherType: number, payload: Uint8Array): Buffer {
  const h = Buffer.alloc(14);
  mac(dst).copy(h, 0);
  mac(src).copy(h, 6);
  h.writeUInt16BE(etherType, 12);
  return Buffer.concat([h, payload]);
}

export interface Ipv4Fields {
  src: string;
  dst: string;
  protocol: number;
  id: number;
  ttl: number;
  dontFragment: boolean;
}

export function ipv4(f: Ipv4Fields, payload: Uint8Array): Buffer {
  const h = Buffer.alloc(20);
  h[0] = 0x45;
  h.writeUInt16BE(20 + payload.length, 2);
  h.writeUInt16BE(f.id, 4);
  h.writeUInt16BE(f.dontFragment ? 0x4000 : 0, 6);
  h[8] = f.ttl;
  h[9] = f.protocol;
  ip4(f.src).copy(h, 12);
  ip4(f.dst).copy(h, 16);
  h.writeUInt16BE(inetChecksum(h), 10);
  return Buffer.concat([h, payload]);
}

export function icmpEcho(id: number, seq: number, data: Uint8Array): Buffer {
  const h = Buffer.alloc(8);
  h[0] = 8;
  h.writeUInt16BE(id, 4);
  h.writeUInt16BE(seq, 6);
  h.writeUInt16BE(inetChecksum(h, data), 2);
  return Buffer.concat([h, data]);
}

export function udp(srcIp: string, dstIp: string, srcPort: number, dstPort: number, payload: Uint8Array, withChecksum = true): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt16BE(srcPort, 0);
  h.writeUInt16BE(dstPort, 2);
  h.writeUInt16BE(8 + payload.length, 4);
  if (withChecksum) {
    const pseudo = Buffer.concat([ip4(srcIp), ip4(dstIp), Buffer.from([0, 17]), Buffer.from([(8 + payload.length) >> 8, (8 + payload.length) & 0xff])]);
    const c = inetChecksum(pseudo, h, payload);
    h.writeUInt16BE(c === 0 ? 0xffff : c, 6);
  }
  return Buffer.concat([h, payload]);
}

export function vxlan(vni: number, inner: Uint8Array): Buffer {
  const h = Buffer.alloc(8);
  h[0] = 0x08;
  h.writeUInt32BE(vni << 8, 4);
  return Buffer.concat([h, inner]);
}

// ---------------------------------------------------------------------------------------------
// A two-node cluster and one ICMP echo from pod-a (node1) to pod-b (node2).

export const NODE1 = { name: 'node1', underlay: '192.168.56.11', uplinkMac: '08:00:27:00:00:11', vtepMac: 'a2:00:00:00:01:01', bridgeMac: 'c2:00:00:00:01:01' };
export const NODE2 = { name: 'node2', underlay: '192.168.56.12', uplinkMac: '08:00:27:00:00:12', vtepMac: 'a2:00:00:00:02:02', bridgeMac: 'c2:00:00:00:02:02' };
export const POD_A = { ip: '10.244.1.2', mac: '0a:58:0a:f4:01:02' };
export const POD_B = { ip: '10.244.2.3', mac: '0a:58:0a:f4:02:03' };

export function clusterList(): V1List {
  const node = (n: typeof NODE1, cidr: string) => ({
    apiVersion: 'v1' as const,
    kind: 'Node' as const,
    metadata: {
      name: n.name,
      annotations: {
        'flannel.alpha.coreos.com/public-ip': n.underlay,
        'flannel.alpha.coreos.com/backend-type': 'vxlan',
        'flannel.alpha.coreos.com/backend-data': JSON.stringify({ VNI: 1, VtepMAC: n.vtepMac }),
      },
    },
    spec: { podCIDR: cidr, podCIDRs: [cidr] },
    status: { addresses: [{ type: 'InternalIP', address: n.underlay }] },
  });
  const pod = (name: string, nodeName: string, ip: string) => ({
    apiVersion: 'v1' as const,
    kind: 'Pod' as const,
    metadata: { name, namespace: 'default' },
    spec: { nodeName },
    status: { phase: 'Running', podIP: ip, podIPs: [{ ip }] },
  });
  return {
    apiVersion: 'v1',
    kind: 'List',
    items: [node(NODE1, '10.244.1.0/24'), node(NODE2, '10.244.2.0/24'), pod('pod-a', 'node1', POD_A.ip), pod('pod-b', 'node2', POD_B.ip)],
  };
}

export function snapshot(): TraceSnapshot {
  return {
    cluster: clusterList(),
    nodeState: {
      node1: { vxlan: { name: 'flannel.1', ifindex: 5, vni: 1, port: 8472, local: NODE1.underlay, mtu: 1450, mac: NODE1.vtepMac, learning: false, up: true }, fdb: [{ mac: NODE2.vtepMac, dst: NODE2.underlay, permanent: true, self: true }], neighbours: [{ ip: '10.244.2.0', mac: NODE2.vtepMac, states: ['PERMANENT'] }], links: [], addresses: [], routes: [] },
      node2: { vxlan: { name: 'flannel.1', ifindex: 5, vni: 1, port: 8472, local: NODE2.underlay, mtu: 1450, mac: NODE2.vtepMac, learning: false, up: true }, fdb: [{ mac: NODE1.vtepMac, dst: NODE1.underlay, permanent: true, self: true }], neighbours: [{ ip: '10.244.1.0', mac: NODE1.vtepMac, states: ['PERMANENT'] }], links: [], addresses: [], routes: [] },
    },
    takenAt: '2026-11-25T21:00:00.000Z',
  };
}

export interface PathOptions {
  seq?: number;
  /** Outer destination on the underlay (default node2's underlay). */
  outerDst?: string;
  /** End the path with a kernel drop at node2's uplink ingress (OTHERHOST). */
  dropAtNode2?: boolean;
  /** The drop record's frame: Ethernet (default), from the IP header (frameStart 'ip'), or from the IP header unmarked (an older decoder). */
  dropFrame?: 'ethernet' | 'ip' | 'ip-unmarked';
  baseWallNs?: bigint;
  payloadLength?: number;
}

/** The six hops of one echo request (or four hops and a drop), with real frames. */
export function echoPath(opts: PathOptions = {}): PacketPath {
  const seq = opts.seq ?? 1;
  const id = 0x1234;
  const ipId = (0x4000 + seq) & 0xffff;
  const outerDst = opts.outerDst ?? NODE2.underlay;
  const data = Buffer.alloc(opts.payloadLength ?? 56, 0x61);
  const icmp = icmpEcho(id, seq, data);
  const innerIp = (ttl: number) => ipv4({ src: POD_A.ip, dst: POD_B.ip, protocol: 1, id: ipId, ttl, dontFragment: true }, icmp);
  const fromPod = ethernet(NODE1.bridgeMac, POD_A.mac, 0x0800, innerIp(64));
  const vtepInner = ethernet(NODE2.vtepMac, NODE1.vtepMac, 0x0800, innerIp(63));
  const outerUdp = udp(NODE1.underlay, outerDst, 40000 + (seq % 20000), 8472, vxlan(1, vtepInner));
  const outerIp = ipv4({ src: NODE1.underlay, dst: outerDst, protocol: 17, id: (0x100 + seq) & 0xffff, ttl: 64, dontFragment: false }, outerUdp);
  const onWire = ethernet(NODE2.uplinkMac, NODE1.uplinkMac, 0x0800, outerIp);
  const toPod = ethernet(POD_B.mac, NODE2.bridgeMac, 0x0800, innerIp(62));
  const fingerprint = (0x1a2b3c4d00000000n + BigInt(seq)).toString(16).padStart(16, '0');
  const inner = (ttl: number): InnerPacket => ({
    family: 4, src: POD_A.ip, dst: POD_B.ip, protocol: 1, srcPort: 0, dstPort: 0,
    ipId, ipLength: 20 + icmp.length, ttl, dontFragment: true, icmp: { type: 8, code: 0, id, seq },
  });
  const outer: OuterHeaders = {
    family: 4, src: NODE1.underlay, dst: outerDst, protocol: 17, srcPort: 40000 + (seq % 20000), dstPort: 8472,
    vni: 1, udpChecksum: outerUdp.readUInt16BE(6), srcMac: NODE1.uplinkMac, dstMac: NODE2.uplinkMac,
  };
  const base = opts.baseWallNs ?? 1_764_104_400_000_000_000n + BigInt(seq) * 1_000_000n;
  let t = 0;
  const hop = (node: string, device: string, role: DeviceRole, direction: Direction, frame: Buffer, ttl: number, innerMacs: [string, string], withOuter: boolean): HopEvent => {
    t++;
    const e: HopEvent = {
      timestampNs: 5_000_000_000n + BigInt(seq) * 1_000_000n + BigInt(t) * 1000n,
      wallTimeNs: base + BigInt(t) * 1000n,
      kind: 'tc',
      node, device, role, direction,
      ifindex: device === 'cni0' ? 4 : device === 'flannel.1' ? 5 : 3,
      netnsInode: node === 'node1' ? 4026532001 : 4026532002,
      skbLength: frame.length,
      fingerprint,
      innerSrcMac: innerMacs[0],
      innerDstMac: innerMacs[1],
      inner: inner(ttl),
      frame: new Uint8Array(frame),
    };
    if (withOuter) e.outer = { ...outer };
    return e;
  };
  const hops: HopEvent[] = [
    hop('node1', 'cni0', 'pod-bridge', 'ingress', fromPod, 64, [POD_A.mac, NODE1.bridgeMac], false),
    hop('node1', 'flannel.1', 'vtep', 'egress', vtepInner, 63, [NODE1.vtepMac, NODE2.vtepMac], false),
    hop('node1', 'eth1', 'uplink', 'egress', onWire, 63, [NODE1.vtepMac, NODE2.vtepMac], true),
    hop('node2', 'eth1', 'uplink', 'ingress', onWire, 63, [NODE1.vtepMac, NODE2.vtepMac], true),
  ];
  let outcome: PathOutcome = 'delivered';
  let drop: PacketPath['drop'];
  if (opts.dropAtNode2) {
    const d = hop('node2', 'eth1', 'uplink', 'ingress', onWire.subarray(14), 63, [NODE1.vtepMac, NODE2.vtepMac], true);
    d.kind = 'drop';
    d.dropReason = 'OTHERHOST';
    d.dropReasonCode = 4;
    d.dropLocation = 'ip_rcv_core';
    // A drop's frame starts at the IP header when the skb had no MAC header (VXT_F_L3_START).
    if (opts.dropFrame === 'ip' || opts.dropFrame === 'ip-unmarked') {
      d.frame = new Uint8Array(onWire.subarray(14));
      if (opts.dropFrame === 'ip') d.frameStart = 'ip';
    } else {
      d.frame = new Uint8Array(onWire);
    }
    d.skbLength = onWire.length - 14;
    hops.push(d);
    outcome = 'dropped';
    drop = { node: 'node2', device: 'eth1', reason: 'OTHERHOST', location: 'ip_rcv_core' };
  } else {
    hops.push(
      hop('node2', 'flannel.1', 'vtep', 'ingress', vtepInner, 63, [NODE1.vtepMac, NODE2.vtepMac], false),
      hop('node2', 'cni0', 'pod-bridge', 'egress', toPod, 62, [NODE2.bridgeMac, POD_B.mac], false),
    );
  }
  // As the datapath hands them over: each with the kernel's record header it was decoded from.
  for (const e of hops) e.record = encodeHopHeader(e);
  const path: PacketPath = {
    fingerprint,
    inner: hops[0]!.inner,
    srcPod: 'default/pod-a',
    dstPod: 'default/pod-b',
    srcNode: 'node1',
    dstNode: 'node2',
    hops: hops.map((event) => ({ event })),
    outer: { ...outer },
    outcome,
    firstSeenNs: hops[0]!.timestampNs,
    lastSeenNs: hops[hops.length - 1]!.timestampNs,
  };
  if (drop) path.drop = drop;
  return path;
}

/** Two findings as the diagnoser reports them for the seed's fault. */
export const sampleFindings: Finding[] = [
  {
    code: 'WRONG_UNDERLAY_DST',
    severity: 'error',
    nodes: ['node1'],
    cause: 'node1 sent the VXLAN packet for 10.244.2.3 to 10.0.2.15, which is not node2\'s underlay address 192.168.56.12.',
    fix: 'restart flanneld on every node with --iface=eth1',
    evidence: { observed: 'outer dst 10.0.2.15', expected: '192.168.56.12', packets: ['1a2b3c4d00000001'], facts: { outerDst: '10.0.2.15' } },
    packetCount: 1,
    key: 'WRONG_UNDERLAY_DST/node1/node2',
  },
  {
    code: 'DROPPED',
    severity: 'error',
    nodes: ['node2'],
    cause: 'node2 dropped the packet at eth1 ingress: OTHERHOST.',
    fix: 'see WRONG_UNDERLAY_DST',
    evidence: { observed: 'kfree_skb reason OTHERHOST' },
    packetCount: 1,
    key: 'DROPPED/node2/eth1/OTHERHOST',
  },
];
