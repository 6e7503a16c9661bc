// The page's start: one store, one connection to the hub, one render per animation frame however
// many events came in since the last one, and the few listeners the page needs (keys, the URL's
// filter, the colour scheme), each added here and nowhere else.
import { render } from 'preact';
import { Store, DEFAULT_PATH_CAP, fullOf } from './store.js';
import { StreamConnection, hubAccessFromLocation } from './connection.js';
import { downloadPcapng, fetchNodeMap } from './hub-api.js';
import { App, type Actions, type Theme, type UiState } from './views/App.js';
import type { PageFilter } from './wire.js';
import './style.css';

// ---------------------------------------------------------------------------------------------
// The filter lives in the URL's fragment (#from=pod-a&to=pod-b&node=node1&outcome=dropped&code=...),
// so that a reload or a shared link shows the same view.

function filterFromHash(hash: string): PageFilter {
  const q = new URLSearchParams(hash.replace(/^#/, ''));
  const f: PageFilter = {};
  if (q.get('from')) f.from = q.get('from')!;
  if (q.get('to')) f.to = q.get('to')!;
  if (f.from && f.to && q.get('both') !== '0') f.bothWays = true;
  if (q.get('node')) f.node = q.get('node')!;
  if (q.get('outcome')) f.outcomes = q.get('outcome')!.split(',');
  if (q.get('code')) f.codes = q.get('code')!.split(',');
  return f;
}

function hashOf(f: PageFilter): string {
  const q = new URLSearchParams();
  if (f.from) q.set('from', f.from);
  if (f.to) q.set('to', f.to);
  if (f.from && f.to && !f.bothWays) q.set('both', '0');
  if (f.node) q.set('node', f.node);
  if (f.outcomes?.length) q.set('outcome', f.outcomes.join(','));
  if (f.codes?.length) q.set('code', f.codes.join(','));
  const s = q.toString();
  return s ? `#${s}` : '';
}

// ---------------------------------------------------------------------------------------------

const params = new URLSearchParams(location.search);
const cap = Number(params.get('cap')) > 0 ? Math.floor(Number(params.get('cap'))) : DEFAULT_PATH_CAP;
const store = new Store(cap);
store.filter = filterFromHash(location.hash);
const access = hubAccessFromLocation(location);

const ui: UiState = { theme: (localStorage.getItem('vxtrace.theme') as Theme | null) ?? 'system', download: { busy: false, message: '', error: false } };

function applyTheme(t: Theme): void {
  if (t === 'system') delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = t;
}
applyTheme(ui.theme);

// The node map: when the page subscribes, when a node's agent comes or goes, when a finding comes
// (state changed), and every 10 s while the page is visible (a healed FDB raises no event).
let mapTimer: ReturnType<typeof setTimeout> | undefined;
let mapPending = false;
function refreshNodeMap(delayMs = 300): void {
  if (mapPending) return;
  mapPending = true;
  clearTimeout(mapTimer);
  mapTimer = setTimeout(async () => {
    mapPending = false;
    try {
      store.setNodeMap(await fetchNodeMap(access));
    } catch (err) {
      console.warn(`vxtrace: ${(err as Error).message}`);
    }
  }, delayMs);
}
setInterval(() => {
  if (!document.hidden && store.connection.state === 'live') refreshNodeMap(0);
}, 10_000);

const connection = new StreamConnection(access, store, () => refreshNodeMap(0));
let seenNodes = 0;
let seenFindings = 0;
store.onChange(() => {
  if (store.nodesVersion === seenNodes && store.findingsVersion === seenFindings) return;
  seenNodes = store.nodesVersion;
  seenFindings = store.findingsVersion;
  refreshNodeMap();
});

const actions: Actions = {
  setFilter(f) {
    store.setFilter(f);
    history.replaceState(null, '', `${location.pathname}${location.search}${hashOf(f)}`);
    connection.resubscribe(f);
  },
  async download() {
    const fingerprints = store.fingerprintsInView();
    ui.download = { busy: true, message: `Asking the hub for ${fingerprints.length} paths…`, error: false };
    schedule();
    try {
      const d = await downloadPcapng(access, fingerprints);
      const [held, asked] = d.held.split('/');
      ui.download = { busy: false, message: `Saved ${d.file} (${(d.bytes / 1024).toFixed(1)} KiB): ${held ?? '?'} of ${asked ?? fingerprints.length} paths${held !== asked ? '; the hub had let the others go' : ''}`, error: false };
    } catch (err) {
      ui.download = { busy: false, message: `Download failed: ${(err as Error).message}`, error: true };
    }
    schedule();
  },
  setTheme(t) {
    ui.theme = t;
    if (t === 'system') localStorage.removeItem('vxtrace.theme');
    else localStorage.setItem('vxtrace.theme', t);
    applyTheme(t);
    schedule();
  },
};

// ---------------------------------------------------------------------------------------------
// Rendering: at most once per animation frame, whatever the event rate; while paths stream in and
// nobody touches the page, at most every 33 ms (30 renders a second are more than eyes can read,
// and half the work). A key or a click is answered in the very next frame.

const STREAM_FRAME_MS = 33;
const root = document.getElementById('app')!;
let frame = 0;
let lastDraw = 0;
let inputSinceDraw = false;
function draw(now: number): void {
  frame = 0;
  if (!inputSinceDraw && now - lastDraw < STREAM_FRAME_MS) {
    frame = requestAnimationFrame(draw);
    return;
  }
  lastDraw = now;
  inputSinceDraw = false;
  render(<App store={store} actions={actions} ui={ui} />, root);
}
function schedule(): void {
  if (!frame) frame = requestAnimationFrame(draw);
}
store.onChange(schedule);
const answerInput = () => {
  inputSinceDraw = true;
};
document.addEventListener('keydown', answerInput, { capture: true });
document.addEventListener('pointerdown', answerInput, { capture: true });

window.addEventListener('hashchange', () => {
  const f = filterFromHash(location.hash);
  if (JSON.stringify(f) !== JSON.stringify(store.filter)) actions.setFilter(f);
});
document.addEventListener('keydown', (e) => {
  const t = e.target as HTMLElement | null;
  // Keys typed into a field are the field's.
  if (e.ctrlKey || e.metaKey || e.altKey || (t && /^(INPUT|SELECT|TEXTAREA)$/.test(t.tagName))) return;
  if (e.key === '/') {
    e.preventDefault();
    (document.querySelector('.filters input[name=from]') as HTMLInputElement | null)?.focus();
  } else if (e.key === 'p') {
    if (store.paused) store.resume();
    else store.pause();
  }
});

// For the tests and for curious operators: the store (read-only by convention), and a row's whole path.
(window as unknown as { vxtrace: unknown }).vxtrace = { store, fullOf };

draw(performance.now());
connection.start();
