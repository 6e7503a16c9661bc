// The wire codec: what crosses a socket decodes into exactly what was encoded — a path or finding
// sent by the hub prints byte for byte the NDJSON and text `follow` prints; hop records rebuild
// their HopEvents; random bytes and cut frames throw WireError and nothing else.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';
import { parseKernelState } from '../../src/cluster/kernel.js';
import fc from 'fast-check';
import protobuf from 'protobufjs';
import {
  decodeAgentCommand, decodeAgentReport, decodeEventBatch, decodeSubscribe, encodeAgentCommand, encodeAgentReport, encodeEventBatch,
  encodeEventField, concatFrame, encodeSubscribe, hopEventOf, hopEventsOfKernel, hopRecordsOf, kernelHopRecordsOf, pathMessage, WireError, type StreamEvent,
} from '../../src/wire/codec.js';
import { KernelRecordBatch } from '../../src/wire/hop-batch.js';
import { HOP_LAYOUT } from '../../src/datapath/decode.js';
import { vxtrace } from '../../src/generated/vxtrace.js';
import { findingRecord, ndjsonLine, pathRecord } from '../../src/output/ndjson.js';
import { formatFinding, formatPathLine } from '../../src/output/text.js';
import type { PacketPath, PathOutcome } from '../../src/correlate/path.js';
import type { Finding } from '../../src/diagnose/finding.js';
import { FINDING_CODES } from '../../src/diagnose/finding.js';
import { Correlator, resolverFromModel } from '../../src/correlate/correlator.js';
import { Diagnoser } from '../../src/diagnose/diagnoser.js';
import { echoPath, sampleFindings } from './pcapng-fixtures.js';
import { crossNodeHops, dropAt, type PacketSpec } from './fixtures/hops.js';
import { fixtureModel, fixtureKernel, fixtureNodes } from './fixtures/flannel.js';
import { deliveredPath } from '../helpers/paths.js';
import type { HopEvent } from '../../src/datapath/hop.js';
import type { FlowFilter } from '../../src/datapath/index.js';

const plain = { color: false };

function roundTrip(events: StreamEvent[]): StreamEvent[] {
  return decodeEventBatch(encodeEventBatch(events));
}
const pathBack = (p: PacketPath): PacketPath => {
  const [e] = roundTrip([{ kind: 'path', path: p }]);
  assert.equal(e?.kind, 'path');
  return (e as { path: PacketPath }).path;
};
const findingBack = (f: Finding): Finding => {
  const [e] = roundTrip([{ kind: 'finding', finding: f }]);
  assert.equal(e?.kind, 'finding');
  return (e as { finding: Finding }).finding;
};

/** Paths as the correlator makes them from the fixtures: delivered, dropped, looping, lost, untraced, GSO. */
function fixturePaths(): PacketPath[] {
  const { model } = fixtureModel();
  const spec: PacketSpec = { src: '10.244.1.10', dst: '10.244.2.10', srcNode: 'node1', dstNode: 'node2', outer: { src: '192.168.1.121', dst: '192.168.1.122' } };
  const out: PacketPath[] = [];
  const run = (events: HopEvent[], traced?: (n: string) => boolean) => {
    const c = new Correlator({ resolver: resolverFromModel(model), ...(traced ? { traced } : {}) });
    out.push(...events.flatMap((e) => c.add(e)), ...c.flush());
  };
  run(crossNodeHops({ ...spec, fingerprint: 'aaaa000000000001' }));
  run([...crossNodeHops({ ...spec, fingerprint: 'aaaa000000000002' }, 3), dropAt({ ...spec, fingerprint: 'aaaa000000000002' }, 'node2', 'eth1', 'uplink', 'UDP_CSUM', 1_090_000n, true)]);
  run(crossNodeHops({ ...spec, fingerprint: 'aaaa000000000003' }, 3));
  run(crossNodeHops({ ...spec, fingerprint: 'aaaa000000000004' }, 3), (n) => n !== 'node2');
  const gso = crossNodeHops({ ...spec, fingerprint: 'aaaa000000000005', ipLength: 2900 }).map((e) => ({ ...e, gso: { size: 1398, segments: 2 } }));
  run(gso);
  const loop = crossNodeHops({ ...spec, fingerprint: 'aaaa000000000006' }, 2);
  for (let i = 0; i < 70; i++) loop.push({ ...loop[1]!, timestampNs: loop[1]!.timestampNs + BigInt(i) * 300n, direction: i % 2 ? 'egress' : 'ingress' });
  run(loop);
  return [...out, deliveredPath(), echoPath(), echoPath({ dropAtNode2: true, seq: 2 })];
}

