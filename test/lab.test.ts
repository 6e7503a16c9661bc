// The lab against the real kernel (root): connectivity, every fault as predicted, clean removal,
// coexistence, refusal of duplicates, and clear errors on bad input.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execSync } from '../src/util/exec.js';
import { FAULTS, LAB_STATE_ROOT, labDown, labHeal, labUp, listLabs, readLabState } from '../src/lab/index.js';
import { namespacesOf, ping, pingAllCrossNode, uniqueLabName, vxtrace, withLab } from './helpers/lab.js';

const rootLinks = () => (JSON.parse(execSync(['ip', '-j', 'link', 'show']).stdout) as { ifname: string }[]).map((l) => l.ifname).sort();
const rootNftTables = () => execSync(['nft', 'list', 'tables']).stdout.trim();

describe('healthy lab', () => {
  test('every pod reaches every other pod, across nodes and on the same node', async () => {
    await withLab({ nodes: 3, podsPerNode: 2 }, async (lab) => {
      assert.equal(lab.nodes.length, 3);
      assert.equal(lab.pods.length, 6);
      const cross = await pingAllCrossNode(lab);
      assert.equal(cross.size, 24);
      const failed = [...cross].filter(([, ok]) => !ok).map(([k]) => k);
      assert.deepEqual(failed, [], `pairs that failed: ${failed.join(', ')}`);
      // Same node: pod-a and pod-d are both on node1.
      assert.equal(lab.pods.find((p) => p.name === 'pod-d')!.node, 'node1');
      assert.ok(await ping(lab, 'pod-a', lab.pods.find((p) => p.name === 'pod-d')!.ip));
    });
  });

  test('the kernel state is what flanneld programs, and the cluster List says the same', async () => {
    await withLab({ nodes: 3 }, async (lab) => {
      const n1 = lab.nodes[0]!;
      const n2 = lab.nodes[1]!;
      const link = JSON.parse(execSync(['ip', '-n', n1.netns, '-j', '-d', 'link', 'show', 'flannel.1']).stdout)[0];
      assert.equal(link.linkinfo.info_kind, 'vxlan');
      assert.equal(link.linkinfo.info_data.id, 1);
      assert.equal(link.linkinfo.info_data.port, 8472);
      assert.equal(link.linkinfo.info_data.local, n1.underlayIp);
      assert.equal(link.linkinfo.info_data.learning, false);
      assert.equal(link.mtu, 1450);
      const fdb = execSync(['bridge', '-n', n1.netns, 'fdb', 'show', 'dev', 'flannel.1']).stdout;
      assert.match(fdb, new RegExp(`${n2.vtepMac} dst ${n2.underlayIp} self permanent`));
      const neigh = execSync(['ip', '-n', n1.netns, 'neigh', 'show', 'dev', 'flannel.1']).stdout;
      assert.match(neigh, new RegExp(`${n2.vtepIp} lladdr ${n2.vtepMac} PERMANENT`));
      const routes = execSync(['ip', '-n', n1.netns, 'route']).stdout;
      assert.match(routes, new RegExp(`${n2.podCidr.replace(/\./g, '\\.')} via ${n2.vtepIp} dev flannel.1 onlink`));
      assert.match(routes, /default via 10\.0\.2\.2 dev eth0/);

      const list = JSON.parse(vxtrace(['lab', 'status', '--name', lab.name, '--json']).stdout);
      assert.equal(list.kind, 'List');
      const node2 = list.items.find((i: { kind: string; metadata: { name: string } }) => i.kind === 'Node' && i.metadata.name === 'node2');
      assert.equal(node2.spec.podCIDR, '10.244.2.0/24');
      assert.equal(node2.metadata.annotations['flannel.alpha.coreos.com/public-ip'], '192.168.1.122');
      assert.deepEqual(JSON.parse(node2.metadata.annotations['flannel.alpha.coreos.com/backend-data']), { VNI: 1, VtepMAC: n2.vtepMac });
      assert.equal(node2.metadata.annotations['vxtrace.io/netns'], n2.netns);
      assert.deepEqual(node2.status.addresses[0], { type: 'InternalIP', address: '192.168.1.122' });
      const podB = list.items.find((i: { kind: string; metadata: { name: string } }) => i.kind === 'Pod' && i.metadata.name === 'pod-b');
      assert.equal(podB.spec.nodeName, 'node2');
      assert.equal(podB.status.podIP, '10.244.2.10');
    });
  });
});

