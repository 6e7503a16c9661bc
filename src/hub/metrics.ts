// /metrics: the hub's counters in the Prometheus text format (docs/metrics.md), with prom-client.
// Every metric is read from the hub's counters when scraped (collect): nothing here is in the path
// of a record, a path or an event.
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { HubCounters } from './hub.js';

export class HubMetrics {
  readonly registry = new Registry();

  constructor(read: () => HubCounters) {
    collectDefaultMetrics({ register: this.registry });
    // Gauges that prom-client names *_total (a counter's suffix): promtool rejects them, and the
    // process metrics say enough without them.
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) this.registry.removeSingleMetric(name);
    const r = [this.registry];
    // One snapshot per scrape, shared by every metric's collect.
    let snap: HubCounters | undefined;
    let at = 0;
    const counters = () => {
      if (!snap || Date.now() - at > 50) {
        snap = read();
        at = Date.now();
      }
      return snap;
    };
    new Gauge({
      name: 'vxtrace_agents_connected', help: 'Agents connected now (one per watched node).', registers: r,
      collect() { this.set(counters().agentsConnected); },
    });
    new Gauge({
      name: 'vxtrace_clients_connected', help: 'Subscribed stream clients connected now.', registers: r,
      collect() { this.set(counters().clientsConnected); },
    });
    new Gauge({
      name: 'vxtrace_node_watched', help: 'Whether a node of the cluster has its agent connected now (1) or not (0: unwatched).', labelNames: ['node'], registers: r,
      collect() {
        this.reset();
        for (const [node, watched] of counters().nodes) this.set({ node }, watched ? 1 : 0);
      },
    });
    new Counter({
      name: 'vxtrace_hop_records_total', help: 'Hop records received from agents and joined into paths, by node.', labelNames: ['node'], registers: r,
      collect() {
        this.reset();
        for (const [node, n] of counters().hopRecords) this.inc({ node }, n);
      },
    });
    new Counter({
      name: 'vxtrace_paths_total', help: 'Packet paths finished, by outcome.', labelNames: ['outcome'], registers: r,
      collect() {
        this.reset();
        for (const [outcome, n] of counters().paths) this.inc({ outcome }, n);
      },
    });
    new Gauge({
      name: 'vxtrace_findings', help: 'Findings active now, by code and severity.', labelNames: ['code', 'severity'], registers: r,
      collect() {
        this.reset();
        const by = new Map<string, { code: string; severity: string; n: number }>();
        for (const f of counters().findings) {
          const k = `${f.code}/${f.severity}`;
          const e = by.get(k) ?? { code: f.code, severity: f.severity, n: 0 };
          e.n++;
          by.set(k, e);
        }
        for (const e of by.values()) this.set({ code: e.code, severity: e.severity }, e.n);
      },
    });
    new Counter({
      name: 'vxtrace_lost_records_total', help: 'Hop records lost, by node and where (ring_buffer, agent_queue, hub_queue).', labelNames: ['node', 'source'], registers: r,
      collect() {
        this.reset();
        for (const [key, n] of counters().lostRecords) {
          const [node, source] = key.split('\t') as [string, string];
          this.inc({ node, source: source.replace('-', '_') }, n);
        }
      },
    });
    new Counter({
      name: 'vxtrace_client_messages_dropped_total', help: 'Stream events dropped because their client did not read fast enough.', registers: r,
      collect() {
        this.reset();
        this.inc(counters().clientMessagesDropped);
      },
    });
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