test('every fixture path: encoded, decoded, its NDJSON and its text line are exactly what follow prints', () => {
  const paths = fixturePaths();
  assert.ok(paths.some((p) => p.outcome === 'dropped') && paths.some((p) => p.outcome === 'untraced') && paths.some((p) => p.hopsDiscarded));
  for (const p of paths) {
    const back = pathBack(p);
    // Field by field (hand-made fixtures order some keys differently from the datapath's decoder).
    assert.deepEqual(JSON.parse(ndjsonLine(pathRecord(back))), JSON.parse(ndjsonLine(pathRecord(p))));
    assert.equal(formatPathLine(back, plain), formatPathLine(p, plain));
    assert.equal(back.hopsDiscarded, p.hopsDiscarded);
  }
});

test('a path joined from hop records as the hub gets them prints byte for byte the NDJSON of the same path joined locally', () => {
  for (const original of [echoPath(), echoPath({ dropAtNode2: true, seq: 2 })]) {
    const events = original.hops.map((h) => h.event);
    // Through the agent's encoding and the hub's decoder (the datapath's own), as a live hub does.
    const decoded = hopRecordsOf(events).records.map(hopEventOf);
    const join = (es: HopEvent[]) => {
      const c = new Correlator({});
      return [...es.flatMap((e) => c.add(e)), ...c.flush()];
    };
    const [local] = join(decoded);
    assert.ok(local);
    const line = ndjsonLine(pathRecord(local));
    assert.equal(ndjsonLine(pathRecord(pathBack(local))), line);
    assert.equal(formatPathLine(pathBack(local), plain), formatPathLine(local, plain));
  }
});

