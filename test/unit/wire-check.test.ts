// The check's messages on the wire (proto/vxtrace.proto: Subscribe.check, Pair, CheckDone,
// SendProbes, ProbeResults): what goes in comes out, a cell's NDJSON from the hub is byte for byte a
// local check's, and cut or flipped frames throw WireError and nothing else.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  decodeAgentCommand, decodeAgentReport, decodeEventBatch, decodeSubscribe, encodeAgentCommand, encodeAgentReport, encodeEventBatch, encodeSubscribe, WireError,
} from '../../src/wire/codec.js';
import type { Cell } from '../../src/probe/judge.js';
import { pairRecord, ndjsonLine } from '../../src/output/ndjson.js';

const cell: Cell = {
  from: 'node1', to: 'node2', ok: false, probed: true, reason: 'back: dropped at node2 flannel.1: NETFILTER_DROP', findings: ['DROPPED:node2:flannel.1:NETFILTER_DROP'],
  coverage: { out: ['node1 cni0 ingress'], back: [], missing: ['node2 pod-bridge egress'] },
  legs: [
    { probe: 'node1>node2', kind: 'base', attempt: 1, leg: 'request', direction: 'out', protocol: 'icmp', src: '10.244.1.1', dst: '10.244.2.10', bytes: 84, tag: 7, outcome: 'dropped', fingerprint: '00000000000000ab', hops: ['node1/flannel.1/egress', 'node2/eth1/ingress'], drop: { node: 'node2', device: 'flannel.1', reason: 'NETFILTER_DROP', location: 'nft_do_chain+0x5ad' }, reason: 'dropped at node2 flannel.1: NETFILTER_DROP', error: null },
    { probe: 'node1>node2', kind: 'size', attempt: 2, leg: 'reply', direction: 'back', protocol: 'icmp', src: '10.244.2.10', dst: '10.244.1.1', bytes: 1450, tag: 8, outcome: null, fingerprint: null, hops: [], drop: null, reason: null, error: 'local error: message too long, mtu=1450' },
  ],
};

test('a cell crosses the wire unchanged: its NDJSON from the hub is what a local check prints', () => {
  const [e] = decodeEventBatch(encodeEventBatch([{ kind: 'pair', cell }]));
  assert.equal(e?.kind, 'pair');
  const back = (e as { cell: Cell }).cell;
  assert.deepEqual(back, cell);
  assert.equal(ndjsonLine(pairRecord(back)), ndjsonLine(pairRecord(cell)));
  const ok: Cell = { ...cell, ok: true, reason: undefined, findings: [], legs: [] };
  delete ok.reason;
  assert.deepEqual((decodeEventBatch(encodeEventBatch([{ kind: 'pair', cell: ok }]))[0] as { cell: Cell }).cell, ok);
  const done = { nodes: ['node1', 'node2'], pairs: 2, working: 1, broken: 1, notProbed: 0, probes: 4, durationMs: 1234 };
  assert.deepEqual(decodeEventBatch(encodeEventBatch([{ kind: 'check-done', done }])), [{ kind: 'check-done', done }]);
});

test('the check request, the probes for an agent and their results', () => {
  assert.deepEqual(decodeSubscribe(encodeSubscribe({ client: 'check', check: { protocol: 'udp', size: 1400, timeoutMs: 500 } })), { client: 'check', check: { protocol: 'udp', size: 1400, timeoutMs: 500 } });
  assert.deepEqual(decodeSubscribe(encodeSubscribe({ check: { protocol: 'icmp' } })), { check: { protocol: 'icmp' } });
  const probes = [
    { id: 1, protocol: 'icmp' as const, src: '10.244.1.1', dst: '10.244.2.10', tag: 3, bytes: 1450, df: true, timeoutMs: 1000 },
    { id: 1, cancel: true as const },
  ];
  assert.deepEqual(decodeAgentCommand(encodeAgentCommand({ kind: 'send-probes', probes })), { kind: 'send-probes', probes });
  const results = [{ id: 1, replied: true }, { id: 2, replied: false, error: 'local error: message too long, mtu=1450' }];
  assert.deepEqual(decodeAgentReport(encodeAgentReport({ kind: 'probe-results', results })), { kind: 'probe-results', results });
  assert.throws(() => decodeSubscribe(encodeSubscribe({ check: { protocol: 'sctp' as 'icmp' } })), WireError);
});

test('cut and flipped check frames: the decoders throw WireError and nothing else', () => {
  const valid = [
    encodeEventBatch([{ kind: 'pair', cell }, { kind: 'check-done', done: { nodes: ['a'], pairs: 0, working: 0, broken: 0, notProbed: 0, probes: 0, durationMs: 1 } }]),
    encodeAgentCommand({ kind: 'send-probes', probes: [{ id: 9, protocol: 'tcp', src: 'a', dst: 'b', tag: 1, bytes: 84, df: false, timeoutMs: 1 }] }),
    encodeAgentReport({ kind: 'probe-results', results: [{ id: 9, replied: false, error: 'x' }] }),
    encodeSubscribe({ check: { protocol: 'tcp', size: 9000 } }),
  ];
  const decoders = [decodeEventBatch, decodeAgentReport, decodeSubscribe, decodeAgentCommand];
  fc.assert(
    fc.property(fc.constantFrom(...valid), fc.nat(), fc.array(fc.record({ at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }), { maxLength: 4 }), (frame, cut, flips) => {
      const b = frame.slice(0, cut % (frame.length + 1));
      for (const f of flips) if (b.length) b[f.at % b.length] ^= f.xor;
      for (const d of decoders) {
        try {
          d(b);
        } catch (err) {
          if (!(err instanceof WireError)) throw new Error(`${d.name} threw ${(err as Error).name}: ${(err as Error).message}`);
        }
      }
    }),
    { numRuns: 2000 },
  );
});
