// Findings in text as a run hands them out: the block the first time, one line when packets later
// confirm it (or raise it to an error). NDJSON keeps the full record every time.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { findingPrinter, formatFindingAgain } from '../../src/output/text.js';
import type { Finding } from '../../src/diagnose/finding.js';

const plain = { color: false };
const seed: Finding = {
  code: 'DUPLICATE_PUBLIC_IP', severity: 'error', nodes: ['node1', 'node2'], cause: 'every node registered public-ip 10.0.2.15', fix: 'restart flanneld with --iface=eth1',
  evidence: { observed: 'node1 and node2 all registered flannel public-ip 10.0.2.15' }, packetCount: 0, key: 'DUPLICATE_PUBLIC_IP:10.0.2.15',
};

test('a finding handed out again prints one line: code, how many packets confirm it, what they showed', () => {
  const text = findingPrinter(plain);
  const first = text(seed);
  assert.match(first, /^\n✖ DUPLICATE_PUBLIC_IP \(error\) on node1, node2\n  cause: /);
  const again = text({ ...seed, packetCount: 1, evidence: { observed: 'default/pod-a (10.244.1.10) -> default/pod-b (10.244.2.10) ICMP echo request id 7 seq 1: never left by an uplink' } });
  assert.equal(again, '✖ DUPLICATE_PUBLIC_IP confirmed by 1 packet: default/pod-a (10.244.1.10) -> default/pod-b (10.244.2.10) ICMP echo request id 7 seq 1: never left by an uplink\n');
  // Another finding still gets its block.
  assert.match(text({ ...seed, code: 'FDB_DST_LOCAL', key: 'FDB_DST_LOCAL:node1:node2' }), /^\n✖ FDB_DST_LOCAL \(error\)/);
});

test('a warning that packets prove an error says so in its line', () => {
  const mtu: Finding = { ...seed, code: 'MTU_EXCEEDED', severity: 'warning', key: 'MTU_EXCEEDED:node1' };
  const text = findingPrinter(plain);
  assert.match(text(mtu), /▲ MTU_EXCEEDED \(warning\)/);
  assert.equal(text({ ...mtu, severity: 'error', packetCount: 2, evidence: { observed: 'inner IP length 1500, DF set' } }), '✖ MTU_EXCEEDED now an error, confirmed by 2 packets: inner IP length 1500, DF set\n');
  assert.match(formatFindingAgain({ ...mtu, severity: 'error', packetCount: 1 }, 'warning', { color: true }), /^\x1b\[31m✖ MTU_EXCEEDED\x1b\[0m now an error/);
});
