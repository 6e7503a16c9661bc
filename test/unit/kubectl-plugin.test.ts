// kubectl vxtrace's own parts, without a lab: its flags, pods named with -n's namespace, finding the
// hub through the API (a stand-in API server on 127.0.0.1) and the port-forward in the API server's
// websocket subprotocol, to a plain HTTP server standing in for the hub's pod.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { KubeConfig } from '@kubernetes/client-node';
import { qualifyPods, runPlugin, splitPluginFlags } from '../../src/kubectl/plugin.js';
import { findHubPod, readHubToken } from '../../src/kubectl/hub-service.js';
import { LocalPortForward } from '../../src/kubectl/port-forward.js';
import { fakeKubeApi, podAt } from '../helpers/kube-api.js';

const empty = { apiVersion: 'v1', kind: 'List', items: [] } as never;
const labels = { 'app.kubernetes.io/name': 'vxtrace', 'app.kubernetes.io/component': 'hub' };
const service = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'vxtrace-hub', namespace: 'vxtrace' }, spec: { selector: labels, ports: [{ name: 'hub', port: 4280, targetPort: 'hub' }] } };
const hubPod = (name: string, ready: boolean) => ({
  apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'vxtrace', labels },
  spec: { containers: [{ name: 'hub', image: 'vxtrace', ports: [{ name: 'hub', containerPort: 4280 }] }] },
  status: { phase: 'Running', conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] },
});
const kubeConfig = (file: string) => {
  const kc = new KubeConfig();
  kc.loadFromFile(file);
  return kc;
};
function sink() {
  let text = '';
  return { stream: new Writable({ write: (c, _e, done) => ((text += c.toString()), done()) }) as unknown as NodeJS.WritableStream, text: () => text };
}

test('the plugin takes its own flags from anywhere, in both spellings', () => {
  assert.deepEqual(splitPluginFlags(['-n', 'shop', 'follow', 'a', 'b', '--context=prod', '--json']), {
    flags: { installNamespace: 'vxtrace', namespace: 'shop', context: 'prod' },
    rest: ['follow', 'a', 'b', '--json'],
  });
  assert.deepEqual(splitPluginFlags(['--vxtrace-namespace', 'tools', '--kubeconfig', '/k', 'observe']).flags, { installNamespace: 'tools', kubeconfig: '/k' });
  assert.throws(() => splitPluginFlags(['follow', '-n']), /-n needs a value/);
  assert.throws(() => splitPluginFlags(['follow', '--context', '--json']), /--context needs a value/);
});

test('-n qualifies the pods named without a namespace, and only them', () => {
  assert.deepEqual(qualifyPods('follow', ['a', '--count', '3', 'other/b', '--json'], 'shop'), ['shop/a', '--count', '3', 'other/b', '--json']);
  assert.deepEqual(qualifyPods('follow', ['--duration', '5', 'a', 'b'], 'shop'), ['--duration', '5', 'shop/a', 'shop/b']);
  assert.deepEqual(qualifyPods('observe', ['--from', 'a', '--to=b', '--pod', 'x/c', '--node', 'node1', '--count', '2'], 'shop'), ['--from', 'shop/a', '--to=shop/b', '--pod', 'x/c', '--node', 'node1', '--count', '2']);
  assert.deepEqual(qualifyPods('follow', ['a', 'b'], undefined), ['a', 'b']);
});

test('bad input is one line and a usage status', async () => {
  for (const [argv, re] of [
    [['capture'], /capture is not a kubectl vxtrace command: use follow, observe, ui .*vxtrace capture runs on a node/],
    [['follow', 'a', 'b', '--hub', 'ws://x:1'], /--hub: kubectl vxtrace finds the hub itself/],
    [['--kubeconfig', '/nonexistent/config', 'follow', 'a', 'b'], /cannot load the kubeconfig \/nonexistent\/config/],
    [['ui', '--port', '99999'], /--port 99999: give a port from 1 to 65535/],
    [['diagnose', '--lab', 'lab'], /--lab: the hub has the cluster/],
    [['hub'], /hub is not a kubectl vxtrace command: use follow, observe, ui or diagnose .*vxtrace hub runs on a node/],
  ] as const) {
    const err = sink();
    const status = await runPlugin([...argv], { stdout: sink().stream, stderr: err.stream });
    assert.equal(status, 2, `${argv.join(' ')}: ${err.text()}`);
    assert.match(err.text(), re);
    assert.equal(err.text().trim().split('\n').length, 1, err.text());
  }
});

