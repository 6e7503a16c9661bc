// The legacy (x_tables) firewall: `iptables-legacy-save` / `ip6tables-legacy-save` output read as
// the chains the nftables reader gives (NftChain), so that src/diagnose/firewall.ts walks both the
// same way. A node whose kube-proxy, Docker or flanneld still use iptables-legacy keeps its rules
// there, where `nft list ruleset` does not see them (Docker's FORWARD policy DROP is the classic
// one). Each chain says which command manages it (`legacy`): fixes are given with it. Pure.
import type { NftChain, NftMatch, NftRule } from './kernel.js';

/** Where each table's built-in chains hook, and at which priority the kernel runs them (NF_IP_PRI_*). */
const TABLES: Record<string, { priority: number; type: string }> = {
  raw: { priority: -300, type: 'filter' },
  mangle: { priority: -150, type: 'filter' },
  nat: { priority: -100, type: 'nat' },
  filter: { priority: 0, type: 'filter' },
  security: { priority: 50, type: 'filter' },
};
const BUILTIN: Record<string, string> = { PREROUTING: 'prerouting', INPUT: 'input', FORWARD: 'forward', OUTPUT: 'output', POSTROUTING: 'postrouting' };

/** Split a rule line as iptables-save quotes it: "a b" is one word, \" an escaped quote. */
function words(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  let any = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (ch === '\\' && i + 1 < line.length) {
      cur += line[++i];
      any = true;
    } else if (ch === '"') {
      quoted = !quoted;
      any = true;
    } else if (ch === ' ' && !quoted) {
      if (any) out.push(cur);
      cur = '';
      any = false;
    } else {
      cur += ch;
      any = true;
    }
  }
  if (any) out.push(cur);
  return out;
}

const VERDICT: Record<string, NftRule['verdict']> = { ACCEPT: 'accept', DROP: 'drop', REJECT: 'reject', RETURN: 'return', QUEUE: 'queue', NFQUEUE: 'queue' };

/** `10.0.0.1/32` is one address, as nft prints it. */
const address = (v: string, family: 4 | 6): string => (v.endsWith(family === 4 ? '/32' : '/128') ? v.slice(0, v.lastIndexOf('/')) : v);
/** iptables' `eth+` is nft's `eth*`. */
const iface = (v: string): string => (v.endsWith('+') ? `${v.slice(0, -1)}*` : v);

/** One `-A CHAIN ...` line: its matches (what vxtrace can evaluate; anything else makes it opaque) and verdict. */
function rule(spec: string[], family: 4 | 6, handle: number, text: string, isChain: (name: string) => boolean): NftRule {
  const matches: NftMatch[] = [];
  let opaque = false;
  let verdict: NftRule['verdict'];
  let target: string | undefined;
  let comment: string | undefined;
  let proto: string | undefined;
  const ip = family === 4 ? 'ip' : 'ip6';
  for (let i = 2; i < spec.length; i++) {
    let negate = false;
    if (spec[i] === '!') {
      negate = true;
      i++;
    }
    const opt = spec[i]!;
    const arg = spec[i + 1];
    const add = (key: string, values: string[]) => matches.push({ key, op: negate ? '!=' : '==', values });
    switch (opt) {
      case '-s':
      case '--source':
        add(`${ip} saddr`, (arg ?? '').split(',').map((v) => address(v, family)));
        i++;
        break;
      case '-d':
      case '--destination':
        add(`${ip} daddr`, (arg ?? '').split(',').map((v) => address(v, family)));
        i++;
        break;
      case '-p':
      case '--protocol':
        proto = arg;
        // `-p all` matches every protocol: no condition
        if (arg !== 'all' && arg !== '0') add('meta l4proto', [arg ?? '']);
        i++;
        break;
      case '-i':
      case '--in-interface':
        add('meta iifname', [iface(arg ?? '')]);
        i++;
        break;
      case '-o':
      case '--out-interface':
        add('meta oifname', [iface(arg ?? '')]);
        i++;
        break;
      case '--dport':
      case '--destination-port':
      case '--sport':
      case '--source-port':
      case '--dports':
      case '--destination-ports':
      case '--sports':
      case '--source-ports': {
        const field = opt.startsWith('--d') ? 'dport' : 'sport';
        const key = proto === 'tcp' || proto === 'udp' || proto === 'sctp' ? `${proto} ${field}` : `th ${field}`;
        add(key, (arg ?? '').split(',').map((v) => v.replace(':', '-')));
        i++;
        break;
      }
      case '-m':
      case '--match':
        // the protocol's own match module (`-m udp`) and multiport, comment add nothing themselves
        if (!['tcp', 'udp', 'sctp', 'multiport', 'comment'].includes(arg ?? '')) opaque = true;
        i++;
        break;
      case '--comment':
        comment = arg;
        i++;
        break;
      case '-j':
      case '--jump':
      case '-g':
      case '--goto': {
        const v = VERDICT[arg ?? ''];
        if (v) verdict = v;
        else if (arg && isChain(arg)) {
          verdict = opt === '-g' || opt === '--goto' ? 'goto' : 'jump';
          target = arg;
        }
        // else a target extension (LOG, MARK, MASQUERADE, ...): the packet goes on to the next rule
        i++;
        // a target's own options (--reject-with, --log-prefix ...) follow it: not conditions
        i = spec.length;
        break;
      }
      default:
        // a match module's option (--ctstate, --mark, --match-set ...): not evaluated
        opaque = true;
        if (arg !== undefined && !arg.startsWith('-')) i++;
    }
  }
  return { handle, text, ...(comment !== undefined ? { comment } : {}), matches, opaque, ...(verdict ? { verdict } : {}), ...(target ? { target } : {}) };
}

/**
 * `iptables-legacy-save` (family 4) or `ip6tables-legacy-save` (6) output as chains. `command`:
 * the tool that changes them (`iptables-legacy`), named in fixes. Tables and chains it does not
 * know are kept without a hook (jump targets only). Lines it cannot read are skipped.
 */
export function parseIptablesSave(text: string, family: 4 | 6, command: string): NftChain[] {
  const chains = new Map<string, NftChain>();
  const nftFamily = family === 4 ? 'ip' : 'ip6';
  let table: string | undefined;
  let handle = 0;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    if (line.startsWith('*')) {
      table = line.slice(1);
      continue;
    }
    if (line === 'COMMIT' || !table) continue;
    if (line.startsWith(':')) {
      const [name, policy] = line.slice(1).split(/\s+/);
      if (!name) continue;
      const t = TABLES[table];
      const hook = BUILTIN[name];
      const chain: NftChain = { family: nftFamily, table, name, rules: [], legacy: command };
      if (t && hook && policy && policy !== '-') Object.assign(chain, { hook, type: t.type, priority: t.priority, policy: policy.toLowerCase() });
      chains.set(`${table}\0${name}`, chain);
      continue;
    }
    const spec = words(line);
    if (spec[0] !== '-A' || !spec[1]) continue;
    const chain = chains.get(`${table}\0${spec[1]}`);
    if (!chain) continue;
    const t = table;
    chain.rules.push(rule(spec, family, ++handle, line, (name) => chains.has(`${t}\0${name}`)));
  }
  return [...chains.values()];
}

/** The command that deletes a rule read from iptables-save: `iptables-legacy -t filter -D FORWARD -p udp ...`. */
export function legacyDeleteCommand(chain: NftChain, r: NftRule): string {
  const spec = r.text.replace(/^-A\s+\S+\s*/, '');
  return `${chain.legacy} ${chain.table === 'filter' ? '' : `-t ${chain.table} `}-D ${chain.name} ${spec}`;
}
