// The hop-record decoder on hand-built records and on random bytes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  decodeBatch, decodeHopHeader, encodeHopHeader, fingerprintOf, HOP_LAYOUT, L3_LAYOUT, RecordDecodeError, KIND_DROP, KIND_TC, F_ENCAP, F_HAS_L4, F_L3_START,
  type DecodeContext,
} from '../../src/datapath/decode.js';
import { encodeRule } from '../../src/datapath/index.js';
import { ipString, ipv6Bytes } from '../../src/net/address.js';
import { UsageError } from '../../src/errors.js';

const F = HOP_LAYOUT.fields;

const ctx: DecodeContext = {
  hookOf: (cookie, ifindex) => ({ node: `node-${cookie}`, device: `dev${ifindex}`, role: 'uplink', netnsInode: 4026531840 }),
  dropReasonName: (code) => (code === 12 ? 'NETFILTER_DROP' : `UNKNOWN_${code}`),
  symbolOf: (a) => (a === 0xffffffff81000010n ? 'nft_do_chain+0x10' : undefined),
  monotonicToWallNs: 1_000_000_000n,
};

interface Spec {
  kind?: number;
  ts?: bigint;
  flags?: number;
  frame?: number[];
  outer?: boolean;
  drop?: number;
  v6?: boolean;
}

/** A record as the kernel writes it: little-endian counters, network-order packet fields. */
function record(s: Spec = {}): Uint8Array {
  const frame = s.frame ?? [1, 2, 3];
  const size = Math.ceil((HOP_LAYOUT.size + frame.length) / 8) * 8;
  const b = new Uint8Array(size);
  const v = new DataView(b.buffer);
  v.setBigUint64(F.ts_ns.offset, s.ts ?? 5n, true);
  v.setBigUint64(F.netns_cookie.offset, 7n, true);
  v.setBigUint64(F.fingerprint.offset, 0x0123456789abcdefn, true);
  v.setUint32(F.ifindex.offset, 3, true);
  v.setUint32(F.skb_len.offset, 148, true);
  v.setUint32(F.cap_len.offset, frame.length, true);
  v.setUint8(F.kind.offset, s.kind ?? KIND_TC);
  v.setUint8(F.direction.offset, 1);
  v.setUint16(F.flags.offset, (s.flags ?? F_HAS_L4) | (s.outer ? F_ENCAP : 0), true);
  const inner = F.inner.offset;
  if (s.v6) {
    b.set(ipv6Bytes('fd00::1'), inner + L3_LAYOUT.saddr.offset);
    b.set(ipv6Bytes('fd00::2:0:0:3'), inner + L3_LAYOUT.daddr.offset);
    v.setUint8(inner + L3_LAYOUT.family.offset, 6);
    v.setUint8(inner + L3_LAYOUT.protocol.offset, 58);
    v.setUint16(F.ip_len.offset, 64, false);
  } else {
    b.set([10, 244, 1, 10], inner + L3_LAYOUT.saddr.offset);
    b.set([10, 244, 2, 10], inner + L3_LAYOUT.daddr.offset);
    v.setUint8(inner + L3_LAYOUT.family.offset, 4);
    v.setUint8(inner + L3_LAYOUT.protocol.offset, 1);
    v.setUint16(F.ip_id.offset, 0xbeef, false);
    v.setUint16(F.ip_len.offset, 84, false);
  }
  v.setUint8(inner + L3_LAYOUT.ttl.offset, 63);
  v.setUint8(F.icmp_type.offset, s.v6 ? 128 : 8);
  v.setUint16(F.icmp_id.offset, 0x1234, false);
  v.setUint16(F.icmp_seq.offset, 7, false);
  b.set([0x0e, 0x76, 0x78, 0, 0, 1], F.inner_src_mac.offset);
  if (s.outer) {
    const o = F.outer.offset;
    b.set([192, 168, 1, 121], o + L3_LAYOUT.saddr.offset);
    b.set([192, 168, 1, 122], o + L3_LAYOUT.daddr.offset);
    v.setUint8(o + L3_LAYOUT.family.offset, 4);
    v.setUint8(o + L3_LAYOUT.protocol.offset, 17);
    v.setUint16(o + L3_LAYOUT.dport.offset, 8472, false);
    v.setUint16(o + L3_LAYOUT.sport.offset, 40000, false);
    v.setUint32(F.vxlan_vni.offset, 1 << 8, false);
    v.setUint16(F.outer_udp_csum.offset, 0xabcd, false);
  }
  if (s.drop !== undefined) {
    v.setUint32(F.drop_reason.offset, s.drop, true);
    v.setBigUint64(F.drop_location.offset, 0xffffffff81000010n, true);
  }
  b.set(frame, HOP_LAYOUT.size);
  return b;
}

