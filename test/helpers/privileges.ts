// Running a command with fewer privileges than the tests have (root), with setpriv (util-linux):
// root with every capability dropped (as in a container that drops them), or another user granted
// some through an ambient set. Root without capabilities still owns the checkout, so it reaches a
// clone in a 0700 directory, which another uid could not: the unprivileged cases never depend on
// where the clone is.

/** setpriv's names: lower case, without CAP_ (net_admin, sys_admin, bpf, perfmon, dac_override). */
export type CapabilityName = string;

/**
 * argv that runs `argv` as root with no capability, or only `keep`: the inheritable and ambient
 * sets emptied and the bounding set cut to `keep`, so neither it nor anything it runs can have more.
 */
export function withoutCapabilities(argv: readonly string[], keep: readonly CapabilityName[] = []): string[] {
  return ['setpriv', '--inh-caps=-all', '--ambient-caps=-all', `--bounding-set=${capSet(keep)}`, '--', ...argv];
}

/**
 * argv that runs `argv` as `uid` (group `uid`, no supplementary groups) holding exactly `caps`,
 * in its ambient set: they stay effective across exec, as a container runtime or systemd
 * (AmbientCapabilities=) grants them.
 */
export function asUserWithCapabilities(uid: number, caps: readonly CapabilityName[], argv: readonly string[]): string[] {
  const set = capSet(caps);
  return ['setpriv', `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', `--inh-caps=${set}`, `--ambient-caps=${set}`, '--', ...argv];
}

const capSet = (caps: readonly CapabilityName[]) => ['-all', ...caps.map((c) => `+${c}`)].join(',');

/** The capability sets (CapInh, CapPrm, CapEff, CapBnd, CapAmb) of /proc/<pid>/status text, as hex. */
export function capabilitySets(status: string): Record<string, string> {
  return Object.fromEntries([...status.matchAll(/^(Cap\w+):\s*([0-9a-f]+)$/gm)].map((m) => [m[1]!, m[2]!]));
}
