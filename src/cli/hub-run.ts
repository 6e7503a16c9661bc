// Printing what a hub streams (`vxtrace observe`, `vxtrace follow --hub`): paths and findings with
// the formatters `follow` uses (text: src/output/text.ts; --json: src/output/ndjson.ts), so the
// output is the same whether the paths were joined here or at the hub; node statuses and losses
// go to stderr. Ends on --count, --duration, Ctrl-C, or when the hub ends the stream.
import type { CliContext } from './command.js';
import type { PacketPath } from '../correlate/path.js';
import type { Finding } from '../diagnose/finding.js';
import { ExitStatus, UsageError, type VxtraceError } from '../errors.js';
import { judgePaths } from './verdict.js';
import { findingRecord, ndjsonLine, pathRecord, summaryRecord } from '../output/ndjson.js';
import { formatFinding, formatPathLine, formatSummary, summarize, type TextStyle } from '../output/text.js';
import { HubClient } from '../session/hub-client.js';
import type { LostEvent, SubscribedEvent, Subscription } from '../wire/codec.js';
import { readTokenFile } from '../wire/endpoint.js';
import { RunUntil } from './run-until.js';
import { StatusLine } from './status-line.js';

export interface HubRunOptions {
  hub: string;
  tokenFile?: string;
  subscription: Subscription;
  json?: boolean;
  count?: number;
  duration?: number;
  /** The line said on stderr once the subscription is in force (tests and users wait for it). */
  readyLine(s: SubscribedEvent): string;
}

export interface HubRunResult {
  paths: PacketPath[];
  /** Every finding received, the last of each key. */
  findings: Finding[];
  /** Hop records lost upstream (ring buffers, agent queues, the hub). */
  lostRecords: number;
  elapsed: string;
  /** The stream ended on a fault (the hub went away, refused, ...). */
  error?: VxtraceError;
}

const LOST_WHERE: Record<LostEvent['source'], string> = {
  'ring-buffer': 'ring buffer full',
  'agent-queue': "agent's queue full (the hub away or slow)",
  'hub-queue': 'the hub could not keep up',
  'client-queue': 'this client did not read fast enough',
};

export async function streamFromHub(o: HubRunOptions, ctx: CliContext): Promise<HubRunResult> {
  const token = o.tokenFile !== undefined ? readTokenFile(o.tokenFile) : undefined;
  const style: TextStyle = { color: !!ctx.stdout.isTTY && !process.env.NO_COLOR };
  const status = new StatusLine(ctx.stderr);
  const paths: PacketPath[] = [];
  const findings = new Map<string, Finding>();
  let lostRecords = 0;
  let run: RunUntil | undefined;
  let ended: VxtraceError | undefined;
  let endedEarly = false;
  const out = (line: string) => {
    status.clear();
    ctx.stdout.write(line);
  };
  const err = (line: string) => {
    status.clear();
    ctx.stderr.write(line);
  };
  const { client, subscribed } = await HubClient.connect({
    hub: o.hub,
    ...(token !== undefined ? { token } : {}),
    subscription: o.subscription,
    onEvent(e) {
      if (o.count !== undefined && paths.length >= o.count) return;
      switch (e.kind) {
        case 'path':
          paths.push(e.path);
          out(o.json ? ndjsonLine(pathRecord(e.path)) : formatPathLine(e.path, style) + '\n');
          if (o.count !== undefined && paths.length >= o.count) run?.done();
          return;
        case 'finding':
          findings.set(e.finding.key, e.finding);
          return out(o.json ? ndjsonLine(findingRecord(e.finding)) : `\n${formatFinding(e.finding, style)}\n`);
        case 'node':
          return err(`node ${e.status.node}: ${e.status.state}${e.status.reason ? ` (${e.status.reason})` : ''}\n`);
        case 'lost':
          if (e.lost.source !== 'client-queue') lostRecords += e.lost.count;
          return err(`lost ${e.lost.count} ${e.lost.source === 'client-queue' ? 'events' : 'records'}${e.lost.node ? ` on ${e.lost.node}` : ''}: ${LOST_WHERE[e.lost.source]}\n`);
        case 'subscribed':
          return;
      }
    },
    onEnd(error) {
      ended = error;
      endedEarly = true;
      run?.done();
    },
  });
  run = new RunUntil(status, {
    durationMs: o.duration,
    statusText: (elapsed) => `${paths.length} paths · ${lostRecords} records lost · ${subscribed.nodes.length} nodes · ${elapsed}`,
  });
  err(o.readyLine(subscribed));
  if (endedEarly || (o.count !== undefined && paths.length >= o.count)) run.done();
  await run.wait();
  client.close();
  const all = [...findings.values()];
  const s = summarize(paths, lostRecords, all);
  ctx.stdout.write(o.json ? ndjsonLine(summaryRecord(s)) : `\n${formatSummary(s, style)}`);
  if (ended) ctx.stderr.write(`vxtrace: ${(ended as VxtraceError).message}\n`);
  return { paths, findings: all, lostRecords, elapsed: run.elapsed(), ...(ended ? { error: ended } : {}) };
}

