// `vxtrace capture --write F.pcapng [filters]`: everything on the watched devices (or what the
// filters select) of every node this machine can trace, written as one pcapng trace with every hop,
// the cluster snapshot and the findings. Thin: flags -> filter -> TraceSession -> PcapngWriter.
import { Option, type Command } from 'commander';
import type { CliContext, RegisterCommand } from '../command.js';
import { UsageError, ExitStatus } from '../../errors.js';
import { requirePrivileges } from '../../util/privileges.js';
import { loadCluster } from '../../cluster/source.js';
import { readKernelStates } from '../../cluster/kernel-reader.js';
import { ClusterModel } from '../../cluster/model.js';
import type { FlowFilter, FlowRule } from '../../datapath/index.js';
import { TraceSession, podBridgePorts, traceTargets } from '../../session/trace-session.js';
import { parseDurationOption, parseIntOption, parseSizeOption } from '../options.js';
import { openTrace } from '../../session/trace-file.js';
import { validateRotation } from '../../pcapng/index.js';
import { StatusLine } from '../status-line.js';
import { RunUntil } from '../run-until.js';
import { PathTally, formatFinding, formatFlowTable, formatSummary } from '../../output/text.js';
import { judgePaths } from '../verdict.js';
import { findingsConcerning } from '../../diagnose/finding.js';

interface CaptureOptions {
  write: string;
  cluster?: string;
  kubeconfig?: string;
  lab?: string;
  node: string[];
  pod: string[];
  between: string[];
  protocol?: 'icmp' | 'tcp' | 'udp';
  port?: number;
  duration?: number;
  count?: number;
  snaplen?: number;
  rotateSize?: number;
  rotateCount?: number;
}

const collect = (v: string, prev: string[]) => [...prev, v];
const ANY = '0.0.0.0/0';

/** --pod and --between name pods (resolved to their IPs) or addresses/CIDRs. */
export function captureFilter(model: ClusterModel, o: Pick<CaptureOptions, 'pod' | 'between' | 'protocol' | 'port'>): FlowFilter {
  const addressOf = (x: string) => (/^[0-9.]+(\/\d+)?$/.test(x) || x.includes(':') && !x.includes('/') && /^[0-9a-f:]+$/i.test(x) ? x : podIp(model, x));
  const base: Omit<FlowRule, 'between'> = {};
  if (o.protocol) base.protocol = o.protocol;
  if (o.port !== undefined) base.port = o.port;
  const rules: FlowRule[] = [
    ...o.pod.map((p): FlowRule => ({ ...base, between: [podIp(model, p), ANY] })),
    ...o.between.map((pair): FlowRule => {
      const parts = pair.split(',');
      if (parts.length !== 2 || !parts[0] || !parts[1]) throw new UsageError(`--between takes two pods or addresses separated by a comma (pod-a,pod-b or 10.244.1.0/24,10.244.2.10), not '${pair}'`);
      return { ...base, between: [addressOf(parts[0]), addressOf(parts[1])] };
    }),
  ];
  if (rules.length) return { rules };
  return o.protocol || o.port !== undefined ? { rules: [base] } : 'everything';
}

/**
 * Nodes where a --between pair is two pods on that node: their packets are bridged from port to
 * port and never pass cni0's own hooks, so the node's bridge ports are watched too (as follow does).
 */
export function sameNodePairNodes(model: ClusterModel, between: readonly string[]): Set<string> {
  const nodes = new Set<string>();
  for (const pair of between) {
    const pod = (x: string | undefined) => {
      if (!x || /^[0-9.:/a-f]+$/i.test(x) && /[.:]/.test(x)) return undefined; // an address or CIDR
      try {
        return model.resolvePod(x);
      } catch {
        return undefined;
      }
    };
    const [a, b] = pair.split(',').map(pod);
    if (a && b && a.node && a.node === b.node) nodes.add(a.node);
  }
  return nodes;
}

function podIp(model: ClusterModel, ref: string): string {
  const pod = model.resolvePod(ref);
  const ip = pod.ips[0];
  if (!ip) throw new UsageError(`pod ${pod.ref} has no IP yet: is it running?`);
  return ip;
}

