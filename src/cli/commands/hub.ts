// `vxtrace hub`: join the agents of every node into one pipeline and serve the stream, the metrics
// and the health check. Thin: parse flags -> cluster source -> HubServer -> run until a signal.
import { availableParallelism } from 'node:os';
import type { Command } from 'commander';
import type { CliContext, RegisterCommand } from '../command.js';
import { ExitStatus, UsageError } from '../../errors.js';
import type { ClientLimits } from '../../hub/client-link.js';
import { loadCluster, watchCluster } from '../../cluster/source.js';
import { DEFAULT_LISTEN, parseListen, requireTokenWhereReachable } from '../../hub/access.js';
import { HubServer } from '../../hub/server.js';
import { readTokenFile } from '../../wire/endpoint.js';
import { MAX_AGENT_FRAME, MAX_CLIENT_FRAME } from '../../wire/codec.js';

interface HubOptions {
  listen: string;
  cluster?: string;
  kubeconfig?: string;
  lab?: string;
  tokenFile?: string;
  workers?: string;
}

/** Pipeline workers when --workers is not given: one per core but the hub's own thread's, at most this many. */
const MAX_DEFAULT_WORKERS = 4;

function workersOf(text: string | undefined): number {
  if (text === undefined) return Math.max(0, Math.min(availableParallelism() - 1, MAX_DEFAULT_WORKERS));
  if (!/^\d+$/.test(text) || Number(text) > 64) throw new UsageError(`--workers takes a whole number from 0 to 64, not '${text}'`);
  return Number(text);
}

/**
 * FOR TESTS ONLY: smaller client bounds, so that a test can fill a client's queue quickly
 * (VXTRACE_TEST_CLIENT_BUFFER_BYTES, VXTRACE_TEST_CLIENT_BEHIND_MS).
 */
function testClientLimits(): Partial<ClientLimits> {
  const n = (name: string) => {
    const v = process.env[name];
    if (v === undefined || v === '') return undefined;
    if (!/^\d+$/.test(v)) throw new UsageError(`${name} takes a whole number, not '${v}'`);
    return Number(v);
  };
  const bytes = n('VXTRACE_TEST_CLIENT_BUFFER_BYTES');
  const behind = n('VXTRACE_TEST_CLIENT_BEHIND_MS');
  return { ...(bytes !== undefined ? { maxBufferedBytes: bytes } : {}), ...(behind !== undefined ? { maxBehindMs: behind } : {}) };
}

async function runHub(o: HubOptions, ctx: CliContext): Promise<void> {
  const listen = parseListen(o.listen);
  const token = o.tokenFile !== undefined ? readTokenFile(o.tokenFile) : undefined;
  requireTokenWhereReachable(listen, token);
  const workers = workersOf(o.workers);
  const source = { cluster: o.cluster, kubeconfig: o.kubeconfig, lab: o.lab };
  const { objects, from } = await loadCluster(source);
  const log = (line: string) => ctx.stderr.write(`${new Date().toISOString().slice(11, 23)} hub: ${line}\n`);
  const { server, url } = await HubServer.start({ listen, token, objects, clusterFrom: from, log, workers, clientLimits: testClientLimits() });
  const watch = await watchCluster(source, (next) => server.hub.setObjects(next), (err) => log(`cannot re-read the cluster (${err.message}): the last good state stays in use`)).catch((err: Error) => {
    log(`cannot watch the cluster (${err.message}): its objects stay as read at the start`);
    return undefined;
  });
  ctx.stderr.write(`cluster: ${from}\n`);
  ctx.stderr.write(
    `hub listening on ${url}${token !== undefined ? ' (token required)' : ''}: agents connect to ${url} (vxtrace agent --hub ${url}), clients too (vxtrace observe --hub ${url}); ` +
      `/metrics, /healthz${listen.kind === 'tcp' ? ` at http://${url.slice('ws://'.length)}` : ''}; Ctrl-C to stop\n`,
  );
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  watch?.stop();
  await server.close();
  ctx.stderr.write('hub stopped\n');
}

export const registerHub: RegisterCommand = (program: Command, ctx: CliContext) => {
  program
    .command('hub')
    .description('join the agents of every node into one pipeline; serve the live stream (/v1/stream), /metrics and /healthz')
    .option('--listen <addr>', 'HOST:PORT, [::1]:PORT or unix:/path.sock', DEFAULT_LISTEN)
    .option('--cluster <file>', 'cluster state: the output of `kubectl get nodes,pods -A -o json`')
    .option('--kubeconfig <file>', 'read (and watch) the cluster from the Kubernetes API with this kubeconfig')
    .option('--lab <name>', 'use the cluster of this lab (default: the lab named `lab`, or the only lab that is up)')
    .option('--token-file <file>', 'agents and clients must present the token on its first line (Authorization: Bearer)')
    .option('--workers <n>', `pipeline worker threads, each joining the packets its share of fingerprints falls to (default: one per core but one, at most ${MAX_DEFAULT_WORKERS}; 0: in the hub's own thread)`)
    .addHelpText('after', `
One agent per node (\`vxtrace agent --hub URL\`) sends that node's hop records and kernel state; the
hub joins them by packet fingerprint and hop order (never by comparing two machines' clocks), judges
them against the cluster and every node's kernel state, and streams paths and findings to clients
(\`vxtrace observe --hub URL\`, \`vxtrace follow POD_A POD_B --hub URL\`); \`vxtrace diagnose --hub URL\`
gets its diagnosis from state alone. Nothing is traced until a client subscribes to paths: the
agents' in-kernel filters follow the subscriptions. An agent whose node is not in the cluster
(yet) is told to retry (4012).

Loopback and unix: sockets need no token; any other --listen address needs --token-file (exit 2
without). Frames: binary protobuf (proto/vxtrace.proto), at most ${MAX_CLIENT_FRAME / 1024} KiB from a client and
${MAX_AGENT_FRAME / (1 << 20)} MiB from an agent; a bad frame closes that one connection (codes 4000-4999).
Protocol: docs/protocol.md. Metrics: docs/metrics.md. The hub needs no privileges.

Exit status: 0 stopped by Ctrl-C/SIGTERM; 2 usage (bad --listen, no token for a reachable address,
unreadable cluster file); 3 environment (the address is in use, no cluster state).`)
    .action(async (o: HubOptions) => {
      await runHub(o, ctx);
      ctx.setExitStatus(ExitStatus.OK);
    });
};
