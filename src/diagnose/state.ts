// Rules from state alone (`vxtrace diagnose`, no traffic): the cluster's Nodes and every node's
// kernel state, checked against what flanneld should have programmed. Pure.
import type { ClusterModel, NodeModel } from '../cluster/model.js';
import type { Finding } from './finding.js';
import {
  classifyOuterDst, duplicatePublicIpFinding, duplicatePublicIps, fdbDstLocalFinding, fdbMissingFinding, holderNote,
  interfaceOf, list, makeFinding, mtuFinding, neighMissingFinding, oddOnesOut, portMismatchFinding, portOf, vniMismatchFinding,
  vniOf, vtepMacMismatchFinding, vxlanName, wrongUnderlayDstFinding, wrongUnderlaySrcFinding,
} from './context.js';
import { lookupRoute } from '../cluster/kernel.js';

/** Collects findings, one per key; evidence of a repeated cause is appended to the first. */
export class FindingSet {
  private readonly byKey = new Map<string, Finding>();
  constructor(private readonly maxPackets = 10) {}

  add(f: Finding): Finding {
    const had = this.byKey.get(f.key);
    if (!had) {
      const copy: Finding = { ...f, nodes: [...f.nodes], evidence: { ...f.evidence, packets: f.evidence.packets ? [...f.evidence.packets] : undefined } };
      this.byKey.set(f.key, copy);
      return copy;
    }
    // A state finding checked again says what the state shows now (e.g. more nodes' kernel state
    // is known: a hub hears from its agents one by one), in the cause and fix it gives.
    if (f.packetCount === 0) {
      had.cause = f.cause;
      had.fix = f.fix;
      if (had.packetCount === 0) had.evidence = { ...f.evidence, packets: had.evidence.packets };
    }
    had.packetCount += f.packetCount;
    if (f.evidence.packets?.length) {
      const ps = (had.evidence.packets ??= []);
      for (const p of f.evidence.packets) if (ps.length < this.maxPackets && !ps.includes(p)) ps.push(p);
    }
    // A packet's concrete evidence beats a state-only description of the same cause.
    if (f.packetCount > 0 && had.packetCount === f.packetCount) had.evidence = { ...f.evidence, packets: had.evidence.packets };
    if (had.severity !== 'error' && f.severity === 'error') had.severity = 'error';
    for (const n of f.nodes) if (!had.nodes.includes(n)) had.nodes.push(n);
    had.nodes.sort();
    return had;
  }

  /** Forget a finding (a state finding that no longer holds). */
  delete(key: string): void {
    this.byKey.delete(key);
  }

  get(key: string): Finding | undefined {
    return this.byKey.get(key);
  }

  has(key: string): boolean {
    return this.byKey.has(key);
  }

  /** Errors first, then by code and key: a stable order for output and tests. */
  list(): Finding[] {
    const rank = { error: 0, warning: 1, info: 2 } as const;
    return [...this.byKey.values()].sort((a, b) => rank[a.severity] - rank[b.severity] || a.code.localeCompare(b.code) || a.key.localeCompare(b.key));
  }
}

