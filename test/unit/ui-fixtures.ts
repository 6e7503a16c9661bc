// Paths and findings the lab really produced (`vxtrace follow --json` on a lab with nat-public-ip,
// and on a healthy one: test/unit/fixtures/ui/*.ndjson), back into the domain types the hub encodes,
// so that the page's tests decode what the hub's own encoder (src/wire/codec.ts) writes.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { PacketPath, PathHop } from '../../src/correlate/path.js';
import type { HopEvent } from '../../src/datapath/hop.js';
import type { Finding } from '../../src/diagnose/finding.js';

const dir = fileURLToPath(new URL('../../../test/unit/fixtures/ui/', import.meta.url));

type Json = Record<string, any>;

function records(name: string): Json[] {
  return readFileSync(`${dir}${name}`, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Json);
}

const isoNs = (iso: string): bigint => BigInt(Date.parse(iso)) * 1_000_000n;

export function pathFromNdjson(r: Json): PacketPath {
  const first = isoNs(r.time);
  const hops: PathHop[] = (r.hops as Json[]).map((h) => {
    const event: HopEvent = {
      timestampNs: BigInt(h.timestampNs),
      wallTimeNs: isoNs(h.wallTime),
      kind: h.kind,
      node: h.node,
      device: h.device,
      role: h.role,
      direction: h.direction,
      ifindex: 0,
      netnsInode: 0,
      skbLength: h.skbLength,
      fingerprint: r.fingerprint,
      innerSrcMac: '',
      innerDstMac: '',
      inner: r.inner,
      frame: new Uint8Array(0),
    };
    if (h.outer) event.outer = h.outer;
    if (h.dropReason) event.dropReason = h.dropReason;
    if (h.dropLocation) event.dropLocation = h.dropLocation;
    const hop: PathHop = { event };
    if (h.latencyNs !== null && h.latencyNs !== undefined) hop.latencyNs = BigInt(h.latencyNs);
    return hop;
  });
  const p: PacketPath = {
    fingerprint: r.fingerprint,
    inner: r.inner,
    hops,
    outcome: r.outcome,
    firstSeenNs: first,
    lastSeenNs: first + BigInt(r.durationNs),
  };
  for (const k of ['srcPod', 'dstPod', 'srcNode', 'dstNode'] as const) if (r[k]) p[k] = r[k];
  if (r.outer) p.outer = r.outer;
  if (r.drop) p.drop = r.drop;
  return p;
}

export const fixturePaths = (name: string): PacketPath[] => records(name).filter((r) => r.type === 'path').map(pathFromNdjson);

export function fixtureFindings(name: string): Finding[] {
  return records(name)
    .filter((r) => r.type === 'finding')
    .map(({ type: _type, ...f }) => f as Finding);
}

/** The same path as agents on separate machines give it to the hub: no latency across nodes, each node's own wall clock. */
export function perNodeClocks(p: PacketPath, skewNs: Record<string, bigint>): PacketPath {
  const hops = p.hops.map((h, i) => {
    const event = { ...h.event, wallTimeNs: p.firstSeenNs + BigInt(i) * 10_000n + (skewNs[h.event.node] ?? 0n) };
    const prev = p.hops[i - 1];
    const hop: PathHop = { event };
    if (h.latencyNs !== undefined && prev && prev.event.node === h.event.node) hop.latencyNs = h.latencyNs;
    return hop;
  });
  return { ...p, hops };
}
