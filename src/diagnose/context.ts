// What both kinds of rules (from state, from packets) need to know about the model: who is at fault
// for a wrong address, which node is the odd one out for VNI/port, and the words and commands for
// evidence and fixes. Pure.
import type { ClusterModel, NodeModel } from '../cluster/model.js';
import { parseCidr, prefixText } from '../net/address.js';
export { isIpv4 } from '../net/address.js';
import type { Finding, FindingCode, FindingEvidence, Severity } from './finding.js';
import { lookupRoute } from '../cluster/kernel.js';
import { describePeerRoute, ifaceFixCheck, routeByInterface, routeChangeBreaks, routesToPeers, routeText } from './reach.js';

export const vxlanName = (n: NodeModel | undefined): string => n?.kernel?.vxlan?.name ?? 'flannel.1';
export const list = (xs: readonly string[]): string => (xs.length <= 1 ? (xs[0] ?? '') : `${xs.slice(0, -1).join(', ')} and ${xs[xs.length - 1]}`);

export function makeFinding(
  code: FindingCode,
  severity: Severity,
  key: string,
  nodes: string[],
  cause: string,
  fix: string,
  evidence: FindingEvidence,
  packetCount = 0,
): Finding {
  return { code, severity, nodes: [...new Set(nodes)].sort(), cause, fix, evidence, packetCount, key };
}

/** flannel's name for a node's registered address of this family: `public-ip`, or `public-ipv6` (its flanneld flag and annotation). */
export const publicIpName = (ip: string | undefined): string => (ip?.includes(':') ? 'public-ipv6' : 'public-ip');

/** Groups of nodes that registered the same flannel public-ip (the seed's case). */
export function duplicatePublicIps(model: ClusterModel): Map<string, NodeModel[]> {
  const groups = new Map<string, NodeModel[]>();
  for (const n of model.nodes) if (n.publicIp) groups.set(n.publicIp, [...(groups.get(n.publicIp) ?? []), n]);
  for (const [ip, g] of groups) if (g.length < 2) groups.delete(ip);
  return groups;
}

/** The addresses a node holds itself (kernel, else InternalIP/ExternalIP). */
export function ownAddresses(n: NodeModel): string[] {
  const k = n.kernel?.addresses.filter((a) => a.scope !== 'link').map((a) => a.address) ?? [];
  return [...new Set([...k, ...n.internalIps, ...n.externalIps])];
}

/** The interface that holds `ip` on node n (kernel state only). */
export function interfaceOf(n: NodeModel, ip: string): string | undefined {
  return n.kernel?.addresses.find((a) => a.address === ip)?.device;
}

export function defaultRouteDevice(n: NodeModel): string | undefined {
  return n.kernel?.routes.find((r) => r.dst === 'default')?.device;
}

/** "10.244.2.0/24 belongs to node2 whose underlay address is 192.168.1.122 (InternalIP ... on eth1 ...)". */
export function underlayWhy(peer: NodeModel): string {
  const cidr = peer.podCidrs[0] ?? '(no pod CIDR)';
  return `${cidr} belongs to ${peer.name} whose underlay address is ${peer.underlay.address ?? 'unknown'} (${peer.underlay.explanation})`;
}

/**
 * For a per-node VXLAN parameter (VNI, port): the value most nodes use (ties broken by flannel's
 * default), and the nodes that differ — the ones the fix is applied on.
 */
export function oddOnesOut(
  model: ClusterModel,
  value: (n: NodeModel) => number | undefined,
  flannelDefault: number,
): { expected: number; odd: { node: NodeModel; value: number }[]; agreeing: string[] } | undefined {
  const counts = new Map<number, string[]>();
  for (const n of model.nodes) {
    const v = value(n);
    if (v !== undefined) counts.set(v, [...(counts.get(v) ?? []), n.name]);
  }
  if (counts.size < 2) return undefined;
  const ranked = [...counts.entries()].sort((a, b) => b[1].length - a[1].length || (a[0] === flannelDefault ? -1 : b[0] === flannelDefault ? 1 : a[0] - b[0]));
  const expected = ranked[0]![0];
  const odd = model.nodes.flatMap((n) => {
    const v = value(n);
    return v !== undefined && v !== expected ? [{ node: n, value: v }] : [];
  });
  return { expected, odd, agreeing: ranked[0]![1] };
}

