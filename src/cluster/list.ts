// Reading cluster objects (v1 Nodes and Pods) from untrusted JSON: a `kubectl get nodes,pods -A -o json`
// List, a NodeList/PodList, or objects from the API. Validation is lenient where kubectl output varies
// and strict where vxtrace would otherwise guess: bad input is a UsageError naming what is wrong.
import { readFileSync } from 'node:fs';
import { UsageError } from '../errors.js';
import type { NodeAddress, ObjectMeta, V1Node, V1Pod } from './k8s.js';

export interface ClusterObjects {
  nodes: V1Node[];
  pods: V1Pod[];
}

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

function stringMap(v: unknown): Record<string, string> | undefined {
  if (!isObj(v)) return undefined;
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(v)) if (typeof val === 'string') out[k] = val;
  return out;
}

function meta(v: unknown, where: string): ObjectMeta {
  if (!isObj(v) || typeof v.name !== 'string' || v.name === '') throw new UsageError(`${where}: metadata.name is missing`);
  return {
    name: v.name,
    namespace: str(v.namespace),
    uid: str(v.uid),
    resourceVersion: str(v.resourceVersion),
    labels: stringMap(v.labels),
    annotations: stringMap(v.annotations),
  };
}

/** Normalise one v1 Node from untrusted JSON (only the fields vxtrace reads). */
export function toNode(v: unknown, where = 'Node'): V1Node {
  if (!isObj(v)) throw new UsageError(`${where} is not an object`);
  const metadata = meta(v.metadata, where);
  const spec = isObj(v.spec) ? v.spec : {};
  const status = isObj(v.status) ? v.status : {};
  const addresses: NodeAddress[] = Array.isArray(status.addresses)
    ? status.addresses.filter(isObj).flatMap((a) => (typeof a.type === 'string' && typeof a.address === 'string' ? [{ type: a.type, address: a.address }] : []))
    : [];
  const podCIDRs = Array.isArray(spec.podCIDRs) ? spec.podCIDRs.filter((c): c is string => typeof c === 'string') : undefined;
  return { apiVersion: 'v1', kind: 'Node', metadata, spec: { podCIDR: str(spec.podCIDR), podCIDRs }, status: { addresses } };
}

/** Normalise one v1 Pod from untrusted JSON. */
export function toPod(v: unknown, where = 'Pod'): V1Pod {
  if (!isObj(v)) throw new UsageError(`${where} is not an object`);
  const metadata = meta(v.metadata, where);
  metadata.namespace ??= 'default';
  const spec = isObj(v.spec) ? v.spec : {};
  const status = isObj(v.status) ? v.status : {};
  const podIPs = Array.isArray(status.podIPs) ? status.podIPs.filter(isObj).flatMap((p) => (typeof p.ip === 'string' ? [{ ip: p.ip }] : [])) : undefined;
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata,
    spec: { nodeName: str(spec.nodeName), hostNetwork: spec.hostNetwork === true },
    status: { phase: str(status.phase), podIP: str(status.podIP), podIPs, hostIP: str(status.hostIP) },
  };
}

/**
 * Objects from a parsed List (kind List, NodeList or PodList; items of other kinds are ignored).
 * `source` names the input in error messages.
 */
export function clusterObjectsFromJson(value: unknown, source: string): ClusterObjects {
  if (!isObj(value)) throw new UsageError(`${source}: not a Kubernetes List (expected the JSON object \`kubectl get nodes,pods -A -o json\` prints)`);
  const kind = str(value.kind);
  if (!Array.isArray(value.items)) throw new UsageError(`${source}: no "items" array (expected the output of \`kubectl get nodes,pods -A -o json\`)`);
  const defaultKind = kind === 'NodeList' ? 'Node' : kind === 'PodList' ? 'Pod' : undefined;
  const nodes: V1Node[] = [];
  const pods: V1Pod[] = [];
  value.items.forEach((item, i) => {
    const itemKind = isObj(item) ? (str(item.kind) ?? defaultKind) : undefined;
    const where = `${source}: items[${i}]`;
    if (itemKind === 'Node') nodes.push(toNode(item, `${where} (Node)`));
    else if (itemKind === 'Pod') pods.push(toPod(item, `${where} (Pod)`));
  });
  const seen = new Set<string>();
  for (const n of nodes) {
    if (seen.has(n.metadata.name)) throw new UsageError(`${source}: node ${n.metadata.name} appears twice`);
    seen.add(n.metadata.name);
  }
  return { nodes, pods };
}

/** Parse JSON text of a cluster List. */
export function parseClusterJson(text: string, source: string): ClusterObjects {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`${source} is not valid JSON (${(err as Error).message}): give the output of \`kubectl get nodes,pods -A -o json\``);
  }
  return clusterObjectsFromJson(value, source);
}

/** Read `--cluster FILE`. */
export function loadClusterFile(path: string): ClusterObjects {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : (err as Error).message;
    throw new UsageError(`cannot read cluster file ${path}: ${why} (write one with \`kubectl get nodes,pods -A -o json > FILE\`)`);
  }
  return parseClusterJson(text, path);
}
