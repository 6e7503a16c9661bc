// Human output for `vxtrace check`: the matrix (rows from, columns to, ✔/✖ and a short reason per
// cell), what the probes cover, each finding once with the cells it explains, and a summary line.
// Pure: strings in, strings out; colour on request.
import type { Finding } from '../diagnose/finding.js';
import type { Cell, CheckVerdict } from '../probe/judge.js';
import { formatFinding, type TextStyle } from './text.js';

const paint = (style: TextStyle, code: number, s: string) => (style.color ? `\x1b[${code}m${s}\x1b[0m` : s);
const width = (s: string) => [...s].length;
const pad = (s: string, n: number) => s + ' '.repeat(Math.max(0, n - width(s)));

/** Hooks a cell's delivered legs passed, of the 12 (six each way). */
const hooksPassed = (c: Cell) => c.coverage.out.length + c.coverage.back.length;

function cellText(c: Cell | undefined, ref?: number): string {
  if (!c) return '·';
  if (c.ok) return hooksPassed(c) < 12 ? `✔ ${hooksPassed(c)}/12 hooks` : '✔';
  if (!c.probed) return '? not probed';
  return ref !== undefined ? `✖ ${ref}` : `✖ ${c.reason ?? ''}`;
}

/**
 * The matrix. Reasons go in the cells when the table fits in `columns`; otherwise each distinct
 * reason gets a number, listed under the table.
 */
export function formatMatrix(nodes: readonly string[], cells: readonly Cell[], style: TextStyle, columns = 160): string {
  const at = new Map(cells.map((c) => [`${c.from}>${c.to}`, c]));
  const label = 'from \\ to';
  const first = Math.max(width(label), ...nodes.map(width)) + 2;
  const render = (refs: Map<string, number> | undefined) => {
    const text = (a: string, b: string) => {
      const c = at.get(`${a}>${b}`);
      return a === b ? '·' : cellText(c, c && !c.ok && c.probed && refs ? refs.get(c.reason ?? '') : undefined);
    };
    const colWidth = nodes.map((b) => Math.max(width(b), ...nodes.map((a) => width(text(a, b)))) + 2);
    const lines = [pad(label, first) + nodes.map((b, i) => pad(b, colWidth[i]!)).join('').trimEnd()];
    for (const a of nodes) {
      let line = pad(a, first);
      for (const [i, b] of nodes.entries()) {
        const t = text(a, b);
        const coloured = t.startsWith('✔') ? paint(style, 32, t) : t.startsWith('✖') ? paint(style, 31, t) : t;
        line += coloured + ' '.repeat(Math.max(0, colWidth[i]! - width(t)));
      }
      lines.push(line.trimEnd());
    }
    return { lines, total: first + colWidth.reduce((x, y) => x + y, 0) };
  };
  const full = render(undefined);
  if (full.total <= columns) return full.lines.join('\n') + '\n';
  const reasons = [...new Set(cells.filter((c) => !c.ok && c.probed).map((c) => c.reason ?? ''))];
  const refs = new Map(reasons.map((r, i) => [r, i + 1]));
  const compact = render(refs);
  return [...compact.lines, '', ...reasons.map((r, i) => `  ${i + 1}  ${r}`)].join('\n') + '\n';
}

/** What a cell's probes pass, in words, once under the matrix. */
export function formatCoverage(v: CheckVerdict): string {
  const complete = v.cells.find((c) => c.ok && hooksPassed(c) === 12);
  const devices = complete ? complete.coverage.out.map((h) => h.split(' ')[1]!) : ['cni0', 'flannel.1', 'uplink', 'uplink', 'flannel.1', 'cni0'];
  const chain = `${devices.slice(0, 3).join(' ▸ ')} ⇢ ${devices.slice(3).join(' ▸ ')}`;
  const lines = [
    "Each cell holds both probes between its two nodes: the row node's (from its pod-bridge address to a",
    "pod on the column node, and the reply) and the column node's. A node's own probe skips its cni0",
    "ingress and its reply skips its cni0 egress; the other node's probe passes both, as a pod's packet",
    'does. So a ✔ cell passed all six hooks of pod traffic each way:',
    `  ${chain}`,
  ];
  const partial = v.cells.filter((c) => c.ok && hooksPassed(c) < 12);
  for (const c of partial) lines.push(`  ${c.from} → ${c.to}: ${hooksPassed(c)} of 12 hooks; not passed: ${c.coverage.missing.join(', ')}`);
  return lines.join('\n') + '\n';
}

/** Each finding once, with the cells it explains. */
export function formatCheckFindings(v: CheckVerdict, style: TextStyle): string {
  const broken = v.cells.filter((c) => !c.ok && c.probed).length;
  return v.findings
    .map((f: Finding) => {
      const cells = v.explains.get(f.key) ?? [];
      const which = cells.length === 0
        ? 'no broken pair'
        : `${cells.length === broken && broken > 1 ? `all ${broken} broken pairs: ` : ''}${cells.slice(0, 12).map(([a, b]) => `${a}→${b}`).join(', ')}${cells.length > 12 ? `, and ${cells.length - 12} more` : ''}`;
      return `${formatFinding(f, style)}  explains: ${which}\n`;
    })
    .join('\n');
}

export function formatCheckSummary(v: CheckVerdict, elapsedMs: number, style: TextStyle): string {
  const probed = v.cells.filter((c) => c.probed);
  const ok = probed.filter((c) => c.ok).length;
  const codes = [...new Set(v.findings.map((f) => f.code))];
  const broken = probed.length - ok;
  const notProbed = v.cells.length - probed.length;
  return (
    `${v.cells.length} pair${v.cells.length === 1 ? '' : 's'}: ${paint(style, ok === v.cells.length ? 32 : 1, `${ok} work`)}` +
    `${broken ? `, ${paint(style, 31, `${broken} broken`)}` : ''}${notProbed ? `, ${notProbed} not probed` : ''}; ` +
    `${codes.length ? `findings: ${codes.join(', ')}` : 'no findings'}; ${v.probesSent} probe${v.probesSent === 1 ? '' : 's'} in ${(elapsedMs / 1000).toFixed(1)}s\n`
  );
}