export const vniOf = (n: NodeModel): number | undefined => n.kernel?.vxlan?.vni ?? n.backend.vni;
export const portOf = (n: NodeModel): number | undefined => n.kernel?.vxlan?.port;

/**
 * The smallest prefix covering every node's pod CIDR of `family`, widened to flannel's usual
 * Network size (/16 for IPv4, e.g. 10.244.0.0/16; /48 for IPv6): the pod network of firewall fixes.
 */
export function podNetwork(model: ClusterModel, family: 4 | 6 = 4): string | undefined {
  const cidrs = model.nodes.flatMap((n) => n.podCidrs).flatMap((c) => parseCidr(c) ?? []).filter((c) => c.family === family);
  if (!cidrs.length) return undefined;
  let len = Math.min(...cidrs.map((c) => c.prefixLength));
  const first = cidrs[0]!.bytes;
  const sameUpTo = (l: number): boolean => cidrs.every((c) => prefixText(c.bytes, l) === prefixText(first, l));
  while (len > 0 && !sameUpTo(len)) len--;
  // flannel's Network is at least a /16 by default (net-conf.json, not in the cluster objects): widen to it.
  len = Math.min(len, family === 4 ? 16 : 48);
  return prefixText(first, len);
}

/** A finding about the IPv6 VTEPs: its key ends in `:v6` (the same cause on the IPv4 VTEPs is another finding). */
export const ipv6Keyed = (f: Finding): Finding => (f.key.endsWith(':v6') ? f : { ...f, key: `${f.key}:v6` });

/** Bytes VXLAN adds to an inner frame: 50 over an IPv4 underlay, 70 over IPv6. */
export const vxlanOverhead = (vx: { local?: string } | undefined): number => (vx?.local?.includes(':') ? 70 : 50);

// ---- Findings shared by both kinds of rules (same key = same cause, whichever saw it first) ----

export function duplicatePublicIpFinding(model: ClusterModel, ip: string, group: readonly NodeModel[], observed: string): Finding {
  const names = group.map((n) => n.name).sort();
  const ifaces = [...new Set(group.flatMap((n) => interfaceOf(n, ip) ?? []))];
  const viaDefault = group.some((n) => interfaceOf(n, ip) !== undefined && interfaceOf(n, ip) === defaultRouteDevice(n));
  const everyNode = group.length === model.nodes.length;
  const where = ifaces.length
    ? `the address of ${list(ifaces)} (the NAT interface: ${everyNode ? 'every node' : 'each of them'} has it${viaDefault ? ', and it carries the default route' : ''})`
    : 'an address they share (typically a NAT interface present on every VM)';
  const who = everyNode ? 'every node' : list(names);
  const unique = group.map((n) => ({ n, addr: n.underlay.address, iface: n.underlay.interface }));
  const sameIface = new Set(unique.map((u) => u.iface)).size === 1 && unique[0]!.iface;
  const perNode = unique.map((u) => `${u.n.name} ${u.addr ?? '(unknown)'}${!sameIface && u.iface ? ` on ${u.iface}` : ''}`).join(', ');
  let fix = sameIface
    ? `restart flanneld with --iface=${sameIface} (the interface holding this node's unique address: ${perNode}), or set --${publicIpName(ip)} to that address`
    : unique.every((u) => u.iface)
      ? `restart flanneld on each node with --iface set to the interface holding its unique address (${perNode}), or set --${publicIpName(ip)} to that address`
      : `restart flanneld on each node with --${publicIpName(ip)} set to its unique address (${perNode}), or --iface naming the interface that holds it`;
  // --iface (or --public-ip) on a node whose routes to some peer leave by another interface would
  // not reach that peer: say so, and what must change first.
  const notes = unique.flatMap((u) => (u.iface ? [ifaceFixCheck(model, u.n, u.iface)] : [])).filter((c) => c.unreached.length).map((c) => c.note);
  if (notes.length) fix += `; but ${notes.join('; ')}`;
  return makeFinding(
    'DUPLICATE_PUBLIC_IP',
    'error',
    `DUPLICATE_PUBLIC_IP:${ip}`,
    names,
    `${who} registered ${publicIpName(ip)} ${ip}, ${where}, so every FDB entry sends VXLAN traffic to ${ip} and no packet reaches another node.`,
    fix,
    {
      observed,
      expected: `each node registers its own underlay address: ${group.map((n) => `${n.name} ${n.underlay.address ?? 'unknown'}`).join(', ')} (${group[0]!.name}: ${group[0]!.underlay.explanation})`,
      facts: { publicIp: ip, nodes: names, interfaces: ifaces, underlay: unique.map((u) => `${u.n.name}=${u.addr ?? ''}`) },
    },
  );
}

