// Where a hub is and how to reach it, for its clients (agents, observe, follow --hub): the URL a
// user gives (`ws://HOST:PORT`, `http://HOST:PORT`, `unix:/path.sock`) -> the websocket address of
// one endpoint; and the token file, read the same way by the hub and every client.
import { readFileSync } from 'node:fs';
import { UsageError } from '../errors.js';

export type HubEndpoint = '/v1/agent' | '/v1/stream';

export interface HubAddress {
  /** What ws connects to: `ws://host:port/v1/stream` or `ws+unix:/path.sock:/v1/stream`. */
  url: string;
  /** How to name it in messages: the URL as the user gave it. */
  shown: string;
}

/** The websocket address of a hub endpoint from the URL a user gave. */
export function hubAddress(given: string, endpoint: HubEndpoint): HubAddress {
  const text = given.trim();
  if (text.startsWith('unix:')) {
    const path = text.slice('unix:'.length);
    if (!path.startsWith('/')) throw new UsageError(`--hub ${given}: a unix socket is given as unix:/absolute/path.sock`);
    return { url: `ws+unix:${path}:${endpoint}`, shown: text };
  }
  let u: URL;
  try {
    u = new URL(/^[a-z]+:\/\//i.test(text) ? text : `ws://${text}`);
  } catch {
    throw new UsageError(`--hub ${given} is not a hub address: give ws://HOST:PORT, http://HOST:PORT or unix:/path.sock`);
  }
  const scheme = { 'ws:': 'ws:', 'http:': 'ws:', 'wss:': 'wss:', 'https:': 'wss:' }[u.protocol];
  if (!scheme) throw new UsageError(`--hub ${given}: the scheme ${u.protocol} is not one a hub speaks (ws://, http://, unix:)`);
  if (u.pathname !== '/' && u.pathname !== '' && u.pathname !== endpoint) {
    throw new UsageError(`--hub ${given}: give the hub's address without a path (ws://HOST:PORT); vxtrace adds ${endpoint}`);
  }
  return { url: `${scheme}//${u.host}${endpoint}`, shown: text };
}

/** A token file: its first line, trimmed. A missing or empty file is a usage error naming it. */
export function readTokenFile(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read --token-file ${path}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
  const token = text.split('\n')[0]!.trim();
  if (!token) throw new UsageError(`--token-file ${path} is empty: put the token on its first line`);
  if (!/^[\x21-\x7e]+$/.test(token)) throw new UsageError(`--token-file ${path}: the token must be printable ASCII without spaces`);
  return token;
}
