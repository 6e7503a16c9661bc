// Writer throughput: packets/s (hops) PcapngWriter writes, one path (6 hops) per write as `follow`
// does, and one hop per write as `capture` does; then reader throughput on the result. Prints
// numbers; not a test. Run: npx tsc -p . && node dist/bench/pcapng-writer.js [PATHS]
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PcapngWriter } from '../src/pcapng/writer.js';
import { readTrace } from '../src/pcapng/reader.js';
import { echoPath, snapshot } from '../test/unit/pcapng-fixtures.js';

const paths = Number(process.argv[2] ?? 50_000);
const dir = mkdtempSync(join(tmpdir(), 'vxtrace-bench-'));
const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

try {
  // Distinct fingerprints and timestamps, as real traffic has; frames are real (98/148 bytes).
  const samples = Array.from({ length: 1000 }, (_, i) => echoPath({ seq: i + 1, dropAtNode2: i % 10 === 9 }));
  const events = samples.flatMap((p) => p.hops.map((h) => h.event));

  for (const mode of ['path', 'batch', 'hop'] as const) {
    const file = join(dir, `${mode}.pcapng`);
    const w = PcapngWriter.open(file, { snapshot: snapshot() });
    const start = process.hrtime.bigint();
    let hops = 0;
    if (mode === 'batch') {
      // 100 paths per call, as the correlator hands out a ring-buffer batch's worth.
      for (let i = 0; i < paths; i += 100) {
        const batch = Array.from({ length: 100 }, (_, k) => samples[(i + k) % samples.length]!);
        w.writeHops(batch);
        hops += batch.reduce((n, p) => n + p.hops.length, 0);
      }
    } else if (mode === 'path') {
      for (let i = 0; i < paths; i++) {
        const p = samples[i % samples.length]!;
        w.writeHops(p);
        hops += p.hops.length;
      }
    } else {
      for (let i = 0; hops < paths * 6; i++, hops++) w.writeHop(events[i % events.length]!);
    }
    w.close();
    const s = Number(process.hrtime.bigint() - start) / 1e9;
    const bytes = statSync(file).size;
    process.stdout.write(
      `write ${mode === 'path' ? 'one path (~6 hops)' : mode === 'batch' ? '100 paths' : 'one hop'} per call: ${fmt(hops)} packets in ${s.toFixed(2)} s = ${fmt(hops / s)} packets/s, ${(bytes / s / 1e6).toFixed(1)} MB/s (${fmt(bytes / hops)} bytes/packet on disk)\n`,
    );
  }
  const file = join(dir, 'path.pcapng');
  const start = process.hrtime.bigint();
  const trace = await readTrace(file);
  const s = Number(process.hrtime.bigint() - start) / 1e9;
  process.stdout.write(`read back: ${fmt(trace.hops.length)} HopEvents in ${s.toFixed(2)} s = ${fmt(trace.hops.length / s)} packets/s\n`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
