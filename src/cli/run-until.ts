// How a tracing command runs: until it is done (count reached), its duration passes, or Ctrl-C /
// SIGTERM; meanwhile a live status line on a terminal. `wait()` removes every timer and handler.
import { StatusLine } from './status-line.js';

export class RunUntil {
  readonly startedAt = Date.now();
  private resolve: () => void = () => {};
  private readonly finished = new Promise<void>((r) => (this.resolve = r));
  private readonly timer: NodeJS.Timeout | undefined;
  private readonly ticker: NodeJS.Timeout;
  private readonly onSignal = () => this.done();

  constructor(
    private readonly status: StatusLine,
    opts: { durationMs?: number; statusText: (elapsed: string) => string },
  ) {
    process.once('SIGINT', this.onSignal);
    process.once('SIGTERM', this.onSignal);
    this.timer = opts.durationMs !== undefined ? setTimeout(this.onSignal, opts.durationMs) : undefined;
    this.ticker = setInterval(() => status.show(opts.statusText(this.elapsed())), 250);
  }

  /** Stop now (e.g. --count reached). */
  done(): void {
    this.resolve();
  }

  /** Seconds since the start, e.g. "12s". */
  elapsed(): string {
    return `${((Date.now() - this.startedAt) / 1000).toFixed(0)}s`;
  }

  async wait(): Promise<void> {
    try {
      await this.finished;
    } finally {
      clearInterval(this.ticker);
      clearTimeout(this.timer);
      process.removeListener('SIGINT', this.onSignal);
      process.removeListener('SIGTERM', this.onSignal);
      this.status.clear();
    }
  }
}
