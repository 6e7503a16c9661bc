// One subscriber connection (/v1/stream): owns its socket, its bounded queue and its counters, and
// is the only place that decides to drop events for it, to tell it what it missed (a Lost event),
// or to disconnect it because it stays behind. It never blocks the hub: a client that does not
// read fills its own socket buffer (bufferedAmount), and past the bound its events are dropped.
import type { WebSocket } from 'ws';
import { HubConnection, type HubLog } from './connection.js';
import { CloseCode } from '../wire/close.js';
import { concatFrame, decodeSubscribe, encodeEventField, MAX_CLIENT_FRAME, type Subscription } from '../wire/codec.js';
import type { SubscriptionFilter } from './subscription.js';

export interface ClientLimits {
  /** Bytes the socket may hold unsent before events for this client are dropped. Default 4 MiB. */
  maxBufferedBytes: number;
  /** A client whose queue stays full this long is disconnected (4008). Default 10 s. */
  maxBehindMs: number;
  /** Events are gathered this long into one EventBatch frame. Default 20 ms. */
  batchMs: number;
  /** A frame holds at most this many bytes of events (then it is sent at once). Default 256 KiB. */
  maxFrameBytes: number;
}

export const DEFAULT_CLIENT_LIMITS: ClientLimits = { maxBufferedBytes: 4 << 20, maxBehindMs: 10_000, batchMs: 20, maxFrameBytes: 256 << 10 };

export interface ClientHost {
  /** The client's first frame: resolve it (throws UsageError for what the hub cannot take) and start sending. */
  subscribe(link: ClientLink, subscription: Subscription): void;
  gone(link: ClientLink): void;
}

let nextClientId = 1;

export class ClientLink extends HubConnection {
  /** Unique in this hub (the pipeline shards name the clients that want a path by it). */
  readonly id = nextClientId++;
  filter: SubscriptionFilter | undefined;
  /** Counters (read by /metrics and the log). */
  eventsSent = 0;
  eventsDropped = 0;
  framesSent = 0;
  /** Events dropped since the client was last told (the next frame starts with a Lost event). */
  private untold = 0;
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  private timer: NodeJS.Timeout | undefined;
  private behindSince: number | undefined;
  private readonly firstFrameTimer: NodeJS.Timeout;

  constructor(
    ws: WebSocket,
    label: string,
    log: HubLog,
    private readonly host: ClientHost,
    private readonly limits: ClientLimits,
    private readonly now: () => bigint,
  ) {
    super(ws, label, log, MAX_CLIENT_FRAME);
    this.firstFrameTimer = setTimeout(() => this.reject(CloseCode.NO_FIRST_FRAME, 'no Subscribe within 10 s of connecting'), 10_000);
    this.firstFrameTimer.unref();
  }

  protected onFrame(bytes: Uint8Array): void {
    clearTimeout(this.firstFrameTimer);
    // The first frame subscribes; a later one replaces the subscription.
    this.host.subscribe(this, decodeSubscribe(bytes));
  }

  protected onClosed(): void {
    clearTimeout(this.firstFrameTimer);
    clearTimeout(this.timer);
    this.pending = [];
    this.host.gone(this);
  }

  /** Queue one encoded event (from encodeEventField) for this client, or count it dropped. */
  push(event: Uint8Array): void {
    if (this.closed) return;
    if (this.ws.bufferedAmount + this.pendingBytes + event.length > this.limits.maxBufferedBytes) {
      this.eventsDropped++;
      this.untold++;
      this.behindSince ??= Date.now();
      return;
    }
    this.pending.push(event);
    this.pendingBytes += event.length;
    if (this.pendingBytes >= this.limits.maxFrameBytes) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), this.limits.batchMs);
  }

  /** Send what is queued as one EventBatch, starting with how many events were dropped, if any. */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.closed) return;
    if (this.untold && this.ws.bufferedAmount < this.limits.maxBufferedBytes / 2) {
      this.pending.unshift(encodeEventField({ kind: 'lost', lost: { source: 'client-queue', node: '', count: this.untold, timeNs: this.now() } }));
      this.untold = 0;
    }
    if (!this.pending.length) return;
    const events = this.pending.length;
    const frame = concatFrame(this.pending);
    this.pending = [];
    this.pendingBytes = 0;
    this.send(frame);
    this.framesSent++;
    this.eventsSent += events;
  }

  /** Called by the hub every poll: a client that caught up is no longer behind; one that stays behind is cut off. */
  tick(): void {
    if (this.closed) return;
    if (this.behindSince !== undefined && this.ws.bufferedAmount < this.limits.maxBufferedBytes / 2) {
      this.behindSince = undefined;
      if (this.untold) this.flush();
    }
    if (this.behindSince !== undefined && Date.now() - this.behindSince > this.limits.maxBehindMs) {
      this.reject(CloseCode.TOO_SLOW, `this client stayed behind for ${Math.round(this.limits.maxBehindMs / 1000)} s (${this.eventsDropped} events dropped): read faster, or subscribe to less`);
    }
  }
}