/**
 * Nothing on the node decapsulates VXLAN: it has no VXLAN device (flanneld not running), or the
 * device is down (a VXLAN device holds its UDP socket only while up: the port is closed).
 */
export function noDecapStateFinding(n: NodeModel, observed?: string): Finding {
  const vx = n.kernel?.vxlan;
  const name = vx?.name ?? `flannel.${n.backend.vni ?? 1}`;
  const state = vx
    ? `${vx.name} on ${n.name} is down, so its UDP ${vx.port} socket is closed`
    : `no device of kind vxlan in ${n.name}'s kernel state${n.netns ? ` (netns ${n.netns})` : ''}`;
  return makeFinding('NO_DECAP', 'error', `NO_DECAP:-:${n.name}`, [n.name],
    vx
      ? `${n.name}'s ${vx.name} is down: a VXLAN device listens on its UDP port (${vx.port}) only while up, so VXLAN traffic for its pods (${n.podCidrs.join(', ')}) reaches no socket and is dropped (NO_SOCKET).`
      : `${n.name} has no VXLAN device, so VXLAN traffic for its pods (${n.podCidrs.join(', ')}) is never decapsulated.`,
    vx
      ? `on ${n.name}: ip link set ${vx.name} up, then restart flanneld there (the routes via ${vx.name} went away with it)`
      : `start (or restart) flanneld on ${n.name}: it creates ${name}; check its logs (kubectl -n kube-flannel logs on ${n.name}'s flannel pod)`,
    { observed: observed ? `${observed}; ${state}` : state, expected: `${name} (VXLAN, VNI ${vx?.vni ?? n.backend.vni ?? 1}) up, listening on UDP ${vx?.port ?? 8472}`, facts: { node: n.name, ...(vx ? { device: vx.name, up: false } : {}) } });
}

/** A node registered (and uses) an address that is not its underlay address. */
export function wrongUnderlaySrcFinding(model: ClusterModel, n: NodeModel, observed: string, facts: Record<string, string | number | boolean | string[]> = {}): Finding {
  const want = n.underlay.address ?? 'its unique underlay address';
  const iface = n.underlay.interface;
  const check = iface ? ifaceFixCheck(model, n, iface) : undefined;
  return makeFinding(
    'WRONG_UNDERLAY_SRC',
    'error',
    `WRONG_UNDERLAY_SRC:${n.name}`,
    [n.name],
    `${n.name}'s VXLAN traffic is sourced from, or registered as, an address that is not its underlay address ${want}, so peers send its packets to the wrong place.`,
    `restart flanneld on ${n.name} with ${iface ? `--iface=${iface}` : `--${publicIpName(want)}=${want}`} (the ${iface ? `interface holding ${n.name}'s unique address ${want}` : 'unique address'}), or set --${publicIpName(want)}=${want}${check?.note ? `; but ${check.note}` : ''}`,
    { observed, expected: `${want} (${n.underlay.explanation})`, facts: { node: n.name, expected: want, ...facts } },
  );
}

export function fdbReplace(n: NodeModel, mac: string, dst: string): string {
  return `bridge fdb replace ${mac} dev ${vxlanName(n)} dst ${dst} self permanent`;
}

/**
 * An FDB entry that sends n's VXLAN for a peer to `dst` works only if n's route to dst leaves by the
 * interface n's VXLAN traffic uses (its underlay interface): '' when it does (or cannot be told),
 * else what must change too.
 */
