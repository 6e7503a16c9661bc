// What the hub serves the page, on plain values: the node map (the seed's case before any packet:
// shared public-ip, FDB entries pointing at the node itself), the bounded store of recent paths
// the pcapng download is written from, and the page's static files with their CSP.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { nodeMapOf } from '../../src/hub/node-map.js';
import { RecentPaths } from '../../src/hub/pcapng-download.js';
import { PAGE_CSP, PageFiles, servePage } from '../../src/hub/static.js';
import type { PacketPath } from '../../src/correlate/path.js';
import { fixtureModel } from './fixtures/flannel.js';
import { fixturePaths } from './ui-fixtures.js';

test('the node map of the seed: every node registered 10.0.2.15, every FDB entry points back at the node itself', () => {
  const { model } = fixtureModel({ natPublicIp: true, withKernel: true });
  const m = nodeMapOf({ clusterModel: model, watchedNodes: ['node1', 'node3'], clusterFrom: 'test' }, 5n);
  assert.deepEqual(m.nodes?.map((n) => [n.name, n.publicIp, n.publicIpSharedWith, n.watched]), [
    ['node1', '10.0.2.15', ['node2', 'node3'], true],
    ['node2', '10.0.2.15', ['node1', 'node3'], false],
    ['node3', '10.0.2.15', ['node1', 'node2'], true],
  ]);
  const n1 = m.nodes![0]!;
  // The underlay vxtrace decided on is not the annotation: it is the unique address on eth1.
  assert.equal(n1.underlay, '192.168.1.121');
  assert.equal(n1.underlayInterface, 'eth1');
  assert.deepEqual(n1.fdb?.map((f) => [f.peer, f.dst, f.expected, f.ok]), [
    ['node2', '10.0.2.15', '192.168.1.122', false],
    ['node3', '10.0.2.15', '192.168.1.123', false],
  ]);
  assert.match(n1.fdb![0]!.problem!, /points at 10\.0\.2\.15, an address of node1 itself/);
  assert.equal(n1.kernelState, true);
  assert.equal(m.clusterFrom, 'test');
  assert.ok((m.pods ?? []).length >= 3);
});

test('the node map of a healthy cluster: nothing shared, every FDB entry where its peer is', () => {
  const { model } = fixtureModel({ withKernel: true });
  const m = nodeMapOf({ clusterModel: model, watchedNodes: [], clusterFrom: 'test' });
  for (const n of m.nodes ?? []) {
    assert.deepEqual(n.publicIpSharedWith, []);
    assert.equal(n.fdb?.length, 2);
    assert.ok(n.fdb!.every((f) => f.ok && f.dst === f.expected && f.problem === ''), JSON.stringify(n.fdb));
  }
  // Without kernel state: no FDB to check, and it says so.
  const bare = nodeMapOf({ clusterModel: fixtureModel({ withKernel: false }).model, watchedNodes: [], clusterFrom: 'test' });
  assert.ok(bare.nodes!.every((n) => !n.kernelState && n.fdb!.length === 0));
});

test('recent paths: bounded by count and by bytes, oldest first out, found by fingerprint', () => {
  const [p] = fixturePaths('healthy.ndjson');
  const make = (i: number): PacketPath => ({ ...p!, fingerprint: `f${i % 50}`, firstSeenNs: BigInt(i) });
  const recent = new RecentPaths(100, 1 << 30);
  for (let i = 0; i < 10_000; i++) recent.add(make(i));
  assert.equal(recent.size, 100);
  assert.equal(recent.evicted, 9_900);
  // f7 was added as i = 9907 and 9957 among the last hundred.
  assert.deepEqual(recent.find(['f7', 'f7', 'nope']).map((x) => x.firstSeenNs), [9907n, 9957n]);
  const small = new RecentPaths(1000, 6 * 200 * 10);
  for (let i = 0; i < 100; i++) small.add(make(i));
  assert.equal(small.size, 10);
});

function request(url: string, method = 'GET'): IncomingMessage {
  return { url, method } as IncomingMessage;
}

function response(): ServerResponse & { status?: number; headers?: Record<string, unknown>; body?: Buffer | string } {
  const res = {
    writeHead(status: number, headers: Record<string, unknown>) {
      res.status = status;
      res.headers = headers;
      return res;
    },
    end(body?: Buffer | string) {
      res.body = body;
      return res;
    },
  } as ServerResponse & { status?: number; headers?: Record<string, unknown>; body?: Buffer | string };
  return res;
}

test("the page's files: served with a CSP that allows this hub only; other paths left to the server; a page not built says how to build it", () => {
  const dir = mkdtempSync(join(tmpdir(), 'vxtrace-page-'));
  try {
    const files = new PageFiles(`${dir}/`);
    let res = response();
    assert.equal(servePage(request('/'), res, files), true);
    assert.equal(res.status, 503);
    assert.match(String(res.body), /npm run build/);
    writeFileSync(join(dir, 'index.html'), '<!doctype html>');
    writeFileSync(join(dir, 'app.js'), 'export {}');
    writeFileSync(join(dir, '.inputs.json'), '[]');
    res = response();
    assert.equal(servePage(request('/?token=x'), res, files), true);
    assert.equal(res.status, 200);
    assert.equal(res.headers!['Content-Security-Policy'], PAGE_CSP);
    assert.match(PAGE_CSP, /connect-src 'self'/);
    assert.match(PAGE_CSP, /default-src 'none'/);
    assert.equal(String(res.body), '<!doctype html>');
    res = response();
    assert.equal(servePage(request('/app.js'), res, files), true);
    assert.match(String(res.headers!['Content-Type']), /^text\/javascript/);
    for (const path of ['/.inputs.json', '/../package.json', '/metrics', '/v1/stream', '/nope.js']) assert.equal(servePage(request(path), response(), files), false, path);
    assert.equal(servePage(request('/', 'POST'), response(), files), false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
