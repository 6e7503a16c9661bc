// The paths table: live, newest first, virtualised (only the rows in sight are in the DOM, however
// many the store holds), a grid the keyboard drives (arrows, Page Up/Down, Home/End, Enter to the
// path, Escape to let go of it). When the operator has scrolled down, new rows do not push the ones
// under the eye away.
import type { ComponentChildren } from 'preact';
import { useLayoutEffect, useRef, useState } from 'preact/hooks';
import { fullOf, type PathRow, type RowsView } from '../store.js';
import { clock, duration, OUTCOME_LABEL, podLabel, protocolSummary, whereDied } from '../format.js';

/** Row height: the stylesheet's --row-h (30 px; two lines, 46 px, in a narrow window). */
const DEFAULT_ROW_HEIGHT = 30;
const OVERSCAN = 3;

interface Props {
  view: RowsView;
  /** Changes whenever the rows do (the store's pathsVersion). */
  version: number;
  selected: PathRow | undefined;
  onSelect: (row: PathRow | undefined) => void;
  onOpen: () => void;
  label: string;
  /** What to say while there is no row. */
  empty: ComponentChildren;
}

const rowId = (r: PathRow) => `path-row-${r.seq}`;

function Row({ row, index, height, selected, onSelect }: { row: PathRow; index: number; height: number; selected: boolean; onSelect: (r: PathRow) => void }) {
  const p = row.path;
  // The hub joins each node's hops on that node's clock: from one node to another, the total is by wall clocks.
  const crossed = !!p.srcNode && !!p.dstNode && p.srcNode !== p.dstNode && row.outcome === 'delivered';
  // Dropped paths say where in their drop; lost and vanished ones in their last hop.
  const died = whereDied(row.outcome === 'delivered' || row.outcome === 'dropped' || row.outcome === 'in-flight' ? p : fullOf(row), row.outcome);
  return (
    <div
      role="row"
      id={rowId(row)}
      class={`row outcome-${row.outcome}${selected ? ' selected' : ''}`}
      aria-rowindex={index + 2}
      aria-selected={selected}
      style={{ transform: `translateY(${index * height}px)` }}
      onClick={() => onSelect(row)}
      data-fingerprint={p.fingerprint}
    >
      <span role="gridcell" class="c-time">{clock(row.firstSeenMs)}</span>
      <span role="gridcell" class="c-pods" title={`${p.srcPod ?? p.inner?.src} → ${p.dstPod ?? p.inner?.dst}`}>
        {podLabel(p.srcPod, p.inner?.src)} → {podLabel(p.dstPod, p.inner?.dst)}
      </span>
      <span role="gridcell" class="c-proto">{protocolSummary(p)}</span>
      <span role="gridcell" class="c-outcome"><span class="badge">{OUTCOME_LABEL[row.outcome]}</span></span>
      <span role="gridcell" class="c-latency" title={crossed ? 'first to last hop by two nodes\' wall clocks: approximate' : undefined}>
        {crossed ? '≈' : ''}
        {duration(row.durationNs)}
      </span>
      <span role="gridcell" class="c-died" title={died}>{died}</span>
    </div>
  );
}

