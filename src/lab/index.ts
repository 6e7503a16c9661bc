// `vxtrace lab`: build, inspect and remove the embedded flannel VXLAN cluster.
// Every address lives only inside namespaces the lab creates; nothing is routed from the root
// namespace into them. All names carry the prefix `vxt-<name>-`, so `labDown` can remove
// everything a lab made by name alone, also after a crash.
import { mkdirSync, rmSync, writeFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { EnvironmentError, UsageError } from '../errors.js';
import { requirePrivileges } from '../util/privileges.js';
import { execSync, onPath } from '../util/exec.js';
import { LAB_STATE_ROOT, listLabs, listNetns, readLabStateJson } from '../cluster/labs.js';
import { applyPlanFaults, describeFaults, nftFaults, peerEntries, NFT_TABLE } from './faults.js';
import { labClusterList } from './cluster.js';
import {
  DEFAULT_LAB_NAME, FLANNEL_MTU, NAT_GATEWAY, NAT_IP, UNDERLAY_CIDR, planLab, prefixOf, validateOptions, type LabPlan,
} from './plan.js';
import type { FaultName, LabOptions, LabPod, LabState } from './types.js';

export { DEFAULT_LAB_NAME } from './plan.js';
export { LAB_STATE_ROOT, listLabs, listNetns } from '../cluster/labs.js';
export * from './types.js';

const stateDir = (name: string) => join(LAB_STATE_ROOT, name);

const REQUIRED_TOOLS: [string, string][] = [['ip', 'iproute2'], ['bridge', 'iproute2'], ['nft', 'nftables'], ['ethtool', 'ethtool'], ['sysctl', 'procps']];

function checkTools(): void {
  for (const [tool, pkg] of REQUIRED_TOOLS) {
    if (!onPath(tool)) throw new EnvironmentError(`${tool} is not installed (Debian package ${pkg}): run \`npm run setup\` as root, or apt-get install ${pkg}`);
  }
}

/** Run `ip -batch` inside a namespace (the root namespace when netns is undefined). */
function ipBatch(netns: string | undefined, lines: string[]): void {
  if (!lines.length) return;
  const argv = netns ? ['ip', '-n', netns, '-batch', '-'] : ['ip', '-batch', '-'];
  execSync(argv, { input: lines.join('\n') + '\n' });
}
function sysctl(netns: string, settings: string[]): void {
  execSync(['ip', 'netns', 'exec', netns, 'sysctl', '-qw', ...settings]);
}

export function readLabState(name: string = DEFAULT_LAB_NAME): LabState | undefined {
  return readLabStateJson(name) as LabState | undefined;
}

/** The lab's state, or a clear error saying how to start it. */
export function requireLab(name: string = DEFAULT_LAB_NAME): LabState {
  const s = readLabState(name);
  if (!s) {
    const others = listLabs().filter((n) => n !== name);
    throw new EnvironmentError(
      `no lab named '${name}' is up: start one with \`vxtrace lab up${name === DEFAULT_LAB_NAME ? '' : ` --name ${name}`}\`` +
        (others.length ? ` (labs that are up: ${others.join(', ')})` : ''),
    );
  }
  return s;
}

function writeAtomically(file: string, text: string): void {
  writeFileSync(`${file}.tmp`, text);
  renameSync(`${file}.tmp`, file);
}

export interface LabUpProgress {
  (message: string): void;
}

/**
 * Build a lab. Refuses if a lab of that name exists. On any failure removes what it made and
 * rethrows: no half-built lab is left behind.
 */
export async function labUp(opts: LabOptions, progress: LabUpProgress = () => {}): Promise<LabState> {
  validateOptions(opts);
  requirePrivileges('vxtrace lab up', 'lab');
  checkTools();
  const plan = planLab(opts);
  applyPlanFaults(plan, opts.faults);

  // Claim the name atomically: mkdir fails if another `lab up` has it.
  mkdirSync(LAB_STATE_ROOT, { recursive: true });
  const leftovers = listNetns().filter((n) => n.startsWith(plan.prefix));
  try {
    mkdirSync(stateDir(opts.name));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new UsageError(`a lab named '${opts.name}' is already up: use it, take it down with \`vxtrace lab down${opts.name === DEFAULT_LAB_NAME ? '' : ` --name ${opts.name}`}\`, or pick another --name`);
    }
    throw new EnvironmentError(`cannot create ${stateDir(opts.name)}: ${(err as Error).message}`);
  }
  if (leftovers.length) {
    rmSync(stateDir(opts.name), { recursive: true, force: true });
    throw new UsageError(`namespaces of a lab named '${opts.name}' are still there (${leftovers[0]}, ...): remove them with \`vxtrace lab down --name ${opts.name}\``);
  }

  try {
    const createdAt = new Date().toISOString();
    writeAtomically(join(stateDir(opts.name), 'building'), createdAt);
    progress(`creating ${plan.nodes.length} nodes and ${plan.pods.length} pods in network namespaces ${plan.prefix}*`);
    buildNamespaces(plan);
    buildUnderlay(plan);
    for (const node of plan.nodes) buildNode(plan, node);
    const pods = buildPods(plan);
    for (const node of plan.nodes) programFlannel(plan, node, opts.faults);
    const nft = nftFaults(plan, opts.faults);
    for (const f of nft) applyNftFault(plan, f);
    const faults = describeFaults(plan, opts.faults);
    for (const f of faults) progress(`fault ${f.fault} on ${f.node === '*' ? 'every node' : f.node}: ${f.detail}`);

    const state: LabState = {
      name: opts.name,
      prefix: plan.prefix,
      createdAt,
      underlayCidr: UNDERLAY_CIDR,
      underlayNetns: plan.underlayNetns,
      nodes: plan.nodes,
      pods,
      faults,
      clusterFile: join(stateDir(opts.name), 'cluster.json'),
    };
    writeAtomically(state.clusterFile, JSON.stringify(labClusterList(opts.name, plan.nodes, pods, createdAt), null, 2) + '\n');
    writeAtomically(join(stateDir(opts.name), 'state.json'), JSON.stringify(state, null, 2) + '\n');
    rmSync(join(stateDir(opts.name), 'building'), { force: true });
    return state;
  } catch (err) {
    await labDown(opts.name).catch(() => {});
    throw err;
  }
}