const concat = (...parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) (out.set(p, at), (at += p.length));
  return out;
};

test('a tc record decodes into a HopEvent: byte order, addresses, ICMP, outer headers, hook identity', () => {
  const [e] = decodeBatch(record({ outer: true, ts: 100n, frame: [9, 8, 7, 6, 5] }), ctx);
  assert.ok(e);
  assert.equal(e.kind, 'tc');
  assert.equal(e.timestampNs, 100n);
  assert.equal(e.wallTimeNs, 1_000_000_100n);
  assert.equal(e.node, 'node-7');
  assert.equal(e.device, 'dev3');
  assert.equal(e.direction, 'egress');
  assert.equal(e.fingerprint, '0123456789abcdef');
  assert.equal(e.inner.src, '10.244.1.10');
  assert.equal(e.inner.dst, '10.244.2.10');
  assert.equal(e.inner.ipId, 0xbeef);
  assert.equal(e.inner.ipLength, 84);
  assert.equal(e.inner.ttl, 63);
  assert.deepEqual(e.inner.icmp, { type: 8, code: 0, id: 0x1234, seq: 7 });
  assert.equal(e.innerSrcMac, '0e:76:78:00:00:01');
  assert.deepEqual(e.outer && { src: e.outer.src, dst: e.outer.dst, dstPort: e.outer.dstPort, srcPort: e.outer.srcPort, vni: e.outer.vni, csum: e.outer.udpChecksum }, {
    src: '192.168.1.121', dst: '192.168.1.122', dstPort: 8472, srcPort: 40000, vni: 1, csum: 0xabcd,
  });
  assert.deepEqual([...e.frame], [9, 8, 7, 6, 5]);
  assert.equal(e.dropReason, undefined);
});

test('a drop record carries the reason named by the context and the freeing function', () => {
  const [e] = decodeBatch(record({ kind: KIND_DROP, drop: 12 }), ctx);
  assert.equal(e!.kind, 'drop');
  assert.equal(e!.dropReasonCode, 12);
  assert.equal(e!.dropReason, 'NETFILTER_DROP');
  assert.equal(e!.dropLocation, 'nft_do_chain+0x10');
});

test('a drop record that starts at the IP header says so (frameStart ip), its bytes as captured', () => {
  const [e] = decodeBatch(record({ kind: KIND_DROP, drop: 12, flags: F_L3_START, frame: [0x45, 0, 0, 20] }), ctx);
  assert.equal(e!.frameStart, 'ip');
  assert.deepEqual([...e!.frame], [0x45, 0, 0, 20]);
  const [t] = decodeBatch(record({}), ctx);
  assert.equal(t!.frameStart, undefined, 'Ethernet frames carry no frameStart');
});

test('IPv6 inner packets: compressed addresses, total length, ICMPv6 echo', () => {
  const [e] = decodeBatch(record({ v6: true }), ctx);
  assert.equal(e!.inner.family, 6);
  assert.equal(e!.inner.src, 'fd00::1');
  assert.equal(e!.inner.dst, 'fd00::2:0:0:3');
  assert.equal(e!.inner.ipLength, 104);
  assert.equal(e!.inner.ipId, 0);
  assert.equal(e!.inner.icmp?.type, 128);
});

test('a batch of several padded records decodes in order; a truncated one is a RecordDecodeError', () => {
  const batch = concat(record({ ts: 1n, frame: [1] }), record({ ts: 2n, frame: new Array(13).fill(0) }), record({ ts: 3n }));
  assert.deepEqual(decodeBatch(batch, ctx).map((e) => e.timestampNs), [1n, 2n, 3n]);
  assert.throws(() => decodeBatch(batch.subarray(0, batch.length - 100), ctx), RecordDecodeError);
  assert.throws(() => decodeBatch(record({ kind: 9 }), ctx), RecordDecodeError);
});

test('random bytes never throw anything but RecordDecodeError', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 0, maxLength: 1200 }), (bytes) => {
      try {
        decodeBatch(bytes, ctx);
      } catch (err) {
        if (!(err instanceof RecordDecodeError)) throw err;
      }
    }),
    { numRuns: 500 },
  );
  // valid records with random corruption
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.nat(HOP_LAYOUT.size + 20), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }), (edits) => {
      const b = concat(record({ outer: true }), record({ v6: true, frame: new Array(20).fill(1) }));
      for (const [at, val] of edits) if (at < b.length) b[at] = val;
      try {
        decodeBatch(b, ctx);
      } catch (err) {
        if (!(err instanceof RecordDecodeError)) throw err;
      }
    }),
    { numRuns: 500 },
  );
});

