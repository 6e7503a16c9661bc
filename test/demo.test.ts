// The README's main job: `vxtrace demo` tells the seed's story end to end and leaves nothing behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { labDown } from '../src/lab/index.js';
import { namespacesOf, uniqueLabName, vxtrace, withLab } from './helpers/lab.js';

test('vxtrace demo finds the NAT public-ip, applies --iface=eth1, shows delivery, and takes the lab down', async () => {
  const name = uniqueLabName();
  try {
    const r = vxtrace(['demo', '--name', name], { timeoutMs: 120_000 });
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /✖ DUPLICATE_PUBLIC_IP \(error\) on node1, node2, node3/);
    assert.match(r.stdout, /✖ FDB_DST_LOCAL \(error\) on node1/);
    // Known from state first; the looping packets confirm it in one line, not a second block.
    assert.equal(r.stdout.match(/✖ DUPLICATE_PUBLIC_IP \(error\)/g)?.length, 1, r.stdout);
    assert.match(r.stdout, /^✖ DUPLICATE_PUBLIC_IP confirmed by \d+ packets?: default\/pod-a /m);
    assert.match(r.stdout, /--iface=eth1/);
    assert.match(r.stdout, /DROPPED at node1\/flannel\.1/);
    assert.match(r.stdout, /node1 cni0 ▸ flannel\.1 .*▸ eth1 .*⇢ 192\.168\.1\.122:8472 vni 1 ⇢ node2 eth1 .*▸ flannel\.1 .*▸ cni0 .*delivered/);
    assert.match(r.stdout, /2 paths: 2 delivered; 0 records lost; no findings/);
    assert.match(r.stdout, /lab taken down/);
    assert.deepEqual(namespacesOf(name), []);
  } finally {
    await labDown(name);
  }
});

test('vxtrace demo refuses a lab name that is up, and leaves that lab alone', async () => {
  await withLab({ nodes: 2 }, async (lab) => {
    const r = vxtrace(['demo', '--name', lab.name]);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`^vxtrace: a lab named '${lab.name}' is already up`));
    assert.equal(r.stderr.trim().split('\n').length, 1);
    assert.ok(namespacesOf(lab.name).length > 0, 'the existing lab is untouched');
  });
});
