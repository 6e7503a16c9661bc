// What the hub's HTTP server answers for the page (ui/): its static files at `/`, the node map
// (GET /v1/nodes) and the pcapng of the paths it shows (POST /v1/pcapng). The two requests carry
// data, so they pass the same access check as the stream (token, Origin); the static files carry
// none and are served to anyone who can reach the hub.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { checkAccess } from './access.js';
import type { HubLog } from './connection.js';
import { serveNodeMap, type NodeMapSource } from './node-map.js';
import { servePcapng, type PcapngSource } from './pcapng-download.js';
import { PageFiles, servePage } from './static.js';

export class PageRoutes {
  private readonly files = new PageFiles();

  constructor(
    private readonly hub: NodeMapSource & PcapngSource,
    private readonly token: string | undefined,
    private readonly log: HubLog,
  ) {}

  /** Answers the request if it is the page's; false otherwise (the server goes on). */
  async handle(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    const path = new URL(req.url ?? '/', 'http://hub').pathname;
    if (path === '/v1/nodes' || path === '/v1/pcapng') {
      const access = checkAccess(req, this.token);
      if (!access.ok) {
        res.writeHead(access.status, { 'Content-Type': 'text/plain; charset=utf-8' }).end(`${access.reason}\n`);
        return true;
      }
      try {
        if (path === '/v1/nodes') serveNodeMap(req, res, this.hub);
        else await servePcapng(req, res, this.hub);
      } catch (err) {
        this.log(`${req.method} ${path}: ${(err as Error).message}`);
        if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' }).end(`the hub could not answer: ${(err as Error).message}\n`);
        else res.destroy();
      }
      return true;
    }
    return servePage(req, res, this.files);
  }
}
