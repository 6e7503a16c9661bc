// A diagnosis from state alone, as `vxtrace diagnose` reports it: its findings, and what it was made
// from (the cluster's nodes and pods, which nodes' kernel state it had and why not, each node's
// underlay address and why). Built from a model locally (`diagnose`) and at the hub (`diagnose
// --hub`: the hub sends it as Finding events and a Diagnosis), printed by src/output/diagnosis.ts
// the same way from either. Pure.
import type { ClusterModel } from '../cluster/model.js';
import type { Finding } from './finding.js';
import { diagnoseState } from './state.js';

export interface DiagnosedNode {
  name: string;
  /** The address other nodes must send its VXLAN packets to (undefined: cannot tell). */
  underlay?: string;
  underlayExplanation: string;
  /** The diagnosis had this node's kernel state. */
  kernelState: boolean;
  /** Without kernel state: why not ("not on this machine", "no agent connected"). */
  noKernelState?: string;
  /** On a dual-stack cluster: the IPv6 underlay address and why (`underlay` is then the IPv4 one). */
  underlay6?: string;
  underlay6Explanation?: string;
}

export interface Diagnosis {
  /** "cluster file ... (lab 'lab')", "Kubernetes API ..." */
  clusterFrom: string;
  pods: number;
  nodes: DiagnosedNode[];
  findings: Finding[];
}

/** Diagnose a model's state; `noKernelState` says why a node without kernel state has none. */
export function diagnoseModel(model: ClusterModel, clusterFrom: string, noKernelState: (node: string) => string): Diagnosis {
  // The underlay of each family's VTEPs: an IPv6-only cluster has only IPv6 ones, a dual-stack one both.
  const primary = model.hasOwnFamily ? model : (model.v6 ?? model);
  const second = primary === model ? model.v6 : undefined;
  return {
    clusterFrom,
    pods: model.pods.length,
    nodes: model.nodes.map((n) => {
      const u = primary.node(n.name)?.underlay ?? n.underlay;
      const u6 = second?.node(n.name)?.underlay;
      return {
        name: n.name,
        ...(u.address !== undefined ? { underlay: u.address } : {}),
        underlayExplanation: u.explanation,
        kernelState: !!n.kernel,
        ...(n.kernel ? {} : { noKernelState: noKernelState(n.name) }),
        ...(u6 ? { ...(u6.address !== undefined ? { underlay6: u6.address } : {}), underlay6Explanation: u6.explanation } : {}),
      };
    }),
    findings: diagnoseState(model),
  };
}

/** A diagnosis with a finding of severity error (exit status 1). */
export const hasErrors = (d: Diagnosis): boolean => d.findings.some((f) => f.severity === 'error');

/** Two diagnoses that say the same (the same findings, each with the same severity, cause and fix; the same nodes). */
export function sameDiagnosis(a: Diagnosis, b: Diagnosis): boolean {
  return signatureOf(a) === signatureOf(b);
}

export function signatureOf(d: Diagnosis): string {
  return JSON.stringify([d.clusterFrom, d.pods, d.nodes, d.findings.map((f) => [f.key, f.severity, f.cause, f.fix, f.evidence.observed, f.evidence.expected ?? null])]);
}
