import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { lookupRoute, parseKernelState } from '../../src/cluster/kernel.js';
import { parseCidr, cidrContains } from '../../src/net/address.js';
import { clusterObjectsFromJson, parseClusterJson, loadClusterFile } from '../../src/cluster/list.js';
import { ClusterModel } from '../../src/cluster/model.js';
import { diagnoseState } from '../../src/diagnose/state.js';
import { UsageError } from '../../src/errors.js';
import { fixtureList, fixtureModel, fixtureNodes } from './fixtures/flannel.js';

const fixture = (name: string): string => readFileSync(new URL(`../../../test/unit/fixtures/iproute2/${name}`, import.meta.url), 'utf8');
const recorded = () => parseKernelState({ link: fixture('node1-link.json'), addr: fixture('node1-addr.json'), route: fixture('node1-route.json'), neigh: fixture('node1-neigh.json'), fdb: fixture('node1-fdb.json') });

test('iproute2 JSON recorded from a flannel-like node parses: the VXLAN device found by kind, with VNI, port, local, lower device, MTU, MAC', () => {
  const k = recorded();
  assert.deepEqual(k.vxlan, { name: 'flannel.1', ifindex: k.vxlan!.ifindex, vni: 1, port: 8472, local: '192.168.1.121', lowerDevice: 'eth1', mtu: 1450, mac: '0a:00:00:00:01:01', learning: false, up: true });
  assert.deepEqual(k.fdb.map((e) => [e.mac, e.dst, e.permanent, e.self]).sort(), [['0a:00:00:00:01:02', '192.168.1.122', true, true], ['0a:00:00:00:01:03', '192.168.1.123', true, true]]);
  assert.deepEqual(k.neighbours.map((n) => [n.ip, n.mac, n.states]).sort(), [['10.244.2.0', '0a:00:00:00:01:02', ['PERMANENT']], ['10.244.3.0', '0a:00:00:00:01:03', ['PERMANENT']]]);
  assert.ok(k.addresses.some((a) => a.device === 'eth0' && a.address === '10.0.2.15' && a.prefixLength === 24));
  assert.equal(k.links.find((l) => l.name === 'cni0')?.kind, 'bridge');
  assert.equal(lookupRoute(k.routes, '192.168.1.122')?.device, 'eth1');
  assert.equal(lookupRoute(k.routes, '8.8.8.8')?.device, 'eth0');
  const r = lookupRoute(k.routes, '10.244.2.7')!;
  assert.deepEqual([r.device, r.gateway, r.onlink], ['flannel.1', '10.244.2.0', true]);
});

test('a node without a VXLAN device and empty outputs parse; non-JSON is a UsageError naming the command', () => {
  const k = parseKernelState({ link: '[]', addr: '', route: '[]', neigh: '', fdb: '' });
  assert.equal(k.vxlan, undefined);
  assert.throws(() => parseKernelState({ link: 'Device "x" does not exist', addr: '', route: '', neigh: '', fdb: '' }), (e: unknown) => e instanceof UsageError && /ip -j -d link show/.test(e.message));
});

test('CIDR helpers', () => {
  assert.ok(cidrContains(parseCidr('10.244.2.0/24')!, '10.244.2.255'));
  assert.ok(!cidrContains(parseCidr('10.244.2.0/24')!, '10.244.3.0'));
  assert.equal(parseCidr('10.244.2.0/33'), undefined);
  assert.equal(parseCidr('default')!.prefixLength, 0);
});

