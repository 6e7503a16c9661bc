// Printing what a hub streams (`vxtrace observe`, `vxtrace follow --hub`, `vxtrace diagnose --hub`):
// paths and findings with the formatters `follow` and `diagnose` use (text: src/output/text.ts,
// src/output/diagnosis.ts; --json: src/output/ndjson.ts), so the output is the same whether the
// paths were joined or the state diagnosed here or at the hub; node statuses and losses go to
// stderr. Ends on --count, --duration, Ctrl-C, or when the hub ends the stream.
import type { CliContext } from './command.js';
import type { PacketPath } from '../correlate/path.js';
import type { Finding } from '../diagnose/finding.js';
import { EnvironmentError, ExitStatus, UsageError, type VxtraceError } from '../errors.js';
import { hasErrors, type Diagnosis } from '../diagnose/diagnosis.js';
import { formatDiagnosis, formatDiagnosisChange } from '../output/diagnosis.js';
import { judgePaths } from './verdict.js';
import { findingRecord, flowRecord, ndjsonLine, pathRecord, summaryRecord } from '../output/ndjson.js';
import { formatFinding, formatFlowTable, formatPathLine, formatSummary, summarize, type TextStyle } from '../output/text.js';
import { compareFlows, type FlowSummary } from '../correlate/flows.js';
import { flowKeyOf } from '../wire/flows.js';
import { HubClient } from '../session/hub-client.js';
import type { DiagnosisEvent, LostEvent, SubscribedEvent, Subscription } from '../wire/codec.js';
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
  /**
   * The hub's per-hop flow counters: 'end' prints them once, before the summary, as follow does
   * (text: the table; --json: a `flow` record per flow); 'stream' (observe --json) prints each
   * flow's `flow` record whenever its counters change.
   */
  flows?: 'end' | 'stream';
}

/** At the end, how long to wait for every node's counters to be read past the last hop printed. */
const FLOW_WAIT_MS = 4000;
/** A read counts as past a hop this much after it (the hub maps each agent's clock, to a few ms). */
const READ_MARGIN_NS = 20_000_000n;

export interface HubRunResult {
  paths: PacketPath[];
  /** Every finding received, the last of each key. */
  findings: Finding[];
  /** Hop records lost upstream (ring buffers, agent queues, the hub). */
  lostRecords: number;
  elapsed: string;
  /** The stream ended on a fault (the hub went away, refused, ...). */
  error?: VxtraceError;
  /** The flows' per-hop counters, as last sent. */
  flows: FlowSummary[];
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
  const flows = new Map<string, FlowSummary>();
  const reads = new Map<string, bigint>();
  /** The latest hop time printed per node: the counters are waited for past it. */
  const lastHop = new Map<string, bigint>();
  let onFlows: (() => void) | undefined;
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
      if (e.kind === 'flows') {
        for (const f of e.flows.flows) {
          flows.set(flowKeyOf(f.flow), f);
          if (o.flows === 'stream' && o.json) out(ndjsonLine(flowRecord(f)));
        }
        for (const r of e.flows.reads) reads.set(r.node, r.timeNs);
        onFlows?.();
        return;
      }
      // After --count, only what the counters show (PACKET_LOSS) is still news.
      if (o.count !== undefined && paths.length >= o.count && !(e.kind === 'finding' && e.finding.code === 'PACKET_LOSS')) return;
      switch (e.kind) {
        case 'path':
          paths.push(e.path);
          for (const h of e.path.hops) if (h.event.wallTimeNs > (lastHop.get(h.event.node) ?? 0n)) lastHop.set(h.event.node, h.event.wallTimeNs);
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
  if (o.flows && !endedEarly) {
    // Every node's counters read after the last hop printed: the table counts every packet shown.
    const current = () => [...lastHop].every(([node, t]) => (reads.get(node) ?? 0n) >= t + READ_MARGIN_NS);
    if (!current()) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, FLOW_WAIT_MS);
        function done() {
          clearTimeout(timer);
          onFlows = undefined;
          resolve();
        }
        onFlows = () => {
          if (current() || endedEarly) done();
        };
      });
      if (!current()) err(`note: the hub's flow counters of ${[...lastHop.keys()].filter((n) => (reads.get(n) ?? 0n) < lastHop.get(n)! + READ_MARGIN_NS).join(', ')} were not read past the last packet shown within ${FLOW_WAIT_MS / 1000} s: the table may miss the last packets\n`);
    }
  }
  client.close();
  const all = [...findings.values()];
  const flowList = [...flows.values()].sort(compareFlows);
  const s = summarize(paths, lostRecords, all);
  const flowText = o.flows === 'end' ? (o.json ? flowList.map((f) => ndjsonLine(flowRecord(f))).join('') : formatFlowTable(flowList, style)) : '';
  ctx.stdout.write(o.json ? flowText + ndjsonLine(summaryRecord(s)) : `\n${flowText}${formatSummary(s, style)}`);
  if (ended) ctx.stderr.write(`vxtrace: ${(ended as VxtraceError).message}\n`);
  return { paths, findings: all, lostRecords, elapsed: run.elapsed(), flows: flowList, ...(ended ? { error: ended } : {}) };
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
      hub: o.hub, tokenFile: o.tokenFile, subscription, json: o.json, count: o.count, duration: o.duration, flows: 'end',
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

