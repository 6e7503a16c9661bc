// `vxtrace check` on the nodes this machine can trace (the lab's, or the real node it runs on):
// plan the probes (src/probe/plan.ts), start a TraceSession that keeps only probes, send them from
// each node's namespace within the bounds (src/probe/limiter.ts), hand every finished probe path
// and its findings to the judge (src/probe/judge.ts), then print the matrix and the findings.
import type { CliContext } from './command.js';
import { EnvironmentError, ExitStatus, type ExitStatusCode } from '../errors.js';
import { requirePrivileges } from '../util/privileges.js';
import { loadCluster } from '../cluster/source.js';
import { readKernelStates } from '../cluster/kernel-reader.js';
import { ClusterModel } from '../cluster/model.js';
import type { FlowFilter } from '../datapath/index.js';
import { findingsConcerning } from '../diagnose/finding.js';
import { podNetwork } from '../diagnose/context.js';
import { TraceSession, traceTargets } from '../session/trace-session.js';
import { planCheck, type CheckPlan, type PlannedProbe } from '../probe/plan.js';
import { CheckJudge, type ProbeAttempt } from '../probe/judge.js';
import { PROBE_LIMITS, ProbeLimiter } from '../probe/limiter.js';
import { LocalProbeSender, NetnsProbeSender, type ProbeSender } from '../probe/sender.js';
import { PROBE_MARK_COUNT, protocolName, type ProbeProtocol } from '../probe/mark.js';
import { checkRecord, findingRecord, ndjsonLine, pairRecord } from '../output/ndjson.js';
import { formatCheckFindings, formatCheckSummary, formatCoverage, formatMatrix } from '../output/matrix.js';
import type { TextStyle } from '../output/text.js';
import { StatusLine } from './status-line.js';

export interface CheckOptions {
  cluster?: string;
  kubeconfig?: string;
  lab?: string;
  json?: boolean;
  protocol?: ProbeProtocol;
  /** IP length of the DF probe. */
  size?: number;
  /** How long a probe waits for its reply, ms. */
  timeout?: number;
}

/** After the last probe's reply (or its timeout), how long paths still open may take to finish: the tracer gives up on a silent path after 4 s. */
const SETTLE_MS = 5_000;

/** The in-kernel filter: traffic of the senders' pod-bridge addresses (16 rules at most; beyond, the whole pod network). */
export function checkFilter(plan: CheckPlan, podNet: string | undefined): FlowFilter {
  const sources = plan.nodes.flatMap((n) => (n.source ? [n.source.address] : []));
  const net = podNet ?? '0.0.0.0/0';
  if (sources.length <= 16) return { rules: sources.map((s) => ({ between: [`${s}/32`, net] as [string, string] })) };
  return { rules: [{ between: [net, net] }] };
}

