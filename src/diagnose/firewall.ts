// Which firewall rule (or chain policy) drops a packet: the node's ruleset (read with `nft -j list
// ruleset`, src/cluster/kernel.ts, and the legacy iptables' with iptables-legacy-save,
// src/cluster/iptables.ts) walked the way the kernel walks it for the hooks the packet
// passes, evaluating the matches vxtrace can read (addresses, protocol, ports, interfaces) and
// treating the others (ct state, named sets, marks) as unknown. Pure.
import type { NftChain, NftMatch, NftRule } from '../cluster/kernel.js';
import { addressInPrefix } from '../net/address.js';
import type { PacketTuple } from '../datapath/hop.js';

/** What the firewall sees of a packet at one hook. */
export interface FirewallPacket extends PacketTuple {
  /** Input and output interface, where known at that hook. */
  iif?: string;
  oif?: string;
}

/** What drops it: a rule (or a chain's policy, `rule` undefined), and whether every match of it could be evaluated. */
export interface FirewallDrop {
  chain: NftChain;
  rule?: NftRule;
  /** The base chain the walk started from (the same as `chain` unless it jumped). */
  base: NftChain;
  hook: string;
  /** false: some condition on the way (ct state, a named set, ...) could not be evaluated. */
  certain: boolean;
}

const PROTOCOLS: Record<string, number> = { icmp: 1, tcp: 6, udp: 17, icmpv6: 58, 'ipv6-icmp': 58, sctp: 132 };

type Truth = boolean | undefined;

function matchValue(key: string, value: string, p: FirewallPacket): Truth {
  const [proto, field] = key.split(' ') as [string, string];
  const num = (v: number): Truth => {
    const r = /^(\d+)-(\d+)$/.exec(value);
    if (r) return v >= Number(r[1]) && v <= Number(r[2]);
    return /^\d+$/.test(value) ? v === Number(value) : undefined;
  };
  const addr = (ip: string): Truth => {
    const r = /^(.+)-(.+)$/.exec(value);
    if (r && !value.includes('/')) return undefined; // address ranges: not evaluated
    return addressInPrefix(ip, value);
  };
  const iface = (name: string | undefined): Truth => {
    if (name === undefined) return undefined;
    return value.endsWith('*') ? name.startsWith(value.slice(0, -1)) : name === value;
  };
  switch (proto) {
    case 'ip':
    case 'ip6':
      if (p.family !== (proto === 'ip' ? 4 : 6)) return false;
      if (field === 'saddr') return addr(p.src);
      if (field === 'daddr') return addr(p.dst);
      if (field === 'protocol' || field === 'nexthdr') return (PROTOCOLS[value] ?? Number(value)) === p.protocol;
      return undefined;
    case 'udp':
    case 'tcp':
    case 'sctp':
    case 'th':
      if (proto !== 'th' && PROTOCOLS[proto] !== p.protocol) return false;
      if (proto === 'th' && ![6, 17, 132].includes(p.protocol)) return false;
      if (field === 'dport') return num(p.dstPort);
      if (field === 'sport') return num(p.srcPort);
      return undefined;
    case 'meta':
      if (field === 'l4proto') return (PROTOCOLS[value] ?? Number(value)) === p.protocol;
      if (field === 'nfproto') return value === (p.family === 4 ? 'ipv4' : 'ipv6');
      if (field === 'iifname' || field === 'iif') return iface(p.iif);
      if (field === 'oifname' || field === 'oif') return iface(p.oif);
      return undefined;
    default:
      return undefined;
  }
}

function matchHolds(m: NftMatch, p: FirewallPacket): Truth {
  const each = m.values.map((v) => matchValue(m.key, v, p));
  const any: Truth = each.some((t) => t === true) ? true : each.every((t) => t === false) ? false : undefined;
  if (m.op === '==' || m.op === 'in') return any;
  if (m.op === '!=') return any === undefined ? undefined : !any;
  return undefined; // <, >, ... on ports: rare in front of a VXLAN overlay; not evaluated
}

function ruleHolds(r: NftRule, p: FirewallPacket): Truth {
  let t: Truth = r.opaque ? undefined : true;
  for (const m of r.matches) {
    const h = matchHolds(m, p);
    if (h === false) return false;
    if (h === undefined) t = undefined;
  }
  return t;
}

/** A drop rule whose conditions could not be evaluated (ct state invalid, a named set): it may have taken the packet. */
type Maybe = { chain: NftChain; rule: NftRule };
type Walk =
  | { verdict: 'accept' | 'drop'; chain: NftChain; rule?: NftRule; certain: boolean }
  | { verdict: 'return' | 'end'; certain: boolean; maybe?: Maybe };

