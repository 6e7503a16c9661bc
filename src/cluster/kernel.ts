// A node's kernel networking state, as iproute2 prints it in JSON (`ip -j`, `bridge -j`): links,
// addresses, routes, and the neighbours and FDB of the VXLAN device. iproute2 speaks rtnetlink for
// us; this module only parses its JSON (pure, unit-tested on recorded outputs). Reading it from a
// namespace and keeping it current lives in ./kernel-reader.ts.
import { parseIptablesSave } from './iptables.js';
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
  /** Lower layer down (no carrier: the cable, or a veth's peer, is down). Absent when it has carrier. */
  noCarrier?: true;
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
  /** Collect-metadata mode (`external`): the device sends only packets that carry tunnel metadata. Absent when not. */
  external?: true;
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
  /** 6 for an IPv6 route (`ip -6 route`); absent for IPv4. */
  family?: 6;
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
  /** The (IPv4) VXLAN device: flannel's `flannel.<VNI>`, the first VXLAN device that is not an IPv6 VTEP. */
  vxlan?: VxlanDevice;
  /** Neighbours on the VXLAN device. */
  neighbours: NeighEntry[];
  /** FDB entries of the VXLAN device. */
  fdb: FdbEntry[];
  /** The IPv6 VTEP of a dual-stack or IPv6 node: flannel's `flannel-v6.<VNI>` (a VXLAN device with an IPv6 local address). */
  vxlan6?: VxlanDevice;
  /** Neighbours and FDB entries of the IPv6 VTEP. */
  neighbours6?: NeighEntry[];
  fdb6?: FdbEntry[];
  /**
   * IPv4 reverse-path filter per interface, and for `all` and `default` (`ip -j netconf show`): 0
   * off, 1 strict, 2 loose; the value in force on a device is the larger of `all` and its own.
   * Absent when it was not read.
   */
  rpFilter?: Record<string, 0 | 1 | 2>;
  /** The nftables ruleset (`nft -j list ruleset`, counters left out); absent when nft is not available. */
  firewall?: NftChain[];
  /** Queueing disciplines (`tc -j qdisc show`): the root one of each device, and clsact/ingress where present. */
  qdiscs?: TcQdisc[];
  /** tc filters on devices that have a clsact or ingress qdisc, except vxtrace's own (tcx programs are not listed). */
  tcFilters?: TcFilter[];
}

/** One nftables rule, as read from `nft -j`: what it matches (where vxtrace can read it) and its verdict. */
export interface NftRule {
  handle: number;
  /** The rule in nft syntax, re-rendered from its JSON (counters left out). */
  text: string;
  comment?: string;
  /** Conditions the rule matches on, all of which must hold; `opaque` marks conditions vxtrace cannot evaluate. */
  matches: NftMatch[];
  opaque: boolean;
  verdict?: 'accept' | 'drop' | 'reject' | 'jump' | 'goto' | 'return' | 'continue' | 'queue';
  /** The chain of a jump or goto. */
  target?: string;
}

export interface NftMatch {
  /** `ip saddr`, `ip6 daddr`, `udp dport`, `th dport`, `meta l4proto`, `meta iifname`, `ct state`, ... */
  key: string;
  /** ==, !=, <, >, <=, >=, in */
  op: string;
  /** Values as text: an address, a prefix (`10.244.0.0/16`), a number, a range (`1000-2000`), a name; any of them matches. */
  values: string[];
}

export interface NftChain {
  /** ip, ip6, inet, arp, bridge, netdev */
  family: string;
  table: string;
  name: string;
  /** Base chains only: the hook (prerouting, input, forward, output, postrouting, ingress, egress), type and priority. */
  hook?: string;
  type?: string;
  priority?: number;
  /** Base chains: accept or drop. */
  policy?: string;
  /** netdev chains: the device they are bound to. */
  devices?: string[];
  rules: NftRule[];
  /**
   * A chain of the legacy (x_tables) firewall, read with `iptables-legacy-save` (src/cluster/iptables.ts):
   * the command that changes it (`iptables-legacy`, `ip6tables-legacy`). Its rules' handles are
   * their positions in that output, their text the `-A` line. Absent: an nftables chain.
   */
  legacy?: string;
}

