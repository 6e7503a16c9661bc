// Which labs are up, and where each keeps its cluster file: what a command needs to read a lab as a
// cluster (`--lab NAME`, or the running lab by default). The lab builder (src/lab) writes these
// files; everything that only reads a lab's cluster reads it here, without loading the builder.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { execSync } from '../util/exec.js';

/** Where labs keep their state; tmpfs, so it goes with the namespaces at reboot. */
export const LAB_STATE_ROOT = process.env.VXTRACE_LAB_DIR ?? '/run/vxtrace/labs';
export const DEFAULT_LAB_NAME = 'lab';

/** The state file of a lab (written by the lab builder, src/lab). */
export const labStateFile = (name: string): string => join(LAB_STATE_ROOT, name, 'state.json');

/** What a reader of a lab's cluster needs from its state file. */
export interface LabRecord {
  name: string;
  /** The lab's cluster as a v1 List, as `kubectl get nodes,pods -A -o json` prints it. */
  clusterFile: string;
}

/** Network namespaces on this machine (`ip netns list`). */
export function listNetns(): string[] {
  const r = execSync(['ip', '-j', 'netns', 'list'], { allowFail: true });
  if (r.status !== 0 || !r.stdout.trim()) return [];
  try {
    return (JSON.parse(r.stdout) as { name: string }[]).map((e) => e.name);
  } catch {
    return [];
  }
}

/**
 * The name this process's network namespace has in /run/netns (`ip netns exec NAME ...` runs in
 * it), or undefined (the machine's own namespace, or one without a name).
 */
export function ownNetnsName(): string | undefined {
  let self;
  try {
    self = statSync('/proc/self/ns/net');
  } catch {
    return undefined;
  }
  let names: string[];
  try {
    names = readdirSync('/run/netns');
  } catch {
    return undefined;
  }
  for (const name of names) {
    try {
      const s = statSync(join('/run/netns', name));
      if (s.ino === self.ino && s.dev === self.dev) return name;
    } catch {
      /* removed meanwhile */
    }
  }
  return undefined;
}

/** The lab a lab namespace's name belongs to (`vxt-<lab>-...`), if it names one. */
export const labOfNetns = (netns: string): string | undefined => /^vxt-([a-z0-9]{1,12})-/.exec(netns)?.[1];

/** Names of labs that are up (have a state directory or namespaces). */
export function listLabs(): string[] {
  const names = new Set<string>();
  if (existsSync(LAB_STATE_ROOT)) for (const e of readdirSync(LAB_STATE_ROOT)) names.add(e);
  for (const ns of listNetns()) {
    const lab = labOfNetns(ns);
    if (lab) names.add(lab);
  }
  return [...names].sort();
}

/** A lab's state file as JSON, or undefined when no lab of that name is up. */
export function readLabStateJson(name: string): unknown {
  const file = labStateFile(name);
  if (!existsSync(file)) return undefined;
  return JSON.parse(readFileSync(file, 'utf8')) as unknown;
}

/** The lab's cluster file, or undefined when no lab of that name is up. */
export function readLabRecord(name: string = DEFAULT_LAB_NAME): LabRecord | undefined {
  const s = readLabStateJson(name) as Partial<LabRecord> | undefined;
  return s && typeof s.clusterFile === 'string' ? { name, clusterFile: s.clusterFile } : undefined;
}
