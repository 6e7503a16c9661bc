// Synthetic HopEvents and PacketPaths for pure tests: the lab's addresses, a ping pod-a -> pod-b.
import type { DeviceRole, Direction, HopEvent, InnerPacket } from '../../src/datapath/hop.js';
import type { PacketPath } from '../../src/correlate/path.js';

export const PING: InnerPacket = {
  family: 4, src: '10.244.1.10', dst: '10.244.2.10', protocol: 1, srcPort: 0, dstPort: 0,
  ipId: 4242, ipLength: 84, ttl: 64, dontFragment: true, icmp: { type: 8, code: 0, id: 7, seq: 1 },
};

export function hop(node: string, device: string, role: DeviceRole, direction: Direction, t: bigint, extra: Partial<HopEvent> = {}): HopEvent {
  return {
    timestampNs: t, wallTimeNs: 1_764_100_000_000_000_000n + t, kind: 'tc', node, device, role, direction,
    ifindex: 3, netnsInode: 4026532000, skbLength: 98, fingerprint: '00c0ffee00c0ffee',
    innerSrcMac: '02:00:00:00:00:01', innerDstMac: '02:00:00:00:00:02', inner: PING, frame: new Uint8Array(0), ...extra,
  };
}

const OUTER = { family: 4 as const, src: '192.168.1.121', dst: '192.168.1.122', protocol: 17, srcPort: 40000, dstPort: 8472, vni: 1, udpChecksum: 0, srcMac: '02:00:00:00:01:01', dstMac: '02:00:00:00:01:02' };

/** The six hops of a delivered cross-node ping, 10µs apart. */
export function deliveredPath(): PacketPath {
  const events = [
    hop('node1', 'cni0', 'pod-bridge', 'ingress', 1_000n),
    hop('node1', 'flannel.1', 'vtep', 'egress', 11_000n),
    hop('node1', 'eth1', 'uplink', 'egress', 21_000n, { outer: OUTER }),
    hop('node2', 'eth1', 'uplink', 'ingress', 31_000n, { outer: OUTER }),
    hop('node2', 'flannel.1', 'vtep', 'ingress', 41_000n),
    hop('node2', 'cni0', 'pod-bridge', 'egress', 51_000n),
  ];
  return {
    fingerprint: '00c0ffee00c0ffee', inner: PING, srcPod: 'default/pod-a', dstPod: 'default/pod-b', srcNode: 'node1', dstNode: 'node2',
    hops: events.map((event, i) => ({ event, latencyNs: i ? 10_000n : undefined })),
    outer: OUTER, outcome: 'delivered', firstSeenNs: 1_000n, lastSeenNs: 51_000n,
  };
}