async function capture(o: CaptureOptions, ctx: CliContext): Promise<void> {
  validateRotation(o);
  const { objects, from } = await loadCluster({ cluster: o.cluster, kubeconfig: o.kubeconfig, lab: o.lab });
  const filter = captureFilter(ClusterModel.build(objects), o);
  let targets = traceTargets(objects);
  for (const n of o.node) {
    if (!objects.nodes.some((x) => x.metadata.name === n)) throw new UsageError(`unknown node ${n}: the cluster's nodes are ${objects.nodes.map((x) => x.metadata.name).join(', ')}`);
    if (!targets.some((t) => t.node === n)) throw new UsageError(`node ${n} cannot be traced from this machine (run vxtrace capture on ${n})`);
  }
  if (o.node.length) targets = targets.filter((t) => o.node.includes(t.node));
  requirePrivileges('vxtrace capture', 'trace');

  const model = ClusterModel.build(objects, await readKernelStates(objects));
  const writer = openTrace(o.write, objects, model, targets.map((t) => t.node), o);
  const sameNode = sameNodePairNodes(model, o.between);
  // counts, not the paths themselves: a long capture at full rate would keep every one
  const paths = new PathTally();
  const status = new StatusLine(ctx.stderr);
  let run: RunUntil | undefined;
  let session: TraceSession;
  try {
    session = TraceSession.start({
      model,
      targets,
      extraPoints: targets.filter((t) => sameNode.has(t.node)).flatMap(podBridgePorts),
      filter,
      snaplen: o.snaplen,
      trace: writer,
      maxPaths: o.count,
      onLimit: () => run?.done(),
      // e.g. the trace cannot be written (disk full): stop; session.stop() says why
      onError: () => run?.done(),
      onPath(path) {
        paths.add(path);
      },
    });
  } catch (err) {
    writer.close();
    throw err;
  }
  // State findings join the packets' (kept for the nodes the paths run between, as read keeps them).
  session.stateFindings();
  ctx.stderr.write(`cluster: ${from}\n`);
  ctx.stderr.write(
    `capturing ${filter === 'everything' ? 'every IP packet' : 'the selected traffic'} on ${session.hooks.length} hooks of ${targets.map((t) => t.node).join(', ')} to ${o.write}; ` +
      `${o.duration !== undefined ? `stops after ${o.duration / 1000}s` : 'Ctrl-C to stop'}\n`,
  );
  run = new RunUntil(status, {
    durationMs: o.duration,
    statusText: (elapsed) => {
      const st = session.stats();
      return `${writer.stats.packets} packets · ${paths.total} paths · ${st.lostRecords} records lost${st.sampled ? ` · ${st.sampled} sampled` : ''} · ${(writer.stats.bytes / 1e6).toFixed(1)} MB · ${elapsed}`;
    },
  });
  if ((o.count !== undefined && paths.total >= o.count) || session.failed) run.done();
  await run.wait();
  let summary;
  let findings;
  try {
    summary = await session.stop();
    findings = findingsConcerning(summary.findings, paths.nodes());
    writer.writeFindings(findings, { lostRecords: summary.tracer.lostRecords, sampledRecords: summary.tracer.sampled, flows: summary.flowCounts, flowsReadNs: summary.countersReadNs });
  } finally {
    writer.close();
  }
  const st = writer.stats;
  const kept = st.files.length > 1 || st.packetsKept < st.packets ? `; ${st.files.length} file${st.files.length === 1 ? '' : 's'} kept (${st.files.join(', ')})${st.packetsKept < st.packets ? `, holding the last ${st.packetsKept} packets (--rotate-count ${o.rotateCount})` : ''}` : ` to ${st.files[0]}`;
  if (st.packets === 0) {
    ctx.stderr.write(
      `captured nothing (${st.files.join(', ')} holds the cluster snapshot only): no packet matched on the watched devices. ` +
        `Traffic between two pods on one node is bridged past them: name the pair with --between POD,POD${o.pod.length || o.between.length || o.protocol || o.port !== undefined ? '; or check --pod/--between/--protocol/--port' : ''}\n`,
    );
  } else {
    ctx.stderr.write(`captured ${st.packets} packets (${paths.total} paths)${kept}; read it with \`vxtrace read ${o.write}\` or Wireshark\n`);
  }
  const style = { color: !!ctx.stderr.isTTY && !process.env.NO_COLOR };
  for (const f of findings) ctx.stderr.write(`\n${formatFinding(f, style)}`);
  ctx.stderr.write(`\n${formatFlowTable(summary.flows, style)}${formatSummary(paths.summary(summary.tracer.lostRecords, findings, { sampledRecords: summary.tracer.sampled, partlySampled: summary.partlySampled }), style)}`);
  const verdict = judgePaths(paths.distinct(), findings, { lostRecords: summary.tracer.lostRecords, sampledRecords: summary.tracer.sampled, subject: 'the capture' });
  if (verdict.note) ctx.stderr.write(`note: ${verdict.note}\n`);
  ctx.setExitStatus(verdict.status);
}