describe('faults break what they predict, and nothing else', () => {
  for (const fault of FAULTS) {
    test(fault, async () => {
      await withLab({ nodes: 3, podsPerNode: 1, faults: [fault] }, async (lab) => {
        const active = lab.faults.find((f) => f.fault === fault);
        assert.ok(active, 'lab status lists the fault');
        const status = vxtrace(['lab', 'status', '--name', lab.name]).stdout;
        assert.match(status, new RegExp(`^  ${fault} on `, 'm'));
        if (fault !== 'mtu') assert.match(status, /^    breaks .*pod-a ⇄ pod-b/m, 'lab status says which pairs the fault breaks');
        const broken = new Set(active.breaks.map(([a, b]) => `${a}>${b}`));
        if (fault !== 'mtu') assert.ok(broken.has('pod-a>pod-b') || broken.has('pod-b>pod-a'), 'the fault breaks the pod-a/pod-b pair');
        const results = await pingAllCrossNode(lab);
        for (const [pair, reached] of results) {
          assert.equal(reached, !broken.has(pair), `${pair}: ${reached ? 'reached' : 'failed'}, expected ${broken.has(pair) ? 'to fail' : 'to work'}`);
        }
        if (fault === 'mtu') {
          const podB = lab.pods.find((p) => p.name === 'pod-b')!;
          assert.equal(await ping(lab, 'pod-a', podB.ip, ['-M', 'do', '-s', '1472']), false, 'a 1500-byte DF packet does not cross');
          assert.equal(await ping(lab, 'pod-a', podB.ip, ['-M', 'do', '-s', '1400']), true, 'a 1428-byte DF packet does');
        }
        if (fault === 'nat-public-ip') {
          for (const n of lab.nodes) assert.equal(n.publicIp, '10.0.2.15');
          const fdb = execSync(['bridge', '-n', lab.nodes[0]!.netns, 'fdb', 'show', 'dev', 'flannel.1']).stdout;
          assert.match(fdb, /dst 10\.0\.2\.15 self permanent/);
          assert.doesNotMatch(fdb, /dst 192\.168\.1\./);
        }
        if (fault === 'bad-checksum') {
          // The receiver really saw bad checksums (not some other drop).
          const nstat = execSync(['ip', 'netns', 'exec', lab.nodes[1]!.netns, 'nstat', '-az', 'UdpInCsumErrors']).stdout;
          const m = /UdpInCsumErrors\s+(\d+)/.exec(nstat);
          assert.ok(m && Number(m[1]) > 0, `node2 counted UDP checksum errors: ${nstat}`);
        }
        // Healing it the way the real fix would brings every pair back.
        const healed = await labHeal(lab.name, fault);
        assert.deepEqual(healed.faults, []);
        const after = await pingAllCrossNode(lab);
        assert.deepEqual([...after].filter(([, ok]) => !ok).map(([k]) => k), [], `after lab heal ${fault}`);
        if (fault === 'bad-checksum') {
          // ... and the checksum offloads the fault turned off are on again, as on a healthy lab.
          for (const n of lab.nodes) {
            const k = execSync(['ip', 'netns', 'exec', n.netns, 'ethtool', '-k', 'eth1']).stdout;
            assert.match(k, /^tx-checksumming: on/m, `${n.name} eth1`);
            assert.match(k, /^rx-checksumming: on/m, `${n.name} eth1`);
          }
        }
        if (fault === 'nat-public-ip') {
          const list = JSON.parse(readFileSync(lab.clusterFile, 'utf8'));
          const publicIps = list.items.filter((i: { kind: string }) => i.kind === 'Node').map((n: { metadata: { annotations: Record<string, string> } }) => n.metadata.annotations['flannel.alpha.coreos.com/public-ip']);
          assert.deepEqual(publicIps, ['192.168.1.121', '192.168.1.122', '192.168.1.123'], 'flanneld re-registered every node with its eth1 address');
        }
      });
    });
  }

  test('faults combine', async () => {
    await withLab({ nodes: 3, faults: ['missing-fdb', 'udp-blocked'] }, async (lab) => {
      assert.deepEqual(lab.faults.map((f) => f.fault), ['missing-fdb', 'udp-blocked']);
      const results = await pingAllCrossNode(lab);
      assert.equal(results.get('pod-a>pod-b'), false);
      assert.equal(results.get('pod-c>pod-b'), false);
      assert.equal(results.get('pod-a>pod-c'), true);
    });
  });
});

