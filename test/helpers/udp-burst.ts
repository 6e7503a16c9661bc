// A UDP sender and receiver for the datapath tests, run inside a lab pod's namespace
// (`ip netns exec NS node dist/test/helpers/udp-burst.js ...`):
//   send IP PORT COUNT [BYTES]   send COUNT datagrams of BYTES (default 64) to IP:PORT, a hundred at
//                                a time (each hundred handed to the kernel before the next), then
//                                print {"sent":COUNT}
//   recv PORT SECONDS            count datagrams received on PORT for SECONDS, print {"received":N}
import { createSocket } from 'node:dgram';

const [cmd, ...args] = process.argv.slice(2);
if (cmd === 'send') {
  const [ip, port, count, bytes] = [args[0]!, Number(args[1]), Number(args[2]), Number(args[3] ?? 64)];
  const sock = createSocket('udp4');
  const payload = Buffer.alloc(bytes, 0x5a);
  let sent = 0;
  const batch = () => {
    const n = Math.min(100, count - sent);
    if (n === 0) {
      sock.close();
      process.stdout.write(JSON.stringify({ sent }) + '\n');
      return;
    }
    let pending = n;
    for (let i = 0; i < n; i++) {
      sock.send(payload, port, ip, (err) => {
        if (err) throw err;
        if (--pending === 0) setImmediate(batch);
      });
    }
    sent += n;
  };
  batch();
} else if (cmd === 'recv') {
  const [port, seconds] = [Number(args[0]), Number(args[1])];
  const sock = createSocket('udp4');
  let received = 0;
  sock.on('message', () => received++);
  sock.bind(port, () => {
    process.stdout.write('ready\n');
    setTimeout(() => {
      sock.close();
      process.stdout.write(JSON.stringify({ received }) + '\n');
    }, seconds * 1000);
  });
} else {
  process.stderr.write('usage: udp-burst send IP PORT COUNT [BYTES] | recv PORT SECONDS\n');
  process.exit(2);
}
