// The model watcher on a cluster file: a file rewritten after the model was read but before the
// watch began is still seen (the file watch alone raises no event for it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ModelWatcher } from '../../src/cluster/model-watch.js';
import { ClusterModel } from '../../src/cluster/model.js';
import { loadClusterFile } from '../../src/cluster/list.js';
import { fixtureList, fixtureNodes } from './fixtures/flannel.js';

test('a cluster file rewritten between the first read and the watch start is reported as a change', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vxt-watch-'));
  const file = join(dir, 'cluster.json');
  try {
    writeFileSync(file, JSON.stringify(fixtureList(fixtureNodes({ natPublicIp: true }))));
    const stale = ClusterModel.build(loadClusterFile(file)); // no kernel state: these nodes are not on this machine
    // flanneld restarted with --iface=eth1 before anyone watched
    writeFileSync(file, JSON.stringify(fixtureList(fixtureNodes())));
    const watcher = new ModelWatcher(stale, { cluster: file }, 20);
    const changed = new Promise<ClusterModel>((resolve) => watcher.once('change', (m) => resolve(m)));
    await watcher.start();
    const next = await Promise.race([changed, new Promise<undefined>((r) => setTimeout(() => r(undefined), 3000))]);
    watcher.stop();
    assert.ok(next, 'a change was reported');
    assert.deepEqual(next.nodes.map((n) => n.publicIp), ['192.168.1.121', '192.168.1.122', '192.168.1.123']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
