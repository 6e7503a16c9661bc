// `vxtrace check` on the nodes this machine can trace (the lab's, or the real node it runs on):
// plan the probes (src/probe/plan.ts), start a TraceSession that keeps only probes, send them from
// each node's namespace within the bounds (src/probe/limiter.ts), hand every finished probe path
// and its findings to the judge (src/probe/judge.ts), then print the matrix and the findings.
import type { CliContext } from './command.js';
import { EnvironmentError, ExitStatus, UsageError, type ExitStatusCode, type VxtraceError } from '../errors.js';
import { requirePrivileges } from '../util/privileges.js';
import { loadCluster } from '../cluster/source.js';
import { readKernelStates } from '../cluster/kernel-reader.js';
import { ClusterModel } from '../cluster/model.js';
import { findingsConcerning } from '../diagnose/finding.js';
import { podNetwork } from '../diagnose/context.js';
import { TraceSession, traceTargets } from '../session/trace-session.js';
import { planCheck } from '../probe/plan.js';
import { CheckJudge, type Cell, type CheckVerdict } from '../probe/judge.js';
import type { Finding } from '../diagnose/finding.js';
import { HubClient } from '../session/hub-client.js';
import type { CheckDoneEvent, CheckRequest } from '../wire/codec.js';
import { readTokenFile } from '../wire/endpoint.js';
import { ProbeRun } from '../probe/run.js';
import { checkFilter } from '../probe/filter.js';
import { PROBE_LIMITS, ProbeLimiter } from '../probe/limiter.js';
import { LocalProbeSender, NetnsProbeSender, type ProbeSender } from '../probe/sender.js';
import { protocolName, type ProbeProtocol } from '../probe/mark.js';
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
  /** Check through a hub: its agents send the probes. */
  hub?: string;
  tokenFile?: string;
}

export async function checkPairs(o: CheckOptions, ctx: CliContext): Promise<ExitStatusCode> {
  if (o.hub !== undefined) return checkViaHub({ ...o, hub: o.hub }, ctx);
  const startedAt = Date.now();
  const { objects, from } = await loadCluster({ cluster: o.cluster, kubeconfig: o.kubeconfig, lab: o.lab });
  requirePrivileges('vxtrace check', 'trace');
  const model = ClusterModel.build(objects, await readKernelStates(objects));
  const targets = traceTargets(objects);
  const notRunning = new Set(objects.pods.filter((p) => p.status.phase && p.status.phase !== 'Running').map((p) => `${p.metadata.namespace ?? 'default'}/${p.metadata.name}`));
  const protocol = o.protocol ?? 'icmp';
  const plan = planCheck(model, { senders: new Set(targets.map((t) => t.node)), protocol, ...(o.size !== undefined ? { size: o.size } : {}), notRunning });
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
  const timeoutMs = o.timeout ?? 1000;
  const limiter = new ProbeLimiter();
  let aborted = false;
  const run = new ProbeRun(judge, (probe, request, signal) => limiter.run(probe.from, () => (aborted ? Promise.resolve({ replied: false, error: 'stopped before it was sent (Ctrl-C)' }) : senders.get(probe.from)!.send(request, signal))), timeoutMs);
  let session: TraceSession;
  try {
    session = TraceSession.start({
      model,
      targets,
      filter: checkFilter(plan, podNetwork(model)),
      probes: 'only',
      onPath: (path, _fresh, touched) => run.addPath(path, touched),
    });
  } catch (err) {
    for (const s of senders.values()) s.close();
    throw err;
  }
  session.stateFindings();
  const sizes = [...new Set(plan.probes.filter((p) => p.kind === 'size').map((p) => p.bytes))];
  ctx.stderr.write(
    `probing ${plan.pairs.length} pairs of ${plan.nodes.length} nodes: ${protocolName(protocol)} from each node's pod-bridge address to a pod on each other node` +
      `${sizes.length ? `, and ${sizes.join('/')} bytes with DF set (ICMP echo)` : ''}; replies awaited ${timeoutMs / 1000}s, one retry; ` +
      `at most ${PROBE_LIMITS.perNode} probes at a time and ${1000 / PROBE_LIMITS.perNodeIntervalMs}/s per node, ${PROBE_LIMITS.total} in all; ` +
      `${session.hooks.length} hooks on ${targets.map((t) => t.node).join(', ')}\n`,
  );

  const status = new StatusLine(ctx.stderr);
  const onSignal = () => (aborted = true);
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    await run.sendAll(() => aborted, (done) => status.show(`${done} of ${plan.probes.length} probes · ${((Date.now() - startedAt) / 1000).toFixed(0)}s`));
    // Paths of lost probes finish when the tracer gives up on them; a drop may come seconds later (a failed neighbour resolution).
    await run.settle(() => aborted);
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    status.clear();
    for (const s of senders.values()) s.close();
  }
  const summary = await session.stop();
  const verdict = judge.verdicts(findingsConcerning(summary.findings, plan.nodes.map((n) => n.name)));
  if (summary.tracer.lostRecords) ctx.stderr.write(`note: ${summary.tracer.lostRecords} records were lost (ring buffer full): a probe shown as lost may only miss those records\n`);
  if (aborted) ctx.stderr.write('note: stopped early (Ctrl-C): probes not yet sent are shown as not sent\n');
  return printCheck(verdict, plan.nodes.map((n) => n.name), Date.now() - startedAt, o, ctx, 'neither node can send from this machine (run vxtrace check there, or use --hub)');
}

