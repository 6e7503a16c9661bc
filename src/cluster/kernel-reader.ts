// Reading a node's kernel state with iproute2's JSON output (it speaks rtnetlink for us), inside the
// node's network namespace (lab nodes, `vxtrace.io/netns`) or in the agent's own; and keeping it
// current with monitor subprocesses (`ip monitor` for links, addresses, routes, neighbours and
// netconf (rp_filter), `bridge monitor fdb`, `tc monitor` for qdiscs and filters, `nft monitor` for
// the ruleset) that trigger a debounced re-read.
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { networkInterfaces, hostname } from 'node:os';
import { EnvironmentError, VxtraceError } from '../errors.js';
import { CommandError, execAsync, onPath } from '../util/exec.js';
import { parseKernelState, parseQdiscs, parseVxlan6Device, parseVxlanDevice, type NodeKernelState } from './kernel.js';
import type { ClusterObjects } from './list.js';
import { VXTRACE_NETNS, type V1Node } from './k8s.js';

const nsArgs = (netns: string | undefined): string[] => (netns ? ['-n', netns] : []);

async function run(netns: string | undefined, what: string, argv: string[]): Promise<string> {
  try {
    return (await execAsync(argv, { timeoutMs: 15_000 })).stdout;
  } catch (err) {
    if (err instanceof CommandError) {
      const msg = err.result.stderr.trim() || err.result.stdout.trim();
      if (netns && /No such file or directory|Cannot open network namespace|does not exist/i.test(msg)) {
        throw new EnvironmentError(`network namespace ${netns} does not exist: is the lab up? (\`vxtrace lab status\`)`);
      }
      if (/Operation not permitted|Permission denied/i.test(msg)) {
        throw new EnvironmentError(`reading ${what}${netns ? ` in netns ${netns}` : ''} needs CAP_NET_ADMIN and CAP_SYS_ADMIN: run as root (sudo), or grant them`);
      }
      throw new EnvironmentError(`cannot read ${what}${netns ? ` in netns ${netns}` : ''}: ${msg.split('\n')[0]}`);
    }
    throw err;
  }
}

/**
 * Read one node's kernel state: `ip -j -d link`, `ip -j addr`, `ip -j route`, the VXLAN device's
 * neighbours and FDB, and what explains drops there: `ip -j netconf` (rp_filter), `nft -j list
 * ruleset` (when nft is installed), `tc -j qdisc` and the tc filters of devices with a clsact or
 * ingress qdisc.
 */
export async function readKernelState(netns?: string): Promise<NodeKernelState> {
  const n = nsArgs(netns);
  // nft has no namespace option: it runs in the node's namespace through `ip netns exec`.
  const inNs = (argv: string[]): string[] => (netns ? ['ip', 'netns', 'exec', netns, ...argv] : argv);
  const [link, addr, route, netconf, qdisc, nft, legacy] = await Promise.all([
    run(netns, 'links', ['ip', ...n, '-j', '-d', 'link', 'show']),
    run(netns, 'addresses', ['ip', ...n, '-j', 'addr', 'show']),
    run(netns, 'routes', ['ip', ...n, '-j', 'route', 'show']),
    run(netns, 'netconf', ['ip', ...n, '-j', 'netconf', 'show']).catch(() => undefined),
    onPath('tc') ? run(netns, 'qdiscs', ['tc', ...n, '-j', 'qdisc', 'show']).catch(() => undefined) : Promise.resolve(undefined),
    // Without nft (or iptables-legacy only), the firewall is not known: drops are explained without it.
    onPath('nft') ? run(netns, 'the nftables ruleset', inNs(['nft', '-j', 'list', 'ruleset'])).catch(() => undefined) : Promise.resolve(undefined),
    readLegacyFirewall(netns, inNs),
  ]);
  const vx = parseVxlanDevice(link);
  const vx6 = parseVxlan6Device(link);
  let neigh = '[]';
  let fdb = '[]';
  let neigh6 = '[]';
  let fdb6 = '[]';
  const clsact = qdisc === undefined ? [] : [...new Set(parseQdiscs(qdisc).filter((q) => q.kind === 'clsact' || q.kind === 'ingress').map((q) => q.device))];
  const filterReads = clsact.flatMap((device) => (['ingress', 'egress'] as const).map(async (direction) => ({
    device, direction, output: await run(netns, `tc filters of ${device}`, ['tc', ...n, '-j', 'filter', 'show', 'dev', device, direction]).catch(() => '[]'),
  })));
  // IPv6 routes only where the node has a global IPv6 address (a node without IPv6 has none worth reading).
  const hasIpv6 = /"family":"inet6"[^}]*"scope":"global"/.test(typeof addr === 'string' ? addr : '');
  const [filters, route6] = await Promise.all([
    Promise.all(filterReads),
    hasIpv6 ? run(netns, 'IPv6 routes', ['ip', ...n, '-6', '-j', 'route', 'show']) : Promise.resolve(undefined),
    vx ? Promise.all([
      run(netns, `neighbours of ${vx.name}`, ['ip', ...n, '-j', 'neigh', 'show', 'dev', vx.name]),
      run(netns, `FDB of ${vx.name}`, ['bridge', ...n, '-j', 'fdb', 'show', 'dev', vx.name]),
    ]).then(([a, b]) => { neigh = a; fdb = b; }) : Promise.resolve(),
    vx6 ? Promise.all([
      run(netns, `neighbours of ${vx6.name}`, ['ip', ...n, '-j', 'neigh', 'show', 'dev', vx6.name]),
      run(netns, `FDB of ${vx6.name}`, ['bridge', ...n, '-j', 'fdb', 'show', 'dev', vx6.name]),
    ]).then(([a, b]) => { neigh6 = a; fdb6 = b; }) : Promise.resolve(),
  ]);
  const ruleset = nft === undefined ? undefined : parsedOrUndefined(nft);
  try {
    return parseKernelState({ link, addr, route, route6, neigh, fdb, neigh6, fdb6, netconf, nft: ruleset, legacy, qdisc, ...(qdisc !== undefined ? { filters } : {}) });
  } catch (err) {
    // Not the user's input: the machine's iproute2 printed something that is not its JSON.
    throw new EnvironmentError(`${(err as Error).message}${netns ? ` (netns ${netns})` : ''}: vxtrace needs iproute2 with JSON output (ip -j, iproute2 4.14 or later)`);
  }
}

