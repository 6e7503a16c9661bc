// A node's kernel networking state, as iproute2 prints it in JSON (`ip -j`, `bridge -j`): links,
// addresses, routes, and the neighbours and FDB of the VXLAN device. iproute2 speaks rtnetlink for
// us; this module only parses its JSON (pure, unit-tested on recorded outputs). Reading it from a
// namespace and keeping it current lives in ./kernel-reader.ts.
import { UsageError } from '../errors.js';
import { cidrContains, parseCidr } from '../net/address.js';

export interface KernelLink {
  name: string;
  ifindex: number;
  /** linkinfo.info_kind: 'vxlan', 'bridge', 'veth', ... ('' for plain devices). */
  kind: string;
  mtu: number;
  mac: string;
  up: boolean;
  /** Bridge (master) this link is enslaved to, if any. */
  master?: string;
}

/** The VXLAN device (found by kind, not by name) and its parameters. */
export interface VxlanDevice {
  name: string;
  ifindex: number;
  vni: number;
  /** UDP destination port (8472 for flannel, 4789 the IANA default). */
  port: number;
  /** Local (source) underlay address, when set. */
  local?: string;
  /** Lower device (`dev` in `ip link add ... type vxlan`), when set. */
  lowerDevice?: string;
  mtu: number;
  mac: string;
  learning: boolean;
  up: boolean;
}

export interface KernelAddress {
  device: string;
  family: 4 | 6;
  address: string;
  prefixLength: number;
  scope: string;
}

export interface KernelRoute {
  /** CIDR, or 'default'. */
  dst: string;
  gateway?: string;
  device?: string;
  onlink: boolean;
  prefsrc?: string;
  /** 'unicast', 'local', 'broadcast', 'blackhole', ... */
  type: string;
}

export interface NeighEntry {
  ip: string;
  mac?: string;
  /** NUD states, upper case: PERMANENT, REACHABLE, FAILED, INCOMPLETE, ... */
  states: string[];
}

export interface FdbEntry {
  mac: string;
  /** Remote VTEP (underlay) address; absent for local entries. */
  dst?: string;
  permanent: boolean;
  self: boolean;
  vni?: number;
  port?: number;
}

export interface NodeKernelState {
  links: KernelLink[];
  addresses: KernelAddress[];
  routes: KernelRoute[];
  /** The first VXLAN device (flannel creates exactly one per VNI; `flannel.<VNI>`). */
  vxlan?: VxlanDevice;
  /** Neighbours on the VXLAN device. */
  neighbours: NeighEntry[];
  /** FDB entries of the VXLAN device. */
  fdb: FdbEntry[];
}

/** The raw JSON texts (or already parsed values) of the five iproute2 reads. */
export interface IprouteOutputs {
  /** `ip -j -d link show` */
  link: string | unknown;
  /** `ip -j addr` */
  addr: string | unknown;
  /** `ip -j route` */
  route: string | unknown;
  /** `ip -j neigh show dev <vxlan>` ('' or [] when there is no VXLAN device) */
  neigh: string | unknown;
  /** `bridge -j fdb show dev <vxlan>` */
  fdb: string | unknown;
}

type Json = Record<string, unknown>;

function jsonArray(what: string, input: string | unknown): Json[] {
  let value = input;
  if (typeof input === 'string') {
    const text = input.trim();
    if (text === '') return [];
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw new UsageError(`cannot parse ${what} output as JSON: ${(err as Error).message}`);
    }
  }
  if (!Array.isArray(value)) throw new UsageError(`${what} output is not a JSON array`);
  return value.filter((v): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v));
}

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
const strs = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : typeof v === 'string' ? [v] : []);

export function parseLinks(input: string | unknown): KernelLink[] {
  const links: KernelLink[] = [];
  for (const l of jsonArray('ip -j -d link show', input)) {
    const name = str(l.ifname);
    if (!name) continue;
    const linkinfo = (typeof l.linkinfo === 'object' && l.linkinfo) as Json | false;
    links.push({
      name,
      ifindex: num(l.ifindex) ?? 0,
      kind: (linkinfo && str(linkinfo.info_kind)) || '',
      mtu: num(l.mtu) ?? 0,
      mac: (str(l.address) ?? '').toLowerCase(),
      up: strs(l.flags).includes('UP'),
      master: str(l.master),
    });
  }
  return links;
}

