// `vxtrace follow POD_A POD_B`: follow the traffic between two pods hop by hop on every node this
// machine can trace, print each packet's path as it completes, and findings as soon as they are
// certain. Thin: parse flags -> resolve pods -> TraceSession -> text or NDJSON (+ pcapng).
import { Option, type Command } from 'commander';
import type { CliContext, RegisterCommand } from '../command.js';
import { ExitStatus, UsageError } from '../../errors.js';
import { requirePrivileges } from '../../util/privileges.js';
import { loadCluster } from '../../cluster/source.js';
import { readKernelStates } from '../../cluster/kernel-reader.js';
import { ClusterModel, type PodModel } from '../../cluster/model.js';
import type { FlowFilter, FlowRule } from '../../datapath/index.js';
import { loadNative } from '../../datapath/native.js';
import { judgePaths } from '../verdict.js';
import type { PacketPath } from '../../correlate/path.js';
import { findingsConcerning, type Finding } from '../../diagnose/finding.js';
import { TraceSession, kernelSnapshot, podBridgePorts, traceTargets, type TraceTarget } from '../../session/trace-session.js';
import { PcapngWriter, parseSize } from '../../pcapng/index.js';
import { findingRecord, ndjsonLine, pathRecord, summaryRecord } from '../../output/ndjson.js';
import { formatFinding, formatPathLine, formatSummary, summarize, type TextStyle } from '../../output/text.js';
import { parseDurationOption, parseIntOption } from '../options.js';
import type { V1List } from '../../cluster/k8s.js';
import { StatusLine } from '../status-line.js';
import { RunUntil } from '../run-until.js';
import { ModelWatcher } from '../../cluster/model-watch.js';

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

/** A pod that can be followed: on the overlay (not host network), with an address and a node. */
function overlayPod(model: ClusterModel, ref: string): PodModel & { ip: string } {
  const pod = model.resolvePod(ref);
  if (pod.hostNetwork) {
    throw new UsageError(`pod ${pod.ref} uses the host network: it is not on the overlay, so there is no VXLAN path to follow (pick a pod with an address in a pod CIDR)`);
  }
  const ip = pod.ips.find((a) => model.podCidrOwner(a));
  if (!ip) {
    throw new UsageError(`pod ${pod.ref} has no address in any node's pod CIDR${pod.ips.length ? ` (it has ${pod.ips.join(', ')})` : ' (it has no IP yet: is it running?)'}: it is not on the overlay`);
  }
  return { ...pod, ip };
}

export function parseSizeOption(v: string): number {
  try {
    return parseSize(v);
  } catch {
    throw new UsageError(`--rotate-size takes a size like 100M, 1G or 500000, not '${v}'`);
  }
}

export function followFilter(a: string, b: string, o: Pick<FollowOptions, 'protocol' | 'port'>): FlowFilter {
  const rule: FlowRule = { between: [a, b] };
  if (o.protocol) rule.protocol = o.protocol;
  if (o.port !== undefined) rule.port = o.port;
  return { rules: [rule] };
}

function toList(objects: { nodes: unknown[]; pods: unknown[] }): V1List {
  return { apiVersion: 'v1', kind: 'List', items: [...objects.nodes, ...objects.pods] as V1List['items'] };
}

/** A pcapng trace for `--write`, self-contained: the cluster objects and every node's kernel state go in first. */
export function openTrace(
  file: string,
  objects: { nodes: unknown[]; pods: unknown[] },
  model: ClusterModel,
  targets: readonly TraceTarget[],
  o: Pick<FollowOptions, 'rotateSize' | 'rotateCount' | 'snaplen'>,
): PcapngWriter {
  if (o.rotateCount !== undefined && o.rotateSize === undefined) throw new UsageError('--rotate-count needs --rotate-size');
  return PcapngWriter.open(file, {
    snapshot: { cluster: toList(objects), nodeState: kernelSnapshot(model), takenAt: new Date().toISOString(), tracedNodes: targets.map((t) => t.node) },
    rotateSize: o.rotateSize,
    rotateCount: o.rotateCount,
    // The interfaces' snaplen is what the tracer keeps of each frame.
    snaplen: o.snaplen ?? loadNative().layout().defaultSnaplen,
  });
}

