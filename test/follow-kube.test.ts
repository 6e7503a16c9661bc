// `vxtrace follow` with the cluster read from the Kubernetes API (a stand-in server on 127.0.0.1
// serving the lab's objects): --kubeconfig, and KUBECONFIG taking precedence over a running lab.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { execAsync } from '../src/util/exec.js';
import type { LabState } from '../src/lab/index.js';
import { withLab } from './helpers/lab.js';
import { runFollow } from './helpers/follow.js';
import { fakeKubeApi } from './helpers/kube-api.js';

const ping = (lab: LabState) =>
  execAsync(['ip', 'netns', 'exec', lab.pods[0]!.netns, 'ping', '-c', '1', '-W', '1', '-q', lab.pods[1]!.ip], { allowFail: true });

test('--kubeconfig: pods resolved from the API, packets followed on the lab nodes it names', async () => {
  await withLab({ nodes: 2 }, async (lab) => {
    const api = await fakeKubeApi(JSON.parse(readFileSync(lab.clusterFile, 'utf8')));
    try {
      const r = await runFollow(['follow', 'pod-a', 'default/pod-b', '--kubeconfig', api.kubeconfig, '--json', '--count', '2', '--duration', '15'], () => ping(lab));
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stderr, new RegExp(`^cluster: Kubernetes API ${api.server.replace(/\./g, '\\.')}`, 'm'));
      assert.ok(api.requests.includes('/api/v1/nodes') && api.requests.includes('/api/v1/pods'), api.requests.join(', '));
      const paths = r.records.filter((x) => x.type === 'path');
      assert.equal(paths.length, 2);
      assert.ok(paths.every((p) => p.outcome === 'delivered' && (p.hops as unknown[]).length === 6));
    } finally {
      await api.close();
    }
  });
});

test('without flags, KUBECONFIG is used before a running lab, and vxtrace says which', async () => {
  await withLab({ nodes: 2 }, async (lab) => {
    const api = await fakeKubeApi(JSON.parse(readFileSync(lab.clusterFile, 'utf8')));
    const saved = process.env.KUBECONFIG;
    process.env.KUBECONFIG = api.kubeconfig; // inherited by the CLI child
    try {
      const r = await runFollow(['follow', 'pod-a', 'pod-b', '--count', '2', '--duration', '15'], () => ping(lab));
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stderr, /^cluster: Kubernetes API http:\/\/127\.0\.0\.1:\d+/m);
      assert.match(r.stdout, /2 paths: 2 delivered/);
    } finally {
      if (saved === undefined) delete process.env.KUBECONFIG;
      else process.env.KUBECONFIG = saved;
      await api.close();
    }
  });
});
