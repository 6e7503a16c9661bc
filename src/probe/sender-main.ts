// The probe helper: run inside a lab node's network namespace (`ip netns exec NS node
// sender-main.js`) by NetnsProbeSender, it sends the UDP and TCP probes it is given from there, one
// JSON line per request on stdin ({seq, request}), one per result on stdout ({seq, result}). It
// ends when its stdin does.
import { createInterface } from 'node:readline';
import { pingProbe, socketProbe, type ProbeRequest } from './sender.js';

createInterface({ input: process.stdin }).on('line', (line) => {
  let msg: { seq: number; request: ProbeRequest };
  try {
    msg = JSON.parse(line) as { seq: number; request: ProbeRequest };
  } catch {
    return;
  }
  const send = msg.request.protocol === 'icmp' ? pingProbe(msg.request) : socketProbe(msg.request);
  void send
    .catch((err: Error) => ({ replied: false, error: err.message }))
    .then((result) => process.stdout.write(JSON.stringify({ seq: msg.seq, result }) + '\n'));
});
