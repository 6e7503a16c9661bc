// Who may talk to the hub: where it listens (loopback and unix sockets need no token; any other
// address needs --token-file), the token a request carries (Authorization: Bearer, or for a
// browser, which cannot set headers on a websocket, `?token=` or the subprotocol
// `vxtrace.token.<TOKEN>`), compared in constant time, and the Origin of a browser's request.
import { createHash, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import type { IncomingMessage } from 'node:http';
import { UsageError } from '../errors.js';

export type ListenAddress = { kind: 'tcp'; host: string; port: number; loopback: boolean } | { kind: 'unix'; path: string };

export const DEFAULT_LISTEN = '127.0.0.1:4280';

/** `HOST:PORT`, `[::1]:PORT` or `unix:/path.sock`. */
export function parseListen(text: string): ListenAddress {
  if (text.startsWith('unix:')) {
    const path = text.slice(5);
    if (!path.startsWith('/')) throw new UsageError(`--listen ${text}: a unix socket is given as unix:/absolute/path.sock`);
    return { kind: 'unix', path };
  }
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text.trim());
  if (!m) throw new UsageError(`--listen ${text} is not an address: give HOST:PORT (127.0.0.1:4280), [::1]:PORT or unix:/path.sock`);
  const host = m[1] ?? m[2]!;
  const port = Number(m[3]);
  if (port > 65535) throw new UsageError(`--listen ${text}: port ${port} is out of range (0 to 65535)`);
  if (m[1] && isIP(host) !== 6) throw new UsageError(`--listen ${text}: ${host} is not an IPv6 address`);
  return { kind: 'tcp', host, port, loopback: isLoopback(host) };
}

export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  if (isIP(host) === 6) return host === '::1' || /^::ffff:127\./i.test(host);
  return false;
}

/** Refuses a listen address that others can reach when there is no token (exit 2, saying why). */
export function requireTokenWhereReachable(addr: ListenAddress, token: string | undefined): void {
  if (addr.kind === 'tcp' && !addr.loopback && token === undefined) {
    throw new UsageError(
      `listening on ${addr.host}:${addr.port} (not loopback) needs --token-file FILE: anyone who can reach that address could read every packet path and send records as any node; give a token, or listen on 127.0.0.1 or a unix: socket`,
    );
  }
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/** Compares two tokens in constant time (both hashed first, so their lengths leak nothing either). */
export function tokensEqual(given: string, expected: string): boolean {
  return timingSafeEqual(digest(given), digest(expected));
}

/** The browser's way of carrying the token: a websocket subprotocol `vxtrace.token.<TOKEN>`. */
export const TOKEN_SUBPROTOCOL_PREFIX = 'vxtrace.token.';

/** The token a request presents, if any. */
export function presentedToken(req: IncomingMessage): string | undefined {
  const auth = req.headers.authorization;
  if (auth) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    return m ? m[1] : '';
  }
  const url = new URL(req.url ?? '/', 'http://hub');
  const q = url.searchParams.get('token');
  if (q !== null) return q;
  const protocols = (req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim());
  const carried = protocols.find((p) => p.startsWith(TOKEN_SUBPROTOCOL_PREFIX));
  return carried?.slice(TOKEN_SUBPROTOCOL_PREFIX.length);
}

export type AccessDecision = { ok: true } | { ok: false; status: 401 | 403; reason: string };

/**
 * Whether a request may go on: the token (when the hub has one) and, for a browser (it sends
 * Origin), that the page it runs in is the hub's own.
 */
export function checkAccess(req: IncomingMessage, token: string | undefined): AccessDecision {
  if (token !== undefined) {
    const given = presentedToken(req);
    if (given === undefined) return { ok: false, status: 401, reason: 'this hub needs a token: send Authorization: Bearer TOKEN (vxtrace: --token-file FILE)' };
    if (!tokensEqual(given, token)) return { ok: false, status: 401, reason: 'wrong token' };
  }
  const origin = req.headers.origin;
  if (origin !== undefined) {
    let host: string | undefined;
    try {
      host = new URL(origin).host;
    } catch {
      host = undefined;
    }
    if (!host || host !== req.headers.host) return { ok: false, status: 403, reason: `a page from ${origin} may not use this hub (only pages the hub serves itself)` };
  }
  return { ok: true };
}
