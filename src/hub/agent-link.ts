// One agent connection (/v1/agent): owns its socket, knows which node it speaks for once it said
// hello, keeps its counters and its clock offset, and notices when it goes silent. What its reports
// mean for the cluster (hops into the pipeline, kernel state into the model) is the hub's business.
import type { WebSocket } from 'ws';
import { HubConnection, type HubLog } from './connection.js';
import { CloseCode } from '../wire/close.js';
import { decodeAgentReport, encodeAgentCommand, MAX_AGENT_FRAME, WireError, type AgentHello, type AgentReport, type WireProbe } from '../wire/codec.js';
import type { FlowFilter } from '../datapath/index.js';

export interface AgentHost {
  hello(link: AgentLink, hello: AgentHello): void;
  report(link: AgentLink, report: Exclude<AgentReport, { kind: 'hello' }>): void;
  gone(link: AgentLink, why: string): void;
}

/** Clock samples kept to estimate an agent's clock offset (one a second). */
const CLOCK_SAMPLES = 30;

export class AgentLink extends HubConnection {
  node: string | undefined;
  hello: AgentHello | undefined;
  /** Counters (read by /metrics). */
  records = 0;
  ringLost = 0;
  queueDropped = 0;
  /** The generation of the filter the agent last said it applied. */
  appliedGeneration = -1;
  private lastHeard = Date.now();
  private readonly clock: bigint[] = [];
  private offset = 0n;
  private readonly firstFrameTimer: NodeJS.Timeout;

  constructor(
    ws: WebSocket,
    label: string,
    log: HubLog,
    private readonly host: AgentHost,
    private readonly now: () => bigint,
  ) {
    super(ws, label, log, MAX_AGENT_FRAME);
    ws.on('pong', () => (this.lastHeard = Date.now()));
    this.firstFrameTimer = setTimeout(() => this.reject(CloseCode.NO_FIRST_FRAME, 'no AgentHello within 10 s of connecting'), 10_000);
    this.firstFrameTimer.unref();
  }

  protected onFrame(bytes: Uint8Array): void {
    this.lastHeard = Date.now();
    const report = decodeAgentReport(bytes);
    if (!this.hello) {
      if (report.kind !== 'hello') throw new WireError(`an agent's first frame must be its AgentHello, not ${report.kind}`);
      clearTimeout(this.firstFrameTimer);
      this.hello = report.hello;
      this.node = report.hello.node;
      this.label = `agent ${this.node}`;
      this.sampleClock(report.hello.wallTimeNs);
      this.host.hello(this, report.hello);
      return;
    }
    if (report.kind === 'hello') throw new WireError('an agent says hello once, in its first frame');
    if (report.kind === 'stats') this.sampleClock(report.stats.wallTimeNs);
    this.host.report(this, report);
  }

  protected onClosed(why: string): void {
    clearTimeout(this.firstFrameTimer);
    this.host.gone(this, why);
  }

  /**
   * The agent's clock minus the hub's, estimated from the wall clock it sends once a second: each
   * sample is (agent's clock at sending) - (hub's at receiving) = offset - delay, so the largest of
   * the recent samples is the offset less the smallest delay (a millisecond on a LAN).
   */
  private sampleClock(agentWallNs: bigint): void {
    if (agentWallNs <= 0n) return;
    this.clock.push(agentWallNs - this.now());
    if (this.clock.length > CLOCK_SAMPLES) this.clock.shift();
    let max = this.clock[0]!;
    for (const s of this.clock) if (s > max) max = s;
    this.offset = max;
  }

  /** Add to the agent's wall-clock times to get the hub's. */
  get clockCorrectionNs(): bigint {
    return -this.offset;
  }

  setFilter(generation: number, filter: FlowFilter): void {
    this.send(encodeAgentCommand({ kind: 'set-filter', generation, filter }));
  }

  /** Probes for the agent to send from its node (a check), or to stop waiting for. */
  sendProbes(probes: WireProbe[]): void {
    this.send(encodeAgentCommand({ kind: 'send-probes', probes }));
  }

  /** Read from again (after the hub's backlog): it is heard from as of now. */
  override resume(): void {
    super.resume();
    this.lastHeard = Date.now();
  }

  /** Ping it; true when it was heard from within `silentMs` (else it is cut off: unwatched). Not judged while the hub does not read it. */
  heartbeat(silentMs: number): boolean {
    if (this.closed) return false;
    if (!this.ws.isPaused && Date.now() - this.lastHeard > silentMs) {
      this.reject(CloseCode.SILENT, `no word from the agent for ${Math.round(silentMs / 1000)} s`);
      return false;
    }
    try {
      this.ws.ping();
    } catch {
      // closing already: its close event follows
    }
    return true;
  }
}