function buildNamespaces(plan: LabPlan): void {
  const all = [plan.underlayNetns, ...plan.nodes.flatMap((n) => [n.netns, n.natNetns]), ...plan.pods.map((p) => p.netns)];
  for (const ns of all) execSync(['ip', 'netns', 'add', ns]);
  for (const ns of all) {
    ipBatch(ns, ['link set lo up']);
    // IPv4 single stack, as flannel's default; no IPv6 link-local chatter in traces.
    sysctl(ns, ['net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
  }
}

/** The underlay switch: a bridge every node's eth1 joins (like a host-only network). */
function buildUnderlay(plan: LabPlan): void {
  const lines = ['link add br0 type bridge', 'link set br0 up'];
  ipBatch(plan.underlayNetns, lines);
  for (const [i, node] of plan.nodes.entries()) {
    ipBatch(node.netns, [`link add eth1 type veth peer name n${i + 1} netns ${plan.underlayNetns}`]);
    ipBatch(plan.underlayNetns, [`link set n${i + 1} master br0`, `link set n${i + 1} up`]);
  }
}

function buildNode(plan: LabPlan, node: LabPlan['nodes'][number]): void {
  sysctl(node.netns, ['net.ipv4.ip_forward=1']);
  // eth0: the Vagrant NAT interface, same address on every node, carries the default route.
  ipBatch(node.netns, [`link add eth0 type veth peer name lan0 netns ${node.natNetns}`]);
  ipBatch(node.natNetns, [`addr add ${NAT_GATEWAY}/24 dev lan0`, 'link set lan0 up']);
  ipBatch(node.netns, [
    `addr add ${NAT_IP}/24 dev eth0`,
    'link set eth0 up',
    `addr add ${node.underlayIp}/24 dev eth1`,
    'link set eth1 up',
    `route add default via ${NAT_GATEWAY} dev eth0`,
    // cni0, as the CNI bridge plugin makes it: the gateway address of the node's pod CIDR.
    'link add cni0 type bridge',
    `addr add ${node.vtepIp.replace(/\.0$/, '.1')}/24 dev cni0`,
    'link set cni0 up',
  ]);
}

function buildPods(plan: LabPlan): LabPod[] {
  const pods: LabPod[] = [];
  for (const p of plan.pods) {
    const node = plan.nodes[p.nodeIndex - 1]!;
    const gw = node.vtepIp.replace(/\.0$/, '.1');
    ipBatch(node.netns, [
      `link add ${p.hostVeth} mtu ${p.podMtu} type veth peer name eth0 mtu ${p.podMtu} netns ${p.netns}`,
      `link set ${p.hostVeth} master cni0`,
      `link set ${p.hostVeth} up`,
    ]);
    ipBatch(p.netns, [`addr add ${p.ip}/24 dev eth0`, 'link set eth0 up', `route add default via ${gw} dev eth0`]);
    const link = JSON.parse(execSync(['ip', '-n', p.netns, '-j', 'link', 'show', 'eth0']).stdout) as { address: string }[];
    pods.push({ name: p.name, namespace: p.namespace, node: p.node, netns: p.netns, ip: p.ip, mac: link[0]!.address });
  }
  return pods;
}

/**
 * flannel.1 and what flanneld programs for every peer: `replace` of the neighbour, the FDB entry
 * and the route, in that order (flannel's vxlan_network.go handleSubnetEvents).
 */
function programFlannel(plan: LabPlan, node: LabPlan['nodes'][number], faults: LabOptions['faults']): void {
  const dev = node.publicIp === node.underlayIp ? node.uplink : node.natInterface;
  const lines = [
    `link add flannel.1 type vxlan id ${node.vni} local ${node.publicIp} dev ${dev} dstport ${node.vxlanPort} nolearning`,
    `link set flannel.1 address ${node.vtepMac} mtu ${FLANNEL_MTU}`,
    `addr add ${node.vtepIp}/32 dev flannel.1`,
    'link set flannel.1 up',
  ];
  for (const peer of plan.nodes) {
    if (peer === node) continue;
    const e = peerEntries(node, peer, faults);
    lines.push(`neigh replace ${peer.vtepIp} lladdr ${e.neighMac} dev flannel.1 nud permanent`);
    if (e.fdbDst) lines.push(`fdb replace ${e.fdbMac} dev flannel.1 dst ${e.fdbDst} self permanent`);
    lines.push(`route replace ${peer.podCidr} via ${peer.vtepIp} dev flannel.1 onlink`);
  }
  // `bridge fdb` commands are accepted by `ip -batch` only as `ip` objects; use bridge -batch.
  const fdb = lines.filter((l) => l.startsWith('fdb '));
  const ip = lines.filter((l) => !l.startsWith('fdb '));
  // Order as flanneld: link, then per peer neighbour -> FDB -> route. Neighbours and FDB do not
  // depend on each other, so batching all neighbours, then FDB, then routes keeps the same result.
  ipBatch(node.netns, ip.filter((l) => !l.startsWith('route ')));
  if (fdb.length) execSync(['bridge', '-n', node.netns, '-batch', '-'], { input: fdb.join('\n') + '\n' });
  ipBatch(node.netns, ip.filter((l) => l.startsWith('route ')));
}

function applyNftFault(plan: LabPlan, f: ReturnType<typeof nftFaults>[number]): void {
  const node = plan.nodes.find((n) => n.name === f.node)!;
  for (const o of f.offloadOff ?? []) {
    for (const d of o.devices) execSync(['ip', 'netns', 'exec', o.netns, 'ethtool', '-K', d, 'rx', 'off', 'tx', 'off']);
  }
  execSync(['ip', 'netns', 'exec', node.netns, 'nft', '-f', '-'], { input: f.ruleset + '\n' });
}

/** How each fault is healed, in words: what the operator (or flanneld) does. */
export const HEAL_ACTIONS: Record<FaultName, string> = {
  'nat-public-ip': 'flanneld restarted with --iface=eth1 on every node: flannel.1 recreated with local = the eth1 address, public-ip annotations and every peer FDB entry rewritten',
  'stale-fdb': "flanneld restarted on node1: node1's FDB entries rewritten from the current annotations",
  'stale-vtep-mac': "flanneld restarted on node1: node1's neighbour and FDB entries rewritten with node2's current VTEP MAC",
  'missing-fdb': "flanneld restarted on node1: node1's FDB entries rewritten",
  'vni-mismatch': "node2's flannel.1 recreated with VNI 1",
  'port-mismatch': "node2's flannel.1 recreated with UDP port 8472",
  mtu: "node1's pods set back to MTU 1450",
  'udp-blocked': "node2's nftables rule dropping UDP 8472 removed",
  'bad-checksum': "node1's checksum-corrupting egress rule removed, checksum offloads back on",
  'forward-drop': "node2's FORWARD policy set back to accept",
};

/**
 * Heal one active fault the way the real fix would: flannel state is rebuilt as flanneld does on a
 * restart (recreate flannel.1, re-register, replace neighbours, FDB entries and routes on every
 * node), nftables faults lose their table, MTUs are reset. The cluster file is rewritten.
 */
export async function labHeal(name: string, fault: FaultName): Promise<LabState> {
  requirePrivileges('vxtrace lab heal', 'lab');
  const state = requireLab(name);
  if (!state.faults.some((f) => f.fault === fault)) {
    throw new UsageError(`fault '${fault}' is not active in lab '${name}' (active: ${state.faults.map((f) => f.fault).join(', ') || 'none'})`);
  }
  const remaining = state.faults.map((f) => f.fault).filter((f) => f !== fault);
  const plan = planLab({ name, nodes: state.nodes.length, podsPerNode: state.pods.length / state.nodes.length, faults: remaining });
  applyPlanFaults(plan, remaining);
  const flannelFaults: FaultName[] = ['nat-public-ip', 'stale-fdb', 'stale-vtep-mac', 'missing-fdb', 'vni-mismatch', 'port-mismatch'];
  if (flannelFaults.includes(fault)) {
    for (const node of plan.nodes) {
      execSync(['ip', '-n', node.netns, 'link', 'del', 'flannel.1']);
      programFlannel(plan, node, remaining);
    }
  }
  if (fault === 'mtu') {
    for (const p of plan.pods.filter((x) => x.node === 'node1')) {
      ipBatch(p.netns, [`link set eth0 mtu ${p.podMtu}`]);
      ipBatch(plan.nodes[0]!.netns, [`link set ${p.hostVeth} mtu ${p.podMtu}`]);
    }
  }
  const nftTable: Partial<Record<FaultName, [string, string]>> = {
    'udp-blocked': ['inet', `${NFT_TABLE}_udp`], 'forward-drop': ['ip', `${NFT_TABLE}_fwd`], 'bad-checksum': ['netdev', `${NFT_TABLE}_csum`],
  };
  const table = nftTable[fault];
  if (table) {
    const node = state.nodes.find((n) => n.name === state.faults.find((f) => f.fault === fault)!.node)!;
    execSync(['ip', 'netns', 'exec', node.netns, 'nft', 'delete', 'table', ...table]);
  }
  if (fault === 'bad-checksum') {
    // The fault turned checksum offloads off on the underlay veths; the real fix leaves them on
    // (with them off, GSO packets are segmented before the wire, unlike on a healthy lab).
    const underlay: [string, string][] = [
      ...plan.nodes.map((n): [string, string] => [n.netns, 'eth1']),
      ...plan.nodes.map((_, i): [string, string] => [plan.underlayNetns, `n${i + 1}`]),
    ];
    for (const [ns, dev] of underlay) execSync(['ip', 'netns', 'exec', ns, 'ethtool', '-K', dev, 'rx', 'on', 'tx', 'on'], { allowFail: true });
  }
  const healed: LabState = { ...state, nodes: plan.nodes, faults: describeFaults(plan, remaining) };
  writeAtomically(state.clusterFile, JSON.stringify(labClusterList(name, healed.nodes, healed.pods, state.createdAt), null, 2) + '\n');
  writeAtomically(join(stateDir(name), 'state.json'), JSON.stringify(healed, null, 2) + '\n');
  return healed;
}

/** Kill what runs in a namespace, then delete it. */
function deleteNetns(ns: string): void {
  const pids = execSync(['ip', 'netns', 'pids', ns], { allowFail: true }).stdout.split(/\s+/).filter(Boolean);
  for (const pid of pids) {
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  execSync(['ip', 'netns', 'del', ns], { allowFail: true });
}

/**
 * Remove everything a lab made: every namespace with its prefix (which takes its links, bridges,
 * VXLAN devices and nft tables with it) and its state directory. Works from names alone, so it also
 * cleans up after a crash or a half-built lab. Returns how many namespaces it removed.
 */
export async function labDown(name: string = DEFAULT_LAB_NAME): Promise<number> {
  if (!/^[a-z0-9]{1,12}$/.test(name)) throw new UsageError(`lab name '${name}' is not valid: use 1 to 12 lower-case letters or digits`);
  requirePrivileges('vxtrace lab down', 'lab');
  const prefix = prefixOf(name);
  const namespaces = listNetns().filter((n) => n.startsWith(prefix));
  for (const ns of namespaces) deleteNetns(ns);
  rmSync(stateDir(name), { recursive: true, force: true });
  const left = listNetns().filter((n) => n.startsWith(prefix));
  if (left.length) throw new EnvironmentError(`could not remove namespaces ${left.join(', ')}: remove them with \`ip netns del\``);
  return namespaces.length;
}

/** The pod, by `name` or `namespace/name`, or a clear error listing the lab's pods. */
export function labPod(state: LabState, ref: string): LabPod {
  const [ns, name] = ref.includes('/') ? ref.split('/', 2) : [undefined, ref];
  const pod = state.pods.find((p) => p.name === name && (ns === undefined || p.namespace === ns));
  if (!pod) throw new UsageError(`no pod '${ref}' in lab '${state.name}': its pods are ${state.pods.map((p) => p.name).join(', ')}`);
  return pod;
}

/** Run a command inside a pod's namespace; returns its exit status (output goes to ours). */
export function labExec(state: LabState, podRef: string, argv: string[], opts: { stdio?: 'inherit' | 'pipe' } = {}): { status: number; stdout: string; stderr: string } {
  const pod = labPod(state, podRef);
  if (!argv.length) throw new UsageError('lab exec needs a command after --, e.g. `vxtrace lab exec pod-a -- ping -c 3 10.244.2.10`');
  requirePrivileges('vxtrace lab exec', 'netns');
  const r = spawnSync('ip', ['netns', 'exec', pod.netns, ...argv], { stdio: opts.stdio === 'pipe' ? 'pipe' : 'inherit', encoding: 'utf8' });
  if (r.error) throw new EnvironmentError(`cannot run ${argv[0]} in ${pod.name}: ${r.error.message}`);
  return { status: r.status ?? 128, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

export { NFT_TABLE };
