// The outer UDP checksum of VXLAN under local checksum offload (LCO): at tc egress the inner TCP
// checksum is still pending (it holds the pseudo-header sum) while the outer one is already final.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { verifyOuterUdpChecksum } from '../../src/diagnose/checksum.js';

const fold = (s: number) => { while (s > 0xffff) s = (s & 0xffff) + (s >>> 16); return s; };
const sum16 = (b: number[], from: number, to: number) => { let s = 0; for (let i = from; i < to; i += 2) s += (b[i]! << 8) | (i + 1 < to ? b[i + 1]! : 0); return fold(s); };
const ip = (a: string) => a.split('.').map(Number);
const be16 = (n: number) => [n >> 8, n & 0xff];

/** Ethernet/IPv4/UDP 8472/VXLAN/Ethernet/IPv4/TCP with `payload`; inner TCP checksum pending. */
function vxlanTcpFrame(payload: number[]): number[] {
  const tcp = [...be16(41088), ...be16(8080), 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, ...be16(64240), 0, 0, 0, 0, ...payload];
  const innerIp = [0x45, 0, ...be16(20 + tcp.length), 0, 1, 0x40, 0, 64, 6, 0, 0, ...ip('10.244.1.10'), ...ip('10.244.2.10')];
  const innerPseudo = fold(6 + tcp.length + sum16(innerIp, 12, 20));
  tcp[16] = innerPseudo >> 8;
  tcp[17] = innerPseudo & 0xff;
  const innerEth = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
  const vxlan = [0x08, 0, 0, 0, 0, 0, 1, 0];
  const udpLen = 8 + vxlan.length + innerEth.length + innerIp.length + tcp.length;
  const udp = [...be16(40000), ...be16(8472), ...be16(udpLen), 0, 0];
  const outerIp = [0x45, 0, ...be16(20 + udpLen), 0, 2, 0, 0, 64, 17, 0, 0, ...ip('192.168.1.121'), ...ip('192.168.1.122')];
  const frame = [2, 0, 0, 0, 1, 2, 2, 0, 0, 0, 1, 1, 0x08, 0x00, ...outerIp, ...udp, ...vxlan, ...innerEth, ...innerIp, ...tcp];
  // The outer checksum LCO computes: over the datagram as it will be with the inner checksum final.
  const l4 = 14 + 20 + 8 + 8 + 14 + 20;
  const finalInner = ~sum16(frame, l4, frame.length) & 0xffff;
  const final = [...frame];
  final[l4 + 16] = finalInner >> 8;
  final[l4 + 17] = finalInner & 0xff;
  const outer = ~fold(17 + udpLen + sum16(final, 14 + 12, 14 + 20) + sum16(final, 34, final.length)) & 0xffff;
  frame[34 + 6] = outer >> 8;
  frame[34 + 7] = outer & 0xff;
  return frame;
}

test('LCO: outer checksum final, inner TCP checksum pending -> correct', () => {
  assert.equal(verifyOuterUdpChecksum(Uint8Array.from(vxlanTcpFrame([104, 101, 108, 108, 111, 10]))), true);
  assert.equal(verifyOuterUdpChecksum(Uint8Array.from(vxlanTcpFrame([1, 2, 3]))), true, 'odd payload length');
});

test('LCO: a corrupted outer checksum is still caught', () => {
  const f = vxlanTcpFrame([104, 105]);
  f[40] = 0xba;
  f[41] = 0xd0;
  assert.equal(verifyOuterUdpChecksum(Uint8Array.from(f)), false);
});

test('LCO: a truncated inner segment cannot be judged', () => {
  const f = vxlanTcpFrame(Array.from({ length: 100 }, (_, i) => i));
  assert.equal(verifyOuterUdpChecksum(Uint8Array.from(f.slice(0, f.length - 10))), undefined);
});
