// Sending one probe and hearing whether its reply came: an ICMP echo by `ping` (iputils: -e sets the
// identifier, -I the source address, -M do -s the DF size), a UDP datagram or a TCP SYN by a socket
// bound to the source address and the marked port. A probe is sent in the namespace of the node it
// leaves (a lab node's, or this machine's own on a real node): ping is run there (nsenter --net);
// UDP and TCP need a socket made there, so one small helper process per lab node
// (sender-main.ts) makes them. What the probe's packets did is seen by the tracer, not here: the
// reply only says when to stop waiting.
import { spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { execAsync } from '../util/exec.js';
import { markOfTag, type ProbeProtocol } from './mark.js';

export interface ProbeRequest {
  protocol: ProbeProtocol;
  src: string;
  dst: string;
  /** 0..255: carried as the ICMP identifier or the UDP/TCP ports (mark.ts). */
  tag: number;
  /** IP length of the packet (ICMP and UDP). */
  bytes: number;
  /** Don't Fragment (ICMP only: ping -M do). */
  df: boolean;
  timeoutMs: number;
}

export interface ProbeResult {
  /** A reply came back in time (an echo reply, a port unreachable, a TCP reset or SYN-ACK). */
  replied: boolean;
  /** The probe could not be sent, in the sender's words ("local error: message too long, mtu=1450"). */
  error?: string;
  rttMs?: number;
}

export interface ProbeSender {
  /** Get ready to send probes of this protocol (start what takes time to start). */
  prepare?(protocol: ProbeProtocol): void;
  /** `signal`: stop waiting for the reply (the tracer already saw the probe dropped). */
  send(r: ProbeRequest, signal?: AbortSignal): Promise<ProbeResult>;
  /** Ends what it started (helper processes). */
  close(): void;
}

/** An ICMP echo by ping, in `netns` (undefined: this namespace). */
export async function pingProbe(r: ProbeRequest, netns?: string, signal?: AbortSignal): Promise<ProbeResult> {
  // (not -q: it hides local errors, such as "message too long" for a size over the route's MTU)
  const argv = [
    'ping', '-n', '-c', '1', '-W', (r.timeoutMs / 1000).toFixed(3), '-I', r.src, '-e', String(markOfTag(r.tag)),
    '-s', String(Math.max(0, r.bytes - 28)), ...(r.df ? ['-M', 'do'] : []), r.dst,
  ];
  const started = process.hrtime.bigint();
  // nsenter enters the namespace alone (ip netns exec also makes a mount namespace and remounts
  // /sys for each command): a third of the cost, for the many pings of a large matrix.
  const command = netns ? ['nsenter', `--net=/run/netns/${netns}`, ...argv] : argv;
  const out = await execAsync(command, { allowFail: true, timeoutMs: r.timeoutMs + 5000, ...(signal ? { signal } : {}) });
  const rttMs = Number(process.hrtime.bigint() - started) / 1e6;
  if (out.status === 0) return { replied: true, rttMs };
  if (signal?.aborted) return { replied: false };
  // No reply (exit 1, nothing said), or why it could not be sent: ping's own line, or nsenter's.
  const lines = (out.stderr + '\n' + out.stdout).split('\n').map((l) => l.trim()).filter(Boolean);
  const said = lines.find((l) => /^(ping|nsenter): /.test(l)) ?? lines.find((l) => /error/i.test(l) && !/packets transmitted/.test(l));
  return said ? { replied: false, error: said.replace(/^ping: /, '') } : { replied: false };
}

/** A UDP datagram or TCP SYN from this namespace. */
export function socketProbe(r: ProbeRequest): Promise<ProbeResult> {
  const port = markOfTag(r.tag);
  const started = process.hrtime.bigint();
  const rtt = () => Number(process.hrtime.bigint() - started) / 1e6;
  return new Promise((resolve) => {
    let done = false;
    const finish = (res: ProbeResult, cleanup: () => void) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      cleanup();
      resolve(res);
    };
    let cleanup = () => {};
    const timer = setTimeout(() => finish({ replied: false }, cleanup), r.timeoutMs);
    if (r.protocol === 'udp') {
      const s = dgram.createSocket('udp4');
      cleanup = () => s.close();
      // ECONNREFUSED: the port unreachable that answers a datagram nobody listens for (a connected socket hears of it).
      s.on('error', (e: NodeJS.ErrnoException) => finish(e.code === 'ECONNREFUSED' ? { replied: true, rttMs: rtt() } : { replied: false, error: `${e.code ?? e.message}` }, cleanup));
      s.on('message', () => finish({ replied: true, rttMs: rtt() }, cleanup));
      s.bind({ address: r.src, port, exclusive: true }, () => {
        s.connect(port, r.dst, () => s.send(Buffer.alloc(Math.max(0, r.bytes - 28), 0x76)));
      });
    } else {
      const c = net.connect({ host: r.dst, port, localAddress: r.src, localPort: port });
      cleanup = () => c.resetAndDestroy();
      c.on('connect', () => finish({ replied: true, rttMs: rtt() }, cleanup));
      // ECONNREFUSED: the reset that answers a SYN nobody listens for.
      c.on('error', (e: NodeJS.ErrnoException) => finish(e.code === 'ECONNREFUSED' ? { replied: true, rttMs: rtt() } : { replied: false, error: `${e.code ?? e.message}` }, () => c.destroy()));
    }
  });
}

