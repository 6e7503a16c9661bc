// The diagnoser's fast path for a delivered, healthy path: at full rate nearly every path is the
// same journey of another packet. What diagnosePath() reads of a delivered path, but for its
// bytes, is its shape: the inner addresses, and per hop the node, device, role, direction, kind
// and outer headers, plus the inner destination MAC leaving the VTEP. A delivered path whose shape
// was diagnosed clean against this model can only show something new in its own bytes: the outer
// UDP checksum, which is checked again, on the hop diagnosePath() checks. Pure.
import type { ClusterModel } from '../cluster/model.js';
import type { PacketPath } from '../correlate/path.js';
import type { HopEvent } from '../datapath/hop.js';
import { verifyOuterUdpChecksum } from './checksum.js';

/** Shapes remembered at most (a bounded set: cleared when full). */
const MAX_SHAPES = 4096;

/**
 * A path's shape as a flat list of the values that make it (compared one by one: no key string is
 * made per path): the inner family, source, destination, source and destination node, the hop
 * count, then for every hop HOP_FIELDS values (see shapeMatches).
 */
type Shape = readonly unknown[];
const HOP_FIELDS = 10;

export class HealthyShapes {
  /** Clean shapes by inner destination, then source. */
  private readonly clean = new Map<string, Map<string, Shape[]>>();
  private size = 0;

  /** True when `path` is delivered, of a shape seen clean, and its outer checksum is not wrong: diagnosePath() would find nothing. */
  known(path: PacketPath, model: ClusterModel): boolean {
    if (!delivered(path)) return false;
    const list = this.clean.get(path.inner.dst)?.get(path.inner.src);
    if (!list) return false;
    for (const shape of list) if (shapeMatches(shape, path)) return checksumNotWrong(path, model);
    return false;
  }

  /** After diagnosePath(): a delivered path that showed nothing makes its shape clean. */
  learn(path: PacketPath, findings: readonly unknown[]): void {
    if (findings.length || !delivered(path)) return;
    if (this.size >= MAX_SHAPES) this.forget();
    let bySrc = this.clean.get(path.inner.dst);
    if (!bySrc) this.clean.set(path.inner.dst, (bySrc = new Map()));
    let list = bySrc.get(path.inner.src);
    if (!list) bySrc.set(path.inner.src, (list = []));
    for (const shape of list) if (shapeMatches(shape, path)) return;
    list.push(shapeOf(path));
    this.size++;
  }

  /** The model changed: what was clean may not be. */
  forget(): void {
    this.clean.clear();
    this.size = 0;
  }
}

const delivered = (path: PacketPath): boolean => path.outcome === 'delivered' && !path.drop;

function shapeOf(path: PacketPath): Shape {
  const s: unknown[] = [path.inner.family, path.inner.src, path.inner.dst, path.srcNode, path.dstNode, path.hops.length];
  for (const { event: e } of path.hops) {
    const o = e.outer;
    s.push(e.node, e.device, e.role, e.direction, e.kind, o?.src, o?.dst, o?.dstPort, o?.vni, e.role === 'vtep' && e.direction === 'egress' ? e.innerDstMac : undefined);
  }
  return s;
}

/** Whether `path` has `shape`: the same values, each compared with ===, as shapeOf would list them. */
function shapeMatches(s: Shape, path: PacketPath): boolean {
  const hops = path.hops;
  if (s[5] !== hops.length || s[0] !== path.inner.family || s[1] !== path.inner.src || s[2] !== path.inner.dst || s[3] !== path.srcNode || s[4] !== path.dstNode) return false;
  let i = 6;
  for (let h = 0; h < hops.length; h++, i += HOP_FIELDS) {
    const e = hops[h]!.event;
    if (s[i] !== e.node || s[i + 1] !== e.device || s[i + 2] !== e.role || s[i + 3] !== e.direction || s[i + 4] !== e.kind) return false;
    const o = e.outer;
    if (o === undefined) {
      if (s[i + 5] !== undefined) return false;
    } else if (s[i + 5] !== o.src || s[i + 6] !== o.dst || s[i + 7] !== o.dstPort || s[i + 8] !== o.vni) return false;
    if (s[i + 9] !== (e.role === 'vtep' && e.direction === 'egress' ? e.innerDstMac : undefined)) return false;
  }
  return true;
}

/** The outer checksum as diagnosePath() checks it: on the sender's uplink egress, else the first uplink hop with outer headers. */
function checksumNotWrong(path: PacketPath, model: ClusterModel): boolean {
  const sender = senderOf(path, model);
  let wire: HopEvent | undefined;
  let anyUplink: HopEvent | undefined;
  for (const { event: e } of path.hops) {
    if (e.role !== 'uplink' || !e.outer) continue;
    anyUplink ??= e;
    if (e.direction === 'egress' && e.node === sender) {
      wire = e;
      break;
    }
  }
  wire ??= anyUplink;
  return !wire || verifyOuterUdpChecksum(wire.frame) !== false;
}

/** The sender as diagnosePath() takes it: the node of the first VTEP egress hop, else of the first pod-bridge ingress hop, that the model knows; else the source's pod-CIDR owner, else the path's source node. */
function senderOf(path: PacketPath, model: ClusterModel): string | undefined {
  let vtep: string | undefined;
  let bridge: string | undefined;
  for (const { event: e } of path.hops) {
    if (vtep === undefined && e.role === 'vtep' && e.direction === 'egress') vtep = e.node;
    if (bridge === undefined && e.role === 'pod-bridge' && e.direction === 'ingress') bridge = e.node;
  }
  return (
    model.node(vtep ?? '')?.name ??
    model.node(bridge ?? '')?.name ??
    model.podCidrOwner(path.inner.src)?.node.name ??
    (path.srcNode ? model.node(path.srcNode)?.name : undefined)
  );
}
