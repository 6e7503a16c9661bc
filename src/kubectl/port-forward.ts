// A local port on 127.0.0.1 that leads to a pod's port through the Kubernetes API, as
// `kubectl port-forward` does: every connection to it becomes one port-forward websocket
// (@kubernetes/client-node's PortForward, subprotocol v4.channel.k8s.io) carrying its bytes both
// ways. The hub's clients then connect to ws://127.0.0.1:PORT as to any hub.
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import { PortForward, type KubeConfig } from '@kubernetes/client-node';
import { EnvironmentError } from '../errors.js';

export interface PortForwardTarget {
  namespace: string;
  pod: string;
  port: number;
}

export class LocalPortForward {
  /** What went wrong on a forwarded connection (the API's refusal, the pod's error channel), once each. */
  readonly problems: string[] = [];
  private readonly sockets = new Set<Socket>();
  private readonly closers = new Set<() => void>();
  connections = 0;

  private constructor(private readonly server: Server, private readonly onProblem: (line: string) => void) {}

  /** Listens on 127.0.0.1 (`localPort`, default any free port). */
  static async open(kc: KubeConfig, target: PortForwardTarget, opts: { localPort?: number; onProblem?: (line: string) => void } = {}): Promise<LocalPortForward> {
    const server = createServer();
    const fwd = new LocalPortForward(server, opts.onProblem ?? (() => {}));
    const pf = new PortForward(kc, true);
    server.on('connection', (socket) => void fwd.forward(pf, target, socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) =>
        reject(new EnvironmentError(`cannot listen on 127.0.0.1:${opts.localPort ?? 0} for the port-forward: ${err.code === 'EADDRINUSE' ? 'the port is in use: choose another' : err.message}`)),
      );
      server.listen(opts.localPort ?? 0, '127.0.0.1', () => resolve());
    });
    return fwd;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  private problem(line: string): void {
    if (this.problems.includes(line)) return;
    this.problems.push(line);
    this.onProblem(line);
  }

  private async forward(pf: PortForward, t: PortForwardTarget, socket: Socket): Promise<void> {
    this.connections++;
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    const where = `port-forward to pod ${t.namespace}/${t.pod} port ${t.port}`;
    // The pod's error channel: text such as "error forwarding port 4280 to pod ...: connection refused".
    const errors = new Writable({
      write: (chunk: Buffer, _enc, done) => {
        const text = chunk.toString('utf8').trim();
        if (text) this.problem(`${where}: ${text}`);
        done();
      },
    });
    let ws: { close(): void; on(event: 'close' | 'error', f: (...a: unknown[]) => void): void };
    try {
      ws = (await pf.portForward(t.namespace, t.pod, [t.port], socket, errors, socket)) as unknown as typeof ws;
    } catch (err) {
      const e = err as { message?: string; error?: { message?: string }; target?: unknown };
      this.problem(`${where}: ${e.error?.message ?? e.message ?? 'the API server refused the websocket'}`);
      socket.destroy();
      return;
    }
    const close = () => ws.close();
    this.closers.add(close);
    ws.on('error', (err) => this.problem(`${where}: ${(err as Error).message}`));
    ws.on('close', () => {
      this.closers.delete(close);
      socket.end();
    });
    socket.on('close', close);
  }

  async close(): Promise<void> {
    for (const c of this.closers) c();
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