export function fdbRouteNote(model: ClusterModel, n: NodeModel, dst: string): string {
  const iface = n.underlay.interface ?? n.kernel?.vxlan?.lowerDevice;
  const r = n.kernel ? lookupRoute(n.kernel.routes, dst) : undefined;
  if (!iface || !n.kernel || r?.device === iface) return '';
  const cmd = routeByInterface(model, n, dst, iface);
  return `; but ${n.name}'s route to ${dst} ${r ? `is ${routeText(r)}, not by ${iface}` : 'is missing'}: also ${cmd ? `on ${n.name}: ${cmd}` : `give ${n.name} a route to ${dst} by ${iface}`} (UNDERLAY_ROUTE_SPLIT)`;
}
export function neighReplace(n: NodeModel, ip: string, mac: string): string {
  return `ip neigh replace ${ip} lladdr ${mac} dev ${vxlanName(n)} nud permanent`;
}

export function wrongUnderlayDstFinding(model: ClusterModel, n: NodeModel, peer: NodeModel, mac: string | undefined, observed: string, extra: Record<string, string | number | boolean | string[]> = {}): Finding {
  const want = peer.underlay.address ?? 'unknown';
  const cmd = (mac && peer.underlay.address ? `on ${n.name}: ${fdbReplace(n, mac, want)}; or restart flanneld on ${n.name}, which reprograms every entry` : `restart flanneld on ${n.name}, which reprograms its FDB`)
    + (peer.underlay.address ? fdbRouteNote(model, n, peer.underlay.address) : '');
  return makeFinding(
    'WRONG_UNDERLAY_DST',
    'error',
    `WRONG_UNDERLAY_DST:${n.name}:${peer.name}`,
    [n.name],
    `${n.name} sends VXLAN traffic for ${peer.name}'s pods to an address that is not ${peer.name}'s underlay address (a stale or wrong FDB entry on ${n.name}).`,
    cmd,
    { observed, expected: `${want}, because ${underlayWhy(peer)}`, facts: { node: n.name, peer: peer.name, expected: want, ...(mac ? { vtepMac: mac } : {}), ...extra } },
  );
}

export function fdbDstLocalFinding(model: ClusterModel, n: NodeModel, peer: NodeModel, mac: string | undefined, dst: string, observed: string, rootFix?: string): Finding {
  const want = peer.underlay.address ?? 'unknown';
  return makeFinding(
    'FDB_DST_LOCAL',
    'error',
    `FDB_DST_LOCAL:${n.name}:${peer.name}`,
    [n.name],
    `${n.name}'s FDB sends ${peer.name}'s VXLAN traffic to ${dst}, an address of ${n.name} itself${interfaceOf(n, dst) ? ` (on ${interfaceOf(n, dst)})` : ''}, so the packets loop back instead of leaving.`,
    rootFix ?? ((mac && peer.underlay.address ? `on ${n.name}: ${fdbReplace(n, mac, want)}; or restart flanneld on ${n.name}` : `restart flanneld on ${n.name}, which reprograms its FDB`) + (peer.underlay.address ? fdbRouteNote(model, n, peer.underlay.address) : '')),
    { observed, expected: `${want}, because ${underlayWhy(peer)}`, facts: { node: n.name, peer: peer.name, dst, expected: want } },
  );
}

export function fdbMissingFinding(model: ClusterModel, n: NodeModel, peer: NodeModel, mac: string, observed: string): Finding {
  const want = peer.underlay.address;
  return makeFinding(
    'FDB_MISSING',
    'error',
    `FDB_MISSING:${n.name}:${peer.name}`,
    [n.name],
    `${n.name} has no FDB entry for ${peer.name}'s VTEP MAC ${mac}, so ${vxlanName(n)} does not know where to send ${peer.name}'s traffic.`,
    (want ? `on ${n.name}: ${fdbReplace(n, mac, want)}; or restart flanneld on ${n.name}` : `restart flanneld on ${n.name}, which reprograms its FDB`) + (want ? fdbRouteNote(model, n, want) : ''),
    { observed, expected: `${mac} dst ${want ?? "the peer's underlay address"}, because ${underlayWhy(peer)}`, facts: { node: n.name, peer: peer.name, vtepMac: mac, ...(want ? { expected: want } : {}) } },
  );
}