export async function checkPairs(o: CheckOptions, ctx: CliContext): Promise<ExitStatusCode> {
  const startedAt = Date.now();
  const { objects, from } = await loadCluster({ cluster: o.cluster, kubeconfig: o.kubeconfig, lab: o.lab });
  requirePrivileges('vxtrace check', 'trace');
  const model = ClusterModel.build(objects, await readKernelStates(objects));
  const targets = traceTargets(objects);
  const notRunning = new Set(objects.pods.filter((p) => p.status.phase && p.status.phase !== 'Running').map((p) => `${p.metadata.namespace ?? 'default'}/${p.metadata.name}`));
  const protocol = o.protocol ?? 'icmp';
  const plan = planCheck(model, { senders: new Set(targets.map((t) => t.node)), protocol, ...(o.size !== undefined ? { size: o.size } : {}), notRunning });
  const style: TextStyle = { color: !!ctx.stdout.isTTY && !process.env.NO_COLOR };
  ctx.stderr.write(`cluster: ${from}\n`);
  for (const s of plan.skipped) ctx.stderr.write(`${s.node} is left out: ${s.why}\n`);
  if (plan.nodes.length < 2) {
    ctx.stderr.write(`${plan.nodes.length} node${plan.nodes.length === 1 ? '' : 's'} on the overlay: no pair of nodes to probe\n`);
    if (o.json) ctx.stdout.write(ndjsonLine(checkRecord({ cells: [], findings: [], explains: new Map(), probesSent: 0 }, plan.nodes.map((n) => n.name), Date.now() - startedAt)));
    return ExitStatus.OK;
  }
  const sending = plan.nodes.filter((n) => n.source);
  if (!sending.length) {
    throw new EnvironmentError(`no node can send probes from this machine (${plan.nodes.map((n) => `${n.name}: ${n.notSending}`).join('; ')}): run vxtrace check on a node, bring up the lab, or use --hub`);
  }
  for (const n of plan.nodes) if (n.notSending) ctx.stderr.write(`${n.name} sends no probes: ${n.notSending}\n`);

  // Senders first: a helper process starting in a lab node's namespace starts while the hooks go in.
  const senders = new Map<string, ProbeSender>();
  for (const n of sending) {
    const t = targets.find((x) => x.node === n.name)!;
    const sender: ProbeSender = t.netns ? new NetnsProbeSender(t.netns) : new LocalProbeSender();
    sender.prepare?.(protocol);
    senders.set(n.name, sender);
  }
  const judge = new CheckJudge(plan);
  // A probe the kernel dropped gets no reply: its sender stops waiting at once.
  const waiting = new Map<ProbeAttempt, AbortController>();
  let session: TraceSession;
  try {
    session = TraceSession.start({
      model,
      targets,
      filter: checkFilter(plan, podNetwork(model)),
      probes: 'only',
      onPath(path, _fresh, touched) {
        const a = judge.addPath(path, touched);
        if (a && (a.request?.path.outcome === 'dropped' || a.reply?.path.outcome === 'dropped')) waiting.get(a)?.abort();
      },
    });
  } catch (err) {
    for (const s of senders.values()) s.close();
    throw err;
  }
  session.stateFindings();
  const timeoutMs = o.timeout ?? 1000;
  const sizes = [...new Set(plan.probes.filter((p) => p.kind === 'size').map((p) => p.bytes))];
  ctx.stderr.write(
    `probing ${plan.pairs.length} pairs of ${plan.nodes.length} nodes: ${protocolName(protocol)} from each node's pod-bridge address to a pod on each other node` +
      `${sizes.length ? `, and ${sizes.join('/')} bytes with DF set (ICMP echo)` : ''}; replies awaited ${timeoutMs / 1000}s, one retry; ` +
      `at most ${PROBE_LIMITS.perNode} probes at a time and ${1000 / PROBE_LIMITS.perNodeIntervalMs}/s per node, ${PROBE_LIMITS.total} in all; ` +
      `${session.hooks.length} hooks on ${targets.map((t) => t.node).join(', ')}\n`,
  );

  const status = new StatusLine(ctx.stderr);
  let aborted = false;
  const onSignal = () => (aborted = true);
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    await sendProbes(plan, judge, senders, timeoutMs, waiting, () => aborted, (done) => status.show(`${done} of ${plan.probes.length} probes · ${((Date.now() - startedAt) / 1000).toFixed(0)}s`));
    // Paths of lost probes finish when the tracer gives up on them; a drop may come seconds later (a failed neighbour resolution).
    const until = Date.now() + SETTLE_MS;
    while (!aborted && Date.now() < until && !judge.attempts.every((a) => judge.settled(a))) await new Promise((r) => setTimeout(r, 50));
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    status.clear();
    for (const s of senders.values()) s.close();
  }
  const summary = await session.stop();
  const verdict = judge.verdicts(findingsConcerning(summary.findings, plan.nodes.map((n) => n.name)));
  const elapsed = Date.now() - startedAt;

  if (o.json) {
    for (const c of verdict.cells) ctx.stdout.write(ndjsonLine(pairRecord(c)));
    for (const f of verdict.findings) ctx.stdout.write(ndjsonLine(findingRecord(f)));
    ctx.stdout.write(ndjsonLine(checkRecord(verdict, plan.nodes.map((n) => n.name), elapsed)));
  } else {
    const columns = ctx.stdout.isTTY ? ((ctx.stdout as { columns?: number }).columns ?? 160) : 160;
    ctx.stdout.write(`\n${formatMatrix(plan.nodes.map((n) => n.name), verdict.cells, style, columns)}\n${formatCoverage(verdict)}`);
    if (verdict.findings.length) ctx.stdout.write(`\n${formatCheckFindings(verdict, style)}`);
    ctx.stdout.write(`\n${formatCheckSummary(verdict, elapsed, style)}`);
  }
  if (summary.tracer.lostRecords) ctx.stderr.write(`note: ${summary.tracer.lostRecords} records were lost (ring buffer full): a probe shown as lost may only miss those records\n`);
  if (aborted) ctx.stderr.write('note: stopped early (Ctrl-C): probes not yet sent are shown as not sent\n');
  const notProbed = verdict.cells.filter((c) => !c.probed).length;
  if (notProbed) ctx.stderr.write(`note: ${notProbed} pair${notProbed === 1 ? '' : 's'} not probed: neither node can send from this machine (run vxtrace check there, or use --hub)\n`);
  // What was not probed is said, not judged: on a real node vxtrace probes that node's pairs only.
  return verdict.cells.every((c) => c.ok || !c.probed) ? ExitStatus.OK : ExitStatus.FINDINGS;
}

/**
 * Sends every planned probe within the limits, each tagged anew (mark.ts), and retries a lost one
 * once. `waiting` holds, for each attempt on its way, what stops its sender waiting for the reply.
 * `progress` gets the number of probes done so far.
 */
export async function sendProbes(
  plan: CheckPlan,
  judge: CheckJudge,
  senders: ReadonlyMap<string, ProbeSender>,
  timeoutMs: number,
  waiting: Map<ProbeAttempt, AbortController>,
  aborted: () => boolean,
  progress: (done: number) => void = () => {},
): Promise<void> {
  const limiter = new ProbeLimiter();
  // Tags per sending node, starting at a random place: two checks at once rarely share one.
  const next = new Map<string, number>();
  const tagFor = (node: string) => {
    const t = next.get(node) ?? Math.floor(Math.random() * PROBE_MARK_COUNT);
    next.set(node, (t + 1) % PROBE_MARK_COUNT);
    return t;
  };
  let done = 0;
  const once = async (probe: PlannedProbe, attempt: number): Promise<ProbeAttempt | undefined> => {
    const sender = senders.get(probe.from);
    if (!sender) return undefined;
    return limiter.run(probe.from, async () => {
      if (aborted()) return undefined;
      const tag = tagFor(probe.from);
      const a = judge.expect(probe, tag, attempt);
      const stop = new AbortController();
      waiting.set(a, stop);
      a.result = await sender
        .send({ protocol: probe.protocol, src: probe.src.address, dst: probe.dst.address, tag, bytes: probe.bytes, df: probe.df, timeoutMs }, stop.signal)
        .catch((err: Error) => ({ replied: false, error: err.message }));
      waiting.delete(a);
      return a;
    });
  };
  await Promise.all(
    plan.probes.map(async (probe) => {
      const first = await once(probe, 1);
      if (first && judge.shouldRetry(first)) await once(probe, 2);
      progress(++done);
    }),
  );
}
