// A stream client of the hub (/v1/stream): connect, send one Subscribe, receive EventBatches as
// domain events (paths, findings, node statuses, losses). `observe` and `follow --hub` both run it.
import { WebSocket } from 'ws';
import { EnvironmentError, UsageError, type VxtraceError } from '../errors.js';
import { decodeEventBatch, encodeSubscribe, SUBPROTOCOL, WireError, type StreamEvent, type SubscribedEvent, type Subscription } from '../wire/codec.js';
import { CloseCode } from '../wire/close.js';
import { hubAddress } from '../wire/endpoint.js';

export interface HubClientOptions {
  hub: string;
  token?: string;
  subscription: Subscription;
  /** Each event as it arrives (after the subscription is in force). */
  onEvent(e: StreamEvent): void;
  /** The stream ended: by the hub (with why) or by close(). `error` when it ended on a fault. */
  onEnd(error?: VxtraceError): void;
}

export class HubClient {
  private ws!: WebSocket;
  private ended = false;
  private closing = false;

  private constructor(private readonly opts: HubClientOptions) {}

  /** Resolves once the hub says the subscription is in force (its Subscribed event). */
  static connect(opts: HubClientOptions): Promise<{ client: HubClient; subscribed: SubscribedEvent }> {
    const client = new HubClient(opts);
    return client.open();
  }

  private open(): Promise<{ client: HubClient; subscribed: SubscribedEvent }> {
    const address = hubAddress(this.opts.hub, '/v1/stream');
    return new Promise((resolve, reject) => {
      let subscribed = false;
      let failure: VxtraceError | undefined;
      const fail = (err: VxtraceError) => {
        failure ??= err;
      };
      const headers: Record<string, string> = this.opts.token ? { Authorization: `Bearer ${this.opts.token}` } : {};
      const ws = new WebSocket(address.url, SUBPROTOCOL, { headers, handshakeTimeout: 5000, maxPayload: 64 << 20 });
      this.ws = ws;
      ws.on('open', () => ws.send(encodeSubscribe(this.opts.subscription), { binary: true }));
      ws.on('unexpected-response', (_req, res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => (body += d));
        res.on('end', () => {
          const why = body.trim() || res.statusMessage || '';
          fail(new UsageError(`the hub at ${address.shown} refused the connection (${res.statusCode}${why ? `: ${why}` : ''})${res.statusCode === 401 ? ': give --token-file with the hub\'s token' : ''}`));
          ws.terminate();
        });
      });
      ws.on('error', (err: Error & { code?: string }) => {
        const why = err.code === 'ECONNREFUSED' || err.code === 'ENOENT' ? 'nothing listens there' : err.message;
        fail(new EnvironmentError(`cannot reach the hub at ${address.shown}: ${why} (is \`vxtrace hub\` running there?)`));
      });
      ws.on('message', (data: Buffer, isBinary) => {
        if (this.ended) return;
        let events: StreamEvent[];
        try {
          if (!isBinary) throw new WireError('the hub sent a text frame');
          events = decodeEventBatch(data);
        } catch (err) {
          fail(new EnvironmentError(`the hub at ${address.shown} sent a frame vxtrace cannot read (${(err as Error).message}): is it the same version (${SUBPROTOCOL})?`));
          ws.terminate();
          return;
        }
        for (const e of events) {
          if (e.kind === 'subscribed' && !subscribed) {
            subscribed = true;
            resolve({ client: this, subscribed: e.subscribed });
            continue;
          }
          if (subscribed) this.opts.onEvent(e);
        }
      });
      ws.on('close', (code, reasonBytes) => {
        const reason = reasonBytes.toString();
        if (!this.closing && !failure) {
          if (code === CloseCode.BAD_SUBSCRIPTION) fail(new UsageError(`the hub refused the subscription: ${reason}`));
          else if (code >= 4000 && code <= 4999) fail(new EnvironmentError(`the hub closed the stream (${code}): ${reason}`));
          else if (code !== 1000) fail(new EnvironmentError(`the hub at ${address.shown} closed the stream${reason ? `: ${reason}` : ` (${code})`}`));
        }
        this.ended = true;
        if (!subscribed) reject(failure ?? new EnvironmentError(`the hub at ${address.shown} closed the stream before the subscription was in force`));
        else this.opts.onEnd(failure);
      });
    });
  }

  close(): void {
    if (this.ended) return;
    this.closing = true;
    this.ws.close(1000, 'done');
    setTimeout(() => this.ws.terminate(), 500).unref();
  }
}
