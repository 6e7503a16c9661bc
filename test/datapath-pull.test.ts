// Headers not in the skb's linear part (root): the tc programs pull them there before parsing,
// and count it (TracerStats.pulled). A packet socket with a virtio-net header (PACKET_VNET_HDR)
// sends a 5000-byte UDP datagram whose skb keeps only the Ethernet header linear (the rest in page
// fragments), over a veth pair of the test's own (MTU 9000) in two namespaces; an ordinary ping's
// headers are linear and are never pulled.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tracer, type HopEvent } from '../src/datapath/index.js';
import { execAsync, execSync } from '../src/util/exec.js';
import { sleep, vethPair } from './helpers/datapath.js';

const { nsA, nsB } = vethPair('dpp', '10.98.0', { mtu: 9000 });

/** One UDP datagram 10.98.0.1:40000 -> 10.98.0.2:7777 of `payload` bytes out of v0, only its Ethernet header linear. */
function sendNonlinear(payload: number): void {
  const py = `
import socket, struct
def csum(b):
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
data = b'v' * ${payload}
udp = struct.pack('!HHHH', 40000, 7777, 8 + len(data), 0)
ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(udp) + len(data), 0x4321, 0, 64, 17, 0, socket.inet_aton('10.98.0.1'), socket.inet_aton('10.98.0.2'))
ip = ip[:10] + struct.pack('!H', csum(ip)) + ip[12:]
# struct virtio_net_hdr: no checksum offload, no GSO, hdr_len 14: the kernel puts only that much in the linear part
vnet = struct.pack('<BBHHHH', 0, 0, 14, 0, 0, 0)
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.setsockopt(263, 15, 1)  # SOL_PACKET, PACKET_VNET_HDR
s.bind(('v0', 0))
s.send(vnet + b'\\xff' * 6 + b'\\x02\\x00\\x00\\x00\\x00\\x01' + b'\\x08\\x00' + ip + udp + data)
`;
  execSync(['ip', 'netns', 'exec', nsA, 'python3', '-c', py]);
}

test('headers outside the linear part are pulled in, parsed and counted as pulled; linear ones never are', async () => {
  const tracer = Tracer.open({ filter: 'everything' });
  const events: HopEvent[] = [];
  try {
    tracer.attach([
      { node: 'a', netns: nsA, device: 'v0', role: 'uplink', directions: ['egress'] },
      { node: 'b', netns: nsB, device: 'v1', role: 'uplink', directions: ['ingress'] },
    ]);
    tracer.start((batch) => events.push(...batch));
    const ping = await execAsync(['ip', 'netns', 'exec', nsA, 'ping', '-q', '-c', '3', '-i', '0.1', '-W', '1', '10.98.0.2'], { allowFail: true });
    assert.equal(ping.status, 0, ping.stderr);
    await sleep(200);
    assert.equal(tracer.stats().pulled, 0, 'a ping\'s headers are in the linear part: nothing pulled');
    sendNonlinear(5000);
    await sleep(300);
    await tracer.stop();
    const stats = tracer.stats();
    assert.ok(stats.pulled >= 1 && stats.pulled <= 2, `the datagram's headers were pulled (${stats.pulled}; at most once per hook)`);
    const udp = events.filter((e) => e.kind === 'tc' && e.inner.protocol === 17 && e.inner.srcPort === 40000);
    assert.ok(udp.some((e) => e.device === 'v0' && e.direction === 'egress'), `the datagram parsed at v0 egress after the pull (${events.map((e) => `${e.device} ${e.inner.protocol}`).join(', ')})`);
    for (const e of udp) {
      assert.deepEqual([e.inner.src, e.inner.dst, e.inner.dstPort, e.inner.ipLength, e.skbLength], ['10.98.0.1', '10.98.0.2', 7777, 5028, 5042]);
    }
  } finally {
    tracer.close();
  }
});