export interface TcQdisc {
  device: string;
  kind: string;
  /** The device's root (egress) qdisc; clsact and ingress are not root. */
  root: boolean;
}

export interface TcFilter {
  device: string;
  direction: 'ingress' | 'egress';
  pref: number;
  kind: string;
  /** The BPF program's name (kind bpf), when it has one. */
  name?: string;
  /** Human description: `bpf vxt_tc_ingress direct-action`, `bpf bytecode (3 insns) direct-action`, `u32`, ... */
  text: string;
}

/** The raw JSON texts (or already parsed values) of the five iproute2 reads. */
export interface IprouteOutputs {
  /** `ip -j -d link show` */
  link: string | unknown;
  /** `ip -j addr` */
  addr: string | unknown;
  /** `ip -j route` */
  route: string | unknown;
  /** `ip -6 -j route` (optional) */
  route6?: string | unknown;
  /** `ip -j neigh show dev <vxlan>` ('' or [] when there is no VXLAN device) */
  neigh: string | unknown;
  /** `bridge -j fdb show dev <vxlan>` */
  fdb: string | unknown;
  /** `ip -j neigh show dev <vxlan6>` and `bridge -j fdb show dev <vxlan6>` (optional: the IPv6 VTEP) */
  neigh6?: string | unknown;
  fdb6?: string | unknown;
  /** `ip -j netconf show` (optional: rp_filter) */
  netconf?: string | unknown;
  /** `nft -j list ruleset` (optional; undefined: nft is not available) */
  nft?: string | unknown;
  /** `iptables-legacy-save` / `ip6tables-legacy-save` (optional: the legacy firewall), with the command that changes its rules. */
  legacy?: { family: 4 | 6; command: string; output: string }[];
  /** `tc -j qdisc show` (optional) */
  qdisc?: string | unknown;
  /** `tc -j filter show dev D ingress|egress` for each device with a clsact or ingress qdisc (optional) */
  filters?: { device: string; direction: 'ingress' | 'egress'; output: string | unknown }[];
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
      ...(strs(l.flags).includes('NO-CARRIER') ? { noCarrier: true as const } : {}),
    });
  }
  return links;
}

/** Every VXLAN device (found by kind, not by name) and its parameters. */
export function parseVxlanDevices(input: string | unknown): VxlanDevice[] {
  const out: VxlanDevice[] = [];
  for (const l of jsonArray('ip -j -d link show', input)) {
    const linkinfo = (typeof l.linkinfo === 'object' && l.linkinfo ? l.linkinfo : {}) as Json;
    if (linkinfo.info_kind !== 'vxlan') continue;
    const data = (typeof linkinfo.info_data === 'object' && linkinfo.info_data ? linkinfo.info_data : {}) as Json;
    out.push({
      name: str(l.ifname) ?? '',
      ifindex: num(l.ifindex) ?? 0,
      vni: num(data.id) ?? 0,
      // iproute2 prints "port" (the dstport); a kernel default device has 8472 only when asked.
      port: num(data.port) ?? 8472,
      // iproute2 prints an IPv6 local address as "local6".
      local: str(data.local) ?? str(data.local6),
      lowerDevice: str(data.link),
      mtu: num(l.mtu) ?? 0,
      mac: (str(l.address) ?? '').toLowerCase(),
      learning: data.learning === true,
      up: strs(l.flags).includes('UP'),
      ...(data.external === true ? { external: true as const } : {}),
    });
  }
  return out;
}

/** An IPv6 VTEP: a local IPv6 address, or flannel's name for one (flannel-v6.N). */
const isIpv6Vtep = (v: VxlanDevice): boolean => (v.local ? v.local.includes(':') : /^flannel-v6\./.test(v.name));