export function neighMissingFinding(n: NodeModel, peer: NodeModel, mac: string | undefined, observed: string): Finding {
  const vtep = peer.vtepIp ?? 'the peer VTEP address';
  return makeFinding(
    'NEIGH_MISSING',
    'error',
    `NEIGH_MISSING:${n.name}:${peer.name}`,
    [n.name],
    `${n.name} has no neighbour entry for ${peer.name}'s VTEP address ${vtep} on ${vxlanName(n)}, so it cannot build the inner frame for ${peer.name}'s pods.`,
    mac ? `on ${n.name}: ${neighReplace(n, vtep, mac)}; or restart flanneld on ${n.name}` : `restart flanneld on ${n.name}`,
    { observed, expected: `${vtep} lladdr ${mac ?? "the peer's VTEP MAC"}, because ${peer.podCidrs[0] ?? 'its pod CIDR'} belongs to ${peer.name}`, facts: { node: n.name, peer: peer.name, vtepIp: vtep, ...(mac ? { vtepMac: mac } : {}) } },
  );
}

export function vtepMacMismatchFinding(model: ClusterModel, n: NodeModel, peer: NodeModel, seen: string, current: string, observed: string): Finding {
  const dst = peer.underlay.address;
  const vtep = peer.vtepIp ?? 'VTEP';
  return makeFinding(
    'VTEP_MAC_MISMATCH',
    'error',
    `VTEP_MAC_MISMATCH:${n.name}:${peer.name}`,
    [n.name],
    `${n.name} still addresses ${peer.name}'s VTEP as ${seen}, but ${peer.name}'s ${vxlanName(peer)} now has MAC ${current} (it was recreated), so ${peer.name} discards the frames.`,
    `on ${n.name}: ${neighReplace(n, vtep, current)}${dst ? ` && ${fdbReplace(n, current, dst)}` : ''}; or restart flanneld on ${n.name} (it reads ${peer.name}'s backend-data annotation)${dst ? fdbRouteNote(model, n, dst) : ''}`,
    { observed, expected: `${current}, the MAC of ${peer.name}'s ${vxlanName(peer)}`, facts: { node: n.name, peer: peer.name, seenMac: seen, currentMac: current } },
  );
}

export function vniMismatchFinding(odd: NodeModel, value: number, expected: number, agreeing: readonly string[], observed: string): Finding {
  return makeFinding(
    'VNI_MISMATCH',
    'error',
    `VNI_MISMATCH:${odd.name}`,
    [odd.name],
    `${odd.name}'s ${vxlanName(odd)} uses VNI ${value} while ${list([...agreeing])} use VNI ${expected}, so VXLAN packets between them are discarded (VNI not found).`,
    `give flanneld on ${odd.name} the cluster's net-conf.json (Backend "VNI": ${expected}) and restart it; if ${vxlanName(odd)} is not recreated, delete it first (ip link del ${vxlanName(odd)} on ${odd.name})`,
    { observed, expected: `VNI ${expected}, used by ${list([...agreeing])}`, facts: { node: odd.name, vni: value, expectedVni: expected } },
  );
}

export function portMismatchFinding(odd: NodeModel, value: number, expected: number, agreeing: readonly string[], observed: string): Finding {
  return makeFinding(
    'PORT_MISMATCH',
    'error',
    `PORT_MISMATCH:${odd.name}`,
    [odd.name],
    `${odd.name}'s ${vxlanName(odd)} uses UDP port ${value} while ${list([...agreeing])} use ${expected}, so VXLAN packets between them reach no VXLAN socket.`,
    `give flanneld on ${odd.name} the cluster's net-conf.json (Backend "Port": ${expected}, or no Port: flannel's default is 8472) and restart it; if ${vxlanName(odd)} keeps port ${value}, delete it first (ip link del ${vxlanName(odd)} on ${odd.name})`,
    { observed, expected: `UDP ${expected}, used by ${list([...agreeing])}`, facts: { node: odd.name, port: value, expectedPort: expected } },
  );
}

export function mtuFinding(n: NodeModel, severity: Severity, cause: string, observed: string, expected: string, facts: Record<string, string | number | boolean | string[]>): Finding {
  const mtu = n.kernel?.vxlan?.mtu ?? 1450;
  return makeFinding(
    'MTU_EXCEEDED',
    severity,
    `MTU_EXCEEDED:${n.name}`,
    [n.name],
    cause,
    `set the pod MTU on ${n.name} to ${mtu} (flannel writes FLANNEL_MTU=${mtu} to /run/flannel/subnet.env; the CNI config's "mtu" must match) and recreate the pods there, or lower the MTU inside them (ip link set eth0 mtu ${mtu})`,
    { observed, expected, facts: { node: n.name, vxlanMtu: mtu, ...facts } },
  );
}

