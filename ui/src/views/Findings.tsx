// The findings panel: every finding with its severity, nodes, plain cause, evidence (observed vs
// expected) and the fix as text to copy; "Show the paths" turns the table to the paths that prove it.
import { useState } from 'preact/hooks';
import type { FindingMessage } from '../wire.js';

const MARK: Record<string, string> = { error: '✖', warning: '▲', info: 'ℹ' };

function CopyButton({ text, label }: { text: string; label: string }) {
  const [done, setDone] = useState<'' | 'copied' | 'select'>('');
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
      setDone('copied');
    } catch {
      // No clipboard (an insecure origin, a denied permission): the text is selectable.
      setDone('select');
    }
    setTimeout(() => setDone(''), 2000);
  };
  return (
    <button type="button" class="copy" onClick={copy} aria-label={label}>
      {done === 'copied' ? 'Copied' : done === 'select' ? 'Select the text to copy' : 'Copy'}
    </button>
  );
}

function Finding({ f, focused, onFocus, pathsHeld }: { f: FindingMessage; focused: boolean; onFocus: (f: FindingMessage | undefined) => void; pathsHeld: number }) {
  const severity = f.severity ?? 'info';
  const packets = f.evidence?.packets?.values ?? [];
  return (
    <article class={`finding sev-${severity}${focused ? ' focused' : ''}`} aria-labelledby={`f-${f.key}`} data-code={f.code}>
      <h3 id={`f-${f.key}`}>
        <span class="sev" aria-label={severity}>
          {MARK[severity] ?? '•'}
        </span>{' '}
        <span class="code">{f.code}</span> <span class="where">on {(f.nodes ?? []).join(', ') || 'the cluster'}</span>
        {(f.packetCount ?? 0) > 0 && <span class="count"> · {f.packetCount} packet{f.packetCount === 1 ? '' : 's'}</span>}
      </h3>
      <p class="cause">{f.cause}</p>
      <dl class="evidence">
        <dt>Observed</dt>
        <dd>{f.evidence?.observed}</dd>
        {f.evidence?.expected && (
          <>
            <dt>Expected</dt>
            <dd>{f.evidence.expected}</dd>
          </>
        )}
      </dl>
      <div class="fix">
        <span class="fix-label" id={`fix-${f.key}`}>
          Fix
        </span>
        <pre aria-labelledby={`fix-${f.key}`}>
          <code>{f.fix}</code>
        </pre>
        <CopyButton text={f.fix ?? ''} label={`Copy the fix for ${f.code}`} />
      </div>
      <p class="proof">
        {packets.length ? (
          <button type="button" aria-pressed={focused} onClick={() => onFocus(focused ? undefined : f)}>
            {focused ? 'Show every path' : `Show the paths that prove it (${pathsHeld} of ${packets.length} sampled here)`}
          </button>
        ) : (
          <span class="hint">Seen in the nodes' state alone: no packet needed. Packets that show it will be listed here.</span>
        )}
      </p>
    </article>
  );
}

export function Findings({ findings, focusKey, onFocus, heldCount }: { findings: FindingMessage[]; focusKey: string | undefined; onFocus: (f: FindingMessage | undefined) => void; heldCount: (f: FindingMessage) => number }) {
  return (
    <>
      <h2 id="findings-h">
        Findings <span class="sub">{findings.length ? findings.length : 'none'}</span>
      </h2>
      {findings.length === 0 ? (
        <p class="hint" data-testid="no-findings">
          No finding: the nodes' state agrees with the cluster, and no path so far shows a fault.
        </p>
      ) : (
        findings.map((f) => <Finding key={f.key} f={f} focused={f.key === focusKey} onFocus={onFocus} pathsHeld={heldCount(f)} />)
      )}
    </>
  );
}
