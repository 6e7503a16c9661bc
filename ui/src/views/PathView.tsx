// One path, drawn: its hop chain left to right across nodes (ui/src/hop-chain.ts lays it out; this
// draws it), wrapping on a narrow window, then the facts the chain does not show.
import type { RefObject } from 'preact';
import { fullOf, type PathRow } from '../store.js';
import { hopChain, type ChainDevice, type ChainSegment } from '../hop-chain.js';
import { clock, duration, OUTCOME_LABEL, protocolSummary } from '../format.js';
import { int64, type FlowSummaryMessage, type Int64 } from '../wire.js';

function deviceText(d: ChainDevice): string {
  const parts = [`${d.device} ${d.direction}`];
  if (d.latencyNs !== undefined) parts.push(`${duration(d.latencyNs)} after the previous hop`);
  if (d.loop) parts.push(`looped ${d.loop.times} more times in ${duration(d.loop.spanNs)}`);
  if (d.died) parts.push(`died here: ${d.died.reason}`);
  return parts.join(', ');
}

function Device({ d, node }: { d: ChainDevice; node: string }) {
  return (
    <li class={`hop role-${d.role}${d.died ? ' died' : ''}`} aria-label={deviceText(d)} data-hop={`${node}/${d.device}`}>
      <span class="dev">{d.device}</span>
      <span class="dir" aria-hidden="true">{d.direction === 'ingress' ? 'in' : 'out'}</span>
      {d.latencyNs !== undefined && <span class="lat">+{duration(d.latencyNs)}</span>}
      {d.loop && (
        <span class="loop" title={`the packet passed ${d.device} ${d.loop.times} more times in ${duration(d.loop.spanNs)}`}>
          ⟲ {d.loop.times}× in {duration(d.loop.spanNs)}
        </span>
      )}
      {d.died && (
        <span class="death" title={d.died.location ? `freed in ${d.died.location}` : undefined}>
          ✖ {d.died.reason}
        </span>
      )}
    </li>
  );
}

