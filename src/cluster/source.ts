// Where the cluster state comes from, in order: `--cluster FILE`; `--kubeconfig FILE`; `--lab NAME`;
// the Kubernetes API when KUBECONFIG or ~/.kube/config exists (or in-cluster); else the running lab.
// One answer, with a description for messages ("cluster file ... (lab 'lab')", "Kubernetes API ...").
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { EnvironmentError, UsageError } from '../errors.js';
import { listLabs, readLabRecord } from './labs.js';
import { loadClusterFile, type ClusterObjects } from './list.js';

export interface ClusterSourceOptions {
  cluster?: string;
  /** A kubeconfig file: read the cluster from the Kubernetes API it names. */
  kubeconfig?: string;
  lab?: string;
}

export interface LoadedCluster {
  objects: ClusterObjects;
  /** "cluster file /run/vxtrace/labs/lab/cluster.json (lab 'lab')", "Kubernetes API https://..." */
  from: string;
  /** The lab it is, when it is one (by --lab, by default, or a lab's cluster file given as --cluster). */
  lab?: string;
}

export function kubeconfigAvailable(): boolean {
  const env = process.env.KUBECONFIG;
  if (env) return env.split(':').some((p) => p && existsSync(p));
  return existsSync(join(homedir(), '.kube', 'config')) || !!process.env.KUBERNETES_SERVICE_HOST;
}

type Source = { kind: 'file'; path: string; from: string; lab?: string } | { kind: 'kube'; kubeconfig?: string };

function labSource(name: string | undefined, labs: string[]): Source {
  if (name === undefined) throw new UsageError(`several labs are up (${labs.join(', ')}): choose one with --lab NAME, or give --cluster FILE`);
  const state = readLabRecord(name);
  if (!state) {
    throw new EnvironmentError(`no lab named '${name}' is up: start one with \`vxtrace lab up${name === 'lab' ? '' : ` --name ${name}`}\`, or give --cluster FILE${labs.length ? ` (labs that are up: ${labs.join(', ')})` : ''}`);
  }
  return { kind: 'file', path: state.clusterFile, from: `cluster file ${state.clusterFile} (lab '${name}')`, lab: name };
}

/** Which source the options (and the machine) point at. */
function resolveSource(opts: ClusterSourceOptions): Source {
  if (opts.cluster !== undefined) {
    if (opts.cluster.trim() === '') throw new UsageError('--cluster needs a file name (the output of `kubectl get nodes,pods -A -o json`)');
    const lab = listLabs().find((name) => readLabRecord(name)?.clusterFile === resolve(opts.cluster!));
    return { kind: 'file', path: opts.cluster, from: `cluster file ${opts.cluster}`, ...(lab ? { lab } : {}) };
  }
  if (opts.kubeconfig !== undefined) {
    if (!existsSync(opts.kubeconfig)) throw new UsageError(`kubeconfig ${opts.kubeconfig} does not exist: give the path of a kubeconfig file`);
    return { kind: 'kube', kubeconfig: opts.kubeconfig };
  }
  const labs = () => listLabs();
  if (opts.lab !== undefined) return labSource(opts.lab, labs());
  if (kubeconfigAvailable()) return { kind: 'kube' };
  const up = labs();
  if (up.length) return labSource(up.includes('lab') ? 'lab' : up.length === 1 ? up[0] : undefined, up);
  throw new EnvironmentError('no cluster state: give --cluster FILE (from `kubectl get nodes,pods -A -o json`) or --kubeconfig FILE, set KUBECONFIG, or bring the lab up (`vxtrace lab up`)');
}

async function kubeSource(kubeconfig: string | undefined) {
  const { KubeClusterSource } = await import('./kube.js');
  return KubeClusterSource.fromDefaultConfig({}, kubeconfig);
}

export async function loadCluster(opts: ClusterSourceOptions): Promise<LoadedCluster> {
  const source = resolveSource(opts);
  if (source.kind === 'file') return { objects: loadClusterFile(source.path), from: source.from, ...(source.lab ? { lab: source.lab } : {}) };
  const src = await kubeSource(source.kubeconfig);
  try {
    return { objects: await src.listOnce(), from: `Kubernetes API ${src.server}` };
  } finally {
    src.stop();
  }
}

/** The cluster state and the kernel state of every node this machine can see, as one model. */
export async function loadModel(opts: ClusterSourceOptions): Promise<LoadedCluster & { model: import('./model.js').ClusterModel }> {
  const [{ readKernelStates }, { ClusterModel }] = await Promise.all([import('./kernel-reader.js'), import('./model.js')]);
  const loaded = await loadCluster(opts);
  return { ...loaded, model: ClusterModel.build(loaded.objects, await readKernelStates(loaded.objects)) };
}

/**
 * Follow the cluster objects as they change: a cluster file is re-read when it is rewritten (the lab
 * rewrites it on `lab heal`), the Kubernetes API is watched. `onChange` gets every new version;
 * `onError` gets read failures (the last good version stays in use).
 */
export async function watchCluster(
  opts: ClusterSourceOptions,
  onChange: (objects: ClusterObjects) => void,
  onError: (err: Error) => void,
): Promise<{ stop(): void }> {
  const source = resolveSource(opts);
  if (source.kind === 'file') {
    const path = source.path;
    const { watchFile, unwatchFile } = await import('node:fs');
    const listener = (cur: { mtimeMs: number }, prev: { mtimeMs: number }) => {
      if (cur.mtimeMs === prev.mtimeMs || cur.mtimeMs === 0) return;
      try {
        onChange(loadClusterFile(path));
      } catch (err) {
        onError(err as Error);
      }
    };
    watchFile(path, { interval: 250, persistent: true }, listener);
    return { stop: () => unwatchFile(path, listener) };
  }
  const src = await kubeSource(source.kubeconfig);
  src.on('change', onChange);
  src.on('error', onError);
  await src.start();
  return { stop: () => src.stop() };
}
