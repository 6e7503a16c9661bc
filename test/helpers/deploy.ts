// deploy/ as Kubernetes would receive it: rendered with `kubectl kustomize` (offline) and parsed into
// objects, for the manifest test and for the stand-in API server (which serves the rendered Service,
// and a hub Pod made from the rendered Deployment's template).
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { repoRoot } from './lab.js';

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}

/** `kubectl kustomize DIR` (DIR relative to the repository), parsed; throws with kubectl's own message. */
export function renderKustomization(dir = 'deploy'): KubeObject[] {
  const r = spawnSync('kubectl', ['kustomize', join(repoRoot, dir)], { encoding: 'utf8', timeout: 60_000 });
  if (r.error) throw new Error(`kubectl kustomize ${dir}: ${r.error.message} (is kubectl installed? scripts/setup.sh installs Debian's kubernetes-client)`);
  if (r.status !== 0) throw new Error(`kubectl kustomize ${dir} failed: ${r.stderr.trim()}`);
  return parseAllDocuments(r.stdout).map((doc, i) => {
    if (doc.errors.length) throw new Error(`kubectl kustomize ${dir}: document ${i}: ${doc.errors[0]!.message}`);
    return doc.toJS() as KubeObject;
  });
}

export function findObject<T = KubeObject>(objects: KubeObject[], kind: string, name: string): T {
  const o = objects.find((x) => x.kind === kind && x.metadata.name === name);
  if (!o) throw new Error(`deploy/ renders no ${kind} ${name} (it has ${objects.map((x) => `${x.kind}/${x.metadata.name}`).join(', ')})`);
  return o as T;
}