describe('lifecycle', () => {
  test('lab down leaves no namespace, link, nft table or file behind', async () => {
    const linksBefore = rootLinks();
    const nftBefore = rootNftTables();
    const name = uniqueLabName();
    try {
      const lab = await labUp({ name, nodes: 2, podsPerNode: 2, faults: ['udp-blocked', 'bad-checksum', 'forward-drop'] });
      assert.ok(namespacesOf(name).length >= 9);
      assert.ok(existsSync(lab.clusterFile));
      assert.deepEqual(rootLinks(), linksBefore, 'the lab adds no link to the root namespace');
      assert.equal(rootNftTables(), nftBefore, 'the lab adds no nft table to the root namespace');
    } finally {
      await labDown(name);
    }
    assert.deepEqual(namespacesOf(name), []);
    assert.equal(existsSync(join(LAB_STATE_ROOT, name)), false);
    assert.deepEqual(rootLinks(), linksBefore);
    assert.equal(rootNftTables(), nftBefore);
  });

  test('lab down cleans up after a lab up that was killed half-way', async () => {
    const name = uniqueLabName();
    // What a crash leaves: a claimed state directory and some namespaces, no state.json.
    mkdirSync(join(LAB_STATE_ROOT, name), { recursive: true });
    writeFileSync(join(LAB_STATE_ROOT, name, 'building'), 'x');
    execSync(['ip', 'netns', 'add', `vxt-${name}-under`]);
    execSync(['ip', 'netns', 'add', `vxt-${name}-node1`]);
    try {
      const refused = vxtrace(['lab', 'up', '--name', name]);
      assert.equal(refused.status, 2);
      assert.match(refused.stderr, /already up/);
      const down = vxtrace(['lab', 'down', '--name', name]);
      assert.equal(down.status, 0, down.stderr);
      assert.deepEqual(namespacesOf(name), []);
      assert.equal(existsSync(join(LAB_STATE_ROOT, name)), false);
    } finally {
      await labDown(name);
    }
  });

  test('a lab up killed with SIGKILL mid-build is removed by lab down', async () => {
    const name = uniqueLabName();
    const { spawn } = await import('node:child_process');
    const child = spawn(process.execPath, ['bin/vxtrace.js', 'lab', 'up', '--name', name, '--nodes', '6', '--pods-per-node', '4'], { stdio: 'ignore' });
    try {
      // Kill it as soon as it has made something.
      for (let i = 0; i < 400 && namespacesOf(name).length < 3; i++) await new Promise((r) => setTimeout(r, 5));
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
      assert.ok(namespacesOf(name).length > 0, 'the killed lab up had made namespaces');
      assert.equal(readLabState(name), undefined, 'a half-built lab has no state.json');
    } finally {
      await labDown(name);
    }
    assert.deepEqual(namespacesOf(name), []);
  });

  test('two labs with different names coexist', async () => {
    await withLab({ nodes: 2 }, async (a) => {
      await withLab({ nodes: 2 }, async (b) => {
        assert.notEqual(a.prefix, b.prefix);
        assert.ok(await ping(a, 'pod-a', a.pods[1]!.ip));
        assert.ok(await ping(b, 'pod-a', b.pods[1]!.ip));
        // Without --name, a lab command takes 'lab' or the only lab up, as follow does; with several, it asks.
        if (!listLabs().includes('lab')) {
          const r = vxtrace(['lab', 'status']);
          assert.equal(r.status, 2, r.stderr);
          assert.match(r.stderr, /^vxtrace: several labs are up \(.*\): choose one with --name NAME$/m);
        }
      });
      assert.ok(await ping(a, 'pod-a', a.pods[1]!.ip), 'taking the second lab down leaves the first working');
    });
  });

  test('a second lab up with the same name is refused with a clear message (also named --lab, as follow spells it)', async () => {
    await withLab({ nodes: 2 }, async (lab) => {
      const byLab = vxtrace(['lab', 'status', '--lab', lab.name]);
      assert.equal(byLab.status, 0, byLab.stderr);
      assert.match(byLab.stdout, new RegExp(`^lab '${lab.name}'`));
      const r = vxtrace(['lab', 'up', '--name', lab.name, '--nodes', '2']);
      assert.equal(r.status, 2);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`a lab named '${lab.name}' is already up`));
      assert.ok(await ping(lab, 'pod-a', lab.pods[1]!.ip), 'the first lab is untouched');
    });
  });
});

