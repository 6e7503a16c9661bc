// The one way vxtrace names an inner packet in words ("ICMP echo request id 7 seq 3", "TCP 40000 →
// 8080 [S]", "UDP 53124 → 53"): the CLI's path lines and the findings' evidence both say it so.
import type { InnerPacket } from './hop.js';
import type { FlowTuple } from './flow.js';

const TCP_FLAG_LETTERS: [number, string][] = [[0x02, 'S'], [0x01, 'F'], [0x04, 'R'], [0x08, 'P'], [0x20, 'U'], [0x10, '.']];
/** TCP flags as tcpdump prints them: [S], [S.], [P.], [F.], [R]. */
export function formatTcpFlags(flags: number): string {
  return `[${TCP_FLAG_LETTERS.filter(([bit]) => flags & bit).map(([, l]) => l).join('')}]`;
}

/** "ICMP echo request id 7 seq 3", "TCP 40000 → 8080 [S]", "UDP 53124 → 53". */
export function formatProtocol(p: InnerPacket): string {
  if ((p.protocol === 1 || p.protocol === 58) && p.icmp) {
    const v6 = p.protocol === 58;
    const t = p.icmp.type;
    const name = v6
      ? t === 128 ? 'echo request' : t === 129 ? 'echo reply' : t === 2 ? 'packet too big' : `type ${t}`
      : t === 8 ? 'echo request' : t === 0 ? 'echo reply' : t === 3 ? `unreachable code ${p.icmp.code}` : t === 11 ? 'time exceeded' : `type ${t}`;
    const echo = name.startsWith('echo') ? ` id ${p.icmp.id} seq ${p.icmp.seq}` : '';
    return `${v6 ? 'ICMPv6' : 'ICMP'} ${name}${echo}`;
  }
  if (p.protocol === 6) return `TCP ${p.srcPort} → ${p.dstPort} ${p.tcp ? formatTcpFlags(p.tcp.flags) : ''}`.trimEnd();
  if (p.protocol === 17) return `UDP ${p.srcPort} → ${p.dstPort}`;
  return `proto ${p.protocol}`;
}

/** A flow (the kernel's flow counters' key) in words: "UDP 40000 → 7777", "ICMP echo id 7". */
export function formatFlow(f: Pick<FlowTuple, 'protocol' | 'srcPort' | 'dstPort'>): string {
  if (f.protocol === 6 || f.protocol === 17) return `${f.protocol === 6 ? 'TCP' : 'UDP'} ${f.srcPort} → ${f.dstPort}`;
  if (f.protocol === 1 || f.protocol === 58) return `${f.protocol === 58 ? 'ICMPv6' : 'ICMP'}${f.srcPort ? ` echo id ${f.srcPort}` : ''}`;
  return `proto ${f.protocol}`;
}