export function parseVxlanDevice(input: string | unknown): VxlanDevice | undefined {
  for (const l of jsonArray('ip -j -d link show', input)) {
    const linkinfo = (typeof l.linkinfo === 'object' && l.linkinfo ? l.linkinfo : {}) as Json;
    if (linkinfo.info_kind !== 'vxlan') continue;
    const data = (typeof linkinfo.info_data === 'object' && linkinfo.info_data ? linkinfo.info_data : {}) as Json;
    return {
      name: str(l.ifname) ?? '',
      ifindex: num(l.ifindex) ?? 0,
      vni: num(data.id) ?? 0,
      // iproute2 prints "port" (the dstport); a kernel default device has 8472 only when asked.
      port: num(data.port) ?? 8472,
      local: str(data.local),
      lowerDevice: str(data.link),
      mtu: num(l.mtu) ?? 0,
      mac: (str(l.address) ?? '').toLowerCase(),
      learning: data.learning === true,
      up: strs(l.flags).includes('UP'),
    };
  }
  return undefined;
}

export function parseAddresses(input: string | unknown): KernelAddress[] {
  const out: KernelAddress[] = [];
  for (const l of jsonArray('ip -j addr', input)) {
    const device = str(l.ifname);
    if (!device || !Array.isArray(l.addr_info)) continue;
    for (const a of l.addr_info as unknown[]) {
      if (typeof a !== 'object' || a === null) continue;
      const ai = a as Json;
      const address = str(ai.local);
      const family = ai.family === 'inet' ? 4 : ai.family === 'inet6' ? 6 : undefined;
      if (!address || !family) continue;
      out.push({ device, family, address, prefixLength: num(ai.prefixlen) ?? (family === 4 ? 32 : 128), scope: str(ai.scope) ?? 'global' });
    }
  }
  return out;
}

export function parseRoutes(input: string | unknown): KernelRoute[] {
  const out: KernelRoute[] = [];
  for (const r of jsonArray('ip -j route', input)) {
    const dst = str(r.dst);
    if (!dst) continue;
    out.push({
      dst,
      gateway: str(r.gateway),
      device: str(r.dev),
      onlink: strs(r.flags).includes('onlink'),
      prefsrc: str(r.prefsrc),
      type: str(r.type) ?? 'unicast',
    });
  }
  return out;
}

export function parseNeighbours(input: string | unknown): NeighEntry[] {
  const out: NeighEntry[] = [];
  for (const n of jsonArray('ip -j neigh', input)) {
    const ip = str(n.dst);
    if (!ip) continue;
    const mac = str(n.lladdr);
    out.push({ ip, mac: mac?.toLowerCase(), states: strs(n.state).map((s) => s.toUpperCase()) });
  }
  return out;
}

export function parseFdb(input: string | unknown): FdbEntry[] {
  const out: FdbEntry[] = [];
  for (const f of jsonArray('bridge -j fdb show', input)) {
    const mac = str(f.mac);
    if (!mac) continue;
    const flags = strs(f.flags);
    out.push({
      mac: mac.toLowerCase(),
      dst: str(f.dst),
      permanent: strs(f.state).includes('permanent'),
      self: flags.includes('self'),
      vni: num(f.vni),
      port: num(f.port),
    });
  }
  return out;
}

/** Parse the five iproute2 outputs of one node into its kernel state. Throws UsageError on non-JSON. */
export function parseKernelState(outputs: IprouteOutputs): NodeKernelState {
  return {
    links: parseLinks(outputs.link),
    addresses: parseAddresses(outputs.addr),
    routes: parseRoutes(outputs.route),
    vxlan: parseVxlanDevice(outputs.link),
    neighbours: parseNeighbours(outputs.neigh),
    fdb: parseFdb(outputs.fdb),
  };
}

/** Longest-prefix match of `ip` in the main routing table (unicast routes only): the route the kernel would pick. */
export function lookupRoute(routes: readonly KernelRoute[], ip: string): KernelRoute | undefined {
  let best: KernelRoute | undefined;
  let bestLen = -1;
  for (const r of routes) {
    if (r.type !== 'unicast') continue;
    const c = parseCidr(r.dst);
    if (!c || !cidrContains(c, ip)) continue;
    if (c.prefixLength > bestLen) {
      best = r;
      bestLen = c.prefixLength;
    }
  }
  return best;
}
