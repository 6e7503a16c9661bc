// The cluster model: v1 Nodes and Pods plus each node's kernel state, with what vxtrace derives from
// them (pod CIDR owners, VTEP addresses, and each node's underlay address, with the reasoning kept
// for explanations). Pure: built from plain values, never reads anything itself.
import { UsageError } from '../errors.js';
import {
  flannelBackendData,
  FLANNEL_BACKEND_TYPE,
  FLANNEL_BACKEND_V6_DATA,
  FLANNEL_PUBLIC_IP,
  FLANNEL_PUBLIC_IPV6,
  VXTRACE_NETNS,
  type V1Node,
  type V1Pod,
} from './k8s.js';
import type { ClusterObjects } from './list.js';
import { lookupRoute, type NodeKernelState } from './kernel.js';
import { cidrContains, ipFamily, networkAddress, parseCidr, type Cidr } from '../net/address.js';

/** How a node's underlay address was decided. */
export interface UnderlayAddress {
  /** The address other nodes must send VXLAN packets to (undefined when it cannot be decided). */
  address?: string;
  /** The interface holding it (known only with kernel state). */
  interface?: string;
  /** 'kernel': unique address on the interface routing to the other nodes; 'internal-ip': unique InternalIP, no kernel state; 'public-ip': the flannel annotation (last resort). */
  source: 'kernel' | 'internal-ip' | 'public-ip' | 'unknown';
  /** One sentence for explanations: "InternalIP 192.168.1.122 on eth1; 10.0.2.15 on eth0 is shared by node1, node2, node3". */
  explanation: string;
}

export interface FlannelBackend {
  type?: string;
  vni?: number;
  vtepMac?: string;
}

/**
 * One node as one of its VTEPs sees it. The model's own nodes are its IPv4 VTEP's (flannel.1), with
 * every pod CIDR of the node; the IPv6 view (`ClusterModel.v6`, dual-stack and IPv6 clusters) holds
 * the same nodes as their IPv6 VTEP (flannel-v6.1) sees them: IPv6 pod CIDRs, public-ipv6,
 * backend-v6-data, the IPv6 device with its neighbours and FDB, and the IPv6 underlay address.
 */
export interface NodeModel {
  name: string;
  podCidrs: string[];
  internalIps: string[];
  externalIps: string[];
  /** flannel.alpha.coreos.com/public-ip (IPv6 view: public-ipv6), as registered (not trusted). */
  publicIp?: string;
  /** backend-data (IPv6 view: backend-v6-data). */
  backend: FlannelBackend;
  /** vxtrace.io/netns (lab nodes). */
  netns?: string;
  /** flannel's VTEP address: the network address of the first pod CIDR of the view's family (10.244.2.0, fd00:10:244:2::). */
  vtepIp?: string;
  /** The node's kernel state; in the IPv6 view its `vxlan`, `neighbours` and `fdb` are the IPv6 VTEP's. */
  kernel?: NodeKernelState;
  underlay: UnderlayAddress;
}

export interface PodModel {
  name: string;
  namespace: string;
  /** namespace/name */
  ref: string;
  node?: string;
  ips: string[];
  hostNetwork: boolean;
  netns?: string;
}

/** An address held by more than one node. */
export interface SharedAddress {
  address: string;
  nodes: string[];
  /** node name -> interface holding the address (kernel state only). */
  interfaces: Record<string, string>;
}

function nodePodCidrs(n: V1Node): string[] {
  const all = [...(n.spec.podCIDRs ?? []), ...(n.spec.podCIDR ? [n.spec.podCIDR] : [])];
  return [...new Set(all)];
}

/** Addresses of a node the kernel holds that could be underlay addresses: global ones of `family`, not on a VXLAN device, not in a pod CIDR, not loopback. */
function kernelCandidateAddresses(kernel: NodeKernelState, podCidrs: readonly Cidr[], family: 4 | 6): { address: string; device: string }[] {
  const vteps = new Set([kernel.vxlan?.name, kernel.vxlan6?.name]);
  return kernel.addresses
    .filter((a) => a.family === family && a.scope === 'global' && !vteps.has(a.device) && !a.address.startsWith('127.') && a.address !== '::1')
    .filter((a) => !podCidrs.some((c) => cidrContains(c, a.address)))
    .map((a) => ({ address: a.address, device: a.device }));
}

