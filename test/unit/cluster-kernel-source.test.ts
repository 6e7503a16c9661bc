import { test } from 'node:test';
import assert from 'node:assert/strict';
import { kernelSourceOf } from '../../src/cluster/kernel-reader.js';
import { toNode } from '../../src/cluster/list.js';

const node = (name: string, ip: string, netns?: string) =>
  toNode({ metadata: { name, annotations: netns ? { 'vxtrace.io/netns': netns } : {} }, status: { addresses: [{ type: 'InternalIP', address: ip }] } });

test('where a node kernel state is read: its vxtrace.io/netns, this machine for the node that is this machine, else nowhere', () => {
  const self = { hostname: 'worker-2', addresses: ['127.0.0.1', '192.168.1.122'] };
  assert.deepEqual(kernelSourceOf(node('node1', '192.168.1.121', 'vxt-lab-node1'), self), { netns: 'vxt-lab-node1' });
  assert.deepEqual(kernelSourceOf(node('node2', '192.168.1.122'), self), {});
  assert.deepEqual(kernelSourceOf(node('worker-2', '10.9.9.9'), self), {});
  assert.equal(kernelSourceOf(node('node3', '192.168.1.123'), self), undefined);
});
