// The Kubernetes API as a cluster source (@kubernetes/client-node): list Nodes and Pods, then watch
// them from the list's resourceVersion so changes arrive live. A watch that drops is resumed from the
// last resourceVersion seen (after a short back-off); a 410 Gone (too old) triggers a fresh list.
import { EventEmitter } from 'node:events';
import { CoreV1Api, KubeConfig, Watch } from '@kubernetes/client-node';
import { EnvironmentError } from '../errors.js';
import type { V1Node, V1Pod } from './k8s.js';
import { toNode, toPod, type ClusterObjects } from './list.js';

type Kind = 'Node' | 'Pod';
const PATHS: Record<Kind, string> = { Node: '/api/v1/nodes', Pod: '/api/v1/pods' };

interface ResourceState {
  objects: Map<string, V1Node | V1Pod>;
  resourceVersion: string;
  relist: boolean;
  abort?: AbortController;
  retry?: NodeJS.Timeout;
}

export interface KubeSourceOptions {
  /** Back-off before re-watching after a drop (ms). Default 1000. */
  backoffMs?: number;
}

/** Events: 'change' (ClusterObjects) after the list and after every watch event; 'resume' ({kind, resourceVersion, relist}) when a watch restarts; 'error' (Error) for failures it keeps retrying past. */
export class KubeClusterSource extends EventEmitter {
  private readonly state: Record<Kind, ResourceState> = {
    Node: { objects: new Map(), resourceVersion: '', relist: true },
    Pod: { objects: new Map(), resourceVersion: '', relist: true },
  };
  private stopped = false;
  private readonly api: CoreV1Api;
  private readonly watch: Watch;
  /** Watch restarts so far (for tests and metrics). */
  resumes = 0;
  relists = 0;

  constructor(private readonly kc: KubeConfig, private readonly opts: KubeSourceOptions = {}) {
    super();
    this.api = kc.makeApiClient(CoreV1Api);
    this.watch = new Watch(kc);
  }

  /** From `file`, else KUBECONFIG / ~/.kube/config / the in-cluster service account. */
  static fromDefaultConfig(opts?: KubeSourceOptions, file?: string): KubeClusterSource {
    const kc = new KubeConfig();
    try {
      if (file) kc.loadFromFile(file);
      else kc.loadFromDefault();
    } catch (err) {
      throw new EnvironmentError(`cannot load the kubeconfig${file ? ` ${file}` : ''}: ${(err as Error).message.split('\n')[0]}`);
    }
    if (!kc.getCurrentCluster()) throw new EnvironmentError('the kubeconfig has no current cluster: set one with `kubectl config use-context`, or give --cluster FILE');
    return new KubeClusterSource(kc, opts);
  }

  get server(): string {
    return this.kc.getCurrentCluster()?.server ?? '(no server)';
  }

  /** The objects as they stand. */
  current(): ClusterObjects {
    return { nodes: [...this.state.Node.objects.values()] as V1Node[], pods: [...this.state.Pod.objects.values()] as V1Pod[] };
  }

  /** List once (no watch). */
  async listOnce(): Promise<ClusterObjects> {
    await Promise.all([this.list('Node'), this.list('Pod')]);
    return this.current();
  }

  /** List, then keep watching until stop(). Resolves after the first list. */
  async start(): Promise<ClusterObjects> {
    await this.listOnce();
    this.emit('change', this.current());
    for (const kind of ['Node', 'Pod'] as const) void this.startWatch(kind);
    return this.current();
  }

  stop(): void {
    this.stopped = true;
    for (const s of Object.values(this.state)) {
      clearTimeout(s.retry);
      s.abort?.abort();
    }
  }

  private async list(kind: Kind): Promise<void> {
    const s = this.state[kind];
    let list: { metadata?: { resourceVersion?: string }; items: unknown[] };
    try {
      list = kind === 'Node' ? await this.api.listNode() : await this.api.listPodForAllNamespaces();
    } catch (err) {
      const e = err as { code?: number; message?: string };
      throw new EnvironmentError(`cannot list ${kind}s from the Kubernetes API at ${this.server}: ${e.code ? `HTTP ${e.code}` : (e.message ?? String(err)).split('\n')[0]}`);
    }
    s.objects = new Map();
    for (const item of list.items) this.put(kind, item);
    s.resourceVersion = list.metadata?.resourceVersion ?? '';
    s.relist = false;
    this.relists++;
  }

  private put(kind: Kind, raw: unknown): void {
    const obj = kind === 'Node' ? toNode(raw) : toPod(raw);
    this.state[kind].objects.set(`${obj.metadata.namespace ?? ''}/${obj.metadata.name}`, obj);
  }

  private async startWatch(kind: Kind): Promise<void> {
    if (this.stopped) return;
    const s = this.state[kind];
    try {
      if (s.relist) {
        await this.list(kind);
        this.emit('change', this.current());
      }
      s.abort = await this.watch.watch(
        PATHS[kind],
        { resourceVersion: s.resourceVersion, allowWatchBookmarks: true },
        (type: string, obj: unknown) => this.onEvent(kind, type, obj),
        (err: unknown) => this.onDone(kind, err),
      );
    } catch (err) {
      this.onDone(kind, err);
    }
  }

  private onEvent(kind: Kind, type: string, obj: unknown): void {
    const s = this.state[kind];
    const o = (typeof obj === 'object' && obj !== null ? obj : {}) as { code?: number; metadata?: { resourceVersion?: string } };
    if (type === 'ERROR') {
      if (o.code === 410) s.relist = true; // resourceVersion too old: list again
      return;
    }
    try {
      if (type === 'ADDED' || type === 'MODIFIED') this.put(kind, obj);
      else if (type === 'DELETED') {
        const x = kind === 'Node' ? toNode(obj) : toPod(obj);
        s.objects.delete(`${x.metadata.namespace ?? ''}/${x.metadata.name}`);
      }
    } catch (err) {
      this.emit('error', err);
      return;
    }
    if (o.metadata?.resourceVersion) s.resourceVersion = o.metadata.resourceVersion;
    if (type !== 'BOOKMARK') this.emit('change', this.current());
  }

  private onDone(kind: Kind, err: unknown): void {
    if (this.stopped) return;
    const s = this.state[kind];
    const status = (err as { statusCode?: number } | null)?.statusCode;
    if (status === 410) s.relist = true;
    if (err && this.listenerCount('error')) this.emit('error', err);
    this.resumes++;
    this.emit('resume', { kind, resourceVersion: s.resourceVersion, relist: s.relist });
    s.retry = setTimeout(() => void this.startWatch(kind), this.opts.backoffMs ?? 1000);
  }
}