function Segment({ s }: { s: ChainSegment }) {
  switch (s.kind) {
    case 'pod':
      return (
        <li class={`seg pod${s.reached ? '' : ' unreached'}`} aria-label={`pod ${s.name} ${s.ip}${s.reached ? '' : ', not reached'}`}>
          <span class="pod-name">{s.name.replace(/^default\//, '')}</span>
          <span class="ip">{s.ip}</span>
        </li>
      );
    case 'node':
      return (
        <li class="seg node" aria-label={`on ${s.node}`}>
          <span class="node-name">{s.node}</span>
          <ol class="hops">
            {s.devices.map((d, i) => [i > 0 && <li class="arrow" aria-hidden="true">▸</li>, <Device d={d} node={s.node} />])}
          </ol>
        </li>
      );
    case 'underlay': {
      const time = s.ns !== undefined ? `${s.approximate ? '≈' : '+'}${duration(s.ns)}` : '';
      const words = `underlay: ${s.src} to ${s.dst} UDP port ${s.dstPort}, VNI ${s.vni}${s.arrived ? (time ? `, ${time}${s.approximate ? ' (wall clocks of two nodes)' : ''}` : '') : ', never arrived'}`;
      return (
        <li class={`seg underlay${s.arrived ? '' : ' lost'}`} aria-label={words}>
          <span class="leg" aria-hidden="true">⇢</span>
          <span class="outer">
            {s.src} → {s.dst}:{s.dstPort}
          </span>
          <span class="vni">VNI {s.vni}</span>
          {s.arrived ? time && <span class={`lat${s.approximate ? ' approx' : ''}`} title={s.approximate ? 'wall-clock difference between two nodes: approximate' : undefined}>{time}</span> : <span class="death">✖ never arrived</span>}
          <span class="leg" aria-hidden="true">⇢</span>
        </li>
      );
    }
  }
}

/** The kernel's count of the path's flow at every hop: where its packets went missing, if they did. */
function FlowCounts({ flow }: { flow: FlowSummaryMessage }) {
  let prev: number | undefined;
  const hops = flow.hops ?? [];
  return (
    <section class="flow-counts" aria-label="Packets of this flow counted in the kernel at each hop" data-testid="flow-counts">
      <h3>Its flow, every packet counted at each hop</h3>
      <table>
        <thead>
          <tr>
            <th scope="col">hop</th>
            <th scope="col" class="num">packets</th>
            <th scope="col" class="num">bytes</th>
            <th scope="col" class="num">vs previous</th>
          </tr>
        </thead>
        <tbody>
          {hops.map((h) => {
            const n = int64(h.packets as Int64);
            const diff = prev === undefined ? 0 : n - prev;
            prev = n;
            return (
              <tr class={diff < 0 ? 'missing' : undefined}>
                <td>
                  {h.node} {h.device} {h.direction === 2 ? 'egress' : 'ingress'}
                </td>
                <td class="num">{n}</td>
                <td class="num">{int64(h.bytes as Int64)}</td>
                <td class="num">{diff < 0 ? `−${-diff}` : diff > 0 ? `+${diff}` : ''}</td>
              </tr>
            );
          })}
          {(flow.drops ?? []).map((d) => (
            <tr class="missing">
              <td>
                dropped at {d.node} {d.device}: {d.dropReason ?? 'drop'}
              </td>
              <td class="num">{int64(d.packets as Int64)}</td>
              <td class="num">{int64(d.bytes as Int64)}</td>
              <td />
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

export function PathView({ row, flow, headingRef }: { row: PathRow | undefined; flow?: FlowSummaryMessage | undefined; headingRef: RefObject<HTMLHeadingElement | null> }) {
  if (!row) {
    return (
      <>
        <h2 id="path-h" tabIndex={-1} ref={headingRef}>Path</h2>
        <p class="hint">Select a path in the table (click it, or arrow keys then Enter) to see its hops.</p>
      </>
    );
  }
  const p = fullOf(row);
  const chain = hopChain(p);
  const outcome = chain.death
    ? `${OUTCOME_LABEL[chain.outcome]} at ${chain.death.node}/${chain.death.device}: ${chain.death.reason}`
    : OUTCOME_LABEL[chain.outcome];
  const links = chain.segments.map((s, i) => [
    i > 0 && (
      <li class="arrow" aria-hidden="true">
        {s.kind === 'underlay' || chain.segments[i - 1]!.kind === 'underlay' ? '' : '▸'}
      </li>
    ),
    <Segment s={s} />,
  ]);
  return (
    <>
      <h2 id="path-h" tabIndex={-1} ref={headingRef}>
        Path <span class="sub">{protocolSummary(p)}</span>
      </h2>
      <p class={`verdict outcome-${chain.outcome}`} data-testid="verdict">
        <strong>{outcome}</strong>
        {chain.outcome !== 'in-flight' && <> · {chain.approximate ? '≈' : ''}{duration(chain.totalNs)} in all</>}
      </p>
      <ol class="chain" aria-label="Hop chain, from the sending pod to the receiving pod" data-testid="hop-chain">
        {links}
      </ol>
      {chain.hopsDiscarded > 0 && <p class="hint">{chain.hopsDiscarded} more hops (the loop's) were not kept.</p>}
      <dl class="facts">
        <dt>Sent</dt>
        <dd>{clock(row.firstSeenMs)} UTC</dd>
        <dt>Inner</dt>
        <dd>
          {p.inner?.src} → {p.inner?.dst}, {p.inner?.ipLength} bytes, TTL {p.inner?.ttl}, IP id {p.inner?.ipId}
          {p.inner?.dontFragment ? ', DF' : ''}
        </dd>
        {p.outer && (
          <>
            <dt>Outer</dt>
            <dd>
              {p.outer.src}:{p.outer.srcPort} → {p.outer.dst}:{p.outer.dstPort} VNI {p.outer.vni}
            </dd>
          </>
        )}
        {chain.death?.location && (
          <>
            <dt>Freed in</dt>
            <dd>{chain.death.location}</dd>
          </>
        )}
        <dt>Fingerprint</dt>
        <dd>
          <code>{p.fingerprint}</code>
        </dd>
      </dl>
      {flow && (flow.hops ?? []).length > 0 && <FlowCounts flow={flow} />}
    </>
  );
}
