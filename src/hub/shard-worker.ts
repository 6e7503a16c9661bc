// A worker thread running one pipeline shard (src/hub/shard.ts): commands in, finished paths out,
// their bytes handed over without a copy (transferred).
import { parentPort, workerData } from 'node:worker_threads';
import { PipelineShard, type ShardCommand } from './shard.js';

const port = parentPort!;
const shard = new PipelineShard(workerData as ConstructorParameters<typeof PipelineShard>[0]);
port.on('message', (c: ShardCommand) => {
  const paths = shard.handle(c);
  if (!paths) return;
  port.postMessage(paths, [paths.bytes.buffer, paths.ends.buffer, paths.wants.buffer, paths.wantsEnd.buffer, paths.outcomes.buffer] as ArrayBuffer[]);
});
