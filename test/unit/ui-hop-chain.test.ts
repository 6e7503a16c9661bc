// The hop chain the page draws (ui/src/hop-chain.ts), from paths the lab really produced, through
// the hub's encoder and the page's decoder.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeEventBatch } from '../../src/wire/codec.js';
import type { PacketPath } from '../../src/correlate/path.js';
import { decodeFrame, fullPath, type PathMessage } from '../../ui/src/wire.js';
import { chainHopKeys, hopChain, type ChainNode, type ChainUnderlay } from '../../ui/src/hop-chain.js';
import { fixturePaths, perNodeClocks } from './ui-fixtures.js';

function viaWire(p: PacketPath): PathMessage {
  const [e] = decodeFrame(encodeEventBatch([{ kind: 'path', path: p }]));
  assert.equal(e?.kind, 'path');
  return fullPath((e as { raw: Uint8Array }).raw);
}

const [request] = fixturePaths('healthy.ndjson');
const [loop] = fixturePaths('nat-public-ip.ndjson');

test('a delivered cross-node path: pod ▸ node1 cni0 ▸ flannel.1 ▸ eth1 ⇢ underlay ⇢ node2 eth1 ▸ flannel.1 ▸ cni0 ▸ pod', () => {
  const chain = hopChain(viaWire(request!));
  assert.deepEqual(chain.segments.map((s) => s.kind), ['pod', 'node', 'underlay', 'node', 'pod']);
  assert.deepEqual(chainHopKeys(chain), ['node1/cni0', 'node1/flannel.1', 'node1/eth1', 'node2/eth1', 'node2/flannel.1', 'node2/cni0']);
  const [src, n1, leg, n2, dst] = chain.segments as [any, ChainNode, ChainUnderlay, ChainNode, any];
  assert.deepEqual([src.name, src.ip, dst.name, dst.reached], ['default/pod-a', '10.244.1.10', 'default/pod-b', true]);
  assert.deepEqual([leg.src, leg.dst, leg.dstPort, leg.vni, leg.arrived], ['192.168.1.121', '192.168.1.122', 8472, 1, true]);
  // One process traced both nodes (one clock): every latency is exact, the underlay leg's too.
  assert.equal(leg.approximate, false);
  assert.equal(leg.ns, 11566);
  assert.deepEqual(n1.devices.map((d) => d.latencyNs), [undefined, 14864, 65716]);
  assert.deepEqual(n2.devices.map((d) => d.latencyNs), [undefined, 12266, 26442]);
  assert.equal(chain.outcome, 'delivered');
  assert.equal(chain.death, undefined);
  assert.equal(chain.approximate, false);
  assert.equal(chain.totalNs, 130854);
});

test("agents on separate machines: the underlay leg is timed by wall clocks and marked approximate", () => {
  const p = perNodeClocks(request!, { node2: 3_000_000_000n });
  const chain = hopChain(viaWire(p));
  const leg = chain.segments[2] as ChainUnderlay;
  assert.equal(leg.approximate, true);
  // node2's clock runs 3 s ahead: the wall-clock difference says so, and the page says it is approximate.
  assert.equal(leg.ns, 3_000_010_000);
  assert.equal(chain.approximate, true);
  const n2 = chain.segments[3] as ChainNode;
  assert.equal(n2.devices[0]!.latencyNs, undefined);
  assert.equal(n2.devices[1]!.latencyNs, 12266);
});

test("nat-public-ip: the packet loops on node1's flannel.1 and dies there with the kernel's reason", () => {
  const chain = hopChain(viaWire(loop!));
  assert.deepEqual(chain.segments.map((s) => s.kind), ['pod', 'node', 'pod']);
  const n1 = chain.segments[1] as ChainNode;
  assert.equal(n1.node, 'node1');
  assert.deepEqual(n1.devices.map((d) => d.device), ['cni0', 'flannel.1']);
  const vtep = n1.devices[1]!;
  assert.equal(vtep.loop?.times, 62);
  assert.deepEqual(vtep.died, { reason: 'IP_INHDR', location: 'ip_forward+0x2c0' });
  assert.deepEqual(chain.death, { node: 'node1', device: 'flannel.1', reason: 'IP_INHDR', location: 'ip_forward+0x2c0' });
  assert.equal((chain.segments[2] as any).reached, false);
  assert.equal(chain.outcome, 'dropped');
});

test('sent into the underlay and never seen again: the leg is drawn, not arrived', () => {
  const p = request!;
  const cut: PacketPath = { ...p, hops: p.hops.slice(0, 3), outcome: 'lost-in-underlay' };
  const chain = hopChain(viaWire(cut));
  assert.deepEqual(chain.segments.map((s) => s.kind), ['pod', 'node', 'underlay', 'pod']);
  const leg = chain.segments[2] as ChainUnderlay;
  assert.equal(leg.arrived, false);
  assert.equal(leg.dst, '192.168.1.122');
  assert.equal(chain.death, undefined);
});

test('a drop on a device the chain did not pass is still shown where it happened', () => {
  const p = request!;
  const drop = { ...p.hops[3]!.event, kind: 'drop' as const, device: 'eth1', dropReason: 'UDP_CSUM', dropLocation: 'udp_rcv' };
  const dropped: PacketPath = { ...p, hops: [...p.hops.slice(0, 3), { event: drop }], outcome: 'dropped', drop: { node: 'node2', device: 'eth1', reason: 'UDP_CSUM' } };
  const chain = hopChain(viaWire(dropped));
  const n2 = chain.segments.find((s): s is ChainNode => s.kind === 'node' && s.node === 'node2')!;
  assert.deepEqual(n2.devices.map((d) => [d.device, d.died?.reason]), [['eth1', 'UDP_CSUM']]);
  // It did cross the underlay: node2's kernel dropped it on arrival.
  assert.deepEqual(chain.segments.map((s) => s.kind), ['pod', 'node', 'underlay', 'node', 'pod']);
  assert.equal((chain.segments[2] as ChainUnderlay).arrived, true);
});
