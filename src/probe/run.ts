// One check's probing, wherever its probes are sent from (this machine's nodes, or agents asked by
// the hub): each attempt tagged anew (mark.ts), a lost probe retried once, a probe the tracer saw
// dropped told to stop waiting for its reply, and the wait for the paths of lost probes at the end.
import type { PacketPath } from '../correlate/path.js';
import type { Finding } from '../diagnose/finding.js';
import type { CheckJudge, ProbeAttempt } from './judge.js';
import { PROBE_MARK_COUNT } from './mark.js';
import type { PlannedProbe } from './plan.js';
import type { ProbeRequest, ProbeResult } from './sender.js';

/** Sends one probe attempt from its node; resolves when its reply came, or did not in time. */
export type SendProbe = (probe: PlannedProbe, request: ProbeRequest, signal: AbortSignal) => Promise<ProbeResult>;

/** After the last reply (or its timeout), how long paths still open may take to finish: the tracer gives up on a silent path after 4 s. */
export const SETTLE_MS = 5_000;

export class ProbeRun {
  private readonly waiting = new Map<ProbeAttempt, AbortController>();
  /** The next tag of each (source, destination): the legs of every attempt of a pair's probes are told apart. */
  private readonly tags = new Map<string, number>();

  constructor(
    readonly judge: CheckJudge,
    private readonly send: SendProbe,
    private readonly timeoutMs: number,
  ) {}

  /** A finished probe path and every finding it showed (the pipeline's onPath). */
  addPath(path: PacketPath, touched: readonly Finding[]): void {
    const a = this.judge.addPath(path, touched);
    // A probe the kernel dropped gets no reply: its sender stops waiting at once.
    if (a && (a.request?.path.outcome === 'dropped' || a.reply?.path.outcome === 'dropped')) this.waiting.get(a)?.abort();
  }

  /** Sends every planned probe (and the retries); `progress` gets the number of probes done so far. */
  async sendAll(aborted: () => boolean, progress: (done: number) => void = () => {}): Promise<void> {
    let done = 0;
    await Promise.all(
      this.judge.plan.probes.map(async (probe) => {
        if (!aborted()) {
          const first = await this.once(probe, 1);
          if (this.judge.shouldRetry(first) && !aborted()) await this.once(probe, 2);
        }
        progress(++done);
      }),
    );
  }

  /** Waits until every attempt's paths are in, at most `ms`. */
  async settle(aborted: () => boolean, ms = SETTLE_MS): Promise<void> {
    const until = Date.now() + ms;
    while (!aborted() && Date.now() < until && !this.judge.attempts.every((a) => this.judge.settled(a))) await new Promise((r) => setTimeout(r, 50));
  }

  private async once(probe: PlannedProbe, attempt: number): Promise<ProbeAttempt> {
    const pair = `${probe.src.address}>${probe.dst.address}`;
    // Starting at a random place: two checks at once rarely share a tag.
    const tag = this.tags.get(pair) ?? Math.floor(Math.random() * PROBE_MARK_COUNT);
    this.tags.set(pair, (tag + 1) % PROBE_MARK_COUNT);
    const a = this.judge.expect(probe, tag, attempt);
    const stop = new AbortController();
    this.waiting.set(a, stop);
    const request: ProbeRequest = { protocol: probe.protocol, src: probe.src.address, dst: probe.dst.address, tag, bytes: probe.bytes, df: probe.df, timeoutMs: this.timeoutMs };
    a.result = await this.send(probe, request, stop.signal).catch((err: Error) => ({ replied: false, error: err.message }));
    this.waiting.delete(a);
    return a;
  }
}
