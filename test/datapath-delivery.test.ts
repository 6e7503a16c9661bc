// How the addon hands records to JavaScript when JavaScript is behind (root): a UDP flood over a
// veth pair of the test's own, in two namespaces, traced at both ends, consumed by a handler made
// slow on purpose. Batches are handled in turns of the event loop and at most 16 are given out
// before JavaScript says it handled them: timers keep firing (progress lines, timeouts, Ctrl-C and
// the finalizers that free the batches all need the loop to turn), memory stays bounded, and every
// record the kernel made is delivered, shed or counted lost.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { Tracer } from '../src/datapath/index.js';
import { execAsync } from '../src/util/exec.js';
import { sleep, vethPair } from './helpers/datapath.js';

const { nsA, nsB } = vethPair('dpd', '10.97.0');

/** Busy for `ms` milliseconds: a consumer slower than the flood. */
function busy(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

test('a consumer slower than a flood: timers keep firing, memory stays bounded, every record delivered, shed or counted lost', async () => {
  const server = spawn('ip', ['netns', 'exec', nsB, 'iperf3', '-s', '-1'], { stdio: 'ignore' });
  const tracer = Tracer.open({ filter: 'everything', ringBytes: 4 << 20 });
  let events = 0;
  let calls = 0;
  let maxBuffers = 0;
  let maxLag = 0;
  let ticks = 0;
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    maxLag = Math.max(maxLag, now - last - 20);
    last = now;
    ticks++;
  }, 20);
  try {
    tracer.attach([
      { node: 'a', netns: nsA, device: 'v0', role: 'uplink', directions: ['egress', 'ingress'] },
      { node: 'b', netns: nsB, device: 'v1', role: 'uplink', directions: ['ingress', 'egress'] },
    ]);
    tracer.start((batch) => {
      events += batch.length;
      // ~256 events per call: at most ~130k records/s, less than the flood makes
      busy(2);
      if (++calls % 64 === 0) maxBuffers = Math.max(maxBuffers, process.memoryUsage().arrayBuffers);
    });
    await sleep(300);
    const flood = await execAsync(['ip', 'netns', 'exec', nsA, 'iperf3', '-c', '10.97.0.2', '-u', '-b', '0', '-l', '64', '-t', '3', '-J'], { allowFail: true });
    assert.equal(flood.status, 0, flood.stderr || flood.stdout.slice(0, 300));
    last = performance.now();
    maxLag = Math.max(maxLag, 0);
    const lagDuringFlood = maxLag;
    const ticksDuringFlood = ticks;
    await tracer.stop();
    const s = tracer.stats();
    assert.ok(s.sampled + s.lostRecords > 0, `the consumer was behind: records shed or lost (${JSON.stringify(s)})`);
    assert.ok(events > 10_000, `records were delivered (${events})`);
    assert.equal(events, s.delivered, 'every record handed over was handled before stop() resolved');
    assert.equal(s.records, s.delivered, 'every record the ring buffer gave up reached JavaScript');
    assert.ok(ticksDuringFlood >= 50, `the 20 ms timer fired through the 3 s flood (${ticksDuringFlood} times)`);
    assert.ok(lagDuringFlood < 400, `no timer waited long for the records (the longest was ${lagDuringFlood.toFixed(0)} ms late)`);
    assert.ok(maxBuffers < 256 * 2 ** 20, `the batches waiting are bounded (array buffers at most ${(maxBuffers / 2 ** 20).toFixed(0)} MiB)`);
  } finally {
    clearInterval(timer);
    tracer.close();
    server.kill('SIGKILL');
  }
});