/**
 * A node's kernel state as its IPv6 VTEP sees it: that device (flannel-v6.N; or the one device
 * when a single VXLAN device carries both families) with its neighbours and FDB.
 */
function ipv6View(k: NodeKernelState): NodeKernelState {
  if (!k.vxlan6) return k;
  return { ...k, vxlan: k.vxlan6, neighbours: k.neighbours6 ?? [], fdb: k.fdb6 ?? [] };
}

const listNames = (names: readonly string[]): string => names.join(', ');

export class ClusterModel {
  readonly nodes: readonly NodeModel[];
  readonly pods: readonly PodModel[];
  /** Addresses held by two or more nodes (from kernel state and node addresses). */
  readonly sharedAddresses: readonly SharedAddress[];
  private readonly byName = new Map<string, NodeModel>();
  private readonly cidrs: { cidr: Cidr; node: NodeModel }[] = [];
  // Lookups asked for every packet (the model is immutable: answers never go stale).
  private readonly ownerByIp = new Map<string, { node: NodeModel; cidr: string } | null>();
  private podIndex: Map<string, PodModel> | undefined;

  /** The IPv6 view, built when asked (undefined: no node has an IPv6 pod CIDR). */
  private v6View: ClusterModel | null | undefined;

  private constructor(
    readonly objects: ClusterObjects,
    readonly kernelStates: ReadonlyMap<string, NodeKernelState>,
    /** Which VTEPs this model's nodes are: the IPv4 ones (the model itself), or the IPv6 ones (`v6`). */
    readonly family: 4 | 6 = 4,
  ) {
    const allCidrs = objects.nodes.flatMap((n) => nodePodCidrs(n)).flatMap((c) => parseCidr(c) ?? []);
    const v6 = family === 6;
    const base = objects.nodes.map((n) => {
      const a = n.metadata.annotations ?? {};
      const all = nodePodCidrs(n);
      // The IPv6 view knows only the IPv6 pod CIDRs; the model itself all of them (pods of both families resolve).
      const podCidrs = v6 ? all.filter((c) => parseCidr(c)?.family === 6) : all;
      const firstOwn = all.map((c) => parseCidr(c)).find((c): c is Cidr => c?.family === family);
      const backend: FlannelBackend = { type: a[FLANNEL_BACKEND_TYPE], ...flannelBackendData(n, v6 ? FLANNEL_BACKEND_V6_DATA : undefined) };
      const addresses = (type: string) => (n.status.addresses ?? []).filter((x) => x.type === type).map((x) => x.address).filter((ip) => !v6 || ipFamily(ip) === 6);
      const kernel = kernelStates.get(n.metadata.name);
      return {
        name: n.metadata.name,
        podCidrs,
        internalIps: addresses('InternalIP'),
        externalIps: addresses('ExternalIP'),
        publicIp: a[v6 ? FLANNEL_PUBLIC_IPV6 : FLANNEL_PUBLIC_IP],
        backend,
        netns: a[VXTRACE_NETNS],
        vtepIp: firstOwn ? networkAddress(firstOwn) : undefined,
        kernel: kernel && v6 ? ipv6View(kernel) : kernel,
      };
    });
    // The underlay of the IPv6 VTEPs is IPv6 (flannel's public-ipv6), unless their devices send over IPv4.
    const underlayFamily: 4 | 6 = !v6 ? 4 : base.some((n) => n.publicIp) || base.some((n) => ipFamily(n.kernel?.vxlan?.local) === 6) || !base.some((n) => ipFamily(n.kernel?.vxlan?.local) === 4) ? 6 : 4;

    // Who holds which address.
    const holders = new Map<string, Map<string, string | undefined>>();
    const hold = (address: string, node: string, iface?: string): void => {
      if (ipFamily(address) === undefined) return;
      let m = holders.get(address);
      if (!m) holders.set(address, (m = new Map()));
      if (!m.has(node) || (iface && !m.get(node))) m.set(node, iface);
    };
    for (const n of base) {
      if (n.kernel) for (const c of [...kernelCandidateAddresses(n.kernel, allCidrs, 4), ...kernelCandidateAddresses(n.kernel, allCidrs, 6)]) hold(c.address, n.name, c.device);
      for (const ip of [...n.internalIps, ...n.externalIps]) hold(ip, n.name);
    }
    this.sharedAddresses = [...holders.entries()]
      .filter(([, m]) => m.size > 1)
      .map(([address, m]) => ({
        address,
        nodes: [...m.keys()].sort(),
        interfaces: Object.fromEntries([...m.entries()].filter(([, i]) => i !== undefined)) as Record<string, string>,
      }));
    const isUnique = (ip: string): boolean => (holders.get(ip)?.size ?? 0) <= 1;

    const nodes: NodeModel[] = base.map((n) => ({ ...n, underlay: this.deriveUnderlay(n, base, allCidrs, isUnique, underlayFamily) }));
    this.nodes = nodes;
    for (const n of nodes) {
      this.byName.set(n.name, n);
      for (const c of n.podCidrs) {
        const cidr = parseCidr(c);
        if (cidr) this.cidrs.push({ cidr, node: n });
      }
    }
    this.cidrs.sort((a, b) => b.cidr.prefixLength - a.cidr.prefixLength);
    this.pods = objects.pods.map((p: V1Pod) => {
      const namespace = p.metadata.namespace ?? 'default';
      const ips = [...new Set([...(p.status.podIPs ?? []).map((x) => x.ip), ...(p.status.podIP ? [p.status.podIP] : [])])];
      return {
        name: p.metadata.name,
        namespace,
        ref: `${namespace}/${p.metadata.name}`,
        node: p.spec.nodeName,
        ips,
        hostNetwork: p.spec.hostNetwork === true,
        netns: p.metadata.annotations?.[VXTRACE_NETNS],
      };
    });
  }

