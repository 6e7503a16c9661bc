// The page at `/`: the static files the build made from ui/ (dist/page: index.html, app.js,
// app.css), served as they are, with a Content-Security-Policy that lets the page talk to this hub
// only (no CDN, no other host: the browser itself refuses anything else).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Where the build puts the page (scripts/build.mjs, ui/build.mjs). */
export const PAGE_DIR = fileURLToPath(new URL('../../page/', import.meta.url));

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.txt': 'text/plain; charset=utf-8',
};

/** Same-origin only: scripts, styles, the websocket and fetches go to this hub and nowhere else. */
export const PAGE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data: blob:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

interface PageFile {
  body: Buffer;
  type: string;
  mtimeMs: number;
}

/** The built page, read once per change of its files (a rebuild while the hub runs is picked up). */
export class PageFiles {
  private files = new Map<string, PageFile>();
  private readAt = -1;

  constructor(private readonly dir = PAGE_DIR) {}

  get built(): boolean {
    return existsSync(join(this.dir, 'index.html'));
  }

  private refresh(): void {
    const index = join(this.dir, 'index.html');
    const mtime = existsSync(index) ? statSync(index).mtimeMs : 0;
    if (mtime === this.readAt) return;
    this.readAt = mtime;
    this.files = new Map();
    if (!mtime) return;
    for (const name of readdirSync(this.dir)) {
      const type = TYPES[extname(name)];
      const path = join(this.dir, name);
      if (!type || !statSync(path).isFile()) continue;
      this.files.set(`/${name}`, { body: readFileSync(path), type, mtimeMs: statSync(path).mtimeMs });
    }
  }

  /** The file for a request path ('/' is index.html), or undefined. */
  get(urlPath: string): PageFile | undefined {
    this.refresh();
    return this.files.get(urlPath === '/' ? '/index.html' : urlPath);
  }
}

/**
 * Answers a GET or HEAD of the page's files; returns false for any other path (the hub's server
 * goes on with its own routes).
 */
export function servePage(req: IncomingMessage, res: ServerResponse, page: PageFiles): boolean {
  const path = new URL(req.url ?? '/', 'http://hub').pathname;
  if (path.startsWith('/v1/') || path === '/metrics' || path === '/healthz') return false;
  if (req.method !== 'GET' && req.method !== 'HEAD') return false;
  const file = page.get(path);
  if (!file) {
    if (path !== '/' && path !== '/index.html') return false;
    res.writeHead(503, { 'Content-Type': 'text/plain; charset=utf-8' });
    res.end('the page is not built: run `npm run build` in the vxtrace checkout (it bundles ui/ into dist/page)\n');
    return true;
  }
  res.writeHead(200, {
    'Content-Type': file.type,
    'Content-Length': file.body.length,
    'Cache-Control': 'no-cache',
    'Last-Modified': new Date(file.mtimeMs).toUTCString(),
    'Content-Security-Policy': PAGE_CSP,
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
    'Cross-Origin-Opener-Policy': 'same-origin',
  });
  res.end(req.method === 'HEAD' ? undefined : file.body);
  return true;
}