test('underlay: recorded node1 state in the seed layout chooses InternalIP on eth1 and says 10.0.2.15 is shared', () => {
  const nodes = fixtureNodes({ nodes: 3, natPublicIp: true });
  const { model: m0 } = fixtureModel({ nodes: 3, natPublicIp: true });
  const objs = clusterObjectsFromJson(fixtureList(nodes), 't');
  const kernel = new Map(m0.kernelStates);
  kernel.set('node1', recorded());
  const m = ClusterModel.build(objs, kernel);
  const u = m.node('node1')!.underlay;
  assert.equal(u.address, '192.168.1.121');
  assert.equal(u.interface, 'eth1');
  assert.equal(u.source, 'kernel');
  assert.equal(u.explanation, 'InternalIP 192.168.1.121 on eth1 (eth1 carries the route to node2, node3); 10.0.2.15 on eth0 is shared by node1, node2, node3');
  assert.deepEqual(m.sharedAddresses.map((s) => [s.address, s.nodes, s.interfaces.node1]), [['10.0.2.15', ['node1', 'node2', 'node3'], 'eth0']]);
});

test('underlay without a unique InternalIP and no kernel state: public-ip only if unique, else unknown with why', () => {
  const nodes = fixtureNodes({ nodes: 2, tweak: (n) => { n.underlayIp = '10.0.2.15'; } });
  const m = ClusterModel.build(clusterObjectsFromJson(fixtureList(nodes), 't'));
  assert.equal(m.node('node1')!.underlay.source, 'public-ip');
  const nodes2 = fixtureNodes({ nodes: 2, natPublicIp: true, tweak: (n) => { n.underlayIp = '10.0.2.15'; } });
  const m2 = ClusterModel.build(clusterObjectsFromJson(fixtureList(nodes2), 't'));
  assert.equal(m2.node('node1')!.underlay.source, 'unknown');
  assert.match(m2.node('node1')!.underlay.explanation, /10\.0\.2\.15 is shared by node1, node2/);
});

test('pods resolve by name or namespace/name; unknown and ambiguous names are UsageErrors with near matches', () => {
  const list = fixtureList(fixtureNodes(), 2);
  list.items.push({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'pod-a', namespace: 'other' }, spec: { nodeName: 'node2' }, status: { podIP: '10.244.2.99' } });
  const m = ClusterModel.build(clusterObjectsFromJson(list, 't'));
  assert.equal(m.resolvePod('pod-b').ref, 'default/pod-b');
  assert.equal(m.resolvePod('other/pod-a').ips[0], '10.244.2.99');
  assert.throws(() => m.resolvePod('pod-a'), /pod name pod-a is ambiguous: default\/pod-a, other\/pod-a/);
  assert.throws(() => m.resolvePod('pod-q'), (e: unknown) => e instanceof UsageError && /unknown pod pod-q: did you mean pod-a/.test(e.message));
  assert.equal(m.podByIp('10.244.2.10')?.name, 'pod-b');
  assert.equal(m.podCidrOwner('10.244.3.7')?.node.name, 'node3');
  assert.equal(m.nodeByVtepMac('0E:76:78:00:00:02')?.name, 'node2');
});

test('cluster file errors are one-line UsageErrors saying what to do', () => {
  assert.throws(() => loadClusterFile('/nonexistent/cluster.json'), /cannot read cluster file \/nonexistent\/cluster\.json: no such file \(write one with `kubectl get nodes,pods -A -o json > FILE`\)/);
  assert.throws(() => parseClusterJson('{', 'f.json'), /f\.json is not valid JSON/);
  assert.throws(() => parseClusterJson('[]', 'f.json'), /f\.json: not a Kubernetes List/);
  assert.throws(() => parseClusterJson('{"kind":"List"}', 'f.json'), /no "items" array/);
  assert.throws(() => parseClusterJson('{"kind":"List","items":[{"kind":"Node","metadata":{}}]}', 'f.json'), /f\.json: items\[0\] \(Node\): metadata\.name is missing/);
  // NodeList/PodList without per-item kind, as the API returns them.
  assert.equal(parseClusterJson('{"kind":"NodeList","items":[{"metadata":{"name":"n"}}]}', 'f').nodes.length, 1);
});