  /** Build the model from cluster objects and whatever kernel states are known (by node name). */
  static build(objects: ClusterObjects, kernel: ReadonlyMap<string, NodeKernelState> = new Map()): ClusterModel {
    return new ClusterModel(objects, kernel);
  }

  /** A new model with one node's kernel state replaced (the watcher calls this on every change). */
  withKernelState(node: string, state: NodeKernelState | undefined): ClusterModel {
    const m = new Map(this.kernelStates);
    if (state) m.set(node, state);
    else m.delete(node);
    return new ClusterModel(this.objects, m, this.family);
  }

  /**
   * The same cluster as its IPv6 VTEPs see it (dual-stack and IPv6-only clusters: flannel-v6.1,
   * public-ipv6, backend-v6-data, IPv6 pod CIDRs); undefined when no node has an IPv6 pod CIDR.
   */
  get v6(): ClusterModel | undefined {
    if (this.family === 6) return this;
    if (this.v6View === undefined) {
      const any = this.objects.nodes.some((n) => nodePodCidrs(n).some((c) => parseCidr(c)?.family === 6));
      this.v6View = any ? new ClusterModel(this.objects, this.kernelStates, 6) : null;
    }
    return this.v6View ?? undefined;
  }

  /** Whether any node has a pod CIDR of the model's own family (an IPv6-only cluster has no IPv4 VTEPs to judge). */
  get hasOwnFamily(): boolean {
    return this.objects.nodes.some((n) => nodePodCidrs(n).some((c) => parseCidr(c)?.family === this.family));
  }

  /** The view whose VTEPs carry packets of this IP family. */
  forFamily(family: 4 | 6): ClusterModel {
    return family === 6 ? (this.v6 ?? this) : this;
  }