/**
 * The legacy (x_tables) firewall's rules, where its tools are installed: `iptables-legacy-save` and
 * `ip6tables-legacy-save` (Debian, Ubuntu, RHEL 8 and later name the legacy tools so), or a plain
 * `iptables-save` that is not the nf_tables one (older systems, where iptables is legacy only).
 * A tool that fails is left out: the rules it would show stay unknown, as without it.
 */
async function readLegacyFirewall(netns: string | undefined, inNs: (argv: string[]) => string[]): Promise<{ family: 4 | 6; command: string; output: string }[]> {
  const tools = await legacyTools();
  const out = await Promise.all(tools.map(async (t) => {
    const output = await run(netns, `the ${t.command} rules`, inNs([t.save])).catch(() => undefined);
    return output === undefined ? undefined : { family: t.family, command: t.command, output };
  }));
  return out.filter((x): x is { family: 4 | 6; command: string; output: string } => x !== undefined);
}

let legacyToolsFound: Promise<{ family: 4 | 6; save: string; command: string }[]> | undefined;
function legacyTools(): Promise<{ family: 4 | 6; save: string; command: string }[]> {
  legacyToolsFound ??= (async () => {
    const found: { family: 4 | 6; save: string; command: string }[] = [];
    for (const [family, base] of [[4, 'iptables'], [6, 'ip6tables']] as const) {
      if (onPath(`${base}-legacy-save`)) {
        found.push({ family, save: `${base}-legacy-save`, command: `${base}-legacy` });
      } else if (onPath(`${base}-save`)) {
        // iptables 1.8 says `(nf_tables)` or `(legacy)` in its version; 1.4 and older are legacy.
        const v = await execAsync([`${base}-save`, '--version'], { timeoutMs: 5000 }).then((r) => r.stdout + r.stderr, () => 'nf_tables');
        if (!/nf_tables/.test(v)) found.push({ family, save: `${base}-save`, command: base });
      }
    }
    return found;
  })();
  return legacyToolsFound;
}