const addr = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((a) => a.join('.'));
const macArb = fc.array(fc.nat(255), { minLength: 6, maxLength: 6 }).map((b) => b.map((x) => x.toString(16).padStart(2, '0')).join(':'));
const u16 = fc.nat(65535);
const bigNs = fc.bigInt({ min: 0n, max: (1n << 63n) - 1n });
const outerArb = fc.record({ family: fc.constant(4 as const), src: addr, dst: addr, protocol: fc.constant(17), srcPort: u16, dstPort: u16, vni: fc.nat(0xffffff), udpChecksum: u16, srcMac: macArb, dstMac: macArb });
const innerArb = fc.record(
  {
    family: fc.constantFrom(4 as const, 6 as const), src: addr, dst: addr, protocol: fc.constantFrom(1, 6, 17, 58), srcPort: u16, dstPort: u16,
    ipId: u16, ipLength: u16, ttl: fc.nat(255), dontFragment: fc.boolean(),
    icmp: fc.record({ type: fc.nat(255), code: fc.nat(255), id: u16, seq: u16 }),
    tcp: fc.record({ seq: fc.nat(0xffffffff), flags: fc.nat(255) }),
  },
  { requiredKeys: ['family', 'src', 'dst', 'protocol', 'srcPort', 'dstPort', 'ipId', 'ipLength', 'ttl', 'dontFragment'] },
);
const OUTCOMES: PathOutcome[] = ['delivered', 'dropped', 'lost-in-underlay', 'vanished', 'in-flight', 'untraced'];
const hopArb = fc.record(
  {
    node: fc.string({ minLength: 1, maxLength: 12 }), device: fc.string({ minLength: 1, maxLength: 15 }),
    role: fc.constantFrom('pod-bridge' as const, 'vtep' as const, 'uplink' as const, 'other' as const),
    direction: fc.constantFrom('ingress' as const, 'egress' as const), kind: fc.constantFrom('tc' as const, 'drop' as const),
    timestampNs: bigNs, wallTimeNs: fc.bigInt({ min: 0n, max: 8_000_000_000_000_000_000n }), latencyNs: bigNs, skbLength: fc.nat(0xffff),
    gso: fc.record({ size: u16, segments: u16 }), outer: outerArb, dropReason: fc.string({ minLength: 1 }), dropLocation: fc.string(),
  },
  { requiredKeys: ['node', 'device', 'role', 'direction', 'kind', 'timestampNs', 'wallTimeNs', 'skbLength'] },
);
const pathArb = fc.record(
  {
    fingerprint: fc.stringMatching(/^[0-9a-f]{16}$/), inner: innerArb, srcPod: fc.string(), dstPod: fc.string(), srcNode: fc.string(), dstNode: fc.string(),
    hops: fc.array(hopArb, { maxLength: 8 }), outer: outerArb, outcome: fc.constantFrom(...OUTCOMES),
    drop: fc.record({ node: fc.string(), device: fc.string(), reason: fc.string(), location: fc.string() }, { requiredKeys: ['node', 'device', 'reason'] }),
    firstSeenNs: bigNs, lastSeenNs: bigNs, hopsDiscarded: fc.integer({ min: 1, max: 1000 }),
  },
  { requiredKeys: ['fingerprint', 'inner', 'hops', 'outcome', 'firstSeenNs', 'lastSeenNs'] },
).map((r): PacketPath => {
  const { hops, ...rest } = r;
  const inner = { ...rest.inner };
  return {
    ...rest,
    inner,
    hops: hops.map(({ latencyNs, ...h }) => {
      const event: HopEvent = { ...(h as Omit<HopEvent, 'ifindex' | 'netnsInode' | 'fingerprint' | 'innerSrcMac' | 'innerDstMac' | 'inner' | 'frame'>), ifindex: 0, netnsInode: 0, fingerprint: r.fingerprint, innerSrcMac: '', innerDstMac: '', inner, frame: new Uint8Array(0) };
      // A hop's drop fields come with its drop reason (as the decoder sets them).
      if (event.dropReason === undefined) delete event.dropLocation;
      return latencyNs === undefined ? { event } : { event, latencyNs };
    }),
  } as PacketPath;
});

test('random paths: the NDJSON of the decoded path is the NDJSON of the original, field by field', () => {
  fc.assert(
    fc.property(pathArb, (p) => {
      const back = pathBack(p);
      assert.equal(ndjsonLine(pathRecord(back)), ndjsonLine(pathRecord(p)));
      assert.equal(formatPathLine(back, plain), formatPathLine(p, plain));
    }),
    { numRuns: 300 },
  );
});

test('the hub\'s path encoder writes byte for byte what protobufjs\' generated encoder writes for the same message', () => {
  const byProtobufjs = (p: PacketPath) => vxtrace.v1.EventBatch.encode({ events: [{ path: pathMessage(p) }] }).finish();
  const same = (p: PacketPath) => assert.deepEqual(Buffer.from(encodeEventField({ kind: 'path', path: p })), Buffer.from(byProtobufjs(p)));
  for (const p of fixturePaths()) same(p);
  fc.assert(fc.property(pathArb, same), { numRuns: 500 });
  // Names that are not ASCII, strings and messages past one and two bytes of length, negative and zero times.
  const unicode = fc.string({ unit: 'grapheme', maxLength: 40 });
  fc.assert(
    fc.property(pathArb, unicode, unicode, (p, pod, node) => {
      const hops = p.hops.map((h) => ({ ...h, event: { ...h.event, node, device: `${node}/dev` } }));
      same({ ...p, srcPod: pod, dstNode: node, hops });
    }),
    { numRuns: 200 },
  );
  const [long] = fixturePaths().filter((p) => p.hopsDiscarded);
  assert.ok(long && long.hops.length >= 60);
  same(long);
  const first = long.hops[0]!;
  same({ ...long, hops: [{ ...first, event: { ...first.event, kind: 'drop', dropReason: 'X'.repeat(20_000), dropLocation: 'é'.repeat(70) } }, ...long.hops] });
  same({ ...long, firstSeenNs: -1n, lastSeenNs: 0n, hops: [{ event: { ...first.event, timestampNs: -(1n << 63n), wallTimeNs: (1n << 63n) - 1n }, latencyNs: 0n }] });
});