/** The matrix, what a cell covers, the findings and the summary (or their NDJSON); the exit status. */
function printCheck(verdict: CheckVerdict, nodes: string[], elapsedMs: number, o: CheckOptions, ctx: CliContext, whyNotProbed: string): ExitStatusCode {
  const style: TextStyle = { color: !!ctx.stdout.isTTY && !process.env.NO_COLOR };
  if (o.json) {
    for (const c of verdict.cells) ctx.stdout.write(ndjsonLine(pairRecord(c)));
    for (const f of verdict.findings) ctx.stdout.write(ndjsonLine(findingRecord(f)));
    ctx.stdout.write(ndjsonLine(checkRecord(verdict, nodes, elapsedMs)));
  } else {
    const columns = ctx.stdout.isTTY ? ((ctx.stdout as { columns?: number }).columns ?? 160) : 160;
    ctx.stdout.write(`\n${formatMatrix(nodes, verdict.cells, style, columns)}\n${formatCoverage(verdict)}`);
    if (verdict.findings.length) ctx.stdout.write(`\n${formatCheckFindings(verdict, style)}`);
    ctx.stdout.write(`\n${formatCheckSummary(verdict, elapsedMs, style)}`);
  }
  const notProbed = verdict.cells.filter((c) => !c.probed).length;
  if (notProbed) ctx.stderr.write(`note: ${notProbed} pair${notProbed === 1 ? '' : 's'} not probed: ${whyNotProbed}\n`);
  // What was not probed is said, not judged: on a real node vxtrace probes that node's pairs only.
  return verdict.cells.every((c) => c.ok || !c.probed) ? ExitStatus.OK : ExitStatus.FINDINGS;
}

/**
 * `vxtrace check --hub URL`: the hub plans the check on its model, its agents send their nodes'
 * probes, it follows and judges them; this prints what it answers, as a local check prints it.
 */
async function checkViaHub(o: CheckOptions & { hub: string }, ctx: CliContext): Promise<ExitStatusCode> {
  const startedAt = Date.now();
  if (o.cluster !== undefined || o.kubeconfig !== undefined || o.lab !== undefined) {
    throw new UsageError('--hub takes the cluster from the hub: give --hub or --cluster/--kubeconfig/--lab, not both');
  }
  const token = o.tokenFile !== undefined ? readTokenFile(o.tokenFile) : undefined;
  const cells: Cell[] = [];
  const findings = new Map<string, Finding>();
  let done: CheckDoneEvent | undefined;
  let ended: (err: VxtraceError | undefined) => void = () => {};
  const end = new Promise<VxtraceError | undefined>((resolve) => (ended = resolve));
  const request: CheckRequest = { protocol: o.protocol ?? 'icmp', ...(o.size !== undefined ? { size: o.size } : {}), ...(o.timeout !== undefined ? { timeoutMs: o.timeout } : {}) };
  const { client, subscribed } = await HubClient.connect({
    hub: o.hub,
    ...(token !== undefined ? { token } : {}),
    subscription: { client: 'check', check: request },
    onEvent(e) {
      if (e.kind === 'pair') cells.push(e.cell);
      else if (e.kind === 'finding') findings.set(e.finding.key, e.finding);
      else if (e.kind === 'check-done') done = e.done;
    },
    onEnd: (err) => ended(err),
  });
  ctx.stderr.write(
    `checking through the hub at ${o.hub} (${subscribed.clusterFrom}): ${protocolName(request.protocol)} probes sent by the agents of ${subscribed.nodes.join(', ') || 'no node'}, ` +
      `at most ${PROBE_LIMITS.perNode} at a time and ${1000 / PROBE_LIMITS.perNodeIntervalMs}/s by each\n`,
  );
  const stop = () => client.close();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  let failure: VxtraceError | undefined;
  try {
    failure = await end;
  } finally {
    process.removeListener('SIGINT', stop);
    process.removeListener('SIGTERM', stop);
  }
  if (failure) throw failure;
  if (!done) throw new EnvironmentError(`the hub at ${o.hub} ended the check before it was done (stopped, or the hub went away)`);
  const explains = new Map<string, [string, string][]>();
  for (const c of cells) for (const k of c.findings) explains.set(k, [...(explains.get(k) ?? []), [c.from, c.to]]);
  const verdict: CheckVerdict = { cells, findings: [...findings.values()], explains, probesSent: done.probes };
  return printCheck(verdict, done.nodes, Date.now() - startedAt, o, ctx, 'neither node has an agent connected to the hub');
}