/** nft's JSON, or undefined when it printed something else (the firewall is then unknown, not an error). */
function parsedOrUndefined(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Which node's kernel state lives where: its `vxtrace.io/netns`, or this machine's own namespace for the node that is this machine. */
export function kernelSourceOf(node: V1Node, self: { hostname: string; addresses: string[] }): { netns?: string } | undefined {
  const netns = node.metadata.annotations?.[VXTRACE_NETNS];
  if (netns) return { netns };
  const isSelf = node.metadata.name === self.hostname || (node.status.addresses ?? []).some((a) => a.type === 'InternalIP' && self.addresses.includes(a.address));
  return isSelf ? {} : undefined;
}

export function thisMachine(): { hostname: string; addresses: string[] } {
  const addrs = Object.values(networkInterfaces()).flatMap((l) => (l ?? []).map((a) => a.address));
  return { hostname: hostname(), addresses: addrs };
}

/** Read the kernel state of every node this machine can see (lab nodes by netns; a real node: only itself). */
export async function readKernelStates(objects: ClusterObjects, self = thisMachine()): Promise<Map<string, NodeKernelState>> {
  const out = new Map<string, NodeKernelState>();
  await Promise.all(
    objects.nodes.map(async (node) => {
      const src = kernelSourceOf(node, self);
      if (!src) return;
      out.set(node.metadata.name, await readKernelState(src.netns));
    }),
  );
  return out;
}

/**
 * The monitors whose output means "something a diagnosis reads may have changed": every part of
 * NodeKernelState has one. (`ip monitor netconf` reports rp_filter changes; tc and nft are watched
 * where installed, as readKernelState reads them only then.)
 */
export function monitors(netns: string | undefined): string[][] {
  const n = nsArgs(netns);
  const out = [['ip', ...n, 'monitor', 'link', 'address', 'route', 'neigh', 'netconf'], ['bridge', ...n, 'monitor', 'fdb']];
  if (onPath('tc')) out.push(['tc', ...n, 'monitor']);
  // nft has no namespace option: it runs in the node's namespace through `ip netns exec`.
  if (onPath('nft')) out.push(netns ? ['ip', 'netns', 'exec', netns, 'nft', 'monitor'] : ['nft', 'monitor']);
  return out;
}

export interface KernelWatcherOptions {
  netns?: string;
  /** Quiet time after the last change notification before re-reading. Default 100 ms. */
  debounceMs?: number;
}

/**
 * Keeps one node's kernel state current. Emits 'change' (state) after every re-read that differs,
 * and 'error' (VxtraceError) if a re-read or a monitor fails. `start()` resolves with the first read
 * once the monitors run, so nothing that changes after it is missed.
 */
export class KernelWatcher extends EventEmitter {
  private children: ChildProcess[] = [];
  private timer: NodeJS.Timeout | undefined;
  private last = '';
  private reading = false;
  private again = false;
  private stopped = false;
  state: NodeKernelState | undefined;
  /** Re-reads done (for tests and metrics). */
  reads = 0;

  constructor(private readonly opts: KernelWatcherOptions = {}) {
    super();
  }

  async start(): Promise<NodeKernelState> {
    for (const argv of monitors(this.opts.netns)) {
      const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
      this.children.push(child);
      child.stdout!.on('data', () => this.poke());
      let err = '';
      child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
      child.on('error', (e) => this.fail(new EnvironmentError(`cannot run ${argv[0]} monitor: ${e.message}`)));
      child.on('exit', (code) => {
        if (!this.stopped) this.fail(new EnvironmentError(`\`${argv.join(' ')}\` exited (${code ?? 'signal'}): ${err.trim().split('\n')[0] ?? ''}`));
      });
    }
    // The monitors subscribe at once; give them a moment to bind before the first read.
    await new Promise((r) => setTimeout(r, 50));
    try {
      this.state = await readKernelState(this.opts.netns);
    } catch (err) {
      this.stop();
      throw err;
    }
    this.last = JSON.stringify(this.state);
    this.reads++;
    return this.state;
  }

  private fail(err: VxtraceError): void {
    if (this.stopped) return;
    if (this.listenerCount('error')) this.emit('error', err);
  }

  private poke(): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.reread(), this.opts.debounceMs ?? 100);
  }

  private async reread(): Promise<void> {
    if (this.reading) {
      this.again = true;
      return;
    }
    this.reading = true;
    try {
      do {
        this.again = false;
        const s = await readKernelState(this.opts.netns);
        this.reads++;
        const text = JSON.stringify(s);
        if (text !== this.last && !this.stopped) {
          this.last = text;
          this.state = s;
          this.emit('change', s);
        }
      } while (this.again && !this.stopped);
    } catch (err) {
      this.fail(err instanceof VxtraceError ? err : new EnvironmentError(`re-reading kernel state: ${(err as Error).message}`));
    } finally {
      this.reading = false;
    }
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    for (const c of this.children) if (c.exitCode === null && c.pid !== undefined) c.kill('SIGTERM');
    this.children = [];
  }
}
