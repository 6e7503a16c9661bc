// How a diagnosis from state prints (`vxtrace diagnose`, `vxtrace diagnose --hub`): text (a header
// saying what was read, each finding, a count) or NDJSON (the finding records). The same function
// prints a diagnosis made here and one the hub made.
import type { Diagnosis } from '../diagnose/diagnosis.js';
import { diagnoseSummaryRecord, findingRecord, ndjsonLine } from './ndjson.js';
import { formatFinding, type TextStyle } from './text.js';

const plural = (n: number, one: string) => `${n} ${one}${n === 1 ? '' : 's'}`;

/**
 * What was read: the cluster, which nodes' kernel state (and why not the others'), every node's
 * underlay address and why. `nowhere`: the line when no node's kernel state was had at all.
 */
export function formatDiagnosisHeader(d: Diagnosis, nowhere: string): string {
  const withKernel = d.nodes.filter((n) => n.kernelState).map((n) => n.name);
  const lines = [`${plural(d.nodes.length, 'node')}, ${plural(d.pods, 'pod')} from ${d.clusterFrom}`];
  lines.push(withKernel.length ? `kernel state read for ${withKernel.join(', ')}` : `${nowhere}: checking the cluster objects only`);
  if (withKernel.length) {
    const why = new Map<string, string[]>();
    for (const n of d.nodes) if (!n.kernelState) why.set(n.noKernelState ?? '', [...(why.get(n.noKernelState ?? '') ?? []), n.name]);
    for (const [reason, nodes] of why) lines.push(`no kernel state for ${nodes.join(', ')}${reason ? ` (${reason})` : ''}`);
  }
  for (const n of d.nodes) lines.push(`  ${n.name} underlay ${n.underlay ?? '?'}: ${n.underlayExplanation}`);
  for (const n of d.nodes) if (n.underlay6Explanation !== undefined) lines.push(`  ${n.name} underlay (IPv6) ${n.underlay6 ?? '?'}: ${n.underlay6Explanation}`);
  return lines.join('\n') + '\n\n';
}

/** The findings: one text block each, or one NDJSON record each and the summary record. */
export function formatDiagnosisFindings(d: Diagnosis, json: boolean, style: TextStyle): string {
  const out = d.findings.map((f) => (json ? ndjsonLine(findingRecord(f)) : formatFinding(f, style) + '\n')).join('');
  if (!json) return out;
  const kernelState = d.nodes.filter((n) => n.kernelState).map((n) => n.name);
  return out + ndjsonLine(diagnoseSummaryRecord({ nodes: d.nodes.map((n) => n.name), kernelState, compared: compared(kernelState.length > 0), findings: d.findings }));
}

/** What a diagnosis compared, for its summary: the cluster objects always, the kernel state where it was read. */
function compared(withKernelState: boolean): string[] {
  const out = ["flannel annotations (public-ip, backend-data) against each node's addresses", 'pod CIDRs and VTEP addresses'];
  if (withKernelState) out.push('VXLAN devices (VNI, port, local, lower device, MTU, up)', 'neighbours and FDB entries for every peer', "routes to every other node's underlay address", 'pod bridge MTU');
  return out;
}

/** A whole diagnosis, as `diagnose` prints it once. */
export function formatDiagnosis(d: Diagnosis, o: { json: boolean; style: TextStyle; nowhere: string }): string {
  if (o.json) return formatDiagnosisFindings(d, true, o.style);
  const count = d.findings.length ? `${plural(d.findings.length, 'finding')}\n` : "no findings: every node's VXLAN state matches the cluster\n";
  return formatDiagnosisHeader(d, o.nowhere) + formatDiagnosisFindings(d, false, o.style) + count;
}

/** A new diagnosis under --watch: when and why (text), then its findings. */
export function formatDiagnosisChange(d: Diagnosis, o: { json: boolean; style: TextStyle; why: string; timeMs: number }): string {
  const head = o.json ? '' : `\n${new Date(o.timeMs).toISOString()} ${o.why}: ${d.findings.length ? plural(d.findings.length, 'finding') : 'no findings'}\n`;
  return head + formatDiagnosisFindings(d, o.json, o.style);
}
