// Finding: what diagnosis concludes, with stable codes (DESIGN.md "Findings"). Every output (CLI
// text, NDJSON, pcapng, the stream) carries these fields unchanged.

export const FINDING_CODES = [
  'WRONG_UNDERLAY_DST',
  'WRONG_UNDERLAY_SRC',
  'DUPLICATE_PUBLIC_IP',
  'FDB_DST_LOCAL',
  'FDB_MISSING',
  'NEIGH_MISSING',
  'VTEP_MAC_MISMATCH',
  'VNI_MISMATCH',
  'PORT_MISMATCH',
  'MTU_EXCEEDED',
  'BAD_OUTER_CHECKSUM',
  'DROPPED',
  'NO_DECAP',
  'UNDERLAY_ROUTE_SPLIT',
  'PACKET_LOSS',
] as const;
export type FindingCode = (typeof FINDING_CODES)[number];

export type Severity = 'error' | 'warning' | 'info';

export interface FindingEvidence {
  /** What was seen, in words and values: "outer dst 10.0.2.15". */
  observed: string;
  /** What should have been, and why: "192.168.1.122, because 10.244.2.0/24 belongs to node2 whose underlay address is 192.168.1.122". */
  expected?: string;
  /** Fingerprints of packets that show it (a bounded sample). */
  packets?: string[];
  /** Machine-readable details (addresses, interfaces, reasons), stable keys per code. */
  facts?: Record<string, string | number | boolean | string[]>;
}

export interface Finding {
  code: FindingCode;
  severity: Severity;
  /** The node(s) whose state or behaviour is at fault: the fix is applied there. */
  nodes: string[];
  /** One plain sentence of cause. */
  cause: string;
  /** The concrete fix, with real interface names, flags or commands. */
  fix: string;
  evidence: FindingEvidence;
  /** Packets showing it (0 for findings from state alone). */
  packetCount: number;
  /** Deduplication key: one finding per cause. */
  key: string;
}

/**
 * The findings a run reports: every one packets showed, and those from state alone that concern
 * `nodes` (the nodes its packets run between), so that a trace of two nodes does not list every
 * other node's state.
 */
export function findingsConcerning(findings: readonly Finding[], nodes: Iterable<string | undefined>): Finding[] {
  const set = new Set<string>();
  for (const n of nodes) if (n) set.add(n);
  return findings.filter((f) => f.packetCount > 0 || f.nodes.some((n) => set.has(n)));
}