export const registerCapture: RegisterCommand = (program: Command, ctx: CliContext) => {
  program
    .command('capture')
    .description('write every hop of every packet (or of the selected traffic) on every traceable node to a pcapng trace (as root, or with the capabilities: see --help of vxtrace)')
    .requiredOption('--write <file>', 'the pcapng trace to write (docs/trace-format.md)')
    .option('--cluster <file>', 'cluster state: the output of `kubectl get nodes,pods -A -o json`')
    .option('--kubeconfig <file>', 'read the cluster from the Kubernetes API with this kubeconfig')
    .option('--lab <name>', 'use the cluster of this lab (default: the lab named `lab`, or the only lab that is up)')
    .option('--node <name>', 'only this node (repeatable)', collect, [] as string[])
    .option('--pod <pod>', 'only traffic to or from this pod (repeatable)', collect, [] as string[])
    .option('--between <a,b>', 'only traffic between two pods, addresses or CIDRs (repeatable)', collect, [] as string[])
    .addOption(new Option('--protocol <p>', 'only this protocol').choices(['icmp', 'tcp', 'udp']))
    .option('--port <p>', 'only TCP/UDP packets with this source or destination port', (v) => parseIntOption('--port', v, 1, 65535))
    .option('--duration <s>', 'stop after this long (10, 10s, 500ms, 2m)', (v) => parseDurationOption('--duration', v))
    .option('--count <n>', 'stop after N packet paths', (v) => parseIntOption('--count', v, 1))
    .option('--snaplen <n>', 'bytes of each packet kept (default 256, at most 2048)', (v) => parseIntOption('--snaplen', v, 1, 2048))
    .option('--rotate-size <size>', 'start a new file past this size (e.g. 100M)', (v) => parseSizeOption('--rotate-size', v))
    .option('--rotate-count <n>', 'with --rotate-size: keep at most N files', (v) => parseIntOption('--rotate-count', v, 1))
    .addHelpText('after', `
Without filters it captures every IP packet on the watched devices (cni0, the VXLAN device, the
uplinks) of every node this machine can trace. Two pods on one node talk through the bridge alone,
never through these devices: name such a pair with --between POD,POD (that node's bridge ports are
then watched too), or use \`vxtrace follow\`. Every hop is one packet in the file, with a comment
naming the node, device, direction, the path's fingerprint and its outcome; the cluster snapshot and
the findings are stored too, so \`vxtrace read FILE\` rebuilds the same paths and findings offline.
Open it in Wireshark with "Decode As: UDP port 8472 -> VXLAN" (tshark: -d udp.port==8472,vxlan).

Exit status: 0 every captured packet from or to a pod delivered and no error finding; 1 an error
finding, an undelivered packet (PACKET_LOSS too, whatever its severity), or no pod traffic captured at all (said on stderr); 2 usage;
3 environment (missing capabilities, no BPF, the trace cannot be written: the packets written before stay).`)
    .action(async (o: CaptureOptions) => capture(o, ctx));
};