export interface DiagnoseThroughHubOptions {
  hub: string;
  tokenFile?: string;
  json: boolean;
  watch: boolean;
}

/** What `diagnose --hub` says when no agent reported kernel state. */
const NOWHERE_HUB = 'no kernel state from any agent';

/**
 * `diagnose --hub URL [--watch]`: the hub's diagnosis from state (a state-only subscription: no
 * agent's filter changes), printed as `diagnose` prints its own; with --watch, again whenever its
 * findings change, until Ctrl-C. Returns diagnose's exit status; throws when the hub cannot be
 * reached, refuses, or goes away.
 */
export async function diagnoseThroughHub(o: DiagnoseThroughHubOptions, ctx: CliContext): Promise<typeof ExitStatus.OK | typeof ExitStatus.FINDINGS> {
  const token = o.tokenFile !== undefined ? readTokenFile(o.tokenFile) : undefined;
  const style: TextStyle = { color: !!ctx.stdout.isTTY && !process.env.NO_COLOR };
  // The findings of the diagnosis under way, until its Diagnosis event closes it.
  let collected = new Map<string, Finding>();
  let last: Diagnosis | undefined;
  let lastKeys = '';
  let failure: VxtraceError | undefined;
  let finish: () => void = () => {};
  const finished = new Promise<void>((resolve) => (finish = resolve));
  const take = (e: DiagnosisEvent) => {
    const missing = e.findingKeys.filter((k) => !collected.has(k));
    if (missing.length) {
      failure ??= new EnvironmentError(`the hub's diagnosis came without ${missing.length} of its ${e.findingKeys.length} findings (this client fell behind): run it again`);
      return finish();
    }
    const d: Diagnosis = { clusterFrom: e.clusterFrom, pods: e.pods, nodes: e.nodes, findings: e.findingKeys.map((k) => collected.get(k)!) };
    collected = new Map();
    const keys = JSON.stringify(e.findingKeys);
    if (!last) ctx.stdout.write(formatDiagnosis(d, { json: o.json, style, nowhere: NOWHERE_HUB }));
    else if (keys !== lastKeys) ctx.stdout.write(formatDiagnosisChange(d, { json: o.json, style, why: e.why || 'the hub diagnosed again', timeMs: Number(e.timeNs / 1_000_000n) }));
    last = d;
    lastKeys = keys;
    if (!o.watch) finish();
  };
  const { client } = await HubClient.connect({
    hub: o.hub,
    ...(token !== undefined ? { token } : {}),
    subscription: { client: 'diagnose', stateOnly: true },
    onEvent(e) {
      switch (e.kind) {
        case 'finding':
          collected.set(e.finding.key, e.finding);
          return;
        case 'diagnosis':
          return take(e.diagnosis);
        case 'node':
          // The first diagnosis says which nodes had kernel state; under --watch, changes are news.
          if (o.watch && last) ctx.stderr.write(`node ${e.status.node}: ${e.status.state}${e.status.reason ? ` (${e.status.reason})` : ''}\n`);
          return;
        case 'lost':
        case 'path':
        case 'subscribed':
        case 'flows':
          return;
      }
    },
    onEnd(error) {
      failure ??= error ?? (o.watch || !last ? new EnvironmentError(`the hub at ${o.hub} ended the stream`) : undefined);
      finish();
    },
  });
  const stop = () => finish();
  if (o.watch) {
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  }
  try {
    await finished;
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    client.close();
  }
  if (failure) throw failure;
  return last && hasErrors(last) ? ExitStatus.FINDINGS : ExitStatus.OK;
}
