// `vxtrace demo` (the README's `npm run demo`): the seed's story on the embedded lab.
import type { CliContext, RegisterCommand } from '../command.js';
import { ExitStatus } from '../../errors.js';
import { labDown, labExec, labUp, type LabState } from '../../lab/index.js';
import { execSync } from '../../util/exec.js';

const DEMO_LAB = 'demo';

function step(ctx: CliContext, text: string): void {
  ctx.stdout.write(`\n== ${text}\n`);
}

function pingShow(ctx: CliContext, lab: LabState, from: string, to: string): boolean {
  const dst = lab.pods.find((p) => p.name === to)!;
  ctx.stdout.write(`$ vxtrace lab exec ${from} -- ping -c 2 -W 1 ${dst.ip}    # ${to} on ${dst.node}\n`);
  const r = labExec(lab, from, ['ping', '-c', '2', '-W', '1', dst.ip], { stdio: 'pipe' });
  const summary = r.stdout.split('\n').find((l) => l.includes('packets transmitted')) ?? r.stderr.trim();
  ctx.stdout.write(`  ${summary}\n`);
  return r.status === 0;
}

export const registerDemo: RegisterCommand = (program, ctx) => {
  program
    .command('demo')
    .description("tell the seed's story on the embedded lab: flanneld registered every node with the NAT address (as root)")
    .action(async () => {
      await labDown(DEMO_LAB).catch(() => {});
      try {
        step(ctx, 'A healthy three-node flannel VXLAN lab: pod-a (node1) pings pod-b (node2)');
        let lab = await labUp({ name: DEMO_LAB, nodes: 3, podsPerNode: 1, faults: [] });
        const healthy = pingShow(ctx, lab, 'pod-a', 'pod-b');
        await labDown(DEMO_LAB);

        step(ctx, 'The Vagrant case: flanneld picked eth0 (NAT, 10.0.2.15 on every node) as the public interface');
        lab = await labUp({ name: DEMO_LAB, nodes: 3, podsPerNode: 1, faults: ['nat-public-ip'] });
        const faulted = pingShow(ctx, lab, 'pod-a', 'pod-b');
        const node1 = lab.nodes[0]!;
        ctx.stdout.write(`$ bridge fdb show dev flannel.1    # on node1\n`);
        for (const l of execSync(['bridge', '-n', node1.netns, 'fdb', 'show', 'dev', 'flannel.1']).stdout.trim().split('\n')) ctx.stdout.write(`  ${l}\n`);
        ctx.stdout.write('  every FDB entry points at 10.0.2.15, an address every node has: the packets never leave node1.\n');
        ctx.stdout.write('  The fix: restart flanneld with --iface=eth1 (the interface with the unique 192.168.1.12x address).\n');
        const ok = healthy && !faulted;
        step(ctx, ok ? 'As in the seed: healthy pods talk, the NAT public-ip breaks every cross-node pair' : 'Unexpected: the lab did not behave as the story says');
        ctx.setExitStatus(ok ? ExitStatus.OK : ExitStatus.FINDINGS);
      } finally {
        await labDown(DEMO_LAB).catch(() => {});
        ctx.stdout.write('\nlab taken down.\n');
      }
    });
};