/** Every finding the model shows without traffic. A healthy cluster gives none. */
export function diagnoseState(model: ClusterModel): Finding[] {
  const out = new FindingSet();
  const dups = duplicatePublicIps(model);

  // DUPLICATE_PUBLIC_IP: the seed's case.
  for (const [ip, group] of dups) {
    const locals = group.filter((n) => n.kernel?.vxlan?.local === ip).map((n) => n.name);
    const viaIp = group.flatMap((n) => n.kernel?.fdb.filter((e) => e.dst === ip).length ?? 0).reduce((a, b) => a + b, 0);
    const iface = [...new Set(group.flatMap((n) => interfaceOf(n, ip) ?? []))];
    let observed = `${list(group.map((n) => n.name))} all registered flannel public-ip ${ip}`;
    if (iface.length) observed += ` (the address of ${list(iface)} on each)`;
    if (locals.length) observed += `; ${vxlanName(group[0])} on ${list(locals)} uses local ${ip}`;
    if (viaIp) observed += `; ${viaIp} FDB entr${viaIp === 1 ? 'y points' : 'ies point'} at ${ip}`;
    out.add(duplicatePublicIpFinding(model, ip, group, observed));
  }

  // WRONG_UNDERLAY_SRC: a node registered, or sources VXLAN from, an address that is not its underlay.
  for (const n of model.nodes) {
    if (!n.underlay.address || (n.publicIp && dups.has(n.publicIp))) continue;
    const problems: string[] = [];
    if (n.publicIp && n.publicIp !== n.underlay.address) problems.push(`${n.name} registered flannel public-ip ${n.publicIp}`);
    const vx = n.kernel?.vxlan;
    if (vx?.local && vx.local !== n.underlay.address && !(vx.local === n.publicIp && dups.has(vx.local))) problems.push(`${vx.name} on ${n.name} uses local ${vx.local}`);
    if (vx?.lowerDevice && n.underlay.interface && vx.lowerDevice !== n.underlay.interface) problems.push(`${vx.name} on ${n.name} sends by dev ${vx.lowerDevice}, not ${n.underlay.interface}`);
    if (problems.length) out.add(wrongUnderlaySrcFinding(n, problems.join('; '), { registered: n.publicIp ?? '', local: vx?.local ?? '', lowerDevice: vx?.lowerDevice ?? '' }));
  }

  // VNI / port: the odd nodes out.
  const vni = oddOnesOut(model, vniOf, 1);
  if (vni) for (const o of vni.odd) out.add(vniMismatchFinding(o.node, o.value, vni.expected, vni.agreeing, `${vxlanName(o.node)} on ${o.node.name} has VNI ${o.value}${o.node.kernel?.vxlan ? '' : ' (backend-data annotation)'}; ${list(vni.agreeing)} use VNI ${vni.expected}`));
  const port = oddOnesOut(model, portOf, 8472);
  if (port) for (const o of port.odd) out.add(portMismatchFinding(o.node, o.value, port.expected, port.agreeing, `${vxlanName(o.node)} on ${o.node.name} has dstport ${o.value}; ${list(port.agreeing)} use ${port.expected}`));

  // MTU: the pod bridge lets pods send frames larger than the VXLAN device takes; or the VXLAN device is too big for its lower device.
  for (const n of model.nodes) {
    const k = n.kernel;
    const vx = k?.vxlan;
    if (!k || !vx) continue;
    const ownCidr = n.podCidrs[0];
    const bridgeName = ownCidr ? k.routes.find((r) => r.dst === ownCidr && r.device !== vx.name)?.device : undefined;
    const bridge = bridgeName ? k.links.find((l) => l.name === bridgeName) : undefined;
    const lower = vx.lowerDevice ? k.links.find((l) => l.name === vx.lowerDevice) : undefined;
    if (lower && vx.mtu > lower.mtu - 50) {
      out.add(mtuFinding(n, 'error', `${vx.name} on ${n.name} has MTU ${vx.mtu}, but ${lower.name} (MTU ${lower.mtu}) can carry at most ${lower.mtu - 50} once VXLAN adds its 50 bytes, so large packets are dropped.`,
        `${vx.name} MTU ${vx.mtu} over ${lower.name} MTU ${lower.mtu}`, `${vx.name} MTU at most ${lower.mtu - 50} (${lower.name} MTU minus 50 bytes of VXLAN headers)`, { lowerDevice: lower.name, lowerMtu: lower.mtu }));
    } else if (bridge && bridge.mtu > vx.mtu) {
      out.add(mtuFinding(n, 'warning', `pods on ${n.name} use a larger MTU than ${vx.name} (${bridge.name} MTU ${bridge.mtu} > ${vx.mtu}), so their packets over ${vx.mtu} bytes with DF set do not cross nodes.`,
        `${bridge.name} on ${n.name} has MTU ${bridge.mtu} (its pod ports allow ${bridge.mtu}-byte packets); ${vx.name} has MTU ${vx.mtu}`, `pod MTU ${vx.mtu}, the MTU of ${vx.name}`, { bridge: bridge.name, bridgeMtu: bridge.mtu }));
    }
  }

  // A node whose kernel state was read but that has no VXLAN device: nothing there can decapsulate.
  const anyVxlan = model.nodes.some((n) => n.kernel?.vxlan);
  for (const n of model.nodes) {
    if (!n.kernel || n.kernel.vxlan || !n.podCidrs.length) continue;
    if (n.backend.type ? n.backend.type !== 'vxlan' : !anyVxlan) continue;
    out.add(makeFinding('NO_DECAP', 'error', `NO_DECAP:-:${n.name}`, [n.name],
      `${n.name} has no VXLAN device, so VXLAN traffic for its pods (${n.podCidrs.join(', ')}) is never decapsulated.`,
      `start (or restart) flanneld on ${n.name}: it creates flannel.${n.backend.vni ?? 1}; check its logs (kubectl -n kube-flannel logs on ${n.name}'s flannel pod)`,
      { observed: `no device of kind vxlan in ${n.name}'s kernel state${n.netns ? ` (netns ${n.netns})` : ''}`, expected: `flannel.${n.backend.vni ?? 1} (VXLAN, VNI ${n.backend.vni ?? 1})`, facts: { node: n.name } }));
  }

  // Per pair: what node N programmed for peer P (neighbour -> MAC, FDB MAC -> dst).
  for (const n of model.nodes) {
    const k = n.kernel;
    const vx = k?.vxlan;
    if (!k || !vx) continue;
    for (const p of model.nodes) {
      if (p === n || !p.vtepIp || !p.podCidrs.length) continue;
      if (p.backend.type && p.backend.type !== 'vxlan') continue;
      const current = model.currentVtepMac(p);
      // Only judge entries for peers the node routes through its VXLAN device (flannel programs route, neighbour, FDB together).
      const route = lookupRoute(k.routes, p.vtepIp);
      const routed = route?.device === vx.name;
      const neigh = k.neighbours.find((e) => e.ip === p.vtepIp && e.mac && !e.states.some((s) => s === 'FAILED' || s === 'INCOMPLETE'));
      if (!neigh) {
        if (routed || current) out.add(neighMissingFinding(n, p, current, `${n.name} has no usable neighbour entry for ${p.vtepIp} on ${vx.name}${routed ? ` (its route to ${p.podCidrs[0]} goes via ${p.vtepIp} dev ${vx.name})` : ''}`));
        continue;
      }
      const mac = neigh.mac!;
      if (current && mac !== current) {
        const fdbOld = k.fdb.find((e) => e.mac === mac);
        out.add(vtepMacMismatchFinding(n, p, mac, current,
          `${n.name}'s neighbour entry: ${p.vtepIp} lladdr ${mac}${fdbOld ? `; its FDB holds ${mac} dst ${fdbOld.dst ?? '(none)'}` : ''}; ${p.name}'s ${vxlanName(p)} has MAC ${current}`));
        continue;
      }
      const fdb = k.fdb.find((e) => e.mac === mac && e.dst);
      if (!fdb) {
        out.add(fdbMissingFinding(n, p, mac, `${n.name}'s ${vx.name} has a neighbour ${p.vtepIp} lladdr ${mac} but no FDB entry for ${mac} with a destination`));
        continue;
      }
      const dst = fdb.dst!;
      const verdict = classifyOuterDst(model, n, p, dst);
      const observed = `${n.name}'s FDB sends ${p.name}'s VTEP MAC ${mac} to ${dst} (${holderNote(model, dst)})`;
      switch (verdict.kind) {
        case 'ok':
        case 'unknown':
        case 'duplicate-public-ip': // reported once, above
          break;
        case 'peer-registered-wrong':
          out.add(wrongUnderlaySrcFinding(p, `${p.name} registered flannel public-ip ${dst}; ${observed}`));
          break;
        case 'local':
          out.add(fdbDstLocalFinding(n, p, mac, dst, observed));
          break;
        case 'wrong':
          out.add(wrongUnderlayDstFinding(n, p, mac, observed, { observed: dst }));
          break;
      }
    }
  }
  return out.list();
}

export type { NodeModel };
