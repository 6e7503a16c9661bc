// The exit status of a command that judges packet paths it did not choose (capture, read): 0 when
// every packet from or to a pod was delivered and no finding is an error; 1 otherwise (a
// PACKET_LOSS finding of any severity is packets not delivered: the kernel's counters show them
// missing, even where their paths were only sampled), and when there is nothing to judge, with the
// reason said. A capture of everything also holds the nodes'
// own traffic (IGMP, underlay chatter): only packets from or to a pod count, as in `follow`.
import { ExitStatus } from '../errors.js';
import { involvesPod, type PacketPath } from '../correlate/path.js';
import type { Finding } from '../diagnose/finding.js';

/** Findings that make the exit status 1 whatever the paths show: errors, and packets counted missing. */
export const failing = (findings: readonly Finding[]): boolean => findings.some((f) => f.severity === 'error' || f.code === 'PACKET_LOSS');

export interface Verdict {
  status: typeof ExitStatus.OK | typeof ExitStatus.FINDINGS;
  /** Why the status is 1, when the findings and the summary do not say it already. */
  note?: string;
}

/**
 * `opts.subject` names what was judged in the note ("the capture"; default "it", the file being read).
 */
export function judgePaths(paths: readonly Pick<PacketPath, 'outcome' | 'srcPod' | 'dstPod'>[], findings: readonly Finding[], opts: { damaged?: boolean; lostRecords?: number; sampledRecords?: number; subject?: string } = {}): Verdict {
  const podPaths = paths.filter(involvesPod);
  if (!podPaths.length) {
    return { status: ExitStatus.FINDINGS, note: `no packet from or to a pod is in ${opts.subject ?? 'it'}: nothing shows that pod traffic arrives (exit status 1)` };
  }
  if (opts.damaged) return { status: ExitStatus.FINDINGS, note: 'the file is damaged: the paths at the damage are incomplete (exit status 1)' };
  // A path that left for a node nobody traced shows neither delivery nor loss.
  const undelivered = podPaths.filter((p) => p.outcome !== 'delivered' && p.outcome !== 'untraced' && p.outcome !== 'in-flight');
  const status = undelivered.length || failing(findings) ? ExitStatus.FINDINGS : ExitStatus.OK;
  if (opts.lostRecords && undelivered.some((p) => p.outcome === 'vanished' || p.outcome === 'lost-in-underlay')) {
    return {
      status,
      note: `${opts.lostRecords} records were lost (ring buffer full): a path that vanished or was lost in the underlay may only miss those records; no finding was drawn from missing hops. Trace less (--protocol, --port, fewer pods) or on a less busy machine to be sure`,
    };
  }
  if (opts.sampledRecords && undelivered.some((p) => p.outcome === 'vanished' || p.outcome === 'lost-in-underlay')) {
    return {
      status,
      note: `${opts.sampledRecords} records were sampled out (the kernel shed them by choice; every packet is still counted per hop, above): a path that vanished or was lost in the underlay may only miss those records; no finding was drawn from missing hops`,
    };
  }
  return { status };
}
