// The node map: every node of the hub's cluster with its pod CIDR, underlay address, registered
// public-ip, VTEP MAC and whether an agent watches it; a node that shares its public-ip with others,
// or whose FDB sends a peer's traffic somewhere wrong, is marked, so the seed's case shows before
// any packet does.
import type { NodeInfoMessage, NodeMapMessage } from '../wire.js';
import type { NodeView, UpstreamLoss } from '../store.js';

const WATCH_LABEL: Record<NodeView['state'], string> = { connected: 'watched', unwatched: 'unwatched', error: 'agent error', unknown: 'no agent' };

function problemsOf(n: NodeInfoMessage): string[] {
  const out: string[] = [];
  if (n.publicIpSharedWith?.length) out.push(`registers public-ip ${n.publicIp}, as ${n.publicIpSharedWith.join(', ')} do${n.publicIpSharedWith.length === 1 ? 'es' : ''}`);
  const bad = (n.fdb ?? []).filter((f) => !f.ok);
  if (bad.length) out.push(`${bad.length} FDB entr${bad.length === 1 ? 'y' : 'ies'} wrong`);
  if (n.underlay && n.publicIp && n.underlay !== n.publicIp && !n.publicIpSharedWith?.length) out.push(`public-ip ${n.publicIp} is not its underlay address ${n.underlay}`);
  return out;
}

function NodeCard({ n, status, loss }: { n: NodeInfoMessage; status: NodeView | undefined; loss: UpstreamLoss | undefined }) {
  const problems = problemsOf(n);
  const state = status?.state ?? 'unknown';
  const lost = loss ? loss.ringBuffer + loss.agentQueue + loss.hubQueue : 0;
  return (
    <li class={`node-card${problems.length ? ' marked' : ''} watch-${state}`} aria-labelledby={`node-${n.name}`} data-node={n.name}>
      <h3 id={`node-${n.name}`}>
        {n.name}{' '}
        <span class={`watch watch-${state}`} title={status?.reason}>
          {state === 'connected' ? '●' : '○'} {WATCH_LABEL[state]}
        </span>
      </h3>
      {problems.length > 0 && (
        <p class="marks" role="note" aria-label={`${n.name} is marked: ${problems.join('; ')}`}>
          {problems.map((p) => (
            <span class="mark">⚠ {p}</span>
          ))}
        </p>
      )}
      <dl>
        <dt>Pod CIDR</dt>
        <dd>{(n.podCidrs ?? []).join(', ') || '—'}</dd>
        <dt>Underlay</dt>
        <dd title={n.underlayExplanation ?? undefined}>
          {n.underlay ?? 'unknown'}
          {n.underlayInterface ? ` on ${n.underlayInterface}` : ''}
        </dd>
        <dt>public-ip</dt>
        <dd class={n.publicIpSharedWith?.length ? 'bad' : undefined} data-testid="public-ip">
          {n.publicIp ?? '—'}
          {n.publicIpSharedWith?.length ? <span class="shared"> shared with {n.publicIpSharedWith.join(', ')}</span> : null}
        </dd>
        <dt>VTEP MAC</dt>
        <dd>
          <code>{n.vtepMac ?? '—'}</code>
          {n.vni != null ? ` VNI ${n.vni}` : ''}
        </dd>
        {n.vxlan && (
          <>
            <dt>{n.vxlan.name}</dt>
            <dd>
              local {n.vxlan.local ?? '—'}
              {n.vxlan.lowerDevice ? ` dev ${n.vxlan.lowerDevice}` : ''}, port {n.vxlan.port}, MTU {n.vxlan.mtu}
            </dd>
          </>
        )}
        <dt>Records lost</dt>
        <dd class={lost ? 'bad' : undefined}>{loss ? `${lost} (ring buffer ${loss.ringBuffer}, agent queue ${loss.agentQueue}, hub ${loss.hubQueue})` : '0'}</dd>
      </dl>
      {n.fdb && n.fdb.length > 0 && (
        <>
          <h4>FDB</h4>
          <ul class="fdb">
            {n.fdb.map((f) => (
              <li class={f.ok ? 'ok' : 'bad'} aria-label={`FDB entry for ${f.peer}: ${f.ok ? `${f.dst}, correct` : f.problem}`}>
                <span aria-hidden="true">{f.ok ? '✓' : '✖'}</span> {f.peer} <code>{f.mac}</code> → {f.dst ?? 'none'}
                {!f.ok && <span class="problem"> {f.problem}</span>}
              </li>
            ))}
          </ul>
        </>
      )}
      {!n.kernelState && <p class="hint">No kernel state yet (its agent reports it when it connects).</p>}
    </li>
  );
}

export function NodeMap({ map, statuses, losses, live }: { map: NodeMapMessage | undefined; statuses: Map<string, NodeView>; losses: Map<string, UpstreamLoss>; live: boolean }) {
  return (
    <>
      <h2 id="nodes-h">
        Nodes <span class="sub">{map ? `${map.nodes?.length ?? 0} · ${map.clusterFrom}` : 'loading'}</span>
      </h2>
      {!map ? (
        <p class="hint">Asking the hub for its nodes…</p>
      ) : (
        <div class={`map${live ? '' : ' stale'}`}>
          {!live && <p class="stale-note">The hub is not reachable now: this is what it said last.</p>}
          <ul class="node-cards" aria-label="Nodes of the cluster">
            {(map.nodes ?? []).map((n) => (
              <NodeCard key={n.name} n={n} status={statuses.get(n.name ?? '')} loss={losses.get(n.name ?? '')} />
            ))}
          </ul>
          <div class="underlay-bar" aria-hidden="true">
            underlay
          </div>
        </div>
      )}
    </>
  );
}
