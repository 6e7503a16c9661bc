// Following two pods (`vxtrace follow`, and the demo's steps): resolve the pods, start a TraceSession
// on every node this machine can trace, print each packet's path as it completes and findings as
// soon as they are certain, and end with a summary and the exit status.
import type { CliContext } from './command.js';
import { ExitStatus, UsageError } from '../errors.js';
import { requirePrivileges } from '../util/privileges.js';
import { loadCluster } from '../cluster/source.js';
import { readKernelStates } from '../cluster/kernel-reader.js';
import { ClusterModel, type PodModel } from '../cluster/model.js';
import type { FlowRule } from '../datapath/index.js';
import { judgePaths } from './verdict.js';
import type { PacketPath } from '../correlate/path.js';
import { findingsConcerning, type Finding } from '../diagnose/finding.js';
import { SESSION_RING_BYTES, TraceSession, podBridgePorts, traceTargets } from '../session/trace-session.js';
import { openTrace } from '../session/trace-file.js';
import { validateRotation } from '../pcapng/index.js';
import { findingRecord, flowRecord, ndjsonLine, pathRecord, summaryRecord } from '../output/ndjson.js';
import { PathTally, findingPrinter, formatFlowTable, formatPathLine, formatSummary, type TextStyle } from '../output/text.js';

/** Paths a follow hands back to its caller (the demo); the rest are counted. */
const KEPT_PATHS = 1000;
import { StatusLine } from './status-line.js';
import { RunUntil } from './run-until.js';
import { ModelWatcher } from '../cluster/model-watch.js';

export interface FollowOptions {
  cluster?: string;
  kubeconfig?: string;
  lab?: string;
  count?: number;
  duration?: number;
  json?: boolean;
  write?: string;
  snaplen?: number;
  protocol?: 'icmp' | 'tcp' | 'udp';
  port?: number;
  rotateSize?: number;
  rotateCount?: number;
}

/**
 * A pod that can be followed: on the overlay (not host network), with an address in a pod CIDR and
 * a node. `ips` are its overlay addresses (both families on a dual-stack cluster), `ip` the first.
 */
function overlayPod(model: ClusterModel, ref: string): PodModel & { ip: string; overlayIps: string[] } {
  const pod = model.resolvePod(ref);
  if (pod.hostNetwork) {
    throw new UsageError(`pod ${pod.ref} uses the host network: it is not on the overlay, so there is no VXLAN path to follow (pick a pod with an address in a pod CIDR)`);
  }
  const overlayIps = pod.ips.filter((a) => model.podCidrOwner(a));
  if (!overlayIps.length) {
    throw new UsageError(`pod ${pod.ref} has no address in any node's pod CIDR${pod.ips.length ? ` (it has ${pod.ips.join(', ')})` : ' (it has no IP yet: is it running?)'}: it is not on the overlay`);
  }
  return { ...pod, ip: overlayIps[0]!, overlayIps };
}

/**
 * The in-kernel filter for two pods: one rule per address family both have (a dual-stack pair is
 * followed over IPv4 and IPv6); `--protocol icmp` means ICMPv6 for the IPv6 rule.
 */
export function followFilter(a: readonly string[], b: readonly string[], o: Pick<FollowOptions, 'protocol' | 'port'>): { rules: FlowRule[] } {
  const family = (ip: string) => (ip.includes(':') ? 6 : 4);
  const rules: FlowRule[] = [];
  for (const x of a) {
    const y = b.find((ip) => family(ip) === family(x));
    if (!y) continue;
    const rule: FlowRule = { between: [x, y] };
    if (o.protocol) rule.protocol = o.protocol === 'icmp' && family(x) === 6 ? 'icmpv6' : o.protocol;
    if (o.port !== undefined) rule.port = o.port;
    rules.push(rule);
  }
  return { rules };
}

/**
 * How `follow` asks the kernel for records (the benchmark follows a flow with exactly these).
 * Without --write, follow shows one line per path: records beyond a few per flow and hop only cost
 * the flow CPU (user space would compete with it for the same cores), so the kernel always sheds:
 * it keeps records for the first packets of each flow at each hook per window (32 per 100 ms),
 * every drop, every TCP SYN/FIN/RST and every ICMP packet, and counts every packet exactly in the
 * flow counters (the summary says how many records were sampled). Headers only (small frames
 * whole). With --write, the trace is the point: the default snaplen, and records shed only while
 * user space is behind ('auto'), as `capture` does.
 */