describe('bad input gets one clear line, a non-zero exit and no half-built lab', () => {
  const cases: [string, string[], number, RegExp][] = [
    ['--nodes 0', ['--nodes', '0'], 2, /--nodes 0 is out of range/],
    ['--nodes abc', ['--nodes', 'abc'], 2, /--nodes takes a whole number/],
    ['unknown fault', ['--fault', 'gremlins'], 2, /unknown fault 'gremlins': choose from nat-public-ip/],
    ['bad name', ['--name', 'Bad_Name'], 2, /lab name 'Bad_Name' is not valid/],
    ['fault on one node', ['--nodes', '1', '--fault', 'udp-blocked'], 2, /faults need at least 2 nodes/],
    ['unknown flag', ['--colour', 'red'], 2, /^vxtrace: unknown option '--colour' \(see --help\)$/m],
  ];
  for (const [what, args, status, message] of cases) {
    test(what, () => {
      const name = uniqueLabName();
      const r = vxtrace(['lab', 'up', ...(args.includes('--name') ? [] : ['--name', name]), ...args]);
      assert.equal(r.status, status, r.stderr);
      assert.match(r.stderr, message);
      assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
      assert.doesNotMatch(r.stderr, /at .*\.js:\d+/, 'no stack trace');
      assert.deepEqual(namespacesOf(name), []);
    });
  }

  test('without the capabilities', () => {
    const name = uniqueLabName();
    const r = vxtrace(['lab', 'up', '--name', name], { caps: 'none' });
    assert.equal(r.status, 3, r.stderr);
    // It names what is missing and what to do (before: "needs root ... prefix sudo", by uid).
    assert.match(r.stderr, /needs CAP_NET_ADMIN, CAP_SYS_ADMIN \(missing; it has none of them\): .*grant them/);
    assert.deepEqual(namespacesOf(name), []);
  });

  test('a missing system tool', () => {
    const name = uniqueLabName();
    // A PATH with node but without iproute2 and nftables.
    const r = vxtrace(['lab', 'up', '--name', name], { env: { ...process.env, PATH: '/nonexistent' } });
    assert.equal(r.status, 3, r.stderr);
    assert.match(r.stderr, /is not installed \(Debian package \w+\)/);
    assert.deepEqual(namespacesOf(name), []);
  });

  test('lab exec without the capabilities says so', async () => {
    await withLab({ nodes: 2 }, async (lab) => {
      const r = vxtrace(['lab', 'exec', '--name', lab.name, 'pod-a', '--', 'true'], { caps: 'none' });
      assert.equal(r.status, 3, r.stderr);
      assert.match(r.stderr, /^vxtrace: vxtrace lab exec needs CAP_NET_ADMIN, CAP_SYS_ADMIN \(missing/);
    });
  });

  test('lab exec on a pod that does not exist lists the pods', async () => {
    await withLab({ nodes: 2 }, async (lab) => {
      const r = vxtrace(['lab', 'exec', '--name', lab.name, 'pod-zz', '--', 'true']);
      assert.equal(r.status, 2);
      assert.match(r.stderr, /no pod 'pod-zz' .* its pods are pod-a, pod-b/);
    });
  });
});
