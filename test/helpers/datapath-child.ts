// A separate tracing process for the datapath tests (compiled to dist/test/helpers/).
//   hold LAB MODE   open a tracer, attach to every node of lab LAB with attach mode MODE, print
//                   the hooks as one JSON line, then wait to be killed
//   open            try to open a tracer; print {ok} or {error, name} as one JSON line
import { Tracer } from '../../src/datapath/index.js';
import { readLabState } from '../../src/lab/index.js';

const [cmd, labName, mode] = process.argv.slice(2);
if (cmd === 'hold') {
  const lab = readLabState(labName);
  if (!lab) throw new Error(`lab ${labName} is not up`);
  const tracer = Tracer.open({ filter: 'everything', attachMode: (mode ?? 'auto') as 'auto' | 'tcx' | 'clsact' });
  for (const n of lab.nodes) tracer.attachNode(n.name, n.netns);
  tracer.start(() => {});
  const hooks = tracer.hooksAttached().map((h) => ({ ...h, netnsCookie: String(h.netnsCookie) }));
  process.stdout.write(JSON.stringify({ hooks }) + '\n');
  setInterval(() => {}, 1000);
} else if (cmd === 'open') {
  try {
    Tracer.open().close();
    process.stdout.write(JSON.stringify({ ok: true }) + '\n');
  } catch (err) {
    process.stdout.write(JSON.stringify({ error: (err as Error).message, name: (err as Error).name }) + '\n');
  }
} else {
  process.stderr.write('usage: datapath-child hold LAB MODE | open\n');
  process.exit(2);
}
