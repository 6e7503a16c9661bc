// The page's one websocket to the hub (/v1/stream, subprotocol vxtrace.v1): subscribes with the
// filter, hands every frame's events to the store, and when the hub goes away (restart, network)
// reconnects by itself with backoff (0.25 s doubling to 5 s), subscribing again. A subscription the
// hub refuses (close 4004: an unknown pod) is not retried until the filter changes.
import { decodeFrame, FrameError, subscribeFrame, type PageFilter } from './wire.js';
import type { Store } from './store.js';

const SUBPROTOCOL = 'vxtrace.v1';
const TOKEN_PREFIX = 'vxtrace.token.';
const BAD_SUBSCRIPTION = 4004;
const MIN_BACKOFF_MS = 250;
const MAX_BACKOFF_MS = 5000;

export interface HubAccess {
  /** ws://host:port/v1/stream */
  streamUrl: string;
  /** The token from the page's URL (?token=), for a hub that asks for one. */
  token?: string;
}

export function hubAccessFromLocation(loc: Location): HubAccess {
  const token = new URLSearchParams(loc.search).get('token') ?? undefined;
  return { streamUrl: `${loc.protocol === 'https:' ? 'wss:' : 'ws:'}//${loc.host}/v1/stream`, ...(token ? { token } : {}) };
}

/** Headers for the page's HTTP requests to the hub (node map, download). */
export function authHeaders(access: HubAccess): Record<string, string> {
  return access.token ? { Authorization: `Bearer ${access.token}` } : {};
}

export class StreamConnection {
  private ws: WebSocket | undefined;
  private retry: ReturnType<typeof setTimeout> | undefined;
  private backoff = MIN_BACKOFF_MS;
  private stopped = false;
  private filter: PageFilter;

  constructor(
    private readonly access: HubAccess,
    private readonly store: Store,
    /** Called when the hub confirmed a subscription (the page then fetches the node map). */
    private readonly onSubscribed: () => void,
  ) {
    this.filter = store.filter;
  }

  start(): void {
    this.stopped = false;
    this.open();
  }

  /** Subscribe anew with another filter: a new connection, so the hub sends what holds under it. */
  resubscribe(filter: PageFilter): void {
    this.filter = filter;
    this.backoff = MIN_BACKOFF_MS;
    this.close();
    this.open();
  }

  stop(): void {
    this.stopped = true;
    this.close();
  }

  private close(): void {
    clearTimeout(this.retry);
    this.retry = undefined;
    const ws = this.ws;
    this.ws = undefined;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      ws.close(1000, 'the page changed its subscription');
    }
  }

  private open(): void {
    if (this.stopped) return;
    const protocols = [SUBPROTOCOL, ...(this.access.token ? [TOKEN_PREFIX + this.access.token] : [])];
    let ws: WebSocket;
    try {
      ws = new WebSocket(this.access.streamUrl, protocols);
    } catch (err) {
      this.later(`cannot open ${this.access.streamUrl}: ${(err as Error).message}`);
      return;
    }
    this.ws = ws;
    ws.binaryType = 'arraybuffer';
    this.store.setConnection(this.store.connection.state === 'live' ? 'reconnecting' : this.store.connection.state, 'connecting to the hub');
    ws.onopen = () => ws.send(subscribeFrame(this.filter));
    ws.onmessage = (m: MessageEvent) => {
      if (!(m.data instanceof ArrayBuffer)) return;
      let events;
      try {
        events = decodeFrame(new Uint8Array(m.data));
      } catch (err) {
        if (!(err instanceof FrameError)) throw err;
        console.warn(`vxtrace: ${err.message}`);
        this.store.frameFailed();
        return;
      }
      for (const e of events) {
        if (e.kind === 'subscribed') {
          this.backoff = MIN_BACKOFF_MS;
          queueMicrotask(this.onSubscribed);
        }
      }
      this.store.ingest(events);
    };
    ws.onclose = (e: CloseEvent) => {
      if (this.ws !== ws) return;
      this.ws = undefined;
      if (e.code === BAD_SUBSCRIPTION) {
        this.store.setConnection('refused', `the hub refused this filter: ${e.reason || 'bad subscription'}`);
        return;
      }
      this.later(e.reason ? `the hub closed the stream (${e.code}: ${e.reason})` : 'the hub is unreachable');
    };
    // An error is always followed by close, which says what to do.
    ws.onerror = () => {};
  }

  private later(why: string): void {
    if (this.stopped) return;
    const wait = this.backoff;
    this.backoff = Math.min(MAX_BACKOFF_MS, this.backoff * 2);
    this.store.setConnection('reconnecting', `${why}; retrying in ${wait < 1000 ? `${wait} ms` : `${Math.round(wait / 1000)} s`}`);
    this.retry = setTimeout(() => this.open(), wait);
  }
}