/** Probes from this machine's own namespace (a real node: the agent, or vxtrace run on it). */
export class LocalProbeSender implements ProbeSender {
  send(r: ProbeRequest, signal?: AbortSignal): Promise<ProbeResult> {
    return r.protocol === 'icmp' ? pingProbe(r, undefined, signal) : socketProbe(r);
  }
  close(): void {}
}

const HELPER = fileURLToPath(new URL('./sender-main.js', import.meta.url));

/** Probes from a lab node's namespace: ping run there, sockets made by a helper process there. */
export class NetnsProbeSender implements ProbeSender {
  private helper: { child: ChildProcess; waiting: Map<number, (r: ProbeResult) => void> } | undefined;
  private seq = 0;

  constructor(private readonly netns: string) {}

  prepare(protocol: ProbeProtocol): void {
    if (protocol !== 'icmp') this.startHelper();
  }

  send(r: ProbeRequest, signal?: AbortSignal): Promise<ProbeResult> {
    if (r.protocol === 'icmp') return pingProbe(r, this.netns, signal);
    const h = this.startHelper();
    const seq = this.seq++;
    return new Promise((resolve) => {
      h.waiting.set(seq, resolve);
      h.child.stdin!.write(JSON.stringify({ seq, request: r }) + '\n');
    });
  }

  private startHelper() {
    if (this.helper) return this.helper;
    const child = spawn('ip', ['netns', 'exec', this.netns, process.execPath, HELPER], { stdio: ['pipe', 'pipe', 'pipe'] });
    const waiting = new Map<number, (r: ProbeResult) => void>();
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      let m: { seq: number; result: ProbeResult };
      try {
        m = JSON.parse(line) as { seq: number; result: ProbeResult };
      } catch {
        return; // not one of its result lines
      }
      waiting.get(m.seq)?.(m.result);
      waiting.delete(m.seq);
    });
    const fail = (why: string) => {
      for (const resolve of waiting.values()) resolve({ replied: false, error: why });
      waiting.clear();
    };
    child.on('error', (e) => fail(`cannot start the probe helper in ${this.netns}: ${e.message}`));
    child.on('exit', (code) => fail(`the probe helper in ${this.netns} exited (${code ?? 'signal'}): ${stderr.trim().split('\n')[0] ?? ''}`));
    this.helper = { child, waiting };
    return this.helper;
  }

  close(): void {
    const h = this.helper;
    this.helper = undefined;
    if (h && h.child.exitCode === null) h.child.stdin!.end();
  }
}