export function followTracerOptions(o: Pick<FollowOptions, 'write' | 'snaplen'>): { snaplen?: number | 'headers'; shed: 'always' | 'auto'; ringBytes: number } {
  const snaplen = o.snaplen ?? (o.write ? undefined : 'headers');
  return { ...(snaplen !== undefined ? { snaplen } : {}), shed: o.write ? 'auto' : 'always', ringBytes: SESSION_RING_BYTES };
}

export interface FollowResult {
  /** The first KEPT_PATHS paths (a long run at full rate is counted, not kept: the summary has every one). */
  paths: PacketPath[];
  findings: Finding[];
  status: typeof ExitStatus.OK | typeof ExitStatus.FINDINGS;
}

/**
 * Follow two pods until --count, --duration or a signal; print as it goes. `onAttached` runs once
 * every hook is in place (the demo sends its pings then).
 */
export async function followPods(podA: string, podB: string, o: FollowOptions, ctx: CliContext, onAttached?: () => void): Promise<FollowResult> {
  validateRotation(o);
  if ((o.rotateSize !== undefined || o.rotateCount !== undefined) && !o.write) throw new UsageError('--rotate-size and --rotate-count need --write FILE');
  const { objects, from, lab } = await loadCluster({ cluster: o.cluster, kubeconfig: o.kubeconfig, lab: o.lab });
  // Resolve both pods from the cluster objects before anything privileged: name errors come first.
  const plain = ClusterModel.build(objects);
  const a = overlayPod(plain, podA);
  const b = overlayPod(plain, podB);
  if (a.ip === b.ip) throw new UsageError(`${a.ref} and ${b.ref} are the same pod: follow two different pods`);
  const filter = followFilter(a.overlayIps, b.overlayIps, o);
  if (!filter.rules.length) throw new UsageError(`${a.ref} (${a.overlayIps.join(', ')}) and ${b.ref} (${b.overlayIps.join(', ')}) share no address family: there is no path between them to follow`);
  requirePrivileges('vxtrace follow', 'trace');

  const model = ClusterModel.build(objects, await readKernelStates(objects));
  const targets = traceTargets(objects);
  const style: TextStyle = { color: !!ctx.stdout.isTTY && !process.env.NO_COLOR };
  const status = new StatusLine(ctx.stderr);
  const paths: PacketPath[] = [];
  const tally = new PathTally();
  // Packets may complete while the watches start: their lines wait for the header.
  let held: string[] | undefined = [];
  const say = (line: string) => {
    if (held) return void held.push(line);
    status.clear();
    ctx.stdout.write(line);
  };
  const findingText = findingPrinter(style); // a finding handed out again: one line
  const printFinding = (f: Finding) => say(o.json ? ndjsonLine(findingRecord(f)) : findingText(f));

  const writer = o.write ? openTrace(o.write, objects, model, targets.map((t) => t.node), o) : undefined;

  const tracing = followTracerOptions(o);
  let run: RunUntil | undefined;
  let session: TraceSession;
  try {
    session = TraceSession.start({
      model,
      targets,
      filter,
      // Two pods on one node talk through the bridge alone: watch its ports there.
      extraPoints: a.node === b.node ? targets.filter((t) => t.node === a.node).flatMap(podBridgePorts) : [],
      // Without a trace, the headers are all a line needs (small packets are still kept whole),
      // and a few records per flow and hop (followTracerOptions).
      ...tracing,
      trace: writer,
      maxPaths: o.count,
      onLimit: () => run?.done(),
      // e.g. the trace cannot be written (disk full): stop; session.stop() says why
      onError: () => run?.done(),
      onPath(path, fresh) {
        tally.add(path);
        if (paths.length < KEPT_PATHS) paths.push(path);
        say(o.json ? ndjsonLine(pathRecord(path)) : formatPathLine(path, style) + '\n');
        for (const f of fresh) printFinding(f);
      },
    });
  } catch (err) {
    writer?.close();
    throw err;
  }
  // Findings from state alone that concern the nodes on this path are certain before any packet
  // (taken now, before the first batch is handled, so that packets showing them come after).
  const pathNodes = new Set([a.node, b.node]);
  for (const f of session.stateFindings()) if (f.nodes.some((n) => pathNodes.has(n))) printFinding(f);
  // From here Ctrl-C, SIGTERM, a reader that went away (| head), --count and --duration all end
  // the run the same way: detached, summary printed, trace finished.
  run = new RunUntil(status, {
    durationMs: o.duration,
    statusText: (elapsed) => {
      const st = session.stats();
      return `${tally.total} paths · ${session.inFlight()} in flight · ${st.lostRecords} records lost${st.sampled ? ` · ${st.sampled} sampled` : ''} · ${elapsed}`;
    },
  });

  // Kernel and cluster state can change while we follow (a flanneld restart rewrites FDB entries):
  // judge packets against the state as it is now.
  const watcher = new ModelWatcher(model, { cluster: o.cluster, kubeconfig: o.kubeconfig, lab: o.lab });
  watcher.on('change', (next, why) => {
    status.clear();
    ctx.stderr.write(`state changed (${why}): packets from now on are judged against it\n`);
    try {
      const added = session.setModel(next);
      const devices = [...new Set(added.map((h) => `${h.node}/${h.device}`))];
      if (devices.length) ctx.stderr.write(`attached to ${devices.join(', ')} (new or recreated)\n`);
    } catch (err) {
      ctx.stderr.write(`vxtrace: ${(err as Error).message}\n`);
    }
  });
  watcher.on('error', (err) => ctx.stderr.write(`vxtrace: ${err.message}\n`));
  await watcher.start().catch((err: Error) => ctx.stderr.write(`vxtrace: cannot watch the cluster and kernel state (${err.message}): findings use the state read at the start\n`));

  const nodeOf = (p: PodModel) => p.node ?? '?';
  ctx.stderr.write(`cluster: ${from}\n`);
  ctx.stderr.write(
    `following ${a.ref} (${a.overlayIps.join(', ')} on ${nodeOf(a)}) ⇄ ${b.ref} (${b.overlayIps.join(', ')} on ${nodeOf(b)})${o.protocol ? ` ${o.protocol}` : ''}${o.port !== undefined ? ` port ${o.port}` : ''}: ` +
      `${session.hooks.length} hooks on ${targets.map((t) => t.node).join(', ')}; ` +
      `${stopWhen(o)}\n`,
  );
  const waiting = held;
  held = undefined;
  for (const line of waiting) say(line);

  onAttached?.();
  if ((o.count !== undefined && tally.total >= o.count) || session.failed) run.done();
  try {
    await run.wait();
  } finally {
    watcher.stop();
  }
  let summary;
  try {
    summary = await session.stop();
  } catch (err) {
    writer?.close();
    throw err;
  }
  const findings = findingsConcerning(summary.findings, pathNodes);
  writer?.writeFindings(findings, { lostRecords: summary.tracer.lostRecords, sampledRecords: summary.tracer.sampled, flows: summary.flowCounts, flowsReadNs: summary.countersReadNs });
  writer?.close();

  for (const f of summary.flowFindings) printFinding(f);
  const s = tally.summary(summary.tracer.lostRecords, findings, { sampledRecords: summary.tracer.sampled, partlySampled: summary.partlySampled });
  if (o.json) ctx.stdout.write(summary.flows.map((f) => ndjsonLine(flowRecord(f))).join('') + ndjsonLine(summaryRecord(s)));
  else ctx.stdout.write(`\n${formatFlowTable(summary.flows, style)}${formatSummary(s, style, tracing.shed === 'always' ? 'always' : 'when-behind')}`);
  if (!paths.length) {
    const secs = run.elapsed();
    ctx.stderr.write(
      `no packet between ${a.ref} (${a.ip}) and ${b.ref} (${b.ip}) was seen in ${secs}: send traffic between them ` +
        `(e.g. \`${lab ? `vxtrace lab exec${lab === 'lab' ? '' : ` --name ${lab}`} ${a.name}` : `kubectl exec -n ${a.namespace} ${a.name}`} -- ping -c 3 ${b.ip}\`)${o.protocol || o.port !== undefined ? ', check --protocol/--port' : ''}, and check that these are the pods you meant\n`,
    );
  }
  if (writer) ctx.stderr.write(`trace written to ${writer.stats.files.join(', ')}\n`);
  if (!paths.length) return { paths, findings, status: ExitStatus.FINDINGS };
  const verdict = judgePaths(tally.distinct(), findings, { lostRecords: summary.tracer.lostRecords, sampledRecords: summary.tracer.sampled });
  if (verdict.note) ctx.stderr.write(`note: ${verdict.note}\n`);
  return { paths, findings, status: verdict.status };
}

function stopWhen(o: FollowOptions): string {
  const limits = [o.count !== undefined ? `${o.count} path${o.count === 1 ? '' : 's'}` : '', o.duration !== undefined ? `${o.duration / 1000}s` : ''].filter(Boolean);
  return limits.length ? `stops after ${limits.join(' or ')} (or Ctrl-C)` : 'Ctrl-C to stop';
}

