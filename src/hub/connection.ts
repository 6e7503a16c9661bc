// What both kinds of hub connection share: the socket's frames as domain messages, bad frames
// closing this one connection (4000-4999) with a log line, and the close itself.
import type { WebSocket, RawData } from 'ws';
import { CloseCode, hubCloseCodeFor } from '../wire/close.js';
import { WireError } from '../wire/codec.js';

export type HubLog = (line: string) => void;

function bytesOf(data: RawData): Uint8Array {
  if (Array.isArray(data)) return Buffer.concat(data);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return data;
}

export abstract class HubConnection {
  closed = false;
  /** Frames and bytes received, for the counters. */
  framesIn = 0;
  bytesIn = 0;

  constructor(
    protected readonly ws: WebSocket,
    /** `client 127.0.0.1:50312`, `agent node1`: how log lines name it. */
    public label: string,
    protected readonly log: HubLog,
    /** The endpoint's largest frame (bytes), for messages. */
    maxFrame: number,
  ) {
    // ws closes a frame it cannot parse (or one over maxPayload) itself, with 1002/1007/1009; the
    // hub's contract is one close code in 4000-4999 per cause, so the code it picks is mapped here.
    const close = ws.close.bind(ws);
    ws.close = (code?: number, reason?: string | Buffer) => close(hubCloseCodeFor(code) ?? code, reason);
    ws.on('message', (data, isBinary) => {
      if (this.closed) return;
      const bytes = bytesOf(data);
      this.framesIn++;
      this.bytesIn += bytes.length;
      if (!isBinary) return this.reject(CloseCode.TEXT_FRAME, 'text frames are not accepted: send binary vxtrace.v1 protobuf');
      try {
        this.onFrame(bytes);
      } catch (err) {
        if (err instanceof WireError) return this.reject(CloseCode.MALFORMED, err.message);
        throw err;
      }
    });
    ws.on('error', (err: Error & { code?: string }) => {
      if (this.closed) return;
      // ws has closed the connection already (with the code mapped above) when a frame broke its rules.
      const code = err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' ? CloseCode.TOO_LARGE : err.code?.startsWith('WS_ERR_') ? CloseCode.PROTOCOL : undefined;
      const why = code === CloseCode.TOO_LARGE ? `a frame larger than ${maxFrame} bytes` : err.message;
      this.log(`${this.label}: ${code ? `closing (${code})` : 'closed'}: ${why}${err.code ? ` (${err.code})` : ''}`);
      this.closed = true;
      this.onClosed(why);
    });
    ws.on('close', (code, reason) => {
      if (this.closed) return;
      this.closed = true;
      this.onClosed(reason.length ? reason.toString() : `closed (${code})`);
    });
  }

  /** One binary frame; throw WireError for a frame that is not what this endpoint takes. */
  protected abstract onFrame(bytes: Uint8Array): void;
  /** The connection is gone (after reject, a close by the peer, or an error). */
  protected abstract onClosed(why: string): void;

  /** Close this connection for a cause, with a log line; the hub goes on serving everyone else. */
  reject(code: number, reason: string): void {
    if (this.closed) return;
    this.log(`${this.label}: closing (${code}): ${reason}`);
    this.closed = true;
    // A close reason is at most 123 bytes.
    this.ws.close(code, Buffer.from(reason).subarray(0, 123).toString());
    // A peer that does not answer the close (e.g. it never reads) is cut off.
    setTimeout(() => this.ws.terminate(), 1000).unref();
    this.onClosed(reason);
  }

  send(bytes: Uint8Array): void {
    if (!this.closed) this.ws.send(bytes, { binary: true });
  }

  get bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }

  /** Read no more frames for now (the peer's socket fills: it waits, or keeps and counts what it cannot send). */
  pause(): void {
    if (!this.closed && !this.ws.isPaused) this.ws.pause();
  }

  resume(): void {
    if (!this.closed && this.ws.isPaused) this.ws.resume();
  }
}
