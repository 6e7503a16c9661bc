// Traffic for the tests, inside the lab pods' namespaces: a UDP burst of an exact number of
// datagrams (test/helpers/udp-burst.ts run in the pods), with a receiver so that nothing is
// answered with ICMP port unreachable.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { LabState } from '../../src/lab/index.js';

const burstPath = fileURLToPath(new URL('./udp-burst.js', import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function podOf(lab: LabState, name: string) {
  const p = lab.pods.find((x) => x.name === name);
  if (!p) throw new Error(`no pod ${name} in lab ${lab.name}`);
  return p;
}

/** Sends `count` UDP datagrams from pod `from` to pod `to` (a receiver runs there); resolves with what the sender sent. */
export async function udpBurst(lab: LabState, from: string, to: string, count: number, port = 7777): Promise<{ sent: number }> {
  const recv = spawn('ip', ['netns', 'exec', podOf(lab, to).netns, process.execPath, burstPath, 'recv', String(port), '60'], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const lines = createInterface({ input: recv.stdout! });
    await new Promise<void>((resolve, reject) => {
      lines.on('line', (l) => l === 'ready' && resolve());
      recv.once('exit', () => reject(new Error('the UDP receiver exited before it was ready')));
    });
    const send = spawn('ip', ['netns', 'exec', podOf(lab, from).netns, process.execPath, burstPath, 'send', podOf(lab, to).ip, String(port), String(count)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    send.stdout!.on('data', (d) => (out += d));
    const code = await new Promise((r) => send.on('exit', r));
    if (code !== 0) throw new Error(`the UDP sender failed (exit ${code})`);
    await sleep(300);
    return JSON.parse(out.trim()) as { sent: number };
  } finally {
    recv.kill('SIGKILL');
  }
}
