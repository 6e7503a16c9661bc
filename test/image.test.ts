// The image (scripts/image.sh: the Dockerfile's image built from Debian packages, no registry) runs
// the agent as the DaemonSet does: podman as root, the host network of a lab node's namespace,
// every capability dropped but BPF, PERFMON and NET_ADMIN, no new privileges, a read-only root
// filesystem, NODE_NAME and the hub's token from a mount. It attaches, reports to a hub, and the
// hub joins its hops into six-hop paths; the DaemonSet's liveness probe passes inside it.
// The first build takes one to two minutes (mmdebstrap fetches the packages); an image built from
// the same files is reused, and the test then takes about 20 s.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execAsync } from '../src/util/exec.js';
import { repoRoot, withLab } from './helpers/lab.js';
import { records, start, type Proc } from './helpers/hub.js';
import { findObject, renderKustomization } from './helpers/deploy.js';

type Json = Record<string, any>;

function buildImage(): string {
  const r = spawnSync('bash', [join(repoRoot, 'scripts', 'image.sh')], { encoding: 'utf8', timeout: 600_000 });
  assert.equal(r.status, 0, `scripts/image.sh failed:\n${r.stderr}`);
  return r.stdout.trim().split('\n').at(-1)!;
}

/** `podman run` of the agent as the DaemonSet's container spec says, in `netns`. */
function runAgent(image: string, name: string, netns: string, node: string, hubDir: string): Proc {
  const ds = findObject<Json>(renderKustomization('deploy'), 'DaemonSet', 'vxtrace-agent');
  const c = ds.spec.template.spec.containers[0];
  const caps = (c.securityContext.capabilities.add as string[]).map((x) => x.toLowerCase()).join(',');
  const argv = [
    '--runtime', 'runc', 'run', '--rm', '--name', name,
    // This VM's limits for the container's process (runc cannot raise them here).
    '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024',
    '--network', `ns:/run/netns/${netns}`,
    '--cap-drop=all', `--cap-add=${caps}`,
    '--security-opt', 'no-new-privileges', '--security-opt', `seccomp=${c.securityContext.seccompProfile.type === 'Unconfined' ? 'unconfined' : ''}`,
    '--read-only',
    // As in every pod: the API server's address (the agent has no token for it, and reads nothing).
    '-e', `NODE_NAME=${node}`, '-e', 'KUBERNETES_SERVICE_HOST=10.96.0.1', '-e', 'KUBERNETES_SERVICE_PORT=443',
    '-v', `${hubDir}:/etc/vxtrace/hub`,
    image, 'agent', '--hub', 'unix:/etc/vxtrace/hub/hub.sock', '--token-file', '/etc/vxtrace/hub/token',
  ];
  const child = spawn('podman', argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child, exited, stdout: () => out, stderr: () => err,
    kill: (signal = 'SIGTERM') => void (child.exitCode === null && child.kill(signal)),
    waitFor: (re, timeoutMs = 30_000) => new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`agent container ${name}: no ${re} within ${timeoutMs} ms:\n${err}`)), timeoutMs);
      const check = () => {
        const m = re.exec(err);
        if (m) {
          clearTimeout(t);
          resolve(m);
        }
      };
      child.stderr.on('data', check);
      child.once('exit', () => {
        clearTimeout(t);
        reject(new Error(`agent container ${name} exited before ${re}:\n${err}`));
      });
      check();
    }),
  };
}

test('the image runs the agent with exactly the DaemonSet\'s capabilities: it attaches and reports to a hub', async () => {
  const image = buildImage();
  await withLab({ nodes: 2 }, async (lab) => {
    const dir = mkdtempSync(join(tmpdir(), 'vxt-image-'));
    writeFileSync(join(dir, 'token'), 'image-test-token\n', { mode: 0o600 });
    const names = lab.nodes.map((n) => `vxt-agent-${lab.name}-${n.name}`);
    const procs: Proc[] = [];
    try {
      const hub = start(['hub', '--listen', `unix:${dir}/hub.sock`, '--cluster', lab.clusterFile, '--token-file', join(dir, 'token')]);
      procs.push(hub);
      await hub.waitFor(/^hub listening on /m);
      const agents = lab.nodes.map((n, i) => runAgent(image, names[i]!, n.netns, n.name, dir));
      procs.push(...agents);
      for (const [i, a] of agents.entries()) {
        await a.waitFor(/connected to the hub/);
        assert.match(a.stderr(), new RegExp(`agent for ${lab.nodes[i]!.name} \\(this machine is the node \\(in a pod: no cluster state read\\)\\): 8 hooks attached \\(cni0/ingress, cni0/egress, flannel\\.1/ingress, flannel\\.1/egress`));
      }
      // The DaemonSet's liveness probe, run in the container as the kubelet would.
      const ds = findObject<Json>(renderKustomization('deploy'), 'DaemonSet', 'vxtrace-agent');
      const probe = await execAsync(['podman', 'exec', names[0]!, ...ds.spec.template.spec.containers[0].livenessProbe.exec.command], { allowFail: true });
      assert.equal(probe.status, 0, `liveness probe: ${probe.stderr}`);

      const observe = start(['observe', '--hub', `unix:${dir}/hub.sock`, '--token-file', join(dir, 'token'), '--from', 'pod-a', '--to', 'pod-b', '--json', '--count', '2', '--duration', '15']);
      procs.push(observe);
      await observe.waitFor(/^observing /m);
      const a = lab.pods.find((p) => p.name === 'pod-a')!;
      const b = lab.pods.find((p) => p.name === 'pod-b')!;
      await execAsync(['ip', 'netns', 'exec', a.netns, 'ping', '-c', '2', '-i', '0.2', '-W', '1', b.ip], { allowFail: true });
      assert.equal(await observe.exited, 0, observe.stderr());
      const paths = records(observe.stdout()).filter((r) => r.type === 'path') as Json[];
      assert.equal(paths.length, 2, observe.stdout());
      for (const p of paths) {
        assert.equal(p.outcome, 'delivered');
        assert.deepEqual(p.hops.filter((h: Json) => h.kind === 'tc').map((h: Json) => `${h.node}/${h.device}/${h.direction}`), [
          'node1/cni0/ingress', 'node1/flannel.1/egress', 'node1/eth1/egress', 'node2/eth1/ingress', 'node2/flannel.1/ingress', 'node2/cni0/egress',
        ]);
      }
      // SIGTERM (the kubelet's stop): everything detached, exit 0.
      for (const ag of agents) ag.kill('SIGTERM');
      for (const ag of agents) {
        assert.equal(await ag.exited, 0, ag.stderr());
        assert.match(ag.stderr(), /stopped: everything detached/);
      }
    } finally {
      for (const p of procs) p.kill('SIGKILL');
      for (const n of names) spawnSync('podman', ['rm', '-f', '--ignore', n], { stdio: 'ignore' });
      await Promise.all(procs.map((p) => p.exited));
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