test('encodeHopHeader is the inverse of decoding: any decoded record, encoded again, decodes to the same event', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: HOP_LAYOUT.size, maxLength: HOP_LAYOUT.size }),
      fc.constantFrom(KIND_TC, KIND_DROP),
      fc.constantFrom(4, 6),
      fc.constantFrom(4, 6),
      fc.uint8Array({ maxLength: 64 }),
      (header, kind, family, outerFamily, frame) => {
        header[F.kind.offset] = kind;
        header[F.inner.offset + L3_LAYOUT.family.offset] = family;
        header[F.outer.offset + L3_LAYOUT.family.offset] = outerFamily;
        // What the header does not carry back (netns cookie, drop location address) is not asked for.
        const noLocation: DecodeContext = { ...ctx, hookOf: (_cookie, ifindex) => ctx.hookOf(0n, ifindex), symbolOf: () => undefined };
        const e = decodeHopHeader(header, frame, noLocation)!;
        const again = decodeHopHeader(encodeHopHeader(e), frame, noLocation)!;
        assert.deepEqual({ ...again, record: undefined }, { ...e, record: undefined });
      },
    ),
    { numRuns: 1000 },
  );
});

test('IPv6 text and bytes round-trip in RFC 5952 form', () => {
  for (const text of ['::', '::1', 'fd00::1', '2001:db8::ff00:42:8329', '1:2:3:4:5:6:7:8', 'fe80::1:0:0:0', '1::2:0:0:3']) {
    assert.equal(ipString(ipv6Bytes(text), 0, 6), text);
  }
  assert.equal(ipString(ipv6Bytes('::ffff:10.0.0.1'), 0, 6), '::ffff:a00:1');
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (bytes) => {
      assert.deepEqual([...ipv6Bytes(ipString(bytes, 0, 6))], [...bytes]);
    }),
  );
  assert.throws(() => ipv6Bytes('1:::2'), RangeError);
  assert.throws(() => ipv6Bytes('12345::'), RangeError);
});

test('the fingerprint ignores what hops change and follows what they do not', () => {
  const base = { family: 4 as const, protocol: 1, src: '10.244.1.10', dst: '10.244.2.10', srcPort: 0, dstPort: 0, ipId: 7, ipLength: 84, icmpType: 8, icmpId: 5, icmpSeq: 1 };
  const fp = fingerprintOf(base);
  assert.match(fp, /^[0-9a-f]{16}$/);
  assert.equal(fingerprintOf({ ...base }), fp);
  assert.equal(fingerprintOf({ ...base, srcPort: 99 }), fp, 'ICMP has no ports');
  for (const change of [{ ipId: 8 }, { icmpSeq: 2 }, { src: '10.244.1.11' }, { icmpType: 0 }, { ipLength: 85 }]) {
    assert.notEqual(fingerprintOf({ ...base, ...change }), fp, JSON.stringify(change));
  }
});

test('filter rules: addresses and CIDRs to network-order words and masks; bad input is a UsageError', () => {
  const r = encodeRule({ between: ['10.244.1.10', '10.244.2.0/24'], protocol: 'icmp' });
  assert.equal(r.family, 4);
  assert.equal(r.protocol, 1);
  assert.deepEqual([...r.aAddr.subarray(0, 4)], [10, 244, 1, 10]);
  assert.deepEqual([...r.aMask.subarray(0, 5)], [255, 255, 255, 255, 0]);
  assert.deepEqual([...r.bMask.subarray(0, 4)], [255, 255, 255, 0]);
  const any = encodeRule({});
  assert.equal(any.family, 0);
  assert.deepEqual([...any.aMask], new Array(16).fill(0));
  const v6 = encodeRule({ between: ['fd00::/8', 'fd00::1'], port: 443 });
  assert.equal(v6.family, 6);
  assert.deepEqual([...v6.aMask.subarray(0, 2)], [255, 0]);
  assert.equal(v6.port, 443);
  for (const bad of [
    { between: ['10.0.0.300', '10.0.0.1'] },
    { between: ['10.0.0.0/33', '10.0.0.1'] },
    { between: ['10.0.0.1', 'fd00::1'] },
    { between: ['nonsense', '10.0.0.1'] },
    { protocol: 'sctpx' },
    { port: 70000 },
  ] as const) {
    assert.throws(() => encodeRule(bad as never), UsageError, JSON.stringify(bad));
  }
});
