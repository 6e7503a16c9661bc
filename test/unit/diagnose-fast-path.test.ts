// The diagnoser's fast path (src/diagnose/fast-path.ts) skips delivered paths of a shape already
// diagnosed clean: it must find exactly what diagnosing every path finds, the packet's own bytes
// (a corrupt outer checksum) included.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Diagnoser, diagnosePath } from '../../src/diagnose/diagnoser.js';
import { ClusterModel } from '../../src/cluster/model.js';
import { clusterObjectsFromJson } from '../../src/cluster/list.js';
import type { PacketPath } from '../../src/correlate/path.js';
import { echoPath, snapshot } from './pcapng-fixtures.js';
import { verifyOuterUdpChecksum } from '../../src/diagnose/checksum.js';

function model(): ClusterModel {
  const s = snapshot();
  return ClusterModel.build(clusterObjectsFromJson(s.cluster!, 'fixture'), new Map(Object.entries(s.nodeState)));
}

/** The same path with its uplink frames' outer UDP checksum corrupted. */
function corrupt(p: PacketPath): PacketPath {
  return {
    ...p,
    hops: p.hops.map((h) => {
      if (!h.event.outer) return h;
      const frame = Uint8Array.from(h.event.frame);
      frame[14 + 20 + 6] = frame[14 + 20 + 6]! ^ 0x5a;
      return { ...h, event: { ...h.event, frame } };
    }),
  };
}

test('the fast path finds what diagnosing every path finds: clean repeats, a corrupt checksum, another shape, a new model', () => {
  const m = model();
  const seq = [
    echoPath({ seq: 1 }), echoPath({ seq: 2 }), echoPath({ seq: 3 }),
    corrupt(echoPath({ seq: 4 })),
    echoPath({ seq: 5, outerDst: '10.0.2.15' }), echoPath({ seq: 6, outerDst: '10.0.2.15' }),
    echoPath({ seq: 7, dropAtNode2: true }),
    echoPath({ seq: 8 }),
  ];
  assert.equal(verifyOuterUdpChecksum(seq[0]!.hops[2]!.event.frame), true, 'the fixture\'s checksum is right');
  assert.equal(verifyOuterUdpChecksum(seq[3]!.hops[2]!.event.frame), false, 'and corrupted, wrong');
  const d = new Diagnoser(m);
  for (const p of seq) {
    const fast = d.observePath(p).map((f) => f.code).sort();
    const full = diagnosePath(p, m).map((f) => f.code).sort();
    assert.deepEqual(fast, full, `path ${p.fingerprint} (${p.outcome})`);
  }
  assert.ok(diagnosePath(seq[3]!, m).some((f) => f.code === 'BAD_OUTER_CHECKSUM'), 'the corrupt one is a finding even after clean ones of its shape');
  d.setModel(model());
  assert.deepEqual(d.observePath(corrupt(echoPath({ seq: 9 }))).map((f) => f.code), ['BAD_OUTER_CHECKSUM']);
  assert.deepEqual(d.observePath(echoPath({ seq: 10 })), []);
});

test('a shape is known clean only when every value of it is the same: the repeat is, a path differing in one hop is not', async () => {
  const { HealthyShapes } = await import('../../src/diagnose/fast-path.js');
  const m = model();
  const shapes = new HealthyShapes();
  const first = echoPath({ seq: 1 });
  assert.equal(shapes.known(first, m), false, 'nothing is known before learning');
  shapes.learn(first, []);
  assert.equal(shapes.known(echoPath({ seq: 2 }), m), true, 'another packet of the same journey');
  const otherDevice = echoPath({ seq: 3 });
  otherDevice.hops[1] = { ...otherDevice.hops[1]!, event: { ...otherDevice.hops[1]!.event, device: 'flannel.2' } };
  assert.equal(shapes.known(otherDevice, m), false, 'one hop on another device');
  const otherMac = echoPath({ seq: 4 });
  otherMac.hops[1] = { ...otherMac.hops[1]!, event: { ...otherMac.hops[1]!.event, innerDstMac: '02:00:00:00:00:99' } };
  assert.equal(shapes.known(otherMac, m), false, "the VTEP egress hop's inner destination MAC");
  const shorter = echoPath({ seq: 5 });
  shorter.hops = shorter.hops.slice(0, 5);
  assert.equal(shapes.known(shorter, m), false, 'one hop fewer');
  shapes.learn(echoPath({ seq: 6, outerDst: '10.0.2.15' }), [{}]);
  assert.equal(shapes.known(echoPath({ seq: 7, outerDst: '10.0.2.15' }), m), false, 'a path that showed findings is not learnt');
  assert.equal(shapes.known(corrupt(echoPath({ seq: 8 })), m), false, 'a known shape with a wrong outer checksum');
  shapes.forget();
  assert.equal(shapes.known(echoPath({ seq: 9 }), m), false, 'forgotten with the model');
});