test('findings (from the diagnoser on the seed, and random ones) decode to the same NDJSON and text', () => {
  const { model } = fixtureModel({ natPublicIp: true, withKernel: true });
  const d = new Diagnoser(model);
  const real = [...d.checkState(), ...sampleFindings];
  assert.ok(real.length >= 3);
  for (const f of real) {
    const back = findingBack(f);
    assert.equal(ndjsonLine(findingRecord(back)), ndjsonLine(findingRecord(f)));
    assert.equal(formatFinding(back, plain), formatFinding(f, plain));
  }
  const fact = fc.oneof(fc.string(), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.boolean(), fc.array(fc.string()));
  const findingArb = fc.record({
    code: fc.constantFrom(...FINDING_CODES), severity: fc.constantFrom('error' as const, 'warning' as const, 'info' as const), nodes: fc.array(fc.string()),
    cause: fc.string(), fix: fc.string(), packetCount: fc.nat(1_000_000), key: fc.string(),
    evidence: fc.record({ observed: fc.string(), expected: fc.string(), packets: fc.array(fc.stringMatching(/^[0-9a-f]{16}$/)), facts: fc.dictionary(fc.string({ minLength: 1 }).filter((k) => k !== '__proto__'), fact) }, { requiredKeys: ['observed'] }),
  });
  fc.assert(
    fc.property(findingArb, (f) => {
      const back = findingBack(f as Finding);
      assert.equal(JSON.stringify(findingRecord(back)), JSON.stringify(findingRecord(f as Finding)));
    }),
    { numRuns: 300 },
  );
});

test('node status, lost and subscribed events; pieces encoded once concatenate into one valid batch', () => {
  const events: StreamEvent[] = [
    { kind: 'subscribed', subscribed: { hubVersion: '0.2.0', nodes: ['node1', 'node2'], clusterFrom: 'cluster file x', timeNs: 1_764_000_000_000_000_000n } },
    { kind: 'node', status: { node: 'node2', state: 'unwatched', reason: 'agent gone: no word for 3 s', timeNs: 5n } },
    { kind: 'lost', lost: { source: 'ring-buffer', node: 'node1', count: 12345, timeNs: 6n } },
    { kind: 'lost', lost: { source: 'client-queue', node: '', count: 7, timeNs: 7n } },
    { kind: 'path', path: deliveredPath() },
    { kind: 'finding', finding: sampleFindings[0]! },
  ];
  const whole = roundTrip(events);
  const pieces = decodeEventBatch(concatFrame(events.map(encodeEventField)));
  assert.deepEqual(pieces.map((e) => e.kind), events.map((e) => e.kind));
  assert.deepEqual(whole.slice(0, 4), events.slice(0, 4));
  assert.deepEqual(pieces.slice(0, 4), events.slice(0, 4));
});

test('hop records: the trace file\'s encoding carries each HopEvent whole, frame and all, to the hub', () => {
  const events = [...echoPath().hops, ...echoPath({ dropAtNode2: true, seq: 3 }).hops].map((h) => h.event);
  const report = decodeAgentReport(encodeAgentReport({ kind: 'hops', hops: hopRecordsOf(events) }));
  assert.equal(report.kind, 'hops');
  const back = (report as { hops: { records: { record: Uint8Array; frame: Uint8Array }[] } }).hops.records.map(hopEventOf);
  assert.equal(back.length, events.length);
  events.forEach((e, i) => {
    const b = back[i]!;
    for (const k of ['timestampNs', 'wallTimeNs', 'kind', 'node', 'device', 'role', 'direction', 'ifindex', 'netnsInode', 'skbLength', 'fingerprint', 'innerSrcMac', 'innerDstMac', 'dropReason', 'dropLocation'] as const) {
      assert.deepEqual(b[k], e[k], k);
    }
    assert.deepEqual(b.inner, e.inner);
    assert.deepEqual(b.outer, e.outer);
    assert.deepEqual([...b.frame], [...e.frame]);
  });
});

