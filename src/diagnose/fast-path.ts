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

export class HealthyShapes {
  private readonly clean = new Set<string>();

  /** True when `path` is delivered, of a shape seen clean, and its outer checksum is not wrong: diagnosePath() would find nothing. */
  known(path: PacketPath, model: ClusterModel): boolean {
    const shape = shapeOf(path);
    return shape !== undefined && this.clean.has(shape) && checksumNotWrong(path, model);
  }

  /** After diagnosePath(): a delivered path that showed nothing makes its shape clean. */
  learn(path: PacketPath, findings: readonly unknown[]): void {
    if (findings.length) return;
    const shape = shapeOf(path);
    if (shape === undefined) return;
    if (this.clean.size >= MAX_SHAPES) this.clean.clear();
    this.clean.add(shape);
  }

  /** The model changed: what was clean may not be. */
  forget(): void {
    this.clean.clear();
  }
}

function shapeOf(path: PacketPath): string | undefined {
  if (path.outcome !== 'delivered' || path.drop) return undefined;
  let s = `${path.inner.family}|${path.inner.src}|${path.inner.dst}|${path.srcNode}|${path.dstNode}`;
  for (const { event: e } of path.hops) {
    s += `|${e.node}/${e.device}/${e.role}/${e.direction}/${e.kind}`;
    if (e.outer) s += `/${e.outer.src}>${e.outer.dst}:${e.outer.dstPort}:${e.outer.vni}`;
    if (e.role === 'vtep' && e.direction === 'egress') s += `/${e.innerDstMac}`;
  }
  return s;
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