export function PathTable({ view, version, selected, onSelect, onOpen, label, empty }: Props) {
  const viewport = useRef<HTMLDivElement>(null);
  const [scrollTop, setScrollTop] = useState(0);
  const [height, setHeight] = useState(480);
  const [rowHeight, setRowHeight] = useState(DEFAULT_ROW_HEIGHT);
  // The row at the top of the viewport, to keep it there when newer rows arrive.
  const anchor = useRef<{ row: PathRow; offset: number } | undefined>(undefined);

  useLayoutEffect(() => {
    const el = viewport.current;
    if (!el) return;
    const measure = () => {
      setHeight(el.clientHeight || 480);
      setRowHeight(Number.parseFloat(getComputedStyle(el).getPropertyValue('--row-h')) || DEFAULT_ROW_HEIGHT);
    };
    measure();
    const ro = new ResizeObserver(measure);
    ro.observe(el);
    ro.observe(document.documentElement);
    return () => ro.disconnect();
  }, []);

  // Newer rows came in: keep what the operator reads in place (unless they are at the top, watching live).
  useLayoutEffect(() => {
    const el = viewport.current;
    const a = anchor.current;
    if (!el || !a || el.scrollTop === 0) return;
    const i = view.indexOf(a.row);
    if (i < 0) return;
    const want = i * rowHeight + a.offset;
    if (Math.abs(want - el.scrollTop) >= 1) {
      el.scrollTop = want;
      setScrollTop(el.scrollTop);
    }
  }, [version]);

  const count = view.count;
  const first = Math.max(0, Math.floor(scrollTop / rowHeight) - OVERSCAN);
  const last = Math.min(count, Math.ceil((scrollTop + height) / rowHeight) + OVERSCAN);
  const rows = [];
  for (let i = first; i < last; i++) {
    const r = view.rowAt(i);
    rows.push(<Row key={i % (last - first + 1)} row={r} index={i} height={rowHeight} selected={r === selected} onSelect={onSelect} />);
  }
  const top = Math.floor(scrollTop / rowHeight);
  anchor.current = top < count && scrollTop > 0 ? { row: view.rowAt(top), offset: scrollTop - top * rowHeight } : undefined;

  const selectedIndex = selected ? view.indexOf(selected) : -1;
  // Keys can come faster than frames: each one moves from where the last one went, not from the last render.
  const current = useRef<PathRow | undefined>(selected);
  current.current = selected;

  const move = (to: number) => {
    const n = view.count;
    if (!n) return;
    const i = Math.max(0, Math.min(n - 1, to));
    current.current = view.rowAt(i);
    onSelect(current.current);
    const el = viewport.current;
    if (!el) return;
    if (i * rowHeight < el.scrollTop) el.scrollTop = i * rowHeight;
    else if ((i + 1) * rowHeight > el.scrollTop + el.clientHeight) el.scrollTop = (i + 1) * rowHeight - el.clientHeight;
    setScrollTop(el.scrollTop);
  };
  const page = Math.max(1, Math.floor(height / rowHeight) - 1);
  const onKeyDown = (e: KeyboardEvent) => {
    const at = current.current ? view.indexOf(current.current) : -1;
    switch (e.key) {
      case 'ArrowDown':
        move(at < 0 ? 0 : at + 1);
        break;
      case 'ArrowUp':
        move(at < 0 ? 0 : at - 1);
        break;
      case 'PageDown':
        move(at < 0 ? page : at + page);
        break;
      case 'PageUp':
        move(at - page);
        break;
      case 'Home':
        move(0);
        break;
      case 'End':
        move(view.count - 1);
        break;
      case 'Enter':
        if (current.current) onOpen();
        break;
      case 'Escape':
        current.current = undefined;
        onSelect(undefined);
        break;
      default:
        return;
    }
    e.preventDefault();
  };

  return (
    <div
      class="grid"
      role="grid"
      aria-label={label}
      aria-rowcount={count + 1}
      aria-colcount={6}
      tabIndex={0}
      aria-activedescendant={selected && selectedIndex >= first && selectedIndex < last ? rowId(selected) : undefined}
      onKeyDown={onKeyDown}
    >
      <div role="row" class="row head" aria-rowindex={1}>
        <span role="columnheader" class="c-time">Time (UTC)</span>
        <span role="columnheader" class="c-pods">From → to</span>
        <span role="columnheader" class="c-proto">Protocol</span>
        <span role="columnheader" class="c-outcome">Outcome</span>
        <span role="columnheader" class="c-latency">Latency</span>
        <span role="columnheader" class="c-died">Where it died</span>
      </div>
      <div class="viewport" ref={viewport} role="rowgroup" style={{ '--rows': String(count) }} onScroll={(e) => setScrollTop((e.currentTarget as HTMLDivElement).scrollTop)}>
        <div class="spacer" style={{ height: `${count * rowHeight}px` }}>
          {rows}
        </div>
        {count === 0 && <p class="empty">{empty}</p>}
      </div>
    </div>
  );
}
