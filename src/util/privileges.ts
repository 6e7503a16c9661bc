// Whether this process may trace or build the lab, decided from its effective capabilities (CapEff
// in /proc/self/status), not from its uid: root in a container that drops capabilities is refused
// with the same clear line as any user, and a user granted them (file capabilities, an ambient
// set) is let through. `read` needs none.
import { readFileSync } from 'node:fs';
import { EnvironmentError } from '../errors.js';

/** The capabilities vxtrace asks for, by bit number (linux/capability.h). */
export const CAPABILITY_BITS = {
  CAP_DAC_OVERRIDE: 1,
  CAP_NET_ADMIN: 12,
  CAP_SYS_ADMIN: 21,
  CAP_PERFMON: 38,
  CAP_BPF: 39,
} as const;
export type Capability = keyof typeof CAPABILITY_BITS;

/** What a command does that needs privileges. */
export type PrivilegedWork = 'trace' | 'lab' | 'netns';

interface Requirement {
  capability: Capability;
  /** The kernel also accepts this one instead (bpf_capable and perfmon_capable accept CAP_SYS_ADMIN). */
  orElse?: Capability;
  /** Only a process whose euid is not 0 needs it (the files it writes belong to root). */
  unlessRoot?: boolean;
}

const REQUIREMENTS: Record<PrivilegedWork, readonly Requirement[]> = {
  // BPF programs and maps; the tp_btf drop hook and reading kernel memory; tc attach; setns (and
  // `ip -n`) into the nodes' network namespaces to attach there and read their kernel state.
  trace: [
    { capability: 'CAP_BPF', orElse: 'CAP_SYS_ADMIN' },
    { capability: 'CAP_PERFMON', orElse: 'CAP_SYS_ADMIN' },
    { capability: 'CAP_NET_ADMIN' },
    { capability: 'CAP_SYS_ADMIN' },
  ],
  // ip netns add/del (unshare, mounts), links, nftables, ethtool, net sysctls; /run/netns and
  // /run/vxtrace belong to root, so a user other than root also needs CAP_DAC_OVERRIDE to write there.
  lab: [{ capability: 'CAP_NET_ADMIN' }, { capability: 'CAP_SYS_ADMIN' }, { capability: 'CAP_DAC_OVERRIDE', unlessRoot: true }],
  // `ip netns exec` into a pod or node (iproute2 refuses it without both).
  netns: [{ capability: 'CAP_NET_ADMIN' }, { capability: 'CAP_SYS_ADMIN' }],
};

/** A capability mask as /proc/<pid>/status prints it (CapEff, CapPrm, ...: up to 16 hex digits). */
export function parseCapabilityMask(hex: string): bigint {
  if (!/^[0-9a-f]{1,16}$/i.test(hex)) throw new EnvironmentError(`'${hex.slice(0, 40)}' is not a capability mask (up to 16 hex digits)`);
  return BigInt(`0x${hex}`);
}

/** The effective capability mask from the text of /proc/<pid>/status. */
export function parseEffectiveCapabilities(status: string): bigint {
  const m = /^CapEff:[ \t]*(\S*)[ \t]*$/m.exec(status);
  if (!m) throw new EnvironmentError('no CapEff line in /proc/self/status: cannot tell which capabilities this process has');
  return parseCapabilityMask(m[1]!);
}

export function hasCapability(mask: bigint, capability: Capability): boolean {
  return ((mask >> BigInt(CAPABILITY_BITS[capability])) & 1n) === 1n;
}

/** Which of the capabilities `work` needs this process lacks, and which of them it has. */
export function privilegeShortfall(work: PrivilegedWork | readonly PrivilegedWork[], mask: bigint, euid: number): { missing: Capability[]; has: Capability[] } {
  const missing = new Set<Capability>();
  const has = new Set<Capability>();
  for (const w of typeof work === 'string' ? [work] : work) {
    for (const r of REQUIREMENTS[w]) {
      if (r.unlessRoot && euid === 0) continue;
      if (hasCapability(mask, r.capability)) has.add(r.capability);
      else if (r.orElse === undefined || !hasCapability(mask, r.orElse)) missing.add(r.capability);
    }
  }
  return { missing: [...missing], has: [...has] };
}

/**
 * The one line that says what `what` lacks and what to do, or undefined when it may go ahead.
 * Pure: the capability mask and euid are handed in.
 */
export function privilegeProblem(what: string, work: PrivilegedWork | readonly PrivilegedWork[], mask: bigint, euid: number): string | undefined {
  const { missing, has } = privilegeShortfall(work, mask, euid);
  if (!missing.length) return undefined;
  const needs = `${what} needs ${missing.join(', ')} (missing; it has ${has.length ? has.join(', ') : 'none of them'})`;
  return euid === 0
    ? `${needs}: root here lacks them (a container or service that drops capabilities): grant them (the container's securityContext capabilities, or the service's CapabilityBoundingSet)`
    : `${needs}: run it as root (sudo), or grant them (setcap, an ambient set, or the container's securityContext)`;
}

/** This process's effective capabilities. */
export function effectiveCapabilities(): bigint {
  let status: string;
  try {
    status = readFileSync('/proc/self/status', 'utf8');
  } catch (err) {
    throw new EnvironmentError(`cannot read /proc/self/status to tell which capabilities this process has: ${(err as Error).message}`);
  }
  return parseEffectiveCapabilities(status);
}

/** Refuse, with one line naming what is missing and what to do, unless this process may do `work`. */
export function requirePrivileges(what: string, work: PrivilegedWork | readonly PrivilegedWork[]): void {
  const problem = privilegeProblem(what, work, effectiveCapabilities(), process.geteuid?.() ?? 0);
  if (problem) throw new EnvironmentError(problem);
}
