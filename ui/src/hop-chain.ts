// The hop chain of one path, laid out left to right as the page draws it:
//   pod ▸ [node1: cni0 ▸ flannel.1 ▸ eth1] ⇢ underlay 192.168.1.121 → 192.168.1.122:8472 vni 1 ⇢ [node2: eth1 ▸ flannel.1 ▸ cni0] ▸ pod
// with each hop's latency from the previous one on the same clock, loops collapsed (a packet that
// passes one device again and again: ⟲ 62×, as the CLI prints it), the underlay leg across nodes
// timed by wall clock and so marked approximate, and the place where the packet died with the
// kernel's drop reason. Pure: a path message in, a plain layout out (test/unit/ui-hop-chain.test.ts).
import { directionOf, has, int64, isDropHop, nsBetween, outcomeOf, roleOf, type HopMessage, type Outcome, type PathMessage } from './wire.js';

export interface ChainDevice {
  device: string;
  role: string;
  direction: 'ingress' | 'egress';
  /** From the previous hop, on the same node's clock (exact). */
  latencyNs?: number;
  /** The packet passed this device again and again: how many more times, and for how long. */
  loop?: { times: number; spanNs: number };
  /** It died here. */
  died?: { reason: string; location?: string };
}

export interface ChainPod {
  kind: 'pod';
  /** namespace/name, or the address when it is no pod vxtrace knows. */
  name: string;
  ip: string;
  /** For the destination: did the packet get there. */
  reached: boolean;
}

export interface ChainNode {
  kind: 'node';
  node: string;
  devices: ChainDevice[];
}

export interface ChainUnderlay {
  kind: 'underlay';
  src: string;
  dst: string;
  srcPort: number;
  dstPort: number;
  vni: number;
  /** Time on the underlay: exact when both nodes share one clock (the lab), else the wall-clock difference between the two nodes' hops, approximate. */
  ns?: number;
  approximate: boolean;
  /** It reached another node (false: sent and never seen again). */
  arrived: boolean;
}

export type ChainSegment = ChainPod | ChainNode | ChainUnderlay;

export interface HopChain {
  segments: ChainSegment[];
  outcome: Outcome;
  death?: { node: string; device: string; reason: string; location?: string };
  /** First to last hop, by wall clock; approximate when the path crosses nodes. */
  totalNs: number;
  approximate: boolean;
  /** Hops the hub did not keep (a loop past the hop limit). */
  hopsDiscarded: number;
}

const isUnderlayEgress = (h: HopMessage): boolean => directionOf(h) === 'egress' && !isDropHop(h) && (roleOf(h) === 'uplink' || !!h.outer);

function underlayOf(h: HopMessage, arrived: boolean): ChainUnderlay {
  const o = h.outer ?? {};
  return { kind: 'underlay', src: o.src ?? '', dst: o.dst ?? '', srcPort: o.srcPort ?? 0, dstPort: o.dstPort ?? 0, vni: o.vni ?? 0, arrived, approximate: false };
}

export function hopChain(path: PathMessage): HopChain {
  const outcome = outcomeOf(path);
  const inner = path.inner ?? {};
  const segments: ChainSegment[] = [{ kind: 'pod', name: path.srcPod ?? inner.src ?? '?', ip: inner.src ?? '', reached: true }];
  let node: ChainNode | undefined;
  let prev: HopMessage | undefined;
  let approximate = false;
  const hops = path.hops ?? [];
  const dropHop = hops.find(isDropHop);

  for (const h of hops) {
    if (isDropHop(h)) continue;
    const latency = has(h, 'latencyNs') ? int64(h.latencyNs) : undefined;
    if (prev && node && prev.node === h.node && prev.device === h.device) {
      const last = node.devices[node.devices.length - 1]!;
      last.loop ??= { times: 0, spanNs: 0 };
      last.loop.times++;
      last.loop.spanNs += latency ?? 0;
      prev = h;
      continue;
    }
    const device: ChainDevice = { device: h.device ?? '?', role: roleOf(h), direction: directionOf(h) };
    if (!node || prev?.node !== h.node) {
      if (prev && isUnderlayEgress(prev)) {
        // The leg's time: the receiving hop's latency when one clock saw both, else wall clocks.
        const leg = underlayOf(prev, true);
        if (latency !== undefined) leg.ns = latency;
        else {
          leg.ns = nsBetween(prev.wallTimeNs, h.wallTimeNs);
          leg.approximate = true;
          approximate = true;
        }
        segments.push(leg);
      } else if (prev && latency === undefined) {
        approximate = true;
      }
      node = { kind: 'node', node: h.node ?? '?', devices: [] };
      segments.push(node);
    } else if (latency !== undefined) {
      device.latencyNs = latency;
    }
    node.devices.push(device);
    prev = h;
  }

  // Where it died: the path's drop, else its drop hop.
  const drop = path.drop && path.drop.reason
    ? { node: path.drop.node ?? '', device: path.drop.device ?? '', reason: path.drop.reason, ...(has(path.drop, 'location') ? { location: path.drop.location! } : {}) }
    : dropHop
      ? { node: dropHop.node ?? '', device: dropHop.device ?? '', reason: dropHop.dropReason ?? 'unknown', ...(has(dropHop, 'dropLocation') ? { location: dropHop.dropLocation! } : {}) }
      : undefined;
  // Sent into the underlay and never seen again (or seen only by the peer's kernel, dropping it).
  if (prev && isUnderlayEgress(prev) && outcome !== 'delivered') segments.push(underlayOf(prev, !!drop && drop.node !== prev.node));

  if (drop) {
    const onNode = [...segments].reverse().find((s): s is ChainNode => s.kind === 'node' && s.node === drop.node);
    const at = onNode && [...onNode.devices].reverse().find((d) => d.device === drop.device);
    const died = { reason: drop.reason, ...(drop.location ? { location: drop.location } : {}) };
    if (at) at.died = died;
    else if (onNode) onNode.devices.push({ device: drop.device || '?', role: 'other', direction: 'ingress', died });
    else segments.push({ kind: 'node', node: drop.node || '?', devices: [{ device: drop.device || '?', role: 'other', direction: 'ingress', died }] });
  }

  segments.push({ kind: 'pod', name: path.dstPod ?? inner.dst ?? '?', ip: inner.dst ?? '', reached: outcome === 'delivered' });
  const chain: HopChain = {
    segments,
    outcome,
    totalNs: Math.max(0, nsBetween(path.firstSeenNs, path.lastSeenNs)),
    approximate,
    hopsDiscarded: path.hopsDiscarded ?? 0,
  };
  if (drop) chain.death = drop;
  return chain;
}

/** The hop keys of a chain's devices, in order: `node1/cni0`, ... (tests and accessible text). */
export function chainHopKeys(chain: HopChain): string[] {
  return chain.segments.flatMap((s) => (s.kind === 'node' ? s.devices.map((d) => `${s.node}/${d.device}`) : []));
}