/** The (IPv4) VXLAN device: the first that is not an IPv6 VTEP (else the only one there is). */
export function parseVxlanDevice(input: string | unknown): VxlanDevice | undefined {
  const all = parseVxlanDevices(input);
  return all.find((v) => !isIpv6Vtep(v)) ?? (all.length === 1 && !isIpv6Vtep(all[0]!) ? all[0] : undefined);
}

/** The IPv6 VTEP (flannel-v6.N), when there is one. */
export function parseVxlan6Device(input: string | unknown): VxlanDevice | undefined {
  return parseVxlanDevices(input).find(isIpv6Vtep);
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

export function parseRoutes(input: string | unknown, family: 4 | 6 = 4): KernelRoute[] {
  const out: KernelRoute[] = [];
  for (const r of jsonArray(family === 6 ? 'ip -6 -j route' : 'ip -j route', input)) {
    const dst = str(r.dst);
    if (!dst) continue;
    out.push({
      dst,
      ...(family === 6 ? { family: 6 as const } : {}),
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
    routes: [...parseRoutes(outputs.route), ...(outputs.route6 !== undefined ? parseRoutes(outputs.route6, 6) : [])],
    vxlan: parseVxlanDevice(outputs.link),
    neighbours: parseNeighbours(outputs.neigh),
    fdb: parseFdb(outputs.fdb),
    ...(parseVxlan6Device(outputs.link) ? { vxlan6: parseVxlan6Device(outputs.link), neighbours6: parseNeighbours(outputs.neigh6 ?? []), fdb6: parseFdb(outputs.fdb6 ?? []) } : {}),
    ...(outputs.netconf !== undefined ? { rpFilter: parseRpFilter(outputs.netconf) } : {}),
    ...(outputs.nft !== undefined || outputs.legacy?.length
      ? { firewall: [...(outputs.nft !== undefined ? parseNftRuleset(outputs.nft) : []), ...(outputs.legacy ?? []).flatMap((l) => parseIptablesSave(l.output, l.family, l.command))] }
      : {}),
    ...(outputs.qdisc !== undefined ? { qdiscs: parseQdiscs(outputs.qdisc) } : {}),
    ...(outputs.filters !== undefined ? { tcFilters: outputs.filters.flatMap((f) => parseTcFilters(f.output, f.device, f.direction)) } : {}),
  };
}

/** `ip -j netconf show`: rp_filter of every interface (IPv4 entries), `all` and `default` included. */
export function parseRpFilter(input: string | unknown): Record<string, 0 | 1 | 2> {
  const out: Record<string, 0 | 1 | 2> = {};
  const values: Record<string, 0 | 1 | 2> = { off: 0, strict: 1, loose: 2 };
  for (const c of jsonArray('ip -j netconf show', input)) {
    if (c.family !== 'inet') continue;
    const dev = str(c.interface);
    const v = typeof c.rp_filter === 'string' ? values[c.rp_filter] : num(c.rp_filter);
    if (dev && (v === 0 || v === 1 || v === 2)) out[dev] = v;
  }
  return out;
}

/** The reverse-path filter in force for packets arriving on `device`: the larger of `all` and the device's own. */
export function rpFilterOn(state: NodeKernelState, device: string): { value: 0 | 1 | 2; all: number; device: number } | undefined {
  const rp = state.rpFilter;
  if (!rp) return undefined;
  const all = rp.all ?? 0;
  const own = rp[device] ?? rp.default ?? 0;
  return { value: Math.max(all, own) as 0 | 1 | 2, all, device: own };
}

/** `tc -j qdisc show` */
export function parseQdiscs(input: string | unknown): TcQdisc[] {
  const out: TcQdisc[] = [];
  for (const q of jsonArray('tc -j qdisc show', input)) {
    const device = str(q.dev);
    const kind = str(q.kind);
    if (device && kind) out.push({ device, kind, root: q.root === true });
  }
  return out;
}

/** vxtrace's own clsact filters (the fallback when the kernel has no tcx): handle 0x7678 at priority 1, programs vxt_*. */
const isOwnFilter = (f: Json, options: Json): boolean => (f.pref === 1 && options.handle === '0x7678') || /^vxt_/.test(str(options.bpf_name) ?? '');

/** `tc -j filter show dev D ingress|egress`: one entry per filter (the header entries without options are skipped). */
export function parseTcFilters(input: string | unknown, device: string, direction: 'ingress' | 'egress'): TcFilter[] {
  const out: TcFilter[] = [];
  for (const f of jsonArray(`tc -j filter show dev ${device} ${direction}`, input)) {
    const options = (typeof f.options === 'object' && f.options ? f.options : undefined) as Json | undefined;
    const kind = str(f.kind);
    const pref = num(f.pref);
    if (!options || !kind || pref === undefined || isOwnFilter(f, options)) continue;
    const name = str(options.bpf_name);
    const bytecode = typeof options.bytecode === 'object' && options.bytecode ? num((options.bytecode as Json).length) : undefined;
    const text = [kind, name ?? (bytecode !== undefined ? `bytecode (${bytecode} insn${bytecode === 1 ? '' : 's'})` : ''), options['direct-action'] === true ? 'direct-action' : '']
      .filter(Boolean).join(' ');
    out.push({ device, direction, pref, kind, ...(name ? { name } : {}), text });
  }
  return out;
}

// ---- nftables (`nft -j list ruleset`): tables, chains, rules, with what vxtrace can evaluate ----

/** The statements of a rule that say what happens to a packet it matches. */
const VERDICTS = ['accept', 'drop', 'reject', 'jump', 'goto', 'return', 'continue', 'queue'] as const;

/** An nft JSON expression as text (`ip daddr`, `10.244.0.0/16`, `{ 1, 2 }`), and whether vxtrace can evaluate it. */
function nftExpr(e: unknown): { text: string; values?: string[]; key?: string } {
  // A string is a value (an interface name, a ct state), or `@name`, a named set vxtrace does not read.
  if (typeof e === 'string') return e.startsWith('@') ? { text: e } : { text: e, values: [e] };
  if (typeof e === 'number') return { text: String(e), values: [String(e)] };
  if (Array.isArray(e)) {
    // `ct state established,related`: a list of flags or values, any of which matches
    const parts = e.map(nftExpr);
    return { text: parts.map((x) => x.text).join(','), values: parts.every((x) => x.values) ? parts.flatMap((x) => x.values!) : undefined };
  }
  if (typeof e !== 'object' || e === null) return { text: String(e) };
  const o = e as Json;
  if (o.payload && typeof o.payload === 'object') {
    const p = o.payload as Json;
    const k = `${str(p.protocol) ?? (p.base ? `@${str(p.base)}` : '?')} ${str(p.field) ?? `${num(p.offset)},${num(p.len)}`}`;
    return { text: k, key: p.protocol ? k : undefined };
  }
  if (o.meta && typeof o.meta === 'object') {
    const k = `meta ${str((o.meta as Json).key) ?? '?'}`;
    return { text: k, key: k };
  }
  if (o.ct && typeof o.ct === 'object') return { text: `ct ${str((o.ct as Json).key) ?? '?'}`, key: `ct ${str((o.ct as Json).key) ?? '?'}` };
  if (o.prefix && typeof o.prefix === 'object') {
    const p = o.prefix as Json;
    const t = `${nftExpr(p.addr).text}/${num(p.len)}`;
    return { text: t, values: [t] };
  }
  if (Array.isArray(o.range)) {
    const t = `${nftExpr(o.range[0]).text}-${nftExpr(o.range[1]).text}`;
    return { text: t, values: [t] };
  }
  if (Array.isArray(o.set)) {
    const parts = o.set.map(nftExpr);
    return { text: `{ ${parts.map((x) => x.text).join(', ')} }`, values: parts.every((x) => x.values) ? parts.flatMap((x) => x.values!) : undefined };
  }
  if (o.set !== undefined) {
    const x = nftExpr(o.set);
    return { text: `{ ${x.text} }`, values: x.values };
  }
  const key = Object.keys(o)[0] ?? '?';
  return { text: key };
}

function nftRule(r: Json): NftRule {
  const parts: string[] = [];
  const matches: NftMatch[] = [];
  let opaque = false;
  let verdict: NftRule['verdict'];
  let target: string | undefined;
  for (const x of Array.isArray(r.expr) ? (r.expr as unknown[]) : []) {
    if (typeof x !== 'object' || x === null) continue;
    const stmt = x as Json;
    const name = Object.keys(stmt)[0]!;
    const v = stmt[name];
    if (name === 'match' && typeof v === 'object' && v) {
      const m = v as Json;
      const left = nftExpr(m.left);
      const right = nftExpr(m.right);
      const op = str(m.op) ?? '==';
      parts.push(`${left.text} ${op === '==' || op === 'in' ? '' : `${op} `}${right.text}`);
      if (left.key && right.values) matches.push({ key: left.key, op, values: right.values });
      else opaque = true;
    } else if (name === 'counter') {
      // Left out: counters change with every packet (the state would never be the same twice).
    } else if ((VERDICTS as readonly string[]).includes(name)) {
      verdict = name as NftRule['verdict'];
      if ((name === 'jump' || name === 'goto') && typeof v === 'object' && v) target = str((v as Json).target);
      parts.push(target ? `${name} ${target}` : name);
    } else {
      // log, limit, nat, mangle, ...: shown by name; a limit or quota makes the verdict conditional.
      parts.push(name);
      if (name === 'limit' || name === 'quota') opaque = true;
    }
  }
  const comment = str(r.comment);
  if (comment) parts.push(`comment ${JSON.stringify(comment)}`);
  return { handle: num(r.handle) ?? 0, text: parts.join(' '), ...(comment ? { comment } : {}), matches, opaque, ...(verdict ? { verdict } : {}), ...(target ? { target } : {}) };
}

/** `nft -j list ruleset` as chains with their rules (tables are named by each chain). */
export function parseNftRuleset(input: string | unknown): NftChain[] {
  let value = input;
  if (typeof input === 'string') {
    const text = input.trim();
    if (text === '') return [];
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw new UsageError(`cannot parse nft -j list ruleset output as JSON: ${(err as Error).message}`);
    }
  }
  const items = (typeof value === 'object' && value && Array.isArray((value as Json).nftables) ? (value as Json).nftables : []) as unknown[];
  const chains = new Map<string, NftChain>();
  const id = (family: unknown, table: unknown, name: unknown) => `${String(family)} ${String(table)} ${String(name)}`;
  for (const item of items) {
    if (typeof item !== 'object' || item === null) continue;
    const o = item as Json;
    if (o.chain && typeof o.chain === 'object') {
      const c = o.chain as Json;
      const devices = strs(c.dev);
      chains.set(id(c.family, c.table, c.name), {
        family: str(c.family) ?? '?',
        table: str(c.table) ?? '?',
        name: str(c.name) ?? '?',
        ...(str(c.hook) ? { hook: str(c.hook), type: str(c.type), priority: num(c.prio) ?? 0, policy: str(c.policy) ?? 'accept' } : {}),
        ...(devices.length ? { devices } : {}),
        rules: [],
      });
    } else if (o.rule && typeof o.rule === 'object') {
      const r = o.rule as Json;
      chains.get(id(r.family, r.table, r.chain))?.rules.push(nftRule(r));
    }
  }
  return [...chains.values()];
}

/** Longest-prefix match of `ip` in the main routing table (unicast routes only): the route the kernel would pick. */
export function lookupRoute(routes: readonly KernelRoute[], ip: string): KernelRoute | undefined {
  let best: KernelRoute | undefined;
  let bestLen = -1;
  for (const r of routes) {
    if (r.type !== 'unicast') continue;
    const c = parseCidr(r.dst, r.family ?? 4);
    if (!c || !cidrContains(c, ip)) continue;
    if (c.prefixLength > bestLen) {
      best = r;
      bestLen = c.prefixLength;
    }
  }
  return best;
}
