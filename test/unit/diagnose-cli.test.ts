// `vxtrace diagnose --cluster FILE` on files alone (no lab, no root): findings from annotations,
// exit statuses, and random files never giving anything but findings or a one-line usage error.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import fc from 'fast-check';
import { run } from '../../src/cli/main.js';
import { fixtureList, fixtureNodes } from './fixtures/flannel.js';

const dir = mkdtempSync(join(tmpdir(), 'vxtrace-diag-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer, _e: string, cb: () => void): void {
    this.text += chunk.toString();
    cb();
  }
}

async function diagnose(content: string, extra: string[] = []): Promise<{ status: number; out: string; err: string }> {
  const file = join(dir, `c${n++}.json`);
  writeFileSync(file, content);
  const stdout = new Capture();
  const stderr = new Capture();
  const status = await run(['node', 'vxtrace', 'diagnose', '--cluster', file, ...extra], { stdout, stderr });
  return { status, out: stdout.text, err: stderr.text };
}

test('the seed as a cluster file only (kubectl output, no kernel state): DUPLICATE_PUBLIC_IP, exit 1, NDJSON with code', async () => {
  const r = await diagnose(JSON.stringify(fixtureList(fixtureNodes({ nodes: 4, natPublicIp: true }))), ['--json']);
  assert.equal(r.status, 1, r.err);
  const lines = r.out.trim().split('\n').map((l) => JSON.parse(l) as { type: string; code: string; nodes: string[]; fix: string }).filter((l) => l.type === 'finding');
  assert.deepEqual(lines.map((l) => [l.type, l.code, l.nodes.join('+')]), [['finding', 'DUPLICATE_PUBLIC_IP', 'node1+node2+node3+node4']]);
  assert.match(lines[0]!.fix, /--public-ip set to its unique address \(node1 192\.168\.1\.121/);
});

test('a healthy cluster file: exit 0, text says no findings and that no kernel state was read', async () => {
  const r = await diagnose(JSON.stringify(fixtureList(fixtureNodes({ nodes: 3 }))));
  assert.equal(r.status, 0, r.err);
  assert.match(r.out, /^3 nodes, 3 pods from cluster file /);
  assert.match(r.out, /no kernel state readable here/);
  assert.match(r.out, /no findings/);
});

test('property: random cluster files give findings (exit 0/1) or one line of usage error (exit 2), never a crash', async () => {
  const doc = fc.oneof(
    fc.string(),
    fc.json(),
    fc.record({ kind: fc.constantFrom('List', 'NodeList'), items: fc.array(fc.oneof(fc.anything(), fc.record({ kind: fc.constant('Node'), metadata: fc.record({ name: fc.string(), annotations: fc.dictionary(fc.constantFrom('flannel.alpha.coreos.com/public-ip', 'flannel.alpha.coreos.com/backend-data'), fc.oneof(fc.ipV4(), fc.string())) }, { requiredKeys: [] }), spec: fc.record({ podCIDR: fc.oneof(fc.constantFrom('10.244.1.0/24', '10.244.2.0/24'), fc.string()) }, { requiredKeys: [] }) }, { requiredKeys: [] })), { maxLength: 5 }) }).map((v) => JSON.stringify(v)),
  );
  await fc.assert(
    fc.asyncProperty(doc, async (text) => {
      const r = await diagnose(text, ['--json']);
      assert.ok([0, 1, 2].includes(r.status), `status ${r.status}: ${r.err}`);
      if (r.status === 2) assert.equal(r.err.trim().split('\n').length, 1, r.err);
      else assert.equal(r.err, '');
    }),
    { numRuns: 60 },
  );
});

test('diagnose --json ends with a summary record: nodes checked, what was compared, finding codes; alone for a healthy cluster', async () => {
  let r = await diagnose(JSON.stringify(fixtureList(fixtureNodes({ nodes: 3 }))), ['--json']);
  let lines = r.out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(lines.length, 1);
  assert.deepEqual(lines[0], {
    type: 'summary', command: 'diagnose', nodes: 3, kernelState: [], noKernelState: ['node1', 'node2', 'node3'],
    compared: ["flannel annotations (public-ip, backend-data) against each node's addresses", 'pod CIDRs and VTEP addresses'],
    findings: 0, errors: 0, findingCodes: [],
  });
  r = await diagnose(JSON.stringify(fixtureList(fixtureNodes({ nodes: 4, natPublicIp: true }))), ['--json']);
  lines = r.out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.deepEqual(lines.map((l) => l.type), ['finding', 'summary']);
  assert.deepEqual([lines[1]!.nodes, lines[1]!.findings, lines[1]!.errors, lines[1]!.findingCodes], [4, 1, 1, ['DUPLICATE_PUBLIC_IP']]);
});