export interface FollowResult {
  paths: PacketPath[];
  findings: Finding[];
  status: typeof ExitStatus.OK | typeof ExitStatus.FINDINGS;
}

/**
 * Follow two pods until --count, --duration or a signal; print as it goes. `onAttached` runs once
 * every hook is in place (the demo sends its pings then).
 */
export async function followPods(podA: string, podB: string, o: FollowOptions, ctx: CliContext, onAttached?: () => void): Promise<FollowResult> {
  if (o.rotateCount !== undefined && o.rotateSize === undefined) throw new UsageError('--rotate-count needs --rotate-size');
  if ((o.rotateSize !== undefined || o.rotateCount !== undefined) && !o.write) throw new UsageError('--rotate-size and --rotate-count need --write FILE');
  const { objects, from, lab } = await loadCluster({ cluster: o.cluster, kubeconfig: o.kubeconfig, lab: o.lab });
  // Resolve both pods from the cluster objects before anything privileged: name errors come first.
  const plain = ClusterModel.build(objects);
  const a = overlayPod(plain, podA);
  const b = overlayPod(plain, podB);
  if (a.ip === b.ip) throw new UsageError(`${a.ref} and ${b.ref} are the same pod: follow two different pods`);
  requirePrivileges('vxtrace follow', 'trace');

  const model = ClusterModel.build(objects, await readKernelStates(objects));
  const targets = traceTargets(objects);
  const style: TextStyle = { color: !!ctx.stdout.isTTY && !process.env.NO_COLOR };
  const status = new StatusLine(ctx.stderr);
  const paths: PacketPath[] = [];
  // Packets may complete while the watches start: their lines wait for the header.
  let held: string[] | undefined = [];
  const say = (line: string) => {
    if (held) return void held.push(line);
    status.clear();
    ctx.stdout.write(line);
  };
  const printFinding = (f: Finding) => say(o.json ? ndjsonLine(findingRecord(f)) : `\n${formatFinding(f, style)}\n`);

  const writer = o.write ? openTrace(o.write, objects, model, targets, o) : undefined;

  let run: RunUntil | undefined;
  let session: TraceSession;
  try {
    session = TraceSession.start({
      model,
      targets,
      filter: followFilter(a.ip, b.ip, o),
      // Two pods on one node talk through the bridge alone: watch its ports there.
      extraPoints: a.node === b.node ? targets.filter((t) => t.node === a.node).flatMap(podBridgePorts) : [],
      snaplen: o.snaplen,
      trace: writer,
      maxPaths: o.count,
      onLimit: () => run?.done(),
      // e.g. the trace cannot be written (disk full): stop; session.stop() says why
      onError: () => run?.done(),
      onPath(path, fresh) {
        paths.push(path);
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
    statusText: (elapsed) => `${paths.length} paths · ${session.inFlight()} in flight · ${session.stats().lostRecords} records lost · ${elapsed}`,
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
    `following ${a.ref} (${a.ip} on ${nodeOf(a)}) ⇄ ${b.ref} (${b.ip} on ${nodeOf(b)})${o.protocol ? ` ${o.protocol}` : ''}${o.port !== undefined ? ` port ${o.port}` : ''}: ` +
      `${session.hooks.length} hooks on ${targets.map((t) => t.node).join(', ')}; ` +
      `${stopWhen(o)}\n`,
  );
  const waiting = held;
  held = undefined;
  for (const line of waiting) say(line);

  onAttached?.();
  if ((o.count !== undefined && paths.length >= o.count) || session.failed) run.done();
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
  writer?.writeFindings(findings, { lostRecords: summary.tracer.lostRecords });
  writer?.close();

  const s = summarize(paths, summary.tracer.lostRecords, findings);
  if (o.json) ctx.stdout.write(ndjsonLine(summaryRecord(s)));
  else ctx.stdout.write(`\n${formatSummary(s, style)}`);
  if (!paths.length) {
    const secs = run.elapsed();
    ctx.stderr.write(
      `no packet between ${a.ref} (${a.ip}) and ${b.ref} (${b.ip}) was seen in ${secs}: send traffic between them ` +
        `(e.g. \`${lab ? `vxtrace lab exec${lab === 'lab' ? '' : ` --name ${lab}`} ${a.name}` : `kubectl exec -n ${a.namespace} ${a.name}`} -- ping -c 3 ${b.ip}\`)${o.protocol || o.port !== undefined ? ', check --protocol/--port' : ''}, and check that these are the pods you meant\n`,
    );
  }
  if (writer) ctx.stderr.write(`trace written to ${writer.stats.files.join(', ')}\n`);
  if (!paths.length) return { paths, findings, status: ExitStatus.FINDINGS };
  const verdict = judgePaths(paths, findings, { lostRecords: summary.tracer.lostRecords });
  if (verdict.note) ctx.stderr.write(`note: ${verdict.note}\n`);
  return { paths, findings, status: verdict.status };
}

export const registerFollow: RegisterCommand = (program: Command, ctx: CliContext) => {
  program
    .command('follow')
    .description('follow the packets between two pods hop by hop across nodes, and say why they do not arrive (as root)')
    .argument('<pod-a>', 'a pod: name or namespace/name')
    .argument('<pod-b>', 'the other pod (both directions are followed)')
    .option('--cluster <file>', 'cluster state: the output of `kubectl get nodes,pods -A -o json`')
    .option('--kubeconfig <file>', 'read the cluster from the Kubernetes API with this kubeconfig')
    .option('--lab <name>', 'use the cluster of this lab (default: the lab named `lab`, or the only lab that is up)')
    .option('--count <n>', 'stop after N packet paths', (v) => parseIntOption('--count', v, 1))
    .option('--duration <s>', 'stop after this long (10, 10s, 500ms, 2m)', (v) => parseDurationOption('--duration', v))
    .option('--json', 'NDJSON: one object per path, per finding, and a summary (docs/ndjson.md)')
    .option('--write <file>', 'also write every hop of every path to a pcapng trace (docs/trace-format.md)')
    .option('--rotate-size <size>', 'with --write: start a new file past this size (e.g. 100M)', (v) => parseSizeOption(v))
    .option('--rotate-count <n>', 'with --rotate-size: keep at most N files', (v) => parseIntOption('--rotate-count', v, 1))
    .option('--snaplen <n>', 'bytes of each packet kept (default 256, at most 2048)', (v) => parseIntOption('--snaplen', v, 1, 2048))
    .addOption(new Option('--protocol <p>', 'only this protocol').choices(['icmp', 'tcp', 'udp']))
    .option('--port <p>', 'only TCP/UDP packets with this source or destination port', (v) => parseIntOption('--port', v, 1, 65535))
    .addHelpText('after', `
Without --cluster/--kubeconfig/--lab it reads the cluster of KUBECONFIG or ~/.kube/config when there
is one, else the running lab, and says which. It traces every node this machine can see (the lab's
nodes by their network namespaces; on a real cluster, this node) with an in-kernel filter, so other
traffic costs nothing. Stops after --count paths, --duration, or Ctrl-C, and detaches everything.

Each line: time, pod → pod, protocol, the hop chain with per-hop latency, and the outcome:
  12:00:01.123 default/pod-a → default/pod-b ICMP echo request id 7 seq 1  node1 cni0 ▸ flannel.1 +9µs ▸ eth1 +4µs
      ⇢ 192.168.1.122:8472 vni 1 ⇢ node2 eth1 +31µs ▸ flannel.1 +5µs ▸ cni0 +3µs  delivered in 52µs
Findings (docs/findings.md) print as soon as they are certain, with cause and fix.

Exit status: 0 every path delivered (or gone on to a node that is not traced) and no error finding;
1 an error finding, an undelivered packet or no packet seen; 2 usage (unknown pod, bad flag,
unreadable cluster file); 3 environment (not root, no BPF, the trace cannot be written).`)
    .action(async (podA: string, podB: string, o: FollowOptions) => ctx.setExitStatus((await followPods(podA, podB, o, ctx)).status));
};

function stopWhen(o: FollowOptions): string {
  const limits = [o.count !== undefined ? `${o.count} path${o.count === 1 ? '' : 's'}` : '', o.duration !== undefined ? `${o.duration / 1000}s` : ''].filter(Boolean);
  return limits.length ? `stops after ${limits.join(' or ')} (or Ctrl-C)` : 'Ctrl-C to stop';
}