const HOP_KEYS = ['timestampNs', 'wallTimeNs', 'kind', 'node', 'device', 'role', 'direction', 'ifindex', 'netnsInode', 'skbLength', 'fingerprint', 'innerSrcMac', 'innerDstMac', 'dropReason', 'dropReasonCode', 'dropLocation', 'frameStart', 'gso'] as const;

test('kernel records, as agents send them: one batch per node carries each HopEvent whole (hook, drop reason and function, wall clock, frame) to the hub', () => {
  const events = [...echoPath().hops, ...echoPath({ dropAtNode2: true, seq: 3 }).hops, ...echoPath({ dropAtNode2: true, dropFrame: 'ip', seq: 4 }).hops].map((h) => h.event);
  assert.ok(events.some((e) => e.kind === 'drop' && e.dropLocation) && events.some((e) => e.frameStart === 'ip'));
  for (const node of ['node1', 'node2']) {
    const mine = events.filter((e) => e.node === node);
    const report = decodeAgentReport(encodeAgentReport({ kind: 'hops', hops: kernelHopRecordsOf(mine) }));
    assert.equal(report.kind, 'hops');
    const hops = (report as Extract<typeof report, { kind: 'hops' }>).hops;
    assert.deepEqual(hops.records, []);
    // No kernel address leaves the node: a drop record's drop_location is the index of its function's name.
    for (let at = 0; at < hops.kernel!.bytes.length; ) {
      const v = new DataView(hops.kernel!.bytes.buffer, hops.kernel!.bytes.byteOffset + at);
      assert.ok(v.getBigUint64(HOP_LAYOUT.fields.drop_location.offset, true) <= BigInt(hops.kernel!.dropLocations.length));
      at += Math.ceil((HOP_LAYOUT.size + v.getUint32(HOP_LAYOUT.fields.cap_len.offset, true)) / 8) * 8;
    }
    const back = hopEventsOfKernel(hops.kernel!);
    assert.equal(back.length, mine.length);
    mine.forEach((e, i) => {
      const b = back[i]!;
      for (const k of HOP_KEYS) assert.deepEqual(b[k], e[k], `${node} hop ${i} ${k}`);
      assert.deepEqual(b.inner, e.inner);
      assert.deepEqual(b.outer, e.outer);
      assert.deepEqual([...b.frame], [...e.frame]);
    });
    // The hub's clock correction goes into every wall clock; a hook the batch does not name has no node.
    const corrected = hopEventsOfKernel(hops.kernel!, -7_000_000_000n);
    assert.deepEqual(corrected.map((e) => e.wallTimeNs), mine.map((e) => e.wallTimeNs - 7_000_000_000n));
    assert.deepEqual(hopEventsOfKernel({ ...hops.kernel!, hooks: [] }).map((e) => e.node), mine.map(() => ''));
  }
  // A batch holds one clock offset (the agent starts another when its tracer's changes) and one name per hook.
  const batch = new KernelRecordBatch();
  assert.ok(batch.add(events[0]!));
  assert.ok(!batch.add({ ...events[0]!, wallTimeNs: events[0]!.wallTimeNs + 1n }));
  assert.ok(!batch.add({ ...events[0]!, device: 'other0' }));
  assert.equal(batch.count, 1);
  assert.throws(() => kernelHopRecordsOf([events[0]!, { ...events[1]!, wallTimeNs: 0n }]), RangeError);
});

