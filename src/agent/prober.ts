// The probes the hub asks an agent to send (`vxtrace check --hub`, AgentCommand SendProbes): sent
// from this node (its namespace, or the lab node's it entered) within the node's bounds
// (src/probe/limiter.ts: 4 at a time, 50 a second), each one's result reported as it ends, gathered
// into one ProbeResults frame every 20 ms. What the probes' packets did the tracer sees, as for
// any other packet: the hub follows them.
import { ProbeLimiter } from '../probe/limiter.js';
import { LocalProbeSender, NetnsProbeSender, type ProbeResult, type ProbeSender } from '../probe/sender.js';
import type { WireProbe } from '../wire/codec.js';

type Result = ProbeResult & { id: number };

export class AgentProber {
  private readonly limiter = new ProbeLimiter();
  private readonly sender: ProbeSender;
  private readonly waiting = new Map<number, AbortController>();
  private results: Result[] = [];
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(netns: string | undefined, private readonly report: (results: Result[]) => void) {
    this.sender = netns ? new NetnsProbeSender(netns) : new LocalProbeSender();
  }

  take(probes: readonly WireProbe[]): void {
    for (const p of probes) {
      if (p.cancel) {
        this.waiting.get(p.id)?.abort();
        continue;
      }
      const stop = new AbortController();
      this.waiting.set(p.id, stop);
      const { id, cancel: _cancel, ...request } = p;
      void this.limiter
        .run('this node', () => (this.closed ? Promise.resolve({ replied: false, error: 'the agent is stopping' }) : this.sender.send(request, stop.signal)))
        .catch((err: Error): ProbeResult => ({ replied: false, error: err.message }))
        .then((r) => {
          this.waiting.delete(id);
          this.done({ id, replied: r.replied, ...(r.error !== undefined ? { error: r.error } : {}) });
        });
    }
  }

  private done(r: Result): void {
    if (this.closed) return;
    this.results.push(r);
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      const batch = this.results;
      this.results = [];
      this.report(batch);
    }, 20);
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    for (const w of this.waiting.values()) w.abort();
    this.sender.close();
  }
}
