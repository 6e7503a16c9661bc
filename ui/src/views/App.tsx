// The page: a function of the store. Header (connection, counters, pause, download, theme), the
// filter bar (sent to the hub as a Subscribe), the paths table, the selected path, the findings,
// the node map. Heavy panels re-render only when their part of the store changed (Memo).
import { Component, type ComponentChildren } from 'preact';
import { useRef } from 'preact/hooks';
import { FINDING_CODES } from '../../../src/diagnose/finding.js';
import type { Store } from '../store.js';
import { OUTCOMES, type FindingMessage, type PageFilter } from '../wire.js';
import { OUTCOME_LABEL } from '../format.js';
import { PathTable } from './PathTable.js';
import { PathView } from './PathView.js';
import { Findings } from './Findings.js';
import { NodeMap } from './NodeMap.js';

/** Renders `render()` again only when one of `deps` changed. */
class Memo extends Component<{ deps: unknown[]; render: () => ComponentChildren }> {
  override shouldComponentUpdate(next: { deps: unknown[] }): boolean {
    const d = this.props.deps;
    return next.deps.length !== d.length || next.deps.some((x, i) => x !== d[i]);
  }
  override render() {
    return this.props.render();
  }
}

export type Theme = 'system' | 'light' | 'dark';

export interface Actions {
  setFilter(f: PageFilter): void;
  download(): void;
  setTheme(t: Theme): void;
}

export interface UiState {
  theme: Theme;
  download: { busy: boolean; message: string; error: boolean };
}

const n = (x: number) => x.toLocaleString('en-US');

function Filters({ store, actions }: { store: Store; actions: Actions }) {
  const f = store.filter;
  const pods = (store.nodeMap?.pods ?? []).map((p) => p.ref ?? '');
  const nodes = (store.nodeMap?.nodes ?? []).map((x) => x.name ?? '');
  const submit = (e: Event) => {
    e.preventDefault();
    const form = new FormData(e.currentTarget as HTMLFormElement);
    const text = (k: string) => String(form.get(k) ?? '').trim();
    const next: PageFilter = {};
    if (text('from')) next.from = text('from');
    if (text('to')) next.to = text('to');
    if (next.from && next.to && form.get('both')) next.bothWays = true;
    if (text('node')) next.node = text('node');
    if (text('outcome')) next.outcomes = [text('outcome')];
    if (text('code')) next.codes = [text('code')];
    actions.setFilter(next);
  };
  const active = !!(f.from || f.to || f.node || f.outcomes?.length || f.codes?.length);
  // Keyed by the filter: a new filter (also from the URL) resets the fields to it.
  return (
    <form class="filters" role="search" aria-label="Filter paths and findings" onSubmit={submit} key={JSON.stringify(f)}>
      <datalist id="pods">
        {pods.map((p) => (
          <option value={p} />
        ))}
      </datalist>
      <label>
        From pod <input name="from" list="pods" defaultValue={f.from ?? ''} placeholder="any" autocomplete="off" size={12} />
      </label>
      <label>
        To pod <input name="to" list="pods" defaultValue={f.to ?? ''} placeholder="any" autocomplete="off" size={12} />
      </label>
      <label class="check">
        <input type="checkbox" name="both" defaultChecked={f.bothWays ?? true} /> both ways
      </label>
      <label>
        Node{' '}
        <select name="node" defaultValue={f.node ?? ''}>
          <option value="">any</option>
          {nodes.map((x) => (
            <option value={x}>{x}</option>
          ))}
        </select>
      </label>
      <label>
        Outcome{' '}
        <select name="outcome" defaultValue={f.outcomes?.[0] ?? ''}>
          <option value="">any</option>
          {OUTCOMES.map((o) => (
            <option value={o}>{OUTCOME_LABEL[o]}</option>
          ))}
        </select>
      </label>
      <label>
        Finding{' '}
        <select name="code" defaultValue={f.codes?.[0] ?? ''}>
          <option value="">any</option>
          {FINDING_CODES.map((c) => (
            <option value={c}>{c}</option>
          ))}
        </select>
      </label>
      <button type="submit">Apply filter</button>
      <button type="button" disabled={!active} onClick={() => actions.setFilter({})}>
        Clear
      </button>
    </form>
  );
}

function Counters({ store }: { store: Store }) {
  const nodes = store.nodeViews();
  return (
    <p class="counters" aria-label="Counters" data-testid="counters">
      <span data-testid="paths-count">{n(store.rows.count)} paths held</span>
      <span>{n(store.received)} received</span>
      <span class={store.letGo ? 'warn' : undefined} title={`at most ${n(store.cap)} paths are kept; older ones are let go`}>
        {n(store.letGo)} let go
      </span>
      <span class={store.lostUpstreamTotal ? 'bad' : undefined} data-testid="lost-upstream">
        records lost upstream:{' '}
        {nodes.length
          ? nodes.map((x, i) => {
              const l = store.lostUpstream.get(x.name);
              return `${i ? ', ' : ''}${x.name} ${l ? l.ringBuffer + l.agentQueue + l.hubQueue : 0}`;
            })
          : '0'}
      </span>
      <span class={store.missed ? 'bad' : undefined} data-testid="missed">
        {n(store.missed)} missed by this page
      </span>
    </p>
  );
}