  private deriveUnderlay(
    n: Omit<NodeModel, 'underlay'>,
    all: readonly Omit<NodeModel, 'underlay'>[],
    podCidrs: readonly Cidr[],
    isUnique: (ip: string) => boolean,
    family: 4 | 6,
  ): UnderlayAddress {
    const shared = (ip: string, iface?: string): string => {
      const holders = all.filter((o) => o.internalIps.includes(ip) || o.externalIps.includes(ip) || o.kernel?.addresses.some((a) => a.address === ip)).map((o) => o.name);
      return `${ip}${iface ? ` on ${iface}` : ''} is shared by ${listNames(holders)}`;
    };
    if (n.kernel) {
      const candidates = kernelCandidateAddresses(n.kernel, podCidrs, family);
      const peers = all.filter((o) => o.name !== n.name);
      // The interface that carries the route to the other nodes (by their InternalIP, else their unique kernel addresses).
      const votes = new Map<string, string[]>();
      for (const p of peers) {
        const own = p.internalIps.filter((t) => ipFamily(t) === family);
        const targets = own.length ? own : p.kernel ? kernelCandidateAddresses(p.kernel, podCidrs, family).map((c) => c.address).filter(isUnique) : [];
        const target = targets.find((t) => ipFamily(t) === family);
        if (!target) continue;
        const r = lookupRoute(n.kernel.routes, target);
        if (!r?.device || r.device === n.kernel.vxlan?.name || r.device === n.kernel.vxlan6?.name) continue;
        votes.set(r.device, [...(votes.get(r.device) ?? []), p.name]);
      }
      const ranked = [...votes.entries()].sort((a, b) => b[1].length - a[1].length);
      const sharedHere = candidates.filter((c) => !isUnique(c.address));
      const sharedNote = sharedHere.length ? `; ${sharedHere.map((c) => shared(c.address, c.device)).join('; ')}` : '';
      // Routes to different peers leave by different interfaces: not whichever interface carries the
      // route to most (or to the one peer under study), but the address that reaches them all when
      // the routes are right: the node's InternalIP, when it is unique and its interface carries the
      // route to some peers. The split itself is a finding (UNDERLAY_ROUTE_SPLIT).
      if (ranked.length > 1) {
        const internal = candidates.find((c) => n.internalIps.includes(c.address) && isUnique(c.address) && votes.has(c.device));
        if (internal) {
          const others = ranked.filter(([d]) => d !== internal.device).map(([d, ps]) => `the route to ${listNames(ps)} leaves by ${d}`);
          return {
            address: internal.address,
            interface: internal.device,
            source: 'kernel',
            explanation: `InternalIP ${internal.address} on ${internal.device} (${internal.device} carries the route to ${listNames(votes.get(internal.device)!)}; ${others.join('; ')}: the routes disagree)${sharedNote}`,
          };
        }
      }
      for (const [device, peerNames] of ranked) {
        const onDevice = candidates.filter((c) => c.device === device && isUnique(c.address));
        const pick = onDevice.find((c) => n.internalIps.includes(c.address)) ?? onDevice[0];
        if (pick) {
          const label = n.internalIps.includes(pick.address) ? 'InternalIP' : 'address';
          return {
            address: pick.address,
            interface: device,
            source: 'kernel',
            explanation: `${label} ${pick.address} on ${device} (${device} carries the route to ${listNames(peerNames)})${sharedNote}`,
          };
        }
      }
      // No route vote: any unique InternalIP the kernel holds, then any unique address.
      const held = candidates.filter((c) => isUnique(c.address));
      const pick = held.find((c) => n.internalIps.includes(c.address)) ?? (held.length === 1 ? held[0] : undefined);
      if (pick) {
        return {
          address: pick.address,
          interface: pick.device,
          source: 'kernel',
          explanation: `${n.internalIps.includes(pick.address) ? 'InternalIP' : 'address'} ${pick.address} on ${pick.device} (the only address unique among nodes; no route to the other nodes decided it)${sharedNote}`,
        };
      }
    }
    const internal = n.internalIps.find((ip) => ipFamily(ip) === family && isUnique(ip));
    if (internal) {
      return {
        address: internal,
        source: 'internal-ip',
        explanation: `InternalIP ${internal}, unique among nodes (no kernel state for ${n.name}, so its interfaces were not checked)`,
      };
    }
    if (n.publicIp && all.filter((o) => o.publicIp === n.publicIp).length === 1) {
      return {
        address: n.publicIp,
        source: 'public-ip',
        explanation: `flannel public-ip ${n.publicIp} (no unique InternalIP${n.kernel ? ' and no unique address in the kernel' : ', no kernel state'})`,
      };
    }
    const why = n.internalIps.length ? n.internalIps.map((ip) => shared(ip)).join('; ') : 'the node has no InternalIP';
    return { source: 'unknown', explanation: `no address unique to ${n.name} was found (${why})` };
  }