test('kernel records: random bytes, cut and flipped batches throw WireError and nothing else', () => {
  const events = [...echoPath().hops, ...echoPath({ dropAtNode2: true, seq: 3 }).hops].map((h) => h.event).filter((e) => e.node === 'node2');
  // (a copy as a plain Uint8Array: a Buffer's slice would be a view, and the flips would change it)
  const valid = new Uint8Array(encodeAgentReport({ kind: 'hops', hops: kernelHopRecordsOf(events) }));
  const decode = (b: Uint8Array) => {
    const r = decodeAgentReport(b);
    if (r.kind === 'hops' && r.hops.kernel) hopEventsOfKernel(r.hops.kernel);
  };
  const onlyWireErrors = (b: Uint8Array) => {
    try {
      decode(b);
    } catch (err) {
      if (!(err instanceof WireError)) throw new Error(`threw ${(err as Error).name}: ${(err as Error).message}`);
    }
  };
  fc.assert(
    fc.property(fc.nat(), fc.array(fc.record({ at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }), { maxLength: 6 }), (cut, flips) => {
      const b = valid.slice(0, cut % (valid.length + 1));
      for (const f of flips) if (b.length) b[f.at % b.length] ^= f.xor;
      onlyWireErrors(b);
    }),
    { numRuns: 3000 },
  );
  // Kernel records cut inside a record, or one claiming more frame bytes than the batch holds.
  const k = (decodeAgentReport(valid) as Extract<ReturnType<typeof decodeAgentReport>, { kind: 'hops' }>).hops.kernel!;
  assert.throws(() => hopEventsOfKernel({ ...k, bytes: k.bytes.subarray(0, k.bytes.length - HOP_LAYOUT.size) }), WireError);
  const long = k.bytes.slice();
  new DataView(long.buffer).setUint32(HOP_LAYOUT.fields.cap_len.offset, 1 << 20, true);
  assert.throws(() => hopEventsOfKernel({ ...k, bytes: long }), WireError);
});

test('agent reports and commands round-trip: hello, kernel state, stats, filters', () => {
  const nodes = fixtureNodes({ natPublicIp: true });
  const state = fixtureKernel(nodes[0]!, nodes);
  const k = decodeAgentReport(encodeAgentReport({ kind: 'kernel-state', state }));
  assert.deepEqual(k, { kind: 'kernel-state', state });
  const hello = { node: 'node1', version: '0.2.0', hostname: 'vm', hooks: ['cni0/ingress'], wallTimeNs: 1_764_000_000_123_456_789n };
  assert.deepEqual(decodeAgentReport(encodeAgentReport({ kind: 'hello', hello })), { kind: 'hello', hello });
  const stats = { ringLost: 3, queueDropped: 2 ** 40, records: 99, wallTimeNs: -5n };
  assert.deepEqual(decodeAgentReport(encodeAgentReport({ kind: 'stats', stats })), { kind: 'stats', stats });
  const filters: FlowFilter[] = ['none', 'everything', { rules: [{ between: ['10.244.1.10', '10.244.2.10'], protocol: 'icmp', port: 80 }, { between: ['10.244.1.10', 'any'] }] }];
  for (const filter of filters) {
    assert.deepEqual(decodeAgentCommand(encodeAgentCommand({ kind: 'set-filter', generation: 7, filter })), { kind: 'set-filter', generation: 7, filter });
  }
  const sub = { from: 'pod-a', to: 'default/pod-b', bothWays: true, node: 'node2', codes: ['DROPPED'], outcomes: ['dropped'], protocol: 'icmp', port: 8080, client: 'observe' };
  assert.deepEqual(decodeSubscribe(encodeSubscribe(sub)), sub);
  assert.deepEqual(decodeSubscribe(new Uint8Array(0)), {}, 'an empty Subscribe asks for everything');
});

test('random bytes and cut frames: every decoder throws WireError and nothing else', () => {
  const valid = [
    encodeEventBatch([{ kind: 'path', path: echoPath() }, { kind: 'finding', finding: sampleFindings[0]! }]),
    encodeAgentReport({ kind: 'hops', hops: hopRecordsOf(echoPath().hops.map((h) => h.event)) }),
    encodeSubscribe({ from: 'pod-a', to: 'pod-b' }),
    encodeAgentCommand({ kind: 'set-filter', generation: 1, filter: 'everything' }),
  ];
  const decoders = [decodeEventBatch, decodeAgentReport, decodeSubscribe, decodeAgentCommand, (b: Uint8Array) => {
    const r = decodeAgentReport(b);
    if (r.kind === 'hops') r.hops.records.forEach(hopEventOf);
  }];
  const onlyWireErrors = (bytes: Uint8Array) => {
    for (const d of decoders) {
      try {
        d(bytes);
      } catch (err) {
        if (!(err instanceof WireError)) throw new Error(`${d.name} threw ${(err as Error).name}: ${(err as Error).message}`);
      }
    }
  };
  fc.assert(fc.property(fc.uint8Array({ maxLength: 2048 }), onlyWireErrors), { numRuns: 2000 });
  fc.assert(
    fc.property(fc.constantFrom(...valid), fc.nat(), fc.array(fc.record({ at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }), { maxLength: 4 }), (frame, cut, flips) => {
      const b = frame.slice(0, cut % (frame.length + 1));
      for (const f of flips) if (b.length) b[f.at % b.length] ^= f.xor;
      onlyWireErrors(b);
    }),
    { numRuns: 2000 },
  );
  // A truncated frame is an error, not a shorter message.
  assert.throws(() => decodeEventBatch(valid[0]!.subarray(0, valid[0]!.length - 3)), WireError);
});

