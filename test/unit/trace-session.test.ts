import { test } from 'node:test';
import assert from 'node:assert/strict';
import { vxlanPortsOf } from '../../src/session/trace-session.js';
import { fixtureModel } from './fixtures/flannel.js';

test('the tracer parses as VXLAN every port the nodes use, then the defaults, at most four', () => {
  const { model } = fixtureModel();
  assert.deepEqual(vxlanPortsOf(model), [8472, 4789]);
  const node2 = model.node('node2')!;
  const odd = model.withKernelState('node2', { ...node2.kernel!, vxlan: { ...node2.kernel!.vxlan!, port: 9999 } });
  assert.deepEqual(vxlanPortsOf(odd), [8472, 9999, 4789]);
});
