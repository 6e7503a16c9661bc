// Keeps a ClusterModel current: one KernelWatcher per node this machine can see (lab nodes by
// namespace, a real node itself) and the cluster objects followed (a rewritten file, an API watch).
// Changes come in bursts (a flanneld restart rewrites the device, neighbours, FDB entries and its
// annotation one after another), so 'change' is emitted once things settle, with the reasons.
import { EventEmitter } from 'node:events';
import { KernelWatcher, kernelSourceOf, thisMachine } from './kernel-reader.js';
import { ClusterModel } from './model.js';
import { loadCluster, watchCluster, type ClusterSourceOptions } from './source.js';
import type { ClusterObjects } from './list.js';

export interface ModelWatcherEvents {
  change: [model: ClusterModel, why: string];
  error: [err: Error];
}

export class ModelWatcher extends EventEmitter<ModelWatcherEvents> {
  private readonly kernel = new Map<string, KernelWatcher>();
  private clusterWatch: { stop(): void } | undefined;
  private pending: NodeJS.Timeout | undefined;
  private readonly reasons = new Set<string>();
  private readonly self = thisMachine();
  private stopped = false;

  constructor(
    private model: ClusterModel,
    private readonly source: ClusterSourceOptions,
    private readonly debounceMs = 400,
  ) {
    super();
  }

  current(): ClusterModel {
    return this.model;
  }

  /** Resolves once every watch is running; rejects (and stops everything) if one cannot start. */
  async start(): Promise<void> {
    try {
      const started = this.watchNodes(this.model.objects.nodes);
      const onObjects = (next: ClusterObjects) => {
        this.model = ClusterModel.build(next, this.model.kernelStates);
        void this.watchNodes(next.nodes).catch((err: Error) => this.emit('error', err));
        this.report('the cluster objects changed');
      };
      const cluster = watchCluster(this.source, onObjects, (err) => this.emit('error', err));
      [this.clusterWatch] = await Promise.all([cluster, started]);
      if (this.stopped) return this.clusterWatch.stop();
      // The objects may have changed between the read the model was built from and the watch's
      // start (a cluster file rewritten in between raises no event): read them once more.
      const again = await loadCluster(this.source).catch((err: Error) => void this.emit('error', err));
      if (again && !this.stopped && JSON.stringify(again.objects) !== JSON.stringify(this.model.objects)) onObjects(again.objects);
    } catch (err) {
      this.stop();
      throw err;
    }
  }

  /** Stop every watch; a change still waiting for its burst to settle is emitted first. */
  stop(): void {
    if (this.pending) {
      clearTimeout(this.pending);
      this.settle();
    }
    this.stopped = true;
    for (const w of this.kernel.values()) w.stop();
    this.clusterWatch?.stop();
  }

  private async watchNodes(nodes: ClusterObjects['nodes']): Promise<void> {
    const starting: Promise<unknown>[] = [];
    for (const node of nodes) {
      const name = node.metadata.name;
      const src = kernelSourceOf(node, this.self);
      if (!src || this.kernel.has(name)) continue;
      const w = new KernelWatcher({ netns: src.netns });
      this.kernel.set(name, w);
      w.on('error', (err: Error) => this.emit('error', err));
      w.on('change', (state) => {
        this.model = this.model.withKernelState(name, state);
        this.report(`${name}'s kernel state changed`);
      });
      // The first read may already differ from the state the model was built with (it changed
      // before the watch began): count it as a change.
      starting.push(
        w.start().then((state) => {
          if (JSON.stringify(state) === JSON.stringify(this.model.kernelStates.get(name))) return;
          this.model = this.model.withKernelState(name, state);
          this.report(`${name}'s kernel state changed`);
        }),
      );
    }
    await Promise.all(starting);
  }

  private report(why: string): void {
    if (this.stopped) return;
    this.reasons.add(why);
    clearTimeout(this.pending);
    this.pending = setTimeout(() => this.settle(), this.debounceMs);
  }

  private settle(): void {
    this.pending = undefined;
    const why = [...this.reasons].join('; ');
    this.reasons.clear();
    this.emit('change', this.model, why);
  }
}
