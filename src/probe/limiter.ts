// How fast probes go out: a node sends at most PROBE_LIMITS.perNode probes at a time and starts at
// most one every perNodeIntervalMs (50 a second), and one run has at most `total` in flight in all.
// Probes are few (one per pair, one of --size, a retry for a lost one), so these bounds keep them
// far below anything a node's pods notice, while 100 nodes' agents each probing their 99 peers still
// finish in seconds.
export interface ProbeLimits {
  perNode: number;
  perNodeIntervalMs: number;
  total: number;
}

export const PROBE_LIMITS: ProbeLimits = { perNode: 4, perNodeIntervalMs: 20, total: 32 };

interface NodeQueue {
  inFlight: number;
  lastStart: number;
  waiting: (() => void)[];
}

export class ProbeLimiter {
  private inFlight = 0;
  private readonly nodes = new Map<string, NodeQueue>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly limits: ProbeLimits = PROBE_LIMITS) {}

  /** Runs `send` for `node` once the bounds allow it. */
  async run<T>(node: string, send: () => Promise<T>): Promise<T> {
    let q = this.nodes.get(node);
    if (!q) this.nodes.set(node, (q = { inFlight: 0, lastStart: 0, waiting: [] }));
    const queue = q;
    await new Promise<void>((resolve) => {
      queue.waiting.push(resolve);
      this.pump();
    });
    try {
      return await send();
    } finally {
      queue.inFlight--;
      this.inFlight--;
      this.pump();
    }
  }

  /** Starts what may start now; comes back when the next node's interval has passed. */
  private pump(): void {
    const now = Date.now();
    let wakeAt = Infinity;
    for (const q of this.nodes.values()) {
      while (q.waiting.length && q.inFlight < this.limits.perNode && this.inFlight < this.limits.total) {
        const next = q.lastStart + this.limits.perNodeIntervalMs;
        if (next > now) {
          wakeAt = Math.min(wakeAt, next);
          break;
        }
        q.lastStart = now;
        q.inFlight++;
        this.inFlight++;
        q.waiting.shift()!();
      }
    }
    if (wakeAt !== Infinity && !this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.pump();
      }, wakeAt - now);
    }
  }
}
