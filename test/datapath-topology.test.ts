// The datapath on a small topology of the test's own (two namespaces joined by a veth pair, IPv4
// and IPv6): IPv6 and ICMPv6, 802.1Q and 802.1ad tags, and filter changes at run time.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tracer, type HopEvent } from '../src/datapath/index.js';
import { execAsync, execSync } from '../src/util/exec.js';
import { sleep, vethPair } from './helpers/datapath.js';

const { nsA, nsB } = vethPair('dpv', '10.99.0', { v6: 'fd99::' });

/**
 * Sends one hand-made ICMP echo request 10.99.0.1 -> 10.99.0.2 (id 0x4242, seq 7) out of v0 with
 * the given VLAN tags (this kernel has no vlan devices; a packet socket writes the tags itself).
 */
function sendTagged(tags: [number, number][]): void {
  const py = `
import socket, struct
def csum(b):
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
icmp = struct.pack('!BBHHH', 8, 0, 0, 0x4242, 7) + b'vxtrace-vlan'
icmp = icmp[:2] + struct.pack('!H', csum(icmp)) + icmp[4:]
ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(icmp), 0x1234, 0, 64, 1, 0, socket.inet_aton('10.99.0.1'), socket.inet_aton('10.99.0.2'))
ip = ip[:10] + struct.pack('!H', csum(ip)) + ip[12:]
tags = b''.join(struct.pack('!HH', tpid, vid) for tpid, vid in ${JSON.stringify(tags)})
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(('v0', 0))
s.send(b'\\xff' * 6 + b'\\x02\\x00\\x00\\x00\\x00\\x01' + tags + b'\\x08\\x00' + ip + icmp)
`;
  execSync(['ip', 'netns', 'exec', nsA, 'python3', '-c', py]);
}

const ping = (args: string[]) => execAsync(['ip', 'netns', 'exec', nsA, 'ping', '-q', '-c', '2', '-i', '0.2', '-W', '1', ...args], { allowFail: true });

test('IPv6 and ICMPv6 are parsed; filters change at run time', async () => {
  const tracer = Tracer.open({ filter: 'none' });
  const events: HopEvent[] = [];
  try {
    tracer.attach([
      { node: 'a', netns: nsA, device: 'v0', role: 'uplink', directions: ['egress'] },
      { node: 'b', netns: nsB, device: 'v1', role: 'uplink', directions: ['ingress'] },
    ]);
    tracer.start((e) => events.push(...e));

    assert.equal((await ping(['10.99.0.2'])).status, 0);
    await sleep(200);
    assert.equal(events.length, 0, "filter 'none' emits nothing");

    tracer.setFilter({ rules: [{ between: ['fd99::/64', 'fd99::/64'], protocol: 'icmpv6' }] });
    assert.equal((await ping(['-6', 'fd99::2'])).status, 0);
    assert.equal((await ping(['10.99.0.2'])).status, 0);
    await sleep(200);
    const echo6 = events.filter((e) => e.inner.icmp?.type === 128);
    assert.equal(echo6.length, 4, 'two ICMPv6 echo requests, each at v0 egress and v1 ingress');
    assert.ok(events.every((e) => e.inner.family === 6), 'the IPv4 pings are not followed');
    for (const e of echo6) {
      assert.equal(e.inner.src, 'fd99::1');
      assert.equal(e.inner.dst, 'fd99::2');
      assert.equal(e.inner.protocol, 58);
      assert.equal(e.inner.ipLength, 104);
      assert.equal(e.inner.ipId, 0);
    }
    for (const seq of [1, 2]) {
      const hops = echo6.filter((e) => e.inner.icmp!.seq === seq);
      assert.deepEqual(hops.map((h) => `${h.device} ${h.direction}@${h.node}`).sort(), ['v0 egress@a', 'v1 ingress@b']);
      assert.equal(hops[0]!.fingerprint, hops[1]!.fingerprint, 'one fingerprint on both sides');
    }

    events.length = 0;
    tracer.setFilter('everything');
    assert.equal((await ping(['10.99.0.2'])).status, 0);
    await sleep(200);
    const v4 = events.filter((e) => e.inner.family === 4 && e.inner.icmp?.type === 8);
    assert.equal(v4.length, 4, "'everything' emits the IPv4 pings");
    assert.equal(v4[0]!.inner.src, '10.99.0.1');
    await tracer.stop();
  } finally {
    tracer.close();
  }
});

test('frames with one 802.1Q tag or 802.1ad + 802.1Q tags are parsed through the tags', async () => {
  const tracer = Tracer.open({ filter: { rules: [{ between: ['10.99.0.1', '10.99.0.2'], protocol: 'icmp' }] } });
  const events: HopEvent[] = [];
  try {
    tracer.attach([{ node: 'a', netns: nsA, device: 'v0', role: 'uplink', directions: ['egress'] }]);
    tracer.start((e) => events.push(...e));
    sendTagged([[0x8100, 100]]);
    sendTagged([[0x88a8, 200], [0x8100, 100]]);
    await sleep(200);
    await tracer.stop();
  } finally {
    tracer.close();
  }
  const tagged = events.filter((e) => e.inner.icmp?.id === 0x4242);
  assert.equal(tagged.length, 2, `both tagged frames: ${events.map((e) => e.skbLength).join(',')}`);
  const [one, two] = tagged.sort((x, y) => x.frame.length - y.frame.length) as [HopEvent, HopEvent];
  for (const e of [one, two]) {
    assert.equal(e.inner.src, '10.99.0.1');
    assert.equal(e.inner.dst, '10.99.0.2');
    assert.equal(e.inner.ipId, 0x1234);
    assert.deepEqual(e.inner.icmp, { type: 8, code: 0, id: 0x4242, seq: 7 });
  }
  assert.equal((one.frame[12]! << 8) | one.frame[13]!, 0x8100);
  assert.equal((two.frame[12]! << 8) | two.frame[13]!, 0x88a8);
  assert.equal(one.fingerprint, two.fingerprint, 'tags are not part of the fingerprint');
});
