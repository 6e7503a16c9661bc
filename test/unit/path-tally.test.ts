// A run's paths kept as counts (PathTally: capture and follow at full rate keep no paths) give the
// same summary and the same verdict as the paths themselves, in memory bounded by the cluster.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PathTally, summarize } from '../../src/output/text.js';
import { judgePaths } from '../../src/cli/verdict.js';
import type { PacketPath } from '../../src/correlate/path.js';
import { echoPath } from './pcapng-fixtures.js';

test('PathTally: the summary and verdict of the paths, from counts and one gist per (outcome, pods, nodes)', () => {
  const paths: PacketPath[] = [];
  for (let i = 1; i <= 3000; i++) {
    const p = echoPath({ seq: i, dropAtNode2: i % 100 === 0 });
    if (i % 250 === 0) p.outcome = 'vanished';
    if (i % 333 === 0) delete p.srcPod, delete p.dstPod, (p.srcNode = undefined);
    paths.push(p);
  }
  const tally = new PathTally();
  for (const p of paths) tally.add(p);
  assert.equal(tally.total, 3000);
  assert.ok(tally.distinct().length <= 6, `a handful of gists, not 3000 (${tally.distinct().length})`);
  assert.deepEqual(tally.summary(7, [], { sampledRecords: 9 }), summarize(paths, 7, [], { sampledRecords: 9 }));
  assert.deepEqual(tally.nodes().sort(), ['node1', 'node2']);
  for (const opts of [{}, { lostRecords: 5 }, { sampledRecords: 5 }]) {
    assert.deepEqual(judgePaths(tally.distinct(), [], opts), judgePaths(paths, [], opts));
  }
  const healthy = new PathTally();
  for (let i = 1; i <= 10; i++) healthy.add(echoPath({ seq: i }));
  assert.deepEqual(judgePaths(healthy.distinct(), []), judgePaths(Array.from({ length: 10 }, (_, i) => echoPath({ seq: i + 1 })), []));
  assert.deepEqual(judgePaths(new PathTally().distinct(), []), judgePaths([], []));
});
