// The agent as the DaemonSet runs it: in a pod (KUBERNETES_SERVICE_HOST set) and given no cluster
// source it reads nothing from the API, and working in its own network namespace it needs CAP_BPF,
// CAP_PERFMON and CAP_NET_ADMIN only (CAP_SYS_ADMIN is for entering a lab node's namespace).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { agentNamespace } from '../../src/agent/where.js';
import { CAPABILITY_BITS, privilegeProblem, type Capability } from '../../src/util/privileges.js';
import { fakeKubeApi } from '../helpers/kube-api.js';
import { fixtureList, fixtureNodes } from './fixtures/flannel.js';

const mask = (...caps: Capability[]) => caps.reduce((m, c) => m | (1n << BigInt(CAPABILITY_BITS[c])), 0n);

test('tracing in its own namespace needs BPF, PERFMON and NET_ADMIN, not SYS_ADMIN', () => {
  assert.equal(privilegeProblem('vxtrace agent', 'trace-here', mask('CAP_BPF', 'CAP_PERFMON', 'CAP_NET_ADMIN'), 0), undefined);
  assert.match(privilegeProblem('vxtrace agent', 'trace', mask('CAP_BPF', 'CAP_PERFMON', 'CAP_NET_ADMIN'), 0)!, /needs CAP_SYS_ADMIN/, 'entering a namespace still does');
  assert.match(privilegeProblem('vxtrace agent', 'trace-here', mask('CAP_BPF'), 0)!, /^vxtrace agent needs CAP_PERFMON, CAP_NET_ADMIN \(missing; it has CAP_BPF\)/);
});

test('in a pod without a cluster source the agent asks the API nothing; with --kubeconfig it reads it', async () => {
  const api = await fakeKubeApi(fixtureList(fixtureNodes({ nodes: 2 })));
  const saved = { host: process.env.KUBERNETES_SERVICE_HOST, kubeconfig: process.env.KUBECONFIG };
  process.env.KUBERNETES_SERVICE_HOST = '127.0.0.1';
  process.env.KUBECONFIG = api.kubeconfig; // even a kubeconfig it could use is not read
  try {
    assert.deepEqual(await agentNamespace('node1', {}), { why: 'this machine is the node (in a pod: no cluster state read)' });
    assert.equal(api.requests.length, 0, api.requests.join(', '));
    assert.deepEqual(await agentNamespace('node1', { kubeconfig: api.kubeconfig }), { why: 'this machine is the node' });
    assert.ok(api.requests.includes('/api/v1/nodes'));
  } finally {
    for (const [k, v] of [['KUBERNETES_SERVICE_HOST', saved.host], ['KUBECONFIG', saved.kubeconfig]] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    await api.close();
  }
});
