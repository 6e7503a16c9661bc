// A stand-in Kubernetes API server on 127.0.0.1: it serves a v1 List (e.g. the lab's cluster.json)
// as NodeList and PodList, with watches that carry the changes a test makes (`event`), plus any other
// objects by namespace (Services, Secrets, Pods: what `kubectl vxtrace` reads), a pod's port-forward
// in the websocket subprotocol the API server speaks (v4.channel.k8s.io, as the kubelet's
// portforward/websocket.go: one data and one error channel per port, each opened by the port number
// as two little-endian bytes), and a kubeconfig file pointing at it. Optionally HTTPS with its own
// certificate and a bearer token it requires, as a real API server (and the in-cluster service
// account files that go with it).
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { connect as netConnect, type AddressInfo, type Socket } from 'node:net';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import type { Duplex } from 'node:stream';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocketServer, type WebSocket } from 'ws';
import type { V1List } from '../../src/cluster/k8s.js';

type Obj = { kind: string; apiVersion?: string; metadata: { name: string; namespace?: string; labels?: Record<string, string>; resourceVersion?: string }; [k: string]: unknown };
export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface StandInOptions {
  /** Objects served besides the list's: Services, Secrets, Pods of other namespaces. */
  objects?: Obj[];
  /** HTTPS with a self-signed certificate for 127.0.0.1 (its PEM is `caFile`). */
  tls?: boolean;
  /** Requests must carry `Authorization: Bearer TOKEN` (401 otherwise). */
  token?: string;
  /** Where `namespace/pod`'s ports are: a port-forward to it connects there. */
  podPorts?: Record<string, (port: number) => Socket>;
}

export interface FakeApi {
  server: string;
  kubeconfig: string;
  /** The certificate of an HTTPS stand-in (tls: true). */
  caFile?: string;
  /** Every request: `PATH[ watch]`, `PATH portforward`. */
  requests: string[];
  /** Port-forward sessions opened so far. */
  portForwards: number;
  /** A change, as the API server would make it: stored, and sent to every watch of its kind. */
  event(type: WatchEventType, object: Obj): void;
  close(): Promise<void>;
}

const RESOURCES: Record<string, string> = { nodes: 'Node', pods: 'Pod', services: 'Service', secrets: 'Secret' };
const CLUSTER_SCOPED = new Set(['Node']);
const key = (kind: string, ns: string | undefined, name: string) => `${kind}/${CLUSTER_SCOPED.has(kind) ? '' : (ns ?? 'default')}/${name}`;

