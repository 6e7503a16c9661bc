// Running a hub, its agents and its clients as real processes against a lab: start them, wait for
// their ready lines, collect their output, and kill whatever is left when the test file ends.
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { after } from 'node:test';
import type { LabState } from '../../src/lab/index.js';

const cliPath = fileURLToPath(new URL('../../../bin/vxtrace.js', import.meta.url));
const running = new Set<ChildProcess>();
after(() => {
  for (const c of running) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

export interface Proc {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  /** Resolves with the exit code (null after a signal). */
  exited: Promise<number | null>;
  /** Resolves once stderr matches (rejects if the process exits first, or after timeoutMs). */
  waitFor(re: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
  kill(signal?: NodeJS.Signals): void;
}

export function start(argv: string[], opts: { netns?: string; env?: NodeJS.ProcessEnv } = {}): Proc {
  const [cmd, args] = opts.netns ? ['ip', ['netns', 'exec', opts.netns, process.execPath, cliPath, ...argv]] : [process.execPath, [cliPath, ...argv]];
  const child = spawn(cmd, args as string[], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } });
  running.add(child);
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => {
    running.delete(child);
    resolve(code);
  }));
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    kill: (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    },
    waitFor(re, timeoutMs = 20_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const m = re.exec(err);
          if (m) {
            cleanup();
            resolve(m);
          }
        };
        const onExit = () => {
          cleanup();
          reject(new Error(`${argv.join(' ')} exited before ${re}:\n${err}`));
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`${argv.join(' ')}: no ${re} within ${timeoutMs} ms:\n${err}`));
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          child.stderr!.off('data', check);
          child.off('exit', onExit);
        };
        child.stderr!.on('data', check);
        child.once('exit', onExit);
        check();
      });
    },
  };
}

/** A hub on the lab's cluster; resolves with its URL once it listens. */
export async function startHub(lab: LabState, listen: string, extra: string[] = [], env?: NodeJS.ProcessEnv): Promise<Proc & { url: string }> {
  const p = start(['hub', '--listen', listen, '--cluster', lab.clusterFile, ...extra], env ? { env } : {});
  const m = await p.waitFor(/^hub listening on (\S+?)(?: \(token required\))?: agents/m);
  return Object.assign(p, { url: m[1]! });
}

/**
 * The agent of one lab node: `inside` runs it in the node's namespace (`ip netns exec`), as on a
 * real node; otherwise it enters the namespace by the cluster's vxtrace.io/netns annotation.
 */
export async function startAgent(lab: LabState, node: string, hub: string, opts: { inside?: boolean; env?: NodeJS.ProcessEnv; extra?: string[] } = {}): Promise<Proc> {
  const netns = lab.nodes.find((n) => n.name === node)!.netns;
  const p = start(['agent', '--hub', hub, '--node', node, '--cluster', lab.clusterFile, ...(opts.extra ?? [])], { ...(opts.inside ? { netns } : {}), ...(opts.env ? { env: opts.env } : {}) });
  await p.waitFor(/connected to the hub/);
  return p;
}

/** Agents for every node of the lab. */
export async function startAgents(lab: LabState, hub: string, opts: { inside?: boolean; env?: (node: string) => NodeJS.ProcessEnv; extra?: string[] } = {}): Promise<Map<string, Proc>> {
  const agents = await Promise.all(
    lab.nodes.map((n) => startAgent(lab, n.name, hub, { ...(opts.inside ? { inside: true } : {}), ...(opts.env ? { env: opts.env(n.name) } : {}), ...(opts.extra ? { extra: opts.extra } : {}) })),
  );
  return new Map(lab.nodes.map((n, i) => [n.name, agents[i]!]));
}

/** The hub's log shows every node connected. */
export async function waitAgentsConnected(hub: Proc, nodes: string[]): Promise<void> {
  for (const n of nodes) await hub.waitFor(new RegExp(`agent ${n.replace(/\./g, '\\.')} connected`));
}

export type JsonRecord = { type: string; [k: string]: unknown };

export function records(text: string): JsonRecord[] {
  return text.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as JsonRecord);
}

/** A client (observe, follow --hub) as a process: start, wait until subscribed, run traffic, wait for its end. */
export async function runClient(argv: string[], traffic: () => Promise<unknown>, ready = /^(observing|following) /m, timeoutMs = 30_000) {
  const p = start(argv);
  const timer = setTimeout(() => p.kill('SIGINT'), timeoutMs);
  try {
    await p.waitFor(ready);
    await traffic();
    const status = await p.exited;
    return { status, stdout: p.stdout(), stderr: p.stderr(), records: records(p.stdout()) };
  } finally {
    clearTimeout(timer);
    p.kill('SIGKILL');
  }
}

/** The BPF link ids a process holds (its tcx links). */
export function linksHeldBy(pid: number): number[] {
  const ids: number[] = [];
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`) !== 'anon_inode:bpf_link') continue;
      const m = /link_id:\s*(\d+)/.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'));
      if (m) ids.push(Number(m[1]));
    } catch {
      /* gone meanwhile */
    }
  }
  return ids;
}

/** GET a path of the hub over its unix socket or TCP address. */
export async function hubGet(url: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  const http = await import('node:http');
  return new Promise((resolve, reject) => {
    const target = url.startsWith('unix:') ? { socketPath: url.slice(5), path } : (() => {
      const u = new URL(url.replace(/^ws:/, 'http:'));
      return { host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port), path };
    })();
    const req = http.get({ ...target, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
  });
}