/** "node1, node2 (3 agents)" for ready lines. */
export function nodesLine(s: SubscribedEvent): string {
  return s.nodes.length ? `agents on ${s.nodes.join(', ')}` : 'no agent connected yet';
}

export interface FollowThroughHubOptions {
  hub: string;
  tokenFile?: string;
  json?: boolean;
  count?: number;
  duration?: number;
  protocol?: 'icmp' | 'tcp' | 'udp';
  port?: number;
  /** Flags that make no sense here (the hub has the cluster; the agents hold the packets' bytes). */
  write?: string;
  snaplen?: number;
  cluster?: string;
  kubeconfig?: string;
  lab?: string;
}

/**
 * `follow POD_A POD_B --hub URL`: follow's output and exit status, with the paths joined at the
 * hub from its agents (a subscription to the pair, both ways).
 */
export async function followThroughHub(podA: string, podB: string, o: FollowThroughHubOptions, ctx: CliContext): Promise<typeof ExitStatus.OK | typeof ExitStatus.FINDINGS> {
  const local = (['write', 'snaplen', 'cluster', 'kubeconfig', 'lab'] as const).filter((k) => o[k] !== undefined);
  if (local.length) {
    throw new UsageError(`--${local[0]} does not go with --hub: the hub reads the cluster, and the stream carries paths, not packet bytes (run \`vxtrace capture\` on a node for a trace)`);
  }
  const subscription: Subscription = { client: 'follow', from: podA, to: podB, bothWays: true };
  if (o.protocol) subscription.protocol = o.protocol;
  if (o.port !== undefined) subscription.port = o.port;
  const limits = [o.count !== undefined ? `${o.count} path${o.count === 1 ? '' : 's'}` : '', o.duration !== undefined ? `${o.duration / 1000}s` : ''].filter(Boolean);
  const r = await streamFromHub(
    {
      hub: o.hub, tokenFile: o.tokenFile, subscription, json: o.json, count: o.count, duration: o.duration,
      readyLine: (s) => `following ${podA} ⇄ ${podB}${o.protocol ? ` ${o.protocol}` : ''}${o.port !== undefined ? ` port ${o.port}` : ''} through the hub at ${o.hub}: ${nodesLine(s)}; ${limits.length ? `stops after ${limits.join(' or ')} (or Ctrl-C)` : 'Ctrl-C to stop'}\n`,
    },
    ctx,
  );
  if (r.error) throw r.error;
  if (!r.paths.length) {
    ctx.stderr.write(`no packet between ${podA} and ${podB} was seen in ${r.elapsed}: send traffic between them, and check that the agents of their nodes are connected to the hub\n`);
    return ExitStatus.FINDINGS;
  }
  const verdict = judgePaths(r.paths, r.findings, { lostRecords: r.lostRecords, subject: 'the stream' });
  if (verdict.note) ctx.stderr.write(`note: ${verdict.note}\n`);
  return verdict.status;
}