/** The filter in force, in words ("pod-a ⇄ pod-b · node1 · dropped"); empty for everything. */
function filterText(f: PageFilter): string {
  const pods = f.from && f.to ? `${f.from} ${f.bothWays ? '⇄' : '→'} ${f.to}` : f.from ? `from ${f.from}` : f.to ? `to ${f.to}` : '';
  return [pods, f.node ? `on ${f.node}` : '', f.outcomes?.length ? f.outcomes.join(', ') : '', f.codes?.length ? `findings ${f.codes.join(', ')}` : ''].filter(Boolean).join(' · ');
}

const THEME_NEXT: Record<Theme, Theme> = { system: 'light', light: 'dark', dark: 'system' };

export function App({ store, actions, ui }: { store: Store; actions: Actions; ui: UiState }) {
  const headingRef = useRef<HTMLHeadingElement>(null);
  const tableLabel = store.focus ? `Paths that prove ${store.focus.finding.code}` : store.paused ? 'Paths (paused), newest first' : 'Paths, newest first';
  const c = store.connection;
  const heldCount = (f: FindingMessage) => {
    const want = new Set(f.evidence?.packets?.values ?? []);
    let k = 0;
    for (const r of store.rows) if (want.has(r.path.fingerprint ?? '')) k++;
    return k;
  };
  const podB = store.nodeMap?.pods?.find((p) => p.ref === 'default/pod-b');
  return (
    <div class="app">
      <header class="top">
        <h1>
          vxtrace <span class="sub">where each packet died, and why</span>
        </h1>
        <p class={`conn conn-${c.state}`} role="status" aria-live="polite" data-testid="connection" data-state={c.state}>
          <span class="dot" aria-hidden="true">
            ●
          </span>{' '}
          {c.state === 'live' ? 'Live' : c.state === 'refused' ? 'Refused' : c.state === 'reconnecting' ? 'Reconnecting' : 'Connecting'}
          <span class="detail"> · {c.detail}</span>
        </p>
        <div class="actions">
          <button type="button" aria-pressed={store.paused} onClick={() => (store.paused ? store.resume() : store.pause())} title="Pause or resume the table (key: p)">
            {store.paused ? `Resume (${n(store.newSincePause)} new)` : 'Pause'}
          </button>
          <button type="button" onClick={actions.download} disabled={ui.download.busy || store.view.count === 0} title="The paths in the table, as one pcapng trace">
            {ui.download.busy ? 'Preparing…' : 'Download pcapng'}
          </button>
          <button type="button" onClick={() => actions.setTheme(THEME_NEXT[ui.theme])} aria-label={`Colour scheme: ${ui.theme}; switch to ${THEME_NEXT[ui.theme]}`}>
            Theme: {ui.theme}
          </button>
        </div>
        {ui.download.message && (
          <p class={`download-msg${ui.download.error ? ' bad' : ''}`} role="status" data-testid="download-status">
            {ui.download.message}
          </p>
        )}
      </header>
      <Memo deps={[store.filter, store.nodeMap]} render={() => <Filters store={store} actions={actions} />} />
      <Counters store={store} />
      <main class="main">
        <section class="paths" aria-labelledby="paths-h">
          <h2 id="paths-h">
            {store.focus ? (
              <>
                Paths that prove {store.focus.finding.code}{' '}
                <button type="button" class="link" onClick={() => store.focusOn(undefined)}>
                  Show every path
                </button>
              </>
            ) : (
              <>
                Paths {filterText(store.filter) && <span class="sub">{filterText(store.filter)}</span>} {store.paused && <span class="sub">· paused</span>}
              </>
            )}
          </h2>
          <PathTable
            view={store.view}
            version={store.pathsVersion}
            selected={store.selected}
            onSelect={(r) => store.select(r)}
            onOpen={() => headingRef.current?.focus()}
            label={tableLabel}
            empty={
              store.focus ? (
                'None of the paths that prove it is held by this page (they came before it connected, or were let go).'
              ) : (
                <>
                  No path yet: send traffic between two pods{podB ? <> (in the lab: <code>vxtrace lab exec pod-a -- ping -c 3 {podB.ips?.[0]}</code>)</> : null}.
                </>
              )
            }
          />
        </section>
        <section class="detail" aria-labelledby="path-h" onKeyDown={(e) => e.key === 'Escape' && (document.querySelector('.grid') as HTMLElement | null)?.focus()}>
          <Memo deps={[store.selected, store.flowsVersion]} render={() => <PathView row={store.selected} flow={store.selected && store.flowOf(store.selected)} headingRef={headingRef} />} />
        </section>
        <section class="findings" aria-labelledby="findings-h">
          <Memo
            deps={[store.findingsVersion, store.focus?.finding.key, store.pathsVersion >> 6]}
            render={() => <Findings findings={store.findings} focusKey={store.focus?.finding.key ?? undefined} onFocus={(f) => store.focusOn(f)} heldCount={heldCount} />}
          />
        </section>
        <section class="nodes" aria-labelledby="nodes-h">
          <Memo deps={[store.nodesVersion, store.lossVersion, store.nodeMap, c.state === 'live']} render={() => <NodeMap map={store.nodeMap} statuses={store.nodes} losses={store.lostUpstream} live={c.state === 'live'} />} />
        </section>
      </main>
      <footer class="foot">
        <p>
          Keys: <kbd>/</kbd> filter · <kbd>p</kbd> pause · in the table <kbd>↑</kbd>/<kbd>↓</kbd>, <kbd>Enter</kbd> to the path, <kbd>Esc</kbd> back.
          {store.hub && <> · hub {store.hub.version}</>}
          {store.badFrames > 0 && <span class="bad"> · {store.badFrames} frames could not be read</span>}
        </p>
      </footer>
    </div>
  );
}
