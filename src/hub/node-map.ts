// The node map the page draws (GET /v1/nodes -> vxtrace.v1.NodeMap): every node of the hub's model
// as vxtrace sees it — pod CIDRs, the underlay address it decided on and why, the public-ip flannel
// registered (and who else registered it), VTEP MAC and VNI, whether an agent watches it, and each of
// its FDB entries for the other nodes checked against where those nodes really are. Enough to see
// the seed's case without a single packet. nodeMapOf is pure; the handler encodes it at the socket.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { vxtrace } from '../generated/vxtrace.js';
import type { ClusterModel, NodeModel } from '../cluster/model.js';

type Long = { low: number; high: number };
const toLong = (v: bigint): Long => {
  const u = BigInt.asUintN(64, v);
  return { low: Number(u & 0xffffffffn) | 0, high: Number(u >> 32n) | 0 };
};

/** What the node map needs of the hub. */
export interface NodeMapSource {
  readonly clusterModel: ClusterModel;
  readonly watchedNodes: readonly string[];
  readonly clusterFrom: string;
}

/** Node `n`'s FDB entries for every peer's VTEP, each checked against the peer's underlay address. */
export function fdbChecks(model: ClusterModel, n: NodeModel): vxtrace.v1.IFdbCheck[] {
  const k = n.kernel;
  if (!k?.vxlan) return [];
  const out: vxtrace.v1.IFdbCheck[] = [];
  for (const p of model.nodes) {
    if (p === n || !p.podCidrs.length) continue;
    // The MAC the kernel uses for the peer: its neighbour entry's, else the peer's current VTEP MAC.
    const mac = k.neighbours.find((e) => e.ip === p.vtepIp && e.mac)?.mac ?? model.currentVtepMac(p);
    if (!mac) continue;
    const entry = k.fdb.find((e) => e.mac === mac && e.dst);
    const expected = p.underlay.address;
    const check: vxtrace.v1.IFdbCheck = { peer: p.name, mac, ok: false, problem: '' };
    if (expected) check.expected = expected;
    if (!entry?.dst) {
      check.problem = `no FDB entry for ${p.name}'s VTEP MAC ${mac}`;
    } else {
      check.dst = entry.dst;
      const own = n.kernel?.addresses.some((a) => a.address === entry.dst) || n.internalIps.includes(entry.dst);
      const holder = model.nodesHoldingAddress(entry.dst).filter((h) => h !== n).map((h) => h.name);
      if (expected && entry.dst === expected) check.ok = true;
      else if (own) check.problem = `points at ${entry.dst}, an address of ${n.name} itself: ${p.name}'s traffic loops back`;
      else if (!expected) check.problem = `points at ${entry.dst}; ${p.name}'s underlay address is not known`;
      else check.problem = `points at ${entry.dst}${holder.length ? ` (${holder.join(', ')})` : ''}, not ${p.name}'s underlay address ${expected}`;
    }
    out.push(check);
  }
  return out;
}

export function nodeMapOf(src: NodeMapSource, nowNs: bigint = BigInt(Date.now()) * 1_000_000n): vxtrace.v1.INodeMap {
  const model = src.clusterModel;
  const watched = new Set(src.watchedNodes);
  const nodes = model.nodes.map((n): vxtrace.v1.INodeInfo => {
    const info: vxtrace.v1.INodeInfo = {
      name: n.name,
      podCidrs: n.podCidrs,
      internalIps: n.internalIps,
      underlayExplanation: n.underlay.explanation,
      publicIpSharedWith: n.publicIp ? model.nodes.filter((o) => o !== n && o.publicIp === n.publicIp).map((o) => o.name) : [],
      watched: watched.has(n.name),
      kernelState: n.kernel !== undefined,
      fdb: fdbChecks(model, n),
    };
    if (n.underlay.address) info.underlay = n.underlay.address;
    if (n.underlay.interface) info.underlayInterface = n.underlay.interface;
    if (n.publicIp) info.publicIp = n.publicIp;
    const mac = model.currentVtepMac(n);
    if (mac) info.vtepMac = mac;
    const vni = n.kernel?.vxlan?.vni ?? n.backend.vni;
    if (vni !== undefined) info.vni = vni;
    if (n.kernel?.vxlan) info.vxlan = { ...n.kernel.vxlan };
    return info;
  });
  const pods = model.pods.filter((p) => !p.hostNetwork).map((p): vxtrace.v1.IPodInfo => ({ ref: p.ref, node: p.node ?? '', ips: p.ips }));
  return { nodes, pods, clusterFrom: src.clusterFrom, timeNs: toLong(nowNs) as never };
}

/** GET /v1/nodes: the node map as one protobuf message. */
export function serveNodeMap(req: IncomingMessage, res: ServerResponse, src: NodeMapSource): void {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain; charset=utf-8' }).end('GET /v1/nodes takes no body: use GET\n');
    return;
  }
  const body = vxtrace.v1.NodeMap.encode(nodeMapOf(src)).finish();
  res.writeHead(200, { 'Content-Type': 'application/x-protobuf', 'Content-Length': body.length, 'Cache-Control': 'no-store' });
  res.end(req.method === 'HEAD' ? undefined : body);
}