test('the hub is a ready pod behind the Service, its port the target of 4280; the token from the Secret', async () => {
  const api = await fakeKubeApi(empty, {
    objects: [
      service as never, hubPod('vxtrace-hub-a', false) as never, hubPod('vxtrace-hub-b', true) as never,
      { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'vxtrace-hub-token', namespace: 'vxtrace' }, data: { token: Buffer.from('s3cret\n').toString('base64') } } as never,
    ],
  });
  try {
    const kc = kubeConfig(api.kubeconfig);
    assert.deepEqual(await findHubPod(kc, 'vxtrace'), { namespace: 'vxtrace', pod: 'vxtrace-hub-b', port: 4280 });
    assert.equal(await readHubToken(kc, 'vxtrace'), 's3cret');
    await assert.rejects(findHubPod(kc, 'elsewhere'), /Service vxtrace-hub: not found in namespace elsewhere .*give --vxtrace-namespace NS/);
  } finally {
    await api.close();
  }
  const none = await fakeKubeApi(empty, { objects: [service as never, hubPod('vxtrace-hub-a', false) as never] });
  try {
    await assert.rejects(findHubPod(kubeConfig(none.kubeconfig), 'vxtrace'), /no ready hub pod behind Service vxtrace\/vxtrace-hub \(vxtrace-hub-a Running \(not ready\)\)/);
    await assert.rejects(readHubToken(kubeConfig(none.kubeconfig), 'vxtrace'), /Secret vxtrace-hub-token \(the hub's token\): not found/);
  } finally {
    await none.close();
  }
});

test('port-forward: bytes both ways through the API server\'s websocket, one per connection; failures are said', async () => {
  const target = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => res.end(`pod got ${req.method} ${req.url} ${body}`));
  });
  await new Promise<void>((r) => target.listen(0, '127.0.0.1', r));
  const port = (target.address() as AddressInfo).port;
  const api = await fakeKubeApi(empty, {
    token: 'user-token',
    objects: [hubPod('hub-0', true) as never, hubPod('hub-dead', true) as never],
    podPorts: { 'vxtrace/hub-0': podAt({ port }), 'vxtrace/hub-dead': podAt({ port: 1 }) },
  });
  const problems: string[] = [];
  const kc = kubeConfig(api.kubeconfig);
  const fwd = await LocalPortForward.open(kc, { namespace: 'vxtrace', pod: 'hub-0', port }, { onProblem: (l) => problems.push(l) });
  const dead = await LocalPortForward.open(kc, { namespace: 'vxtrace', pod: 'hub-dead', port: 1 }, { onProblem: (l) => problems.push(l) });
  const missing = await LocalPortForward.open(kc, { namespace: 'vxtrace', pod: 'no-such-pod', port }, { onProblem: (l) => problems.push(l) });
  try {
    for (const n of [1, 2]) {
      const r = await fetch(`http://127.0.0.1:${fwd.port}/v1/x?n=${n}`, { method: 'POST', body: 'x'.repeat(100_000) });
      assert.equal(await r.text(), `pod got POST /v1/x?n=${n} ${'x'.repeat(100_000)}`);
    }
    assert.equal(api.portForwards, 2, 'one port-forward websocket per connection');
    await assert.rejects(fetch(`http://127.0.0.1:${dead.port}/`));
    await assert.rejects(fetch(`http://127.0.0.1:${missing.port}/`));
    await new Promise((r) => setTimeout(r, 100));
    assert.ok(problems.some((p) => /port-forward to pod vxtrace\/hub-dead port 1: error forwarding port 1 to pod hub-dead.*ECONNREFUSED/.test(p)), problems.join('\n'));
    assert.ok(problems.some((p) => /port-forward to pod vxtrace\/no-such-pod port \d+: .*404/.test(p)), problems.join('\n'));
  } finally {
    await Promise.all([fwd.close(), dead.close(), missing.close()]);
    await api.close();
    target.close();
  }
});
