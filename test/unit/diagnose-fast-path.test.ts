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
