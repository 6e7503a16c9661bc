// `vxtrace demo` (the README's `npm run demo`): the seed's story, told by the tool on the lab.
// flanneld on Vagrant registered every node with the NAT address 10.0.2.15; cross-node pod traffic
// vanished; the fix was --iface=eth1. Here vxtrace finds that from the packets, the fix is applied
// the way flanneld would, and the same command shows the packets arriving.
import type { CliContext, RegisterCommand } from '../command.js';
import { ExitStatus, UsageError, type ExitStatusCode } from '../../errors.js';
import { requirePrivileges } from '../../util/privileges.js';
import { HEAL_ACTIONS, listLabs, labDown, labExec, labHeal, labUp, readLabState, type LabState } from '../../lab/index.js';
import { DEFAULT_LAB_NAME } from '../../lab/plan.js';
import { followPods } from '../follow-run.js';
import { execAsync } from '../../util/exec.js';

const DEMO_LAB = 'demo';

export const registerDemo: RegisterCommand = (program, ctx) => {
  program
    .command('demo')
    .description("tell the seed's story on the embedded lab: flanneld registered every node with the NAT address; vxtrace finds it and the fix (as root)")
    .option('--name <name>', 'name of the lab the demo builds', DEMO_LAB)
    .option('--keep', 'leave the demo lab up at the end (`vxtrace lab down --name NAME` removes it)')
    .action(async (o: { name: string; keep?: boolean }) => ctx.setExitStatus(await demo(ctx, o.name, !!o.keep)));
};

const say = (ctx: CliContext, text: string) => ctx.stdout.write(text);
const step = (ctx: CliContext, n: number, text: string) => {
  const bold = ctx.stdout.isTTY && !process.env.NO_COLOR;
  say(ctx, bold ? `\n\x1b[1m${n}. ${text}\x1b[0m\n` : `\n${n}. ${text}\n`);
};

function pingQuietly(lab: LabState, count: number) {
  const a = lab.pods.find((p) => p.name === 'pod-a')!;
  const b = lab.pods.find((p) => p.name === 'pod-b')!;
  return execAsync(['ip', 'netns', 'exec', a.netns, 'ping', '-c', String(count), '-i', '0.3', '-W', '1', '-q', b.ip], { allowFail: true });
}

async function demo(ctx: CliContext, name: string, keep: boolean): Promise<ExitStatusCode> {
  requirePrivileges('vxtrace demo', ['trace', 'lab']);
  if (readLabState(name) || listLabs().includes(name)) {
    throw new UsageError(`a lab named '${name}' is already up: the demo builds its own; take that one down with \`vxtrace lab down --name ${name}\`, or run the demo under another name with --name`);
  }
  const labFlag = name === DEFAULT_LAB_NAME ? '' : ` --name ${name}`;
  let built = false;
  try {
    say(ctx, 'vxtrace demo: the case vxtrace was born from (a flannel VXLAN cluster on Vagrant)\n');
    step(ctx, 1, 'Three nodes; flanneld picked eth0, the Vagrant NAT interface (10.0.2.15 on every node)');
    let lab = await labUp({ name, nodes: 3, podsPerNode: 1, faults: ['nat-public-ip'] });
    built = true;
    for (const n of lab.nodes) say(ctx, `   ${n.name}: eth1 ${n.underlayIp}, eth0 ${n.natIp}, pods ${n.podCidr}, flannel public-ip ${n.publicIp}\n`);
    const podB = lab.pods.find((p) => p.name === 'pod-b')!;

    step(ctx, 2, `pod-a (node1) pings pod-b (${podB.ip}, node2)`);
    say(ctx, `   $ vxtrace lab exec${labFlag} pod-a -- ping -c 2 ${podB.ip}\n`);
    const before = labExec(lab, 'pod-a', ['ping', '-c', '2', '-W', '1', '-q', podB.ip], { stdio: 'pipe' });
    say(ctx, `   ${before.stdout.split('\n').find((l) => l.includes('transmitted')) ?? before.stderr.trim()}\n`);

    step(ctx, 3, 'Where do the packets go? vxtrace follows them through every node');
    say(ctx, `   $ vxtrace follow${labFlag ? ` --lab ${name}` : ''} pod-a pod-b --duration 3\n`);
    const broken = await followPods('pod-a', 'pod-b', { lab: name, duration: 3000 }, ctx, () => void pingQuietly(lab, 3));
    const codes = new Set(broken.findings.map((f) => f.code));
    const found = codes.has('FDB_DST_LOCAL') && codes.has('DUPLICATE_PUBLIC_IP') && broken.paths.length > 0 && broken.paths.every((p) => p.outcome !== 'delivered');

    step(ctx, 4, 'Apply the fix vxtrace names: restart flanneld with --iface=eth1 on every node');
    lab = await labHeal(name, 'nat-public-ip');
    say(ctx, `   ${HEAL_ACTIONS['nat-public-ip']}\n`);
    for (const n of lab.nodes) say(ctx, `   ${n.name}: flannel public-ip ${n.publicIp}\n`);

    step(ctx, 5, 'Follow again');
    say(ctx, `   $ vxtrace follow${labFlag ? ` --lab ${name}` : ''} pod-a pod-b --count 2\n`);
    const fixed = await followPods('pod-a', 'pod-b', { lab: name, count: 2, duration: 10_000 }, ctx, () => void pingQuietly(lab, 1));
    const delivered = fixed.paths.length === 2 && fixed.status === ExitStatus.OK;

    const ok = found && delivered;
    say(ctx, ok
      ? '\nAs in the seed: every node had registered the NAT address, every FDB entry pointed at it, the packets never left node1; with --iface=eth1 they cross in six hops.\n'
      : `\nThe demo did not go as the story says (findings: ${[...codes].join(', ') || 'none'}; after the fix: ${fixed.paths.map((p) => p.outcome).join(', ') || 'no packet'}). Please report it.\n`);
    return ok ? ExitStatus.OK : ExitStatus.FINDINGS;
  } finally {
    if (built && !keep) {
      await labDown(name).catch(() => {});
      say(ctx, '\nlab taken down.\n');
    } else if (built) {
      say(ctx, `\nthe lab is still up: \`vxtrace lab status${labFlag}\`; remove it with \`vxtrace lab down${labFlag}\`\n`);
    }
  }
}
