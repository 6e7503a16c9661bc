import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatFinding, formatPathLine, formatProtocol, formatSummary, formatTcpFlags, summarize } from '../../src/output/text.js';
import { findingRecord, ndjsonLine, pathRecord } from '../../src/output/ndjson.js';
import type { Finding } from '../../src/diagnose/finding.js';
import { PING, deliveredPath, hop } from '../helpers/paths.js';

const plain = { color: false };

test('a delivered path reads as one line with the hop chain and latencies', () => {
  const line = formatPathLine(deliveredPath(), plain);
  assert.match(line, /default\/pod-a → default\/pod-b ICMP echo request id 7 seq 1/);
  assert.match(line, /node1 cni0 ▸ flannel\.1 \+10µs ▸ eth1 \+10µs ⇢ 192\.168\.1\.122:8472 vni 1 ⇢ node2 eth1 \+10µs ▸ flannel\.1 \+10µs ▸ cni0 \+10µs/);
  assert.match(line, /delivered in 50µs$/);
  assert.doesNotMatch(line, /\x1b\[/, 'no colour when not asked');
  assert.match(formatPathLine(deliveredPath(), { color: true }), /\x1b\[32mdelivered/);
});

test('a dropped path names where and why', () => {
  const p = deliveredPath();
  p.hops = p.hops.slice(0, 2);
  p.hops.push({ event: hop('node1', 'flannel.1', 'vtep', 'ingress', 12_000n, { kind: 'drop', dropReason: 'OTHERHOST' }) });
  p.outcome = 'dropped';
  p.drop = { node: 'node1', device: 'flannel.1', reason: 'OTHERHOST' };
  assert.match(formatPathLine(p, plain), /node1 cni0 ▸ flannel\.1 \+10µs  DROPPED at node1\/flannel\.1: OTHERHOST$/);
});

test('a path lost in the underlay shows where it was sent', () => {
  const p = deliveredPath();
  p.hops = p.hops.slice(0, 3);
  p.outcome = 'lost-in-underlay';
  assert.match(formatPathLine(p, plain), /eth1 \+10µs ⇢ 192\.168\.1\.122:8472 vni 1 ⇢  LOST in the underlay \(left node1\/eth1 egress/);
});

test('protocol summaries', () => {
  assert.equal(formatProtocol({ ...PING, icmp: { type: 0, code: 0, id: 7, seq: 2 } }), 'ICMP echo reply id 7 seq 2');
  assert.equal(formatProtocol({ ...PING, protocol: 6, srcPort: 40000, dstPort: 8080, icmp: undefined, tcp: { seq: 1, flags: 0x12 } }), 'TCP 40000 → 8080 [S.]');
  assert.equal(formatTcpFlags(0x18), '[P.]');
  assert.equal(formatProtocol({ ...PING, protocol: 17, srcPort: 5000, dstPort: 53, icmp: undefined }), 'UDP 5000 → 53');
});

const finding: Finding = {
  code: 'FDB_DST_LOCAL', severity: 'error', nodes: ['node1'], cause: 'the FDB entry points at this node itself',
  fix: 'restart flanneld with --iface=eth1', evidence: { observed: 'dst 10.0.2.15', expected: 'dst 192.168.1.122' }, packetCount: 3, key: 'k',
};

test('a finding prints as a block with cause, evidence and fix', () => {
  const text = formatFinding(finding, plain);
  assert.match(text, /^✖ FDB_DST_LOCAL \(error\) on node1, 3 packets\n  cause: +the FDB entry/);
  assert.match(text, /observed: dst 10\.0\.2\.15\n  expected: dst 192\.168\.1\.122\n  fix: +restart flanneld with --iface=eth1\n$/);
});

test('summary counts outcomes, lost records and finding codes', () => {
  const s = summarize([deliveredPath(), { ...deliveredPath(), outcome: 'dropped' }], 5, [finding, finding]);
  assert.equal(formatSummary(s, plain), '2 paths: 1 delivered, 1 dropped; 5 records lost (ring buffer full); findings: FDB_DST_LOCAL\n');
});

test('NDJSON: one object per line, type and code fields, bigints as strings', () => {
  const line = ndjsonLine(pathRecord(deliveredPath()));
  assert.equal(line.split('\n').length, 2);
  const o = JSON.parse(line);
  assert.equal(o.type, 'path');
  assert.equal(o.outcome, 'delivered');
  assert.equal(o.hops.length, 6);
  assert.equal(o.hops[1].latencyNs, '10000');
  assert.equal(o.hops[2].outer.dst, '192.168.1.122');
  assert.equal(JSON.parse(ndjsonLine(findingRecord(finding))).code, 'FDB_DST_LOCAL');
});

test('a loop through one device is shown once, with its count', () => {
  const p = deliveredPath();
  const loop = Array.from({ length: 60 }, (_, i) => ({ event: hop('node1', 'flannel.1', 'vtep', i % 2 ? 'ingress' : 'egress', 20_000n + BigInt(i) * 300n), latencyNs: 300n }));
  p.hops = [p.hops[0]!, ...loop];
  p.outcome = 'dropped';
  p.drop = { node: 'node1', device: 'flannel.1', reason: 'IP_INHDR' };
  assert.match(formatPathLine(p, plain), /node1 cni0 ▸ flannel\.1 \+300ns ⟲ 59× in 18µs  DROPPED at node1\/flannel\.1: IP_INHDR$/);
});
