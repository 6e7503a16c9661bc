// A stand-in Kubernetes API server on 127.0.0.1 that serves a v1 List (e.g. the lab's cluster.json)
// as NodeList and PodList and holds watches open, plus a kubeconfig file pointing at it.
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { V1List } from '../../src/cluster/k8s.js';

export interface FakeApi {
  server: string;
  kubeconfig: string;
  requests: string[];
  close(): Promise<void>;
}

export async function fakeKubeApi(list: V1List): Promise<FakeApi> {
  const requests: string[] = [];
  const open = new Set<ServerResponse>();
  const strip = (o: object) => ({ ...o, kind: undefined, apiVersion: undefined });
  const srv = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const watch = url.searchParams.get('watch') === 'true';
    requests.push(`${url.pathname}${watch ? ' watch' : ''}`);
    const kind = url.pathname === '/api/v1/nodes' ? 'Node' : url.pathname === '/api/v1/pods' ? 'Pod' : undefined;
    if (!kind) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'application/json' });
    if (watch) {
      open.add(res);
      res.write(JSON.stringify({ type: 'BOOKMARK', object: { kind, apiVersion: 'v1', metadata: { resourceVersion: '1' } } }) + '\n');
      return;
    }
    res.end(JSON.stringify({ kind: `${kind}List`, apiVersion: 'v1', metadata: { resourceVersion: '1' }, items: list.items.filter((i) => i.kind === kind).map(strip) }));
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const server = `http://127.0.0.1:${(srv.address() as AddressInfo).port}`;
  const dir = mkdtempSync(join(tmpdir(), 'vxt-kube-'));
  chmodSync(dir, 0o755);
  const kubeconfig = join(dir, 'config');
  writeFileSync(
    kubeconfig,
    JSON.stringify({
      apiVersion: 'v1', kind: 'Config', 'current-context': 'local',
      clusters: [{ name: 'local', cluster: { server, 'insecure-skip-tls-verify': true } }],
      users: [{ name: 'tester', user: { token: 'recorded' } }],
      contexts: [{ name: 'local', context: { cluster: 'local', user: 'tester' } }],
    }),
  );
  return {
    server,
    kubeconfig,
    requests,
    close: async () => {
      for (const r of open) r.destroy();
      srv.closeAllConnections();
      await new Promise<void>((r) => srv.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