test('property: random cluster JSON never crashes the model or the state rules: UsageError or findings', () => {
  const ip = fc.oneof(fc.constantFrom('10.0.2.15', '192.168.1.121', '192.168.1.122', '10.244.1.0', 'bogus', ''), fc.ipV4());
  const node = fc.record({
    kind: fc.constantFrom('Node', 'Node', 'Pod', 'Service', undefined),
    metadata: fc.oneof(fc.constant(undefined), fc.record({
      name: fc.oneof(fc.constantFrom('node1', 'node2', 'node3', ''), fc.string()),
      annotations: fc.oneof(fc.constant(undefined), fc.record({
        'flannel.alpha.coreos.com/public-ip': ip,
        'flannel.alpha.coreos.com/backend-data': fc.oneof(fc.constant('{"VNI":1,"VtepMAC":"0e:76:78:00:00:01"}'), fc.string(), fc.json()),
        'vxtrace.io/netns': fc.string(),
      }, { requiredKeys: [] })),
    }, { requiredKeys: [] })),
    spec: fc.oneof(fc.anything(), fc.record({ podCIDR: fc.oneof(fc.constantFrom('10.244.1.0/24', '10.244.2.0/24', '0.0.0.0/0', '10.244.1.0/33', 'x'), fc.string()), nodeName: fc.constantFrom('node1', 'node2') }, { requiredKeys: [] })),
    status: fc.oneof(fc.anything(), fc.record({ addresses: fc.array(fc.record({ type: fc.constantFrom('InternalIP', 'ExternalIP', 'Hostname'), address: ip })), podIP: ip })),
  }, { requiredKeys: [] });
  const doc = fc.oneof(fc.anything(), fc.record({ kind: fc.constantFrom('List', 'NodeList', 'PodList'), items: fc.array(fc.oneof(node, fc.anything()), { maxLength: 8 }) }));
  fc.assert(
    fc.property(doc, (value) => {
      let objs;
      try {
        objs = clusterObjectsFromJson(value, 'random');
      } catch (e) {
        assert.ok(e instanceof UsageError, `not a UsageError: ${String(e)}`);
        return;
      }
      const { model: healthy } = fixtureModel();
      const m = ClusterModel.build(objs, new Map([...healthy.kernelStates].slice(0, 2)));
      for (const f of diagnoseState(m)) assert.ok(f.code && f.nodes && f.fix);
    }),
    { numRuns: 400 },
  );
});

test('property: random or truncated iproute2 output parses or fails with a UsageError, and the model and rules take whatever parses', () => {
  const texts = [fixture('node1-link.json'), fixture('node1-addr.json'), fixture('node1-route.json'), fixture('node1-neigh.json'), fixture('node1-fdb.json')];
  const mangled = fc.oneof(
    fc.tuple(fc.constantFrom(...texts), fc.nat()).map(([t, n]) => t.slice(0, n % (t.length + 1))),
    fc.json(),
    fc.string(),
    fc.array(fc.record({ ifname: fc.string(), linkinfo: fc.anything(), addr_info: fc.anything(), dst: fc.oneof(fc.string(), fc.ipV4()), lladdr: fc.anything(), mac: fc.anything(), state: fc.anything(), flags: fc.anything() }, { requiredKeys: [] })).map((v) => JSON.stringify(v)),
  );
  fc.assert(
    fc.property(mangled, mangled, mangled, mangled, mangled, (link, addr, route, neigh, fdb) => {
      let k;
      try {
        k = parseKernelState({ link, addr, route, neigh, fdb });
      } catch (e) {
        assert.ok(e instanceof UsageError, String(e));
        return;
      }
      const { model: healthy } = fixtureModel();
      const kernel = new Map(healthy.kernelStates);
      kernel.set('node1', k);
      for (const f of diagnoseState(ClusterModel.build(healthy.objects, kernel))) assert.ok(f.code && f.nodes.length > 0);
    }),
    { numRuns: 300 },
  );
});
