// The hub's one HTTP server: /v1/agent and /v1/stream (websocket, subprotocol vxtrace.v1), /metrics
// (Prometheus text), /healthz, and / reserved for the page. Access (token, Origin) is checked
// before any upgrade: a refused request gets its HTTP status (401, 403) and never a websocket.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { chmodSync, existsSync, lstatSync, unlinkSync } from 'node:fs';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { EnvironmentError } from '../errors.js';
import { MAX_AGENT_FRAME, MAX_CLIENT_FRAME, SUBPROTOCOL } from '../wire/codec.js';
import { checkAccess, type ListenAddress } from './access.js';
import { AgentLink } from './agent-link.js';
import { ClientLink, DEFAULT_CLIENT_LIMITS, type ClientLimits } from './client-link.js';
import type { HubLog } from './connection.js';
import { Hub, type HubOptions } from './hub.js';
import { HubMetrics } from './metrics.js';
import { PageRoutes } from './page-routes.js';

export interface HubServerOptions extends HubOptions {
  listen: ListenAddress;
  token?: string;
  clientLimits?: Partial<ClientLimits>;
}

export class HubServer {
  readonly hub: Hub;
  private readonly http: Server;
  private readonly metrics: HubMetrics;
  private readonly agentWs: WebSocketServer;
  private readonly streamWs: WebSocketServer;
  private readonly limits: ClientLimits;
  private readonly log: HubLog;
  private readonly page: PageRoutes;

  private constructor(private readonly opts: HubServerOptions) {
    this.log = opts.log;
    this.hub = new Hub(opts);
    this.metrics = new HubMetrics(() => this.hub.snapshot());
    this.page = new PageRoutes(this.hub, opts.token, opts.log);
    this.limits = { ...DEFAULT_CLIENT_LIMITS, ...opts.clientLimits };
    const ws = (maxPayload: number) =>
      new WebSocketServer({
        noServer: true,
        maxPayload,
        // Only vxtrace.v1; a browser's token subprotocol is never the one chosen.
        handleProtocols: (protocols) => (protocols.has(SUBPROTOCOL) ? SUBPROTOCOL : false),
      });
    this.agentWs = ws(MAX_AGENT_FRAME);
    this.streamWs = ws(MAX_CLIENT_FRAME);
    this.http = createServer((req, res) => void this.request(req, res));
    this.http.on('upgrade', (req, socket, head) => this.upgrade(req, socket, head));
  }

  /** Listens; resolves with the address clients use (ws://HOST:PORT or unix:/path). */
  static async start(opts: HubServerOptions): Promise<{ server: HubServer; url: string }> {
    const server = new HubServer(opts);
    const url = await server.listen();
    return { server, url };
  }

  private async listen(): Promise<string> {
    const addr = this.opts.listen;
    if (addr.kind === 'unix') await clearStaleSocket(addr.path);
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        const what = addr.kind === 'unix' ? addr.path : `${addr.host}:${addr.port}`;
        reject(
          new EnvironmentError(
            err.code === 'EADDRINUSE' ? `cannot listen on ${what}: the address is in use (another hub?): choose another with --listen` : err.code === 'EACCES' ? `cannot listen on ${what}: permission denied` : `cannot listen on ${what}: ${err.message}`,
          ),
        );
      };
      this.http.once('error', onError);
      const done = () => {
        this.http.off('error', onError);
        resolve();
      };
      if (addr.kind === 'unix') this.http.listen(addr.path, done);
      else this.http.listen(addr.port, addr.host, done);
    });
    if (addr.kind === 'unix') {
      // Whoever may open the socket file may use the hub: root only (agents run as root).
      chmodSync(addr.path, 0o600);
      return `unix:${addr.path}`;
    }
    const a = this.http.address();
    const port = typeof a === 'object' && a ? a.port : addr.port;
    return `ws://${addr.host.includes(':') ? `[${addr.host}]` : addr.host}:${port}`;
  }

  private async request(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://hub').pathname;
    const reply = (status: number, body: string, type = 'text/plain; charset=utf-8') => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(body);
    };
    if (await this.page.handle(req, res)) return;
    if (req.method !== 'GET' && req.method !== 'HEAD') return reply(405, 'the hub answers GET only\n');
    if (path === '/healthz') {
      const s = this.hub.snapshot();
      return reply(200, JSON.stringify({ status: 'ok', agents: s.agentsConnected, clients: s.clientsConnected, nodes: this.hub.watchedNodes }) + '\n', 'application/json');
    }
    if (path === '/metrics') {
      const access = checkAccess(req, this.opts.token);
      if (!access.ok) return reply(access.status, `${access.reason}\n`);
      return reply(200, await this.metrics.text(), this.metrics.contentType);
    }
    if (path === '/v1/agent' || path === '/v1/stream') return reply(426, `${path} is a websocket endpoint (subprotocol ${SUBPROTOCOL})\n`);
    return reply(404, `no such endpoint: ${path} (the hub serves /, /v1/agent, /v1/stream, /v1/nodes, /v1/pcapng, /metrics, /healthz)\n`);
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const peer = `${req.socket.remoteAddress ?? 'unix'}${req.socket.remotePort ? `:${req.socket.remotePort}` : ''}`;
    const refuse = (status: number, text: string, reason: string) => {
      this.log(`refused ${req.url} from ${peer}: ${status} ${reason}`);
      socket.end(`HTTP/1.1 ${status} ${text}\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n${reason}\n`);
      socket.destroy();
    };
    socket.on('error', () => socket.destroy());
    const path = new URL(req.url ?? '/', 'http://hub').pathname;
    const target = path === '/v1/agent' ? this.agentWs : path === '/v1/stream' ? this.streamWs : undefined;
    if (!target) return refuse(404, 'Not Found', `no websocket endpoint at ${path}: use /v1/agent or /v1/stream`);
    const access = checkAccess(req, this.opts.token);
    if (!access.ok) return refuse(access.status, access.status === 401 ? 'Unauthorized' : 'Forbidden', access.reason);
    const offered = (req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim());
    if (!offered.includes(SUBPROTOCOL)) return refuse(400, 'Bad Request', `offer the websocket subprotocol ${SUBPROTOCOL}`);
    target.handleUpgrade(req, socket, head, (ws: WebSocket) => {
      if (target === this.agentWs) {
        new AgentLink(ws, `agent at ${peer}`, this.log, this.hub, () => BigInt(Date.now()) * 1_000_000n);
      } else {
        const link = new ClientLink(ws, `client ${peer}`, this.log, this.hub, this.limits, () => BigInt(Date.now()) * 1_000_000n);
        this.hub.addClient(link);
      }
    });
  }

  async close(): Promise<void> {
    this.hub.stop();
    for (const ws of [this.agentWs, this.streamWs]) for (const c of ws.clients) c.terminate();
    await new Promise<void>((resolve) => this.http.close(() => resolve()));
    if (this.opts.listen.kind === 'unix' && existsSync(this.opts.listen.path)) unlinkSync(this.opts.listen.path);
  }
}

/** A socket file left by a hub that died is removed; one a live hub listens on is not. */
async function clearStaleSocket(path: string): Promise<void> {
  if (!existsSync(path)) return;
  if (!lstatSync(path).isSocket()) throw new EnvironmentError(`cannot listen on unix:${path}: the file exists and is not a socket`);
  const live = await new Promise<boolean>((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
  if (live) throw new EnvironmentError(`cannot listen on unix:${path}: another hub listens there`);
  unlinkSync(path);
}
