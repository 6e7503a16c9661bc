// Where the cluster state comes from, in order: `--cluster FILE`; a running lab's cluster file; the
// Kubernetes API (kubeconfig or in-cluster). One answer, with a description for messages.
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { EnvironmentError, UsageError } from '../errors.js';
import { listLabs, readLabState } from '../lab/index.js';
import { loadClusterFile, type ClusterObjects } from './list.js';

export interface ClusterSourceOptions {
  cluster?: string;
  lab?: string;
}

export interface LoadedCluster {
  objects: ClusterObjects;
  /** "cluster file /run/vxtrace/labs/lab/cluster.json (lab 'lab')", "Kubernetes API https://..." */
  from: string;
}

export function kubeconfigAvailable(): boolean {
  const env = process.env.KUBECONFIG;
  if (env) return env.split(':').some((p) => p && existsSync(p));
  return existsSync(join(homedir(), '.kube', 'config')) || !!process.env.KUBERNETES_SERVICE_HOST;
}

export async function loadCluster(opts: ClusterSourceOptions): Promise<LoadedCluster> {
  if (opts.cluster !== undefined) {
    if (opts.cluster.trim() === '') throw new UsageError('--cluster needs a file name (the output of `kubectl get nodes,pods -A -o json`)');
    return { objects: loadClusterFile(opts.cluster), from: `cluster file ${opts.cluster}` };
  }
  if (opts.lab !== undefined || listLabs().length > 0) {
    const labs = listLabs();
    const name = opts.lab ?? (labs.includes('lab') ? 'lab' : labs.length === 1 ? labs[0]! : undefined);
    if (name === undefined) throw new UsageError(`several labs are up (${labs.join(', ')}): choose one with --lab NAME, or give --cluster FILE`);
    const state = readLabState(name);
    if (!state) {
      throw new EnvironmentError(`no lab named '${name}' is up: start one with \`vxtrace lab up${name === 'lab' ? '' : ` --name ${name}`}\`, or give --cluster FILE${labs.length ? ` (labs that are up: ${labs.join(', ')})` : ''}`);
    }
    return { objects: loadClusterFile(state.clusterFile), from: `cluster file ${state.clusterFile} (lab '${name}')` };
  }
  if (kubeconfigAvailable()) {
    const { KubeClusterSource } = await import('./kube.js');
    const src = KubeClusterSource.fromDefaultConfig();
    try {
      return { objects: await src.listOnce(), from: `Kubernetes API ${src.server}` };
    } finally {
      src.stop();
    }
  }
  throw new EnvironmentError('no cluster state: give --cluster FILE (from `kubectl get nodes,pods -A -o json`), bring the lab up (`vxtrace lab up`), or set KUBECONFIG');
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
  let file = opts.cluster;
  if (file === undefined && (opts.lab !== undefined || listLabs().length > 0)) {
    const labs = listLabs();
    const name = opts.lab ?? (labs.includes('lab') ? 'lab' : labs[0]);
    file = name ? readLabState(name)?.clusterFile : undefined;
  }
  if (file !== undefined) {
    const path = file;
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
  if (kubeconfigAvailable()) {
    const { KubeClusterSource } = await import('./kube.js');
    const src = KubeClusterSource.fromDefaultConfig();
    src.on('change', onChange);
    src.on('error', onError);
    await src.start();
    return { stop: () => src.stop() };
  }
  return { stop: () => {} };
}