function walk(chains: readonly NftChain[], chain: NftChain, p: FirewallPacket, depth: number): Walk {
  let certain = true;
  // The first drop the packet may have met: it stands unless a later rule (or the policy) decides.
  let maybe: Maybe | undefined;
  const ended = (verdict: 'return' | 'end'): Walk => (maybe ? { verdict, certain: false, maybe } : { verdict, certain });
  for (const r of chain.rules) {
    const holds = ruleHolds(r, p);
    if (holds === false || !r.verdict || r.verdict === 'continue') continue;
    if (r.verdict === 'drop' || r.verdict === 'reject') {
      if (holds) return { verdict: 'drop', chain, rule: r, certain: certain && !maybe };
      // A drop whose conditions are unknown (kube-proxy's `ct state invalid drop`, a named set):
      // the packet may have met it; remember it, and keep walking (here and in the chains that
      // jumped here) to see what else would decide: a drop further on explains the packet better.
      maybe ??= { chain, rule: r };
      certain = false;
      continue;
    }
    if (r.verdict === 'accept' || r.verdict === 'queue') {
      if (holds) return maybe ? { verdict: 'drop', ...maybe, certain: false } : { verdict: 'accept', chain, rule: r, certain };
      certain = false;
      continue;
    }
    if (r.verdict === 'return') {
      if (holds) return ended('return');
      certain = false;
      continue;
    }
    // jump / goto
    // (a legacy chain jumps within the legacy tables: iptables-nft's `table ip filter` is another one)
    const target = chains.find((c) => c.family === chain.family && c.table === chain.table && c.name === r.target && c.legacy === chain.legacy);
    if (!target || depth > 16) {
      certain = false;
      continue;
    }
    const sub = walk(chains, target, p, depth + 1);
    if (sub.verdict === 'accept' || sub.verdict === 'drop') {
      if (holds) {
        if (sub.verdict === 'accept' && maybe) return { verdict: 'drop', ...maybe, certain: false };
        return { ...sub, certain: certain && sub.certain && !maybe };
      }
      if (sub.verdict === 'drop') {
        maybe ??= { chain: sub.chain, rule: sub.rule! };
        if (!sub.rule) return { ...sub, certain: false };
      }
      certain = false;
      continue;
    }
    if ('maybe' in sub && sub.maybe) maybe ??= sub.maybe;
    if (r.verdict === 'goto' && holds) return ended('end');
    if (!sub.certain) certain = false;
  }
  return ended('end');
}

const appliesTo = (c: NftChain, p: FirewallPacket, hook: string, device: string | undefined): boolean => {
  if (c.hook !== hook) return false;
  if (c.family === 'inet') return true;
  if (c.family === 'ip') return p.family === 4;
  if (c.family === 'ip6') return p.family === 6;
  if (c.family === 'netdev') return device !== undefined && (c.devices ?? []).includes(device);
  return false;
};

/**
 * The rule or policy that drops `p` at the first of `hooks` (in the order the packet meets them)
 * where something does: base chains by priority, as the kernel runs them (an accept ends one base
 * chain, a drop ends the packet). undefined: nothing in the ruleset drops it, as far as vxtrace can tell.
 */
export function whatDrops(chains: readonly NftChain[], p: FirewallPacket, hooks: readonly string[], device?: string): FirewallDrop | undefined {
  let maybe: FirewallDrop | undefined;
  for (const hook of hooks) {
    const base = chains.filter((c) => appliesTo(c, p, hook, device)).sort((a, b) => (a.priority ?? 0) - (b.priority ?? 0));
    for (const b of base) {
      const w = walk(chains, b, p, 0);
      if (w.verdict === 'drop') {
        const d: FirewallDrop = { chain: w.chain, rule: w.rule, base: b, hook, certain: w.certain };
        if (w.certain) return d;
        maybe ??= d;
      } else if (w.verdict !== 'accept' && b.policy === 'drop') {
        // The policy takes what no rule decided (a drop the packet may have met before it aside).
        const d: FirewallDrop = { chain: b, base: b, hook, certain: w.certain };
        if (w.certain) return d;
        maybe ??= d;
      } else if (w.verdict !== 'accept' && 'maybe' in w && w.maybe) {
        maybe ??= { chain: w.maybe.chain, rule: w.maybe.rule, base: b, hook, certain: false };
      }
    }
  }
  return maybe;
}

/** `chain input of table inet filter`; a legacy chain: `chain FORWARD of iptables-legacy table filter`. */
export function chainName(c: NftChain): string {
  return c.legacy ? `chain ${c.name} of ${c.legacy} table ${c.table}` : `chain ${c.name} of table ${c.family} ${c.table}`;
}

/** Tables iptables-nft made (`table ip filter` with upper-case chains): fixes are given in iptables syntax too. */
export const isIptablesNft = (c: NftChain): boolean => !c.legacy && ['filter', 'raw', 'mangle', 'nat', 'security'].includes(c.table) && /^[A-Z][A-Z0-9-]*$/.test(c.name);
