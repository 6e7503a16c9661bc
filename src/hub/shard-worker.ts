// A worker thread running one pipeline shard (src/hub/shard.ts): commands in, finished paths out,
// their bytes handed over without a copy (transferred); the recent paths the page's download asks
// for, copied out of their batches.
import { parentPort, workerData } from 'node:worker_threads';
import { PipelineShard, portablePaths, type ShardCommand, type ShardSetup } from './shard.js';

const port = parentPort!;
const shard = new PipelineShard(workerData as ShardSetup);
port.on('message', (c: ShardCommand) => {
  const paths = shard.handle(c);
  if (!paths) return;
  if ('recent' in paths) return port.postMessage({ recent: paths.recent, paths: portablePaths(paths.paths) });
  port.postMessage(paths, [paths.bytes.buffer, paths.ends.buffer, paths.wants.buffer, paths.wantsEnd.buffer, paths.outcomes.buffer] as ArrayBuffer[]);
});
