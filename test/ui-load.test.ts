// The page under load (issue 12, "a measured load test"): a real hub, fed by a replaying agent
// (bench/hub-replay.ts: the hop records of a real capture of ping floods between three pods on
// three nodes, at a set rate, each pass made new packets), streams at least 5,000 paths/s for 30 s
// to the page in Debian's Chromium. The agent is node1's: its paths are node1's three hops
// (requests that leave for an unwatched node, replies delivered), so the hub joins 18,000
// records/s for 6,000 paths/s; with every node's agent (UI_LOAD_NODES=node1,node2,node3: six-hop
// paths, 36,000 records/s) the hub itself is the limit on this 2-core machine (~30,000 records/s:
// bench/README.md), not the page.
//
// Measured in the page: the longest task and the longest gap between animation frames (Long Tasks
// API, requestAnimationFrame), how long the page takes to answer a key pressed during the load
// (Event Timing), the wall and CPU time of each of its main thread's tasks (a Chrome trace), and
// the JS heap after garbage collection over time (CDP). Bounds, and why:
//   - no task of the page's own work takes 50 ms of CPU (the Long Tasks API's threshold: under it,
//     input is answered within RAIL's 100 ms budget on a machine of its own);
//   - by the wall clock, no task and no answer to a key takes a second (the limit past which a
//     person feels a page hang). The wall clock also counts waiting for a CPU, which the hub, the
//     replaying agent, the browser and the rest of a shared 2-core machine take turns at (the test
//     prints the load average): hence a looser bound than the CPU one;
//   - 95 % of frames within 100 ms (10 fps or better while 5,000 rows a second arrive);
//   - the heap after GC in the last 10 s is at most 25 % (+8 MiB) above the heap after GC at 10 s,
//     and below 96 MiB: the store keeps at most 10,000 paths (reached within 2 s), so the heap
//     must stop growing; growth past that is a leak.
//
// Its processes share the CPU among themselves by priority: the browser at nice -15, the hub and
// the replaying agent at -10, above the test runner (in use the browser has a machine of its own,
// the hub runs elsewhere; here they share two cores). Nice orders them within this session's share
// of the machine only (Linux autogroups): when other sessions keep the cores busy (load averages of
// 10-17 were seen), the hub gets less than it needs for 18,000 records/s, the page receives fewer
// than 5,000 paths/s, and the test fails saying so, with the load average and the hub's CPU.
// Prints what it measured. Root: it records real traffic on a lab.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execAsync } from '../src/util/exec.js';
import { readTrace } from '../src/pcapng/reader.js';
import { withLab } from './helpers/lab.js';
import { start, type Proc } from './helpers/hub.js';
import { browserPids, openPage, waitLive } from './helpers/browser.js';

/** Every thread of these processes at nice N (a process's nice is its threads': the GC's helpers too). */
async function renice(n: number, pids: readonly number[]): Promise<void> {
  const tids = pids.flatMap((pid) => {
    try {
      return readdirSync(`/proc/${pid}/task`);
    } catch {
      return [];
    }
  });
  if (tids.length) await execAsync(['renice', '-n', String(n), '-p', ...tids]);
}

const replayer = fileURLToPath(new URL('../bench/hub-replay.js', import.meta.url));
const PATHS_PER_SECOND = 6000;
/** The largest of many numbers (a spread of 100,000 overflows the stack); 0 for none. */
const maxOf = (xs: readonly number[]): number => xs.reduce((a, b) => (b > a ? b : a), 0);
const SECONDS = 30;

async function recordPingFloods(dir: string): Promise<string> {
  return withLab({ nodes: 3 }, async (lab) => {
    const file = join(dir, 'recorded.pcapng');
    const capture = start(['capture', '--write', file, '--cluster', lab.clusterFile, '--duration', '4']);
    await capture.waitFor(/^capturing /m);
    const pod = (n: string) => lab.pods.find((p) => p.name === n)!;
    await Promise.all(
      [['pod-a', 'pod-b'], ['pod-b', 'pod-c'], ['pod-c', 'pod-a']].map(([a, b]) => execAsync(['ip', 'netns', 'exec', pod(a!).netns, 'ping', '-q', '-f', '-c', '1500', pod(b!).ip], { allowFail: true })),
    );
    assert.equal(await capture.exited, 0, capture.stderr());
    return file;
  });
}