function selfSignedCert(dir: string): { cert: string; key: string; certFile: string } {
  const certFile = join(dir, 'ca.crt');
  const keyFile = join(dir, 'tls.key');
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '1', '-subj', '/CN=stand-in-apiserver', '-addext', 'subjectAltName=IP:127.0.0.1'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl req failed: ${r.stderr}`);
  return { cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8'), certFile };
}

function matchesSelector(o: Obj, selector: string | null): boolean {
  if (!selector) return true;
  return selector.split(',').every((term) => {
    const [k, v] = term.split('=');
    return o.metadata.labels?.[k!] === v;
  });
}

export async function fakeKubeApi(list: V1List, opts: StandInOptions = {}): Promise<FakeApi> {
  const requests: string[] = [];
  const open = new Set<ServerResponse>();
  const watches = new Map<string, Set<ServerResponse>>(); // kind -> open cluster-wide watches
  const store = new Map<string, Obj>();
  const log: { rv: number; kind: string; type: WatchEventType; object: Obj }[] = [];
  let rv = 1;
  const stamp = (o: Obj): Obj => ({ ...o, metadata: { ...o.metadata, resourceVersion: o.metadata.resourceVersion ?? String(rv) } });
  for (const o of [...(list.items as unknown as Obj[]), ...(opts.objects ?? [])]) store.set(key(o.kind, o.metadata.namespace, o.metadata.name), stamp(o));
  const strip = (o: Obj) => ({ ...o, kind: undefined, apiVersion: undefined }); // list items carry no kind
  const withKind = (o: Obj) => ({ apiVersion: 'v1', ...o });
  let portForwards = 0;

  const dir = mkdtempSync(join(tmpdir(), 'vxt-kube-'));
  chmodSync(dir, 0o755);
  const tls = opts.tls ? selfSignedCert(dir) : undefined;

  const authorized = (req: IncomingMessage) => !opts.token || req.headers.authorization === `Bearer ${opts.token}`;
  const status = (res: ServerResponse, code: number, reason: string, message: string) => {
    res.writeHead(code, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', code, reason, message }));
  };

  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const watch = url.searchParams.get('watch') === 'true';
    requests.push(`${url.pathname}${watch ? ' watch' : ''}`);
    if (!authorized(req)) return status(res, 401, 'Unauthorized', 'Unauthorized');
    // /api/v1/{resource}[/{name}] or /api/v1/namespaces/{ns}/{resource}[/{name}]
    const m = /^\/api\/v1\/(?:namespaces\/([^/]+)\/)?([a-z]+)(?:\/([^/]+))?$/.exec(url.pathname);
    const kind = m && RESOURCES[m[2]!];
    if (!m || !kind) return status(res, 404, 'NotFound', `the server could not find the requested resource (${url.pathname})`);
    const [, ns, , name] = m;
    if (name) {
      const o = store.get(key(kind, ns, name));
      if (!o) return status(res, 404, 'NotFound', `${m[2]} "${name}" not found`);
      res.writeHead(200, { 'content-type': 'application/json' });
      return void res.end(JSON.stringify(withKind(o)));
    }
    const selector = url.searchParams.get('labelSelector');
    const items = [...store.values()].filter((o) => o.kind === kind && (ns === undefined || o.metadata.namespace === ns) && matchesSelector(o, selector));
    res.writeHead(200, { 'content-type': 'application/json' });
    if (watch) {
      // From the resourceVersion asked for: the changes made since, then every later one as it comes.
      const from = Number(url.searchParams.get('resourceVersion') ?? rv);
      open.add(res);
      let set = watches.get(kind);
      if (!set) watches.set(kind, (set = new Set()));
      set.add(res);
      res.on('close', () => set!.delete(res));
      for (const e of log) if (e.kind === kind && e.rv > from) res.write(JSON.stringify({ type: e.type, object: withKind(e.object) }) + '\n');
      res.write(JSON.stringify({ type: 'BOOKMARK', object: { kind, apiVersion: 'v1', metadata: { resourceVersion: String(rv) } } }) + '\n');
      return;
    }
    res.end(JSON.stringify({ kind: `${kind}List`, apiVersion: 'v1', metadata: { resourceVersion: String(rv) }, items: items.map(strip) }));
  };

  const srv = tls ? createHttpsServer({ cert: tls.cert, key: tls.key }, handler) : createHttpServer(handler);

  // Port-forward: GET /api/v1/namespaces/{ns}/pods/{name}/portforward?ports=P, upgraded to a websocket.
  const wss = new WebSocketServer({
    noServer: true,
    handleProtocols: (offered: Set<string>) => (offered.has('v4.channel.k8s.io') ? 'v4.channel.k8s.io' : false),
  });
  srv.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const url = new URL(req.url ?? '/', 'http://x');
    requests.push(`${url.pathname} portforward`);
    const m = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)\/portforward$/.exec(url.pathname);
    const refuse = (code: number, text: string) => socket.end(`HTTP/1.1 ${code} ${text}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n`);
    if (!authorized(req)) return refuse(401, 'Unauthorized');
    if (!m) return refuse(404, 'Not Found');
    const port = Number(url.searchParams.get('ports'));
    const target = opts.podPorts?.[`${m[1]}/${m[2]}`];
    if (!target || !store.has(key('Pod', m[1], m[2]!))) return refuse(404, 'Not Found');
    if (!(port > 0 && port < 65536)) return refuse(400, 'Bad Request');
    wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
      portForwards++;
      forward(ws, port, () => target(port), `${m[2]}`);
    });
  });

  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const server = `${tls ? 'https' : 'http'}://127.0.0.1:${(srv.address() as AddressInfo).port}`;
  const kubeconfig = join(dir, 'config');
  writeFileSync(
    kubeconfig,
    JSON.stringify({
      apiVersion: 'v1', kind: 'Config', 'current-context': 'local',
      clusters: [{ name: 'local', cluster: tls ? { server, 'certificate-authority': tls.certFile } : { server, 'insecure-skip-tls-verify': true } }],
      users: [{ name: 'tester', user: { token: opts.token ?? 'recorded' } }],
      contexts: [{ name: 'local', context: { cluster: 'local', user: 'tester' } }],
    }),
  );
  return {
    server,
    kubeconfig,
    ...(tls ? { caFile: tls.certFile } : {}),
    requests,
    get portForwards() {
      return portForwards;
    },
    event(type, object) {
      rv++;
      const o = { ...object, metadata: { ...object.metadata, resourceVersion: String(rv) } };
      const k = key(o.kind, o.metadata.namespace, o.metadata.name);
      if (type === 'DELETED') store.delete(k);
      else store.set(k, o);
      log.push({ rv, kind: o.kind, type, object: o });
      for (const res of watches.get(o.kind) ?? []) res.write(JSON.stringify({ type, object: withKind(o) }) + '\n');
    },
    close: async () => {
      for (const r of open) r.destroy();
      for (const c of wss.clients) c.terminate();
      srv.closeAllConnections();
      await new Promise<void>((r) => srv.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * One port-forward session, as the kubelet runs it: the port on both channels first, then bytes
 * both ways on the data channel (0); a failure to connect is text on the error channel (1), and the
 * websocket closes when the pod's side does.
 */
function forward(ws: WebSocket, port: number, connect: () => Socket, pod: string): void {
  const portBytes = Buffer.alloc(2);
  portBytes.writeUInt16LE(port);
  ws.send(Buffer.concat([Buffer.from([0]), portBytes]));
  ws.send(Buffer.concat([Buffer.from([1]), portBytes]));
  const conn = connect();
  conn.on('data', (d: Buffer) => ws.send(Buffer.concat([Buffer.from([0]), d])));
  conn.on('error', (err) => {
    if (ws.readyState === ws.OPEN) ws.send(Buffer.concat([Buffer.from([1]), Buffer.from(`error forwarding port ${port} to pod ${pod}, uid : ${err.message}`)]));
    ws.close();
  });
  conn.on('close', () => ws.close());
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (!isBinary || data.length === 0) return;
    if (data[0] === 0) conn.write(data.subarray(1));
  });
  ws.on('close', () => conn.destroy());
}

/** Connects to a TCP port on 127.0.0.1 or a unix socket: what a pod's port is in a test. */
export const podAt = (where: { port: number } | { path: string }) => () => (('path' in where) ? netConnect(where.path) : netConnect(where.port, '127.0.0.1'));
