// The Kubernetes API source against a local HTTP server on 127.0.0.1 that answers list and watch with
// recorded API objects (no cluster here): list, live changes, a watch that drops and resumes from the
// last resourceVersion, and a 410 Gone that forces a fresh list.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { KubeClusterSource } from '../../src/cluster/kube.js';
import type { ClusterObjects } from '../../src/cluster/list.js';
import { ClusterModel } from '../../src/cluster/model.js';
import { fixtureList, fixtureNodes } from './fixtures/flannel.js';

// API objects as the API server returns them in a NodeList/PodList (no per-item kind) and in watch events.
const recorded = fixtureList(fixtureNodes({ nodes: 3 }));
const apiNode = (i: number, rv: string, publicIp?: string) => {
  const n = structuredClone(recorded.items.filter((x) => x.kind === 'Node')[i]!) as Record<string, any>;
  delete n.kind;
  delete n.apiVersion;
  n.metadata.resourceVersion = rv;
  n.metadata.uid = `uid-${n.metadata.name}`;
  n.metadata.creationTimestamp = '2026-11-25T21:00:00Z';
  if (publicIp) n.metadata.annotations['flannel.alpha.coreos.com/public-ip'] = publicIp;
  return n;
};
const apiPods = recorded.items.filter((x) => x.kind === 'Pod').map((p) => ({ ...structuredClone(p), kind: undefined, apiVersion: undefined }));

interface Script {
  /** Called per watch request on /api/v1/nodes with the request's resourceVersion and its ordinal. */
  nodeWatch: (rv: string, n: number, res: ServerResponse) => void;
}

async function server(script: Script) {
  const log: string[] = [];
  let nodeWatches = 0;
  let lists = 0;
  const open = new Set<ServerResponse>();
  const srv = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const watch = url.searchParams.get('watch') === 'true';
    const rv = url.searchParams.get('resourceVersion') ?? '';
    log.push(`${url.pathname}${watch ? ` watch rv=${rv}` : ' list'}`);
    if (!watch && url.pathname === '/api/v1/nodes') {
      lists++;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ kind: 'NodeList', apiVersion: 'v1', metadata: { resourceVersion: lists === 1 ? '100' : '200' }, items: [apiNode(0, '90'), apiNode(1, '91')] }));
      return;
    }
    if (!watch && url.pathname === '/api/v1/pods') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ kind: 'PodList', apiVersion: 'v1', metadata: { resourceVersion: '100' }, items: apiPods }));
      return;
    }
    if (watch && url.pathname === '/api/v1/nodes') {
      open.add(res);
      script.nodeWatch(rv, nodeWatches++, res);
      return;
    }
    if (watch && url.pathname === '/api/v1/pods') {
      open.add(res);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(JSON.stringify({ type: 'BOOKMARK', object: { kind: 'Pod', apiVersion: 'v1', metadata: { resourceVersion: '100' } } }) + '\n');
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as AddressInfo).port;
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'local', server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
    users: [{ name: 'tester', token: 'recorded' }],
    contexts: [{ name: 'local', cluster: 'local', user: 'tester' }],
    currentContext: 'local',
  });
  return {
    kc,
    log,
    lists: () => lists,
    close: async () => {
      for (const r of open) r.destroy();
      srv.closeAllConnections();
      await new Promise<void>((r) => srv.close(() => r()));
    },
  };
}

function until(src: KubeClusterSource, pred: (o: ClusterObjects) => boolean, what: string, ms = 5000): Promise<ClusterObjects> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
    const check = (o: ClusterObjects) => {
      if (pred(o)) {
        clearTimeout(t);
        src.off('change', check);
        resolve(o);
      }
    };
    src.on('change', check);
    check(src.current());
  });
}

const event = (res: ServerResponse, type: string, object: unknown) => res.write(JSON.stringify({ type, object: { kind: 'Node', apiVersion: 'v1', ...(object as object) } }) + '\n');

test('list, then a watch that drops and resumes from the last resourceVersion (no relist)', async () => {
  const s = await server({
    nodeWatch: (rv, n, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      if (n === 0) {
        // node2 re-registers with the NAT address, then the connection drops.
        event(res, 'MODIFIED', apiNode(1, '101', '10.0.2.15'));
        setTimeout(() => res.destroy(), 50);
      } else {
        event(res, 'ADDED', apiNode(2, '102'));
      }
    },
  });
  const src = new KubeClusterSource(s.kc, { backoffMs: 20 });
  src.on('error', () => {});
  try {
    const first = await src.start();
    assert.deepEqual(first.nodes.map((n) => n.metadata.name).sort(), ['node1', 'node2']);
    assert.equal(first.pods.length, 3);
    assert.equal(ClusterModel.build(first).podCidrOwner('10.244.2.10')?.node.name, 'node2');
    const o = await until(src, (x) => x.nodes.length === 3, 'node3 after the resumed watch');
    const node2 = o.nodes.find((n) => n.metadata.name === 'node2')!;
    assert.equal(node2.metadata.annotations?.['flannel.alpha.coreos.com/public-ip'], '10.0.2.15');
    assert.deepEqual(s.log.filter((l) => l.startsWith('/api/v1/nodes')), ['/api/v1/nodes list', '/api/v1/nodes watch rv=100', '/api/v1/nodes watch rv=101']);
    assert.equal(s.lists(), 1);
    assert.ok(src.resumes >= 1);
  } finally {
    src.stop();
    await s.close();
  }
});

test('a watch answered 410 Gone lists again and watches from the new resourceVersion', async () => {
  const s = await server({
    nodeWatch: (rv, n, res) => {
      if (n === 0) {
        res.writeHead(410, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ kind: 'Status', code: 410, reason: 'Expired' }));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      event(res, 'DELETED', apiNode(0, '201'));
    },
  });
  const src = new KubeClusterSource(s.kc, { backoffMs: 20 });
  src.on('error', () => {});
  try {
    await src.start();
    const o = await until(src, (x) => x.nodes.length === 1, 'node1 deleted after the relist');
    assert.equal(o.nodes[0]!.metadata.name, 'node2');
    assert.deepEqual(s.log.filter((l) => l.startsWith('/api/v1/nodes')), ['/api/v1/nodes list', '/api/v1/nodes watch rv=100', '/api/v1/nodes list', '/api/v1/nodes watch rv=200']);
  } finally {
    src.stop();
    await s.close();
  }
});

test('an unreachable API server is an EnvironmentError naming the server', async () => {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'x', server: 'http://127.0.0.1:1', skipTLSVerify: true }],
    users: [{ name: 'u' }],
    contexts: [{ name: 'x', cluster: 'x', user: 'u' }],
    currentContext: 'x',
  });
  const src = new KubeClusterSource(kc);
  await assert.rejects(src.listOnce(), (e: Error) => e.name === 'EnvironmentError' && /cannot list Nodes from the Kubernetes API at http:\/\/127\.0\.0\.1:1/.test(e.message));
  src.stop();
});
