// What to attach to on a node, read from the node's kernel (not from the cluster's annotations):
// its VXLAN device(s) with VNI, port, local address and lower device; the pod bridge; and every
// interface that could carry underlay traffic (the VXLAN lower device, the default-route device,
// and any other addressed interface that is neither a bridge port nor a tunnel).
import { execSync, inNetns } from '../util/exec.js';
import { EnvironmentError } from '../errors.js';
import type { DeviceRole, Direction } from './hop.js';

export interface AttachPoint {
  /** Cluster node name the hook belongs to. */
  node: string;
  /** Network namespace name (under /run/netns) holding the device; absent = this process's. */
  netns?: string;
  device: string;
  role: DeviceRole;
  /** Default both. */
  directions?: Direction[];
}

export interface VxlanDeviceInfo {
  device: string;
  vni: number;
  /** UDP destination port. */
  port: number;
  local?: string;
  /** Lower (underlay) device, when the VXLAN device is bound to one. */
  lower?: string;
  mtu: number;
  learning: boolean;
}

export interface NodeDatapath {
  node: string;
  netns?: string;
  vxlan: VxlanDeviceInfo[];
  points: AttachPoint[];
}

interface IpLink {
  ifindex: number;
  ifname: string;
  mtu: number;
  master?: string;
  flags?: string[];
  linkinfo?: { info_kind?: string; info_slave_kind?: string; info_data?: Record<string, unknown> };
}
interface IpAddr {
  ifname: string;
  addr_info?: { family: string; local: string; scope?: string }[];
}
interface IpRoute {
  dst: string;
  dev?: string;
}

function ipJson<T>(netns: string | undefined, args: string[], what: string): T {
  const r = execSync(inNetns(netns, ['ip', '-j', ...args]), { allowFail: true });
  if (r.status !== 0) {
    const where = netns ? `netns ${netns}` : 'this network namespace';
    if (/No such file|does not exist|Cannot open network namespace/i.test(r.stderr)) {
      throw new EnvironmentError(`read ${what} of ${where}: network namespace ${netns} not found (is the lab up? see \`ip netns list\`)`);
    }
    throw new EnvironmentError(`read ${what} of ${where}: \`ip ${args.join(' ')}\` failed: ${r.stderr.trim()}`);
  }
  return JSON.parse(r.stdout || '[]') as T;
}

/** Interface names by ifindex in a namespace (for naming devices in drop records). */
export function interfaceNames(netns?: string): Map<number, string> {
  const links = ipJson<IpLink[]>(netns, ['link', 'show'], 'interfaces');
  return new Map(links.map((l) => [l.ifindex, l.ifname]));
}

/** Reads a node's devices from its kernel and returns what vxtrace attaches to there. */
export function discoverAttachPoints(node: string, netns?: string): NodeDatapath {
  const links = ipJson<IpLink[]>(netns, ['-d', 'link', 'show'], 'interfaces');
  const addrs = ipJson<IpAddr[]>(netns, ['addr', 'show'], 'addresses');
  const defaults = [
    ...ipJson<IpRoute[]>(netns, ['-4', 'route', 'show', 'default'], 'routes'),
    ...ipJson<IpRoute[]>(netns, ['-6', 'route', 'show', 'default'], 'routes'),
  ];

  const vxlan: VxlanDeviceInfo[] = [];
  for (const l of links) {
    if (l.linkinfo?.info_kind !== 'vxlan') continue;
    const d = l.linkinfo.info_data ?? {};
    vxlan.push({
      device: l.ifname,
      vni: Number(d.id ?? 0),
      port: Number(d.port ?? 4789),
      local: typeof d.local === 'string' ? d.local : typeof d.local6 === 'string' ? d.local6 : undefined,
      lower: typeof d.link === 'string' ? d.link : undefined,
      mtu: l.mtu,
      learning: d.learning !== false,
    });
  }

  const roles = new Map<string, DeviceRole>();
  for (const v of vxlan) {
    roles.set(v.device, 'vtep');
    if (v.lower) roles.set(v.lower, 'uplink');
  }
  const bridges = links.filter((l) => l.linkinfo?.info_kind === 'bridge');
  // The CNI bridge: cni0 by convention; otherwise any bridge with pod ports.
  for (const b of bridges) if (b.ifname === 'cni0' || links.some((l) => l.master === b.ifname)) roles.set(b.ifname, 'pod-bridge');
  for (const r of defaults) if (r.dev && !roles.has(r.dev)) roles.set(r.dev, 'uplink');
  const addressed = new Set(addrs.filter((a) => (a.addr_info ?? []).some((i) => i.scope !== 'host' && i.scope !== 'link')).map((a) => a.ifname));
  for (const l of links) {
    if (roles.has(l.ifname) || l.ifname === 'lo' || l.master) continue;
    const kind = l.linkinfo?.info_kind;
    if (kind && ['vxlan', 'geneve', 'bridge', 'wireguard', 'ipip', 'gre', 'tun', 'dummy'].includes(kind)) continue;
    if (addressed.has(l.ifname)) roles.set(l.ifname, 'uplink');
  }
  const order: DeviceRole[] = ['pod-bridge', 'vtep', 'uplink', 'other'];
  const points: AttachPoint[] = [...roles]
    .sort((a, b) => order.indexOf(a[1]) - order.indexOf(b[1]) || a[0].localeCompare(b[0]))
    .map(([device, role]) => ({ node, ...(netns ? { netns } : {}), device, role }));
  return { node, ...(netns ? { netns } : {}), vxlan, points };
}