test('schema: every NDJSON field of a path, hop and finding is a field of the proto message (camelCase), or the _ns value it is derived from', () => {
  const root = protobuf.loadSync(fileURLToPath(new URL('../../../proto/vxtrace.proto', import.meta.url)));
  const fieldsOf = (name: string) => new Set(Object.values(root.lookupType(`vxtrace.v1.${name}`).fields).map((f) => f.name));
  const derived: Record<string, string> = { time: 'firstSeenNs', durationNs: 'lastSeenNs', wallTime: 'wallTimeNs' };
  const check = (record: object, message: string) => {
    const fields = fieldsOf(message);
    for (const key of Object.keys(record)) {
      if (key === 'type') continue;
      assert.ok(fields.has(key) || fields.has(derived[key] ?? ''), `${message} carries NDJSON field ${key}`);
    }
  };
  const p = pathRecord(echoPath({ dropAtNode2: true }));
  check(p, 'Path');
  for (const h of p.hops) check(h, 'Hop');
  check(p.inner, 'Inner');
  check(p.outer!, 'Outer');
  check(p.drop!, 'Drop');
  check(findingRecord(sampleFindings[0]!), 'Finding');
  check(findingRecord(sampleFindings[0]!).evidence, 'Evidence');
});

test('an agent\'s whole kernel state crosses the wire: the IPv6 VTEP, rp_filter, the nftables ruleset, tc qdiscs and filters', () => {
  const fixture = (name: string) => readFileSync(fileURLToPath(new URL(`../../../test/unit/fixtures/iproute2/${name}`, import.meta.url)), 'utf8');
  const recorded = parseKernelState({
    link: fixture('node1-link.json'), addr: fixture('node1-addr.json'), route: fixture('node1-route.json'), neigh: fixture('node1-neigh.json'), fdb: fixture('node1-fdb.json'),
    netconf: fixture('node2-netconf.json'), nft: fixture('node2-nft.json'), qdisc: fixture('node2-qdisc.json'),
    filters: [{ device: 'eth1', direction: 'ingress', output: fixture('node2-filter-eth1-ingress.json') }],
    legacy: [{ family: 4, command: 'iptables-legacy', output: readFileSync(fileURLToPath(new URL('../../../test/unit/fixtures/iptables/node2-legacy-save.txt', import.meta.url)), 'utf8') }],
  });
  assert.ok(recorded.firewall?.length && recorded.rpFilter && recorded.qdiscs?.length && recorded.tcFilters?.length, 'the fixture has every part');
  assert.ok(recorded.firewall.some((c) => c.legacy === 'iptables-legacy') && recorded.firewall.some((c) => !c.legacy), 'nftables and legacy chains both');
  const nodes = fixtureNodes({ stack: 'dual' });
  const dual = fixtureKernel(nodes[0]!, nodes, { stack: 'dual' });
  assert.ok(dual.vxlan6 && dual.fdb6?.length && dual.neighbours6?.length, 'the dual-stack fixture has an IPv6 VTEP');
  // (JSON: the parser leaves absent optional fields as undefined keys, the wire as no key)
  const plain = (x: unknown) => JSON.parse(JSON.stringify(x)) as unknown;
  for (const state of [recorded, dual, { ...dual, rpFilter: {}, firewall: [], qdiscs: [], tcFilters: [] }]) {
    assert.deepEqual(plain(decodeAgentReport(encodeAgentReport({ kind: 'kernel-state', state }))), plain({ kind: 'kernel-state', state }));
  }
});