test(`the page stays responsive receiving ${PATHS_PER_SECOND} paths/s for ${SECONDS} s, and its heap stays bounded`, { timeout: 300_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vxtrace-ui-load-'));
  const replays: ReturnType<typeof spawn>[] = [];
  let hub: Proc | undefined;
  try {
    const file = await recordPingFloods(dir);
    const trace = await readTrace(file);
    const nodes = (process.env.UI_LOAD_NODES ?? 'node1').split(',');
    const paths = new Set(trace.hops.filter((h) => nodes.includes(h.node)).map((h) => h.fingerprint)).size;
    assert.ok(paths > 3000, `the recording holds ${paths} paths`);
    const cluster = join(dir, 'cluster.json');
    writeFileSync(cluster, JSON.stringify(trace.snapshot?.cluster));
    hub = start(['hub', '--listen', '127.0.0.1:0', '--cluster', cluster]);
    const hubUrl = (await hub.waitFor(/^hub listening on (\S+?): agents/m))[1]!;
    const port = new URL(hubUrl).port;
    await renice(-10, [hub.child.pid!]);

    const p = await openPage(`http://127.0.0.1:${port}/`);
    try {
      const pids = browserPids();
      assert.ok(pids.length > 0, 'the browser runs');
      await renice(-15, pids);
      await waitLive(p);
      const cdp = await p.context.newCDPSession(p.page);
      await cdp.send('HeapProfiler.enable');
      const heapAfterGc = async (): Promise<number> => {
        await cdp.send('HeapProfiler.collectGarbage');
        return (await cdp.send('Runtime.getHeapUsage')).usedSize;
      };
      // The page's own measurements, from now on.
      await p.page.evaluate(() => {
        const g = globalThis as any;
        const m = (g.vxtraceLoad = { longTasks: [] as number[], frameGaps: [] as number[], events: [] as number[] });
        new g.PerformanceObserver((list: any) => list.getEntries().forEach((e: any) => m.longTasks.push(e.duration))).observe({ type: 'longtask', buffered: true });
        new g.PerformanceObserver((list: any) => list.getEntries().forEach((e: any) => m.events.push(e.duration))).observe({ type: 'event', durationThreshold: 16, buffered: true });
        let last = g.performance.now();
        const frame = (t: number) => {
          m.frameGaps.push(t - last);
          last = t;
          g.requestAnimationFrame(frame);
        };
        g.requestAnimationFrame(frame);
      });
      const heapStart = await heapAfterGc();
      await cdp.send('Performance.enable');
      const threadTime = async () => (await cdp.send('Performance.getMetrics')).metrics.find((x) => x.name === 'ThreadTime')?.value ?? 0;

      // The replayers follow the recording's schedule (every node's records): the rate at which one
      // pass of the recording takes as long as its paths need at PATHS_PER_SECOND.
      const rate = Math.round((PATHS_PER_SECOND * trace.hops.length) / paths);
      const sentRate = Math.round((rate * trace.hops.filter((h) => nodes.includes(h.node)).length) / trace.hops.length);
      for (const node of nodes) replays.push(spawn(process.execPath, [replayer, hubUrl, node, file, String(rate), String(SECONDS)], { stdio: ['pipe', 'pipe', 'inherit'] }));
      await renice(-10, replays.map((r) => r.pid!));
      const replayed: string[] = [];
      await Promise.all(replays.map((r, i) => new Promise<void>((resolve) => {
        let out = '';
        r.stdout!.setEncoding('utf8').on('data', (d: string) => {
          out += d;
          replayed[i] = out.split('\n').find((l) => l.startsWith('{')) ?? '';
          if (out.includes('ready\n')) resolve();
        });
      })));
      const received0 = await p.page.evaluate(() => (globalThis as any).vxtrace.store.received as number);
      const t0 = Date.now() + 300;
      for (const r of replays) r.stdin!.end(`${t0}\n`);
      const cpu0 = await threadTime();
      const hubCpu = () => {
        const f = readFileSync(`/proc/${hub!.child.pid}/stat`, 'utf8');
        const [utime, stime] = f.slice(f.lastIndexOf(')') + 2).split(' ').slice(11, 13).map(Number);
        return (utime! + stime!) / 100;
      };
      const hubCpu0 = hubCpu();
      // A trace of the browser's top-level tasks for the whole load: each one's wall and CPU time.
      const traced: { name: string; ph: string; pid: number; tid: number; ts: number; dur?: number; tdur?: number; args?: { name?: string } }[] = [];
      cdp.on('Tracing.dataCollected', (e) => traced.push(...(e.value as unknown as typeof traced)));
      const traceDone = new Promise((resolve) => cdp.once('Tracing.tracingComplete', resolve));
      await cdp.send('Tracing.start', { categories: 'toplevel,blink.user_timing', transferMode: 'ReportEvents' });

      // During the load: a key into the table every second (its answer is measured); half a second
      // after every tenth, the heap after a forced GC. That GC is the test's, not the page's: its
      // task is left out of the task measurements (performance marks bracket it in the trace).
      await p.page.locator('[role=grid]').focus();
      const heaps: number[] = [];
      const keys = ['ArrowDown', 'ArrowDown', 'ArrowUp', 'PageDown', 'Home'];
      const mark = (name: string) => p.page.evaluate((n) => (globalThis as any).performance.mark(n), name);
      for (let s = 1; s <= SECONDS; s++) {
        await p.page.waitForTimeout(Math.max(0, t0 + s * 1000 - Date.now()));
        await p.page.keyboard.press(keys[s % keys.length]!);
        if (s % 10 === 0) {
          await p.page.waitForTimeout(400);
          await mark('vxtrace-gc-start');
          heaps.push(await heapAfterGc());
          await mark('vxtrace-gc-end');
        }
      }
      const elapsed = (Date.now() - t0) / 1000;
      await cdp.send('Tracing.end');
      await traceDone;
      const mainThreads = new Set(traced.filter((e) => e.ph === 'M' && e.name === 'thread_name' && e.args?.name === 'CrRendererMain').map((e) => `${e.pid}/${e.tid}`));
      const marks = (name: string) => traced.filter((e) => e.name === name).map((e) => e.ts).sort((a, b) => a - b);
      const gcStart = marks('vxtrace-gc-start');
      const gcEnd = marks('vxtrace-gc-end');
      assert.equal(gcStart.length, heaps.length, 'the trace holds the marks around each forced GC');
      const duringGc = (e: { ts: number; dur?: number }) => gcStart.some((a, i) => e.ts + (e.dur ?? 0) >= a && e.ts <= (gcEnd[i] ?? a));
      const tasks = traced.filter((e) => (e.name === 'RunTask' || e.name === 'ThreadControllerImpl::RunTask') && e.ph === 'X' && mainThreads.has(`${e.pid}/${e.tid}`) && !duringGc(e));
      const taskCpuMs = maxOf(tasks.map((e) => (e.tdur ?? 0) / 1000));
      const taskWallMs = maxOf(tasks.map((e) => (e.dur ?? 0) / 1000));
      const cpu = (await threadTime()) - cpu0;
      const hubBusy = (hubCpu() - hubCpu0) / elapsed;
      const load = readFileSync('/proc/loadavg', 'utf8').split(' ')[0];
      await Promise.all(replays.map((r) => new Promise((resolve) => (r.exitCode !== null ? resolve(null) : r.once('exit', resolve)))));

      // Virtualised: 10,000 paths held, a window's worth of rows in the page.
      const rowsInPage = await p.page.locator('.viewport .row').count();
      assert.ok(rowsInPage > 5 && rowsInPage < 60, `${rowsInPage} rows in the page`);
      const m = await p.page.evaluate(() => {
        const g = globalThis as any;
        const s = g.vxtrace.store;
        return { ...g.vxtraceLoad, received: s.received as number, held: s.rows.count as number, letGo: s.letGo as number, missed: s.missed as number, outcomes: Object.fromEntries(s.outcomes) };
      });
      process.stdout.write(`# outcomes ${JSON.stringify(m.outcomes)}; replayed ${replayed.join(' ')}\n`);
      const got = m.received - received0;
      const longestTask = maxOf(m.longTasks);
      const gaps = [...m.frameGaps].sort((a: number, b: number) => a - b);
      const p95 = gaps[Math.floor(gaps.length * 0.95)] ?? 0;
      const longestFrame = gaps.at(-1) ?? 0;
      const slowestKey = maxOf(m.events);
      const mib = (n: number) => (n / (1 << 20)).toFixed(1);
      process.stdout.write(
        `# page under load: ${got} paths in ${elapsed.toFixed(1)} s (${Math.round(got / elapsed)} paths/s; ${m.missed} missed by the page, ${m.letGo} let go, ${m.held} held); ` +
          `longest task ${longestTask.toFixed(0)} ms (${m.longTasks.length} over 50 ms; traced: ${tasks.length} tasks, longest ${taskWallMs.toFixed(0)} ms, most CPU ${taskCpuMs.toFixed(1)} ms), frames p95 ${p95.toFixed(0)} ms, longest frame ${longestFrame.toFixed(0)} ms, slowest key ${slowestKey.toFixed(0)} ms; ` +
          `heap after GC ${mib(heapStart)} MiB at the start, ${heaps.map(mib).join(' / ')} MiB at 10/20/30 s; ` +
          `the hub busy ${(hubBusy * 100).toFixed(0)} % of a core; the page's main thread busy ${((cpu / elapsed) * 100).toFixed(0)} % of a core (${((cpu * 1e6) / Math.max(1, got)).toFixed(0)} µs a path); load average ${load}\n`,
      );

      assert.ok(
        got / SECONDS >= 5000,
        `the page received ${got} paths in ${SECONDS} s: fewer than 5,000 a second` +
          (m.missed === 0 ? ` — and missed none: the hub did not send more (load average ${load}: on a busy machine the hub cannot join ${sentRate} records/s; bench/hub measures it)` : ''),
      );
      assert.ok(m.missed <= got * 0.01, `the hub dropped ${m.missed} events for the page: it did not keep up`);
      assert.equal(m.held, 10_000, 'the store is at its cap');
      assert.ok(tasks.length > 1000, `the trace holds ${tasks.length} tasks of the page`);
      assert.ok(taskCpuMs < 50, `a task of the page took ${taskCpuMs} ms of CPU`);
      assert.ok(longestTask < 1000 && taskWallMs < 1000, `a task took ${Math.max(longestTask, taskWallMs)} ms`);
      assert.ok(slowestKey < 1000, `a key waited ${slowestKey} ms for the page`);
      assert.ok(p95 < 100, `95 % of frames within ${p95} ms`);
      const [h10, , h30] = heaps as [number, number, number];
      assert.ok(h30 <= h10 * 1.25 + (8 << 20), `the heap grew from ${mib(h10)} MiB at 10 s to ${mib(h30)} MiB at 30 s`);
      assert.ok(Math.max(...heaps) < 96 << 20, `the heap reached ${mib(Math.max(...heaps))} MiB`);
      assert.deepEqual(p.foreign(), []);
      assert.deepEqual(p.errors, []);
      assert.deepEqual(p.consoleErrors, []);
    } finally {
      await p.close();
    }
  } finally {
    for (const r of replays) if (r.exitCode === null) r.kill('SIGKILL');
    hub?.kill('SIGTERM');
    await hub?.exited;
    rmSync(dir, { recursive: true, force: true });
  }
});
