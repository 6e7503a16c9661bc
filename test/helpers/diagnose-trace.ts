// Trace a lab with the BPF datapath while something runs (for the diagnosis-from-packets tests).
// Uses only the datapath's public API (Tracer).
import { Tracer, type FlowFilter, type HopEvent } from '../../src/datapath/index.js';
import type { LabState } from '../../src/lab/index.js';
import { execAsync } from '../../src/util/exec.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Attach to every node of the lab, run `action`, wait `settleMs`, and return every HopEvent seen. */
export async function traceLabEvents(lab: LabState, filter: FlowFilter, action: () => Promise<unknown>, settleMs = 500): Promise<HopEvent[]> {
  const tracer = Tracer.open({ filter });
  try {
    for (const node of lab.nodes) tracer.attachNode(node.name, node.netns);
    const events: HopEvent[] = [];
    tracer.start((batch) => events.push(...batch));
    await action();
    await sleep(settleMs);
    await tracer.stop();
    return events;
  } finally {
    tracer.close();
  }
}

/** Ping from a pod's namespace; resolves with ping's exit status. */
export async function pingFromPod(lab: LabState, from: string, toIp: string, args: string[]): Promise<number> {
  const pod = lab.pods.find((p) => p.name === from);
  if (!pod) throw new Error(`no pod ${from} in lab ${lab.name}`);
  const r = await execAsync(['ip', 'netns', 'exec', pod.netns, 'ping', '-q', ...args, toIp], { allowFail: true });
  return r.status;
}