  node(name: string): NodeModel | undefined {
    return this.byName.get(name);
  }

  /** The node whose pod CIDR holds `ip` (longest prefix), with that CIDR. */
  podCidrOwner(ip: string): { node: NodeModel; cidr: string } | undefined {
    let owner = this.ownerByIp.get(ip);
    if (owner === undefined) {
      owner = null;
      for (const { cidr, node } of this.cidrs) {
        if (cidrContains(cidr, ip)) {
          owner = { node, cidr: cidr.text };
          break;
        }
      }
      // Bounded: a capture of everything may see any number of addresses.
      if (this.ownerByIp.size >= 65536) this.ownerByIp.clear();
      this.ownerByIp.set(ip, owner);
    }
    return owner ?? undefined;
  }

  podByIp(ip: string): PodModel | undefined {
    if (!this.podIndex) {
      this.podIndex = new Map();
      for (const p of this.pods) {
        if (p.hostNetwork) continue;
        for (const a of p.ips) if (!this.podIndex.has(a)) this.podIndex.set(a, p);
      }
    }
    return this.podIndex.get(ip);
  }

  /** Nodes that hold `ip` as one of their own addresses (kernel state, InternalIP or ExternalIP). */
  nodesHoldingAddress(ip: string): NodeModel[] {
    return this.nodes.filter((n) => n.internalIps.includes(ip) || n.externalIps.includes(ip) || n.kernel?.addresses.some((a) => a.address === ip));
  }

  /** The node whose underlay address is `ip`. */
  nodeByUnderlay(ip: string): NodeModel | undefined {
    return this.nodes.find((n) => n.underlay.address === ip);
  }

  /** The node whose VXLAN device (kernel, else backend-data annotation) has this MAC. */
  nodeByVtepMac(mac: string): NodeModel | undefined {
    const m = mac.toLowerCase();
    return this.nodes.find((n) => n.kernel?.vxlan?.mac === m) ?? this.nodes.find((n) => n.backend.vtepMac === m);
  }

  /** A peer's current VTEP MAC: its VXLAN device's MAC when its kernel state is known, else its backend-data annotation. */
  currentVtepMac(n: NodeModel): string | undefined {
    return n.kernel?.vxlan?.mac ?? n.backend.vtepMac;
  }

  /** Resolve `name` or `namespace/name`; unknown or ambiguous names are a UsageError listing near matches. */
  resolvePod(ref: string): PodModel {
    const slash = ref.indexOf('/');
    const matches = slash >= 0 ? this.pods.filter((p) => p.ref === ref) : this.pods.filter((p) => p.name === ref);
    if (matches.length === 1) return matches[0]!;
    if (matches.length > 1) {
      throw new UsageError(`pod name ${ref} is ambiguous: ${matches.map((p) => p.ref).join(', ')} (give namespace/name)`);
    }
    const near = nearMatches(ref, this.pods.map((p) => (slash >= 0 ? p.ref : p.name)));
    const hint = near.length ? `did you mean ${near.join(', ')}?` : this.pods.length ? `known pods: ${this.pods.slice(0, 8).map((p) => p.ref).join(', ')}${this.pods.length > 8 ? ', ...' : ''}` : 'the cluster has no pods';
    throw new UsageError(`unknown pod ${ref}: ${hint}`);
  }
}

function editDistance(a: string, b: string): number {
  const d: number[] = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0]!;
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = d[j]!;
      d[j] = Math.min(d[j]! + 1, d[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return d[b.length]!;
}

export function nearMatches(name: string, candidates: readonly string[], max = 5): string[] {
  const scored = [...new Set(candidates)]
    .map((c) => ({ c, d: c.includes(name) || name.includes(c) ? 1 : editDistance(name, c) }))
    .filter((x) => x.d <= Math.max(2, Math.floor(name.length / 3)))
    .sort((a, b) => a.d - b.d || a.c.localeCompare(b.c));
  return scored.slice(0, max).map((x) => x.c);
}
