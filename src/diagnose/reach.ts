// Whether a proposed change holds for every pair of nodes, not only the one under study: a node's
// routes to every other node's underlay address, checked before a finding proposes --iface,
// --public-ip, a route or an FDB entry. A wrong fix is worse than none. Pure.
import type { ClusterModel, NodeModel } from '../cluster/model.js';
import { lookupRoute, type KernelRoute } from '../cluster/kernel.js';
import { addressInPrefix, ipFamily } from '../net/address.js';

/** How one node reaches one peer's underlay address. */
export interface PeerRoute {
  peer: NodeModel;
  /** The peer's underlay address. */
  address: string;
  route?: KernelRoute;
}

const familyOf = (ip: string): 4 | 6 => (ip.includes(':') ? 6 : 4);
/** The family of n's underlay address (the one its VTEP sends VXLAN over). */
const underlayFamily = (n: NodeModel): 4 | 6 => ipFamily(n.underlay.address) ?? 4;

/** iproute2's words for a route: `192.168.1.0/24 dev eth1`, `default via 10.0.2.2 dev eth0`. */
export function routeText(r: KernelRoute): string {
  return `${r.dst}${r.gateway ? ` via ${r.gateway}` : ''}${r.device ? ` dev ${r.device}` : ''}${r.onlink ? ' onlink' : ''}`;
}

/**
 * n's route (the one the kernel picks) to every other node's underlay address of `family`, for the
 * peers whose underlay address is known. Without kernel state for n: none (nothing can be checked).
 */
export function routesToPeers(model: ClusterModel, n: NodeModel, family: 4 | 6 = underlayFamily(n), routes: readonly KernelRoute[] | undefined = n.kernel?.routes): PeerRoute[] {
  if (!routes) return [];
  return model.nodes.flatMap((p) => {
    const address = p.underlay.address;
    if (p === n || !address || familyOf(address) !== family) return [];
    return [{ peer: p, address, route: lookupRoute(routes, address) }];
  });
}

/** The peers n does not reach by `iface`: their route leaves by another interface, or there is none. */
export function peersNotVia(model: ClusterModel, n: NodeModel, iface: string, family: 4 | 6 = underlayFamily(n)): PeerRoute[] {
  return routesToPeers(model, n, family).filter((r) => r.route?.device !== iface);
}

/** "node4 (192.168.1.124: 192.168.1.124 via 10.0.2.2 dev eth0)", or "... no route". */
export function describePeerRoute(r: PeerRoute): string {
  return `${r.peer.name} (${r.address}: ${r.route ? routeText(r.route) : 'no route'})`;
}

/**
 * A route to `dst` that leaves by `iface` on n, as an iproute2 command, when one can be built from
 * what n already has: `dst/32 dev iface` when an address on iface has a prefix holding dst (on
 * link), else `via` the gateway n's other peers are reached through on iface. undefined: nothing
 * on n says how iface reaches dst.
 */
export function routeByInterface(model: ClusterModel, n: NodeModel, dst: string, iface: string): string | undefined {
  const k = n.kernel;
  if (!k) return undefined;
  const host = `${dst}/${familyOf(dst) === 4 ? 32 : 128}`;
  const onLink = k.addresses.some((a) => a.device === iface && addressInPrefix(dst, `${a.address}/${a.prefixLength}`));
  if (onLink) return `ip route replace ${host} dev ${iface}`;
  const gateway = routesToPeers(model, n, familyOf(dst)).find((r) => r.route?.device === iface && r.route.gateway)?.route?.gateway;
  return gateway ? `ip route replace ${host} via ${gateway} dev ${iface}` : undefined;
}

/**
 * The peers a route change on n would take off `iface` (or leave without a route): n's routes with
 * `remove` deleted and `add` added, against its routes to every other node's underlay address.
 * Empty: the change holds for every pair.
 */
export function routeChangeBreaks(model: ClusterModel, n: NodeModel, iface: string, change: { remove?: KernelRoute; add?: KernelRoute }): PeerRoute[] {
  const routes = (n.kernel?.routes ?? []).filter((r) => r !== change.remove && !(change.add && r.dst === change.add.dst));
  if (change.add) routes.push(change.add);
  const before = new Set(routesToPeers(model, n).filter((r) => r.route?.device === iface).map((r) => r.peer.name));
  return routesToPeers(model, n, underlayFamily(n), routes).filter((r) => before.has(r.peer.name) && r.route?.device !== iface);
}

/**
 * For a fix that has n send VXLAN by `iface` (flanneld --iface, or an FDB entry once the device
 * sends by iface): the peers that fix would not reach, with a sentence saying so and what else
 * must change. Empty `unreached`: it holds for every peer.
 */
export function ifaceFixCheck(model: ClusterModel, n: NodeModel, iface: string): { unreached: PeerRoute[]; note: string } {
  const unreached = peersNotVia(model, n, iface);
  if (!unreached.length) return { unreached, note: '' };
  const changes = unreached.map((r) => {
    const cmd = routeByInterface(model, n, r.address, iface);
    return cmd ? `${cmd} (now ${r.route ? routeText(r.route) : 'no route'})` : `a route to ${r.address} by ${iface} (now ${r.route ? routeText(r.route) : 'no route'})`;
  });
  return {
    unreached,
    note: `${iface} alone does not reach ${unreached.map((r) => r.peer.name).join(', ')} from ${n.name}: first, on ${n.name}: ${changes.join('; ')} (UNDERLAY_ROUTE_SPLIT)`,
  };
}