/**
 * A node whose routes to its peers' underlay addresses leave by different interfaces: VXLAN to some
 * peers leaves by an interface that does not hold its underlay address (wrong source, or a NAT
 * network that goes nowhere). The fix is the route to change, checked against the routes to
 * every other peer; undefined when the routes agree.
 */
export function underlayRouteSplitFinding(model: ClusterModel, n: NodeModel): Finding | undefined {
  const iface = n.underlay.interface;
  if (!iface || !n.kernel || n.underlay.source !== 'kernel') return undefined;
  const routes = routesToPeers(model, n);
  const off = routes.filter((r) => r.route?.device !== iface);
  const on = routes.filter((r) => r.route?.device === iface);
  if (!off.length || !on.length) return undefined;
  const changes = off.map((r) => {
    // Deleting the route that diverts it, when a route by the underlay interface then carries it
    // and no other peer moves off that interface; else a host route by the underlay interface.
    if (r.route) {
      const rest = n.kernel!.routes.filter((x) => x !== r.route);
      const after = lookupRoute(rest, r.address);
      if (after?.device === iface && !routeChangeBreaks(model, n, iface, { remove: r.route }).length) {
        return `ip route del ${routeText(r.route)} (then ${routeText(after)} carries it, as for ${on.map((x) => x.peer.name).join(', ')})`;
      }
    }
    const cmd = routeByInterface(model, n, r.address, iface);
    return cmd ?? `a route to ${r.address} by ${iface} (nothing on ${n.name} says which gateway on ${iface} reaches it)`;
  });
  return makeFinding('UNDERLAY_ROUTE_SPLIT', 'error', `UNDERLAY_ROUTE_SPLIT:${n.name}`, [n.name],
    `${n.name}'s routes to its peers' underlay addresses leave by different interfaces: VXLAN to ${list(off.map((r) => r.peer.name))} leaves by ${list([...new Set(off.map((r) => r.route?.device ?? 'no route'))])}, not by ${iface}, which holds ${n.name}'s underlay address ${n.underlay.address}, so it goes out with the wrong source (or nowhere).`,
    `on ${n.name}: ${changes.join('; ')}`,
    {
      observed: `${n.name}'s routes: to ${off.map(describePeerRoute).join(', ')}; to ${list(on.map((r) => r.peer.name))} by ${iface}`,
      expected: `every peer's underlay address reached by ${iface} (${n.underlay.explanation})`,
      facts: { node: n.name, underlayInterface: iface, peers: off.map((r) => r.peer.name), routes: off.map((r) => (r.route ? routeText(r.route) : 'none')) },
    });
}

/** Expected/observed classification of an outer destination chosen by `sender` for traffic to `peer`'s pods. */
export type DstVerdict =
  | { kind: 'ok' }
  | { kind: 'duplicate-public-ip'; ip: string; group: NodeModel[] }
  | { kind: 'peer-registered-wrong'; ip: string }
  | { kind: 'local'; ip: string }
  | { kind: 'wrong'; ip: string }
  | { kind: 'unknown' };

export function classifyOuterDst(model: ClusterModel, sender: NodeModel, peer: NodeModel, dst: string): DstVerdict {
  if (!peer.underlay.address) return { kind: 'unknown' };
  if (dst === peer.underlay.address) return { kind: 'ok' };
  const dups = duplicatePublicIps(model);
  if (peer.publicIp === dst && dups.has(dst)) return { kind: 'duplicate-public-ip', ip: dst, group: dups.get(dst)! };
  if (peer.publicIp === dst) return { kind: 'peer-registered-wrong', ip: dst };
  if (ownAddresses(sender).includes(dst)) return { kind: 'local', ip: dst };
  return { kind: 'wrong', ip: dst };
}

/** Who else holds `ip` (for evidence: "192.168.1.200 is not an address of any node"). */
export function holderNote(model: ClusterModel, ip: string): string {
  const holders = model.nodesHoldingAddress(ip).map((n) => n.name);
  return holders.length ? `${ip} is an address of ${list(holders)}` : `${ip} is not an address of any node`;
}
