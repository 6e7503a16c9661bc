// The hub's pure parts: where it may listen without a token, how a token and an Origin are judged,
// hub URLs, what a subscription lets through and asks of the kernel, and the correlator's early
// hand-out of a path whose sending side is in.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { checkAccess, isLoopback, parseListen, requireTokenWhereReachable, tokensEqual } from '../../src/hub/access.js';
import { hubAddress } from '../../src/wire/endpoint.js';
import { SubscriptionFilter } from '../../src/hub/subscription.js';
import { UsageError } from '../../src/errors.js';
import { Correlator, resolverFromModel } from '../../src/correlate/correlator.js';
import { fixtureModel } from './fixtures/flannel.js';
import { crossNodeHops, type PacketSpec } from './fixtures/hops.js';
import type { Finding } from '../../src/diagnose/finding.js';

test('listen addresses: HOST:PORT, [::1]:PORT, unix:/path; loopback needs no token, anything else does', () => {
  assert.deepEqual(parseListen('127.0.0.1:4280'), { kind: 'tcp', host: '127.0.0.1', port: 4280, loopback: true });
  assert.deepEqual(parseListen('[::1]:9'), { kind: 'tcp', host: '::1', port: 9, loopback: true });
  assert.deepEqual(parseListen('unix:/run/vxtrace/hub.sock'), { kind: 'unix', path: '/run/vxtrace/hub.sock' });
  assert.deepEqual(parseListen('0.0.0.0:4280'), { kind: 'tcp', host: '0.0.0.0', port: 4280, loopback: false });
  for (const bad of ['4280', 'host', '1.2.3.4:70000', 'unix:relative.sock', '[zz]:1']) assert.throws(() => parseListen(bad), UsageError, bad);
  assert.ok(isLoopback('localhost') && isLoopback('127.9.9.9') && !isLoopback('192.168.1.1') && !isLoopback('::'));
  assert.throws(() => requireTokenWhereReachable(parseListen('0.0.0.0:4280'), undefined), /needs --token-file FILE/);
  assert.doesNotThrow(() => requireTokenWhereReachable(parseListen('0.0.0.0:4280'), 'token'));
  assert.doesNotThrow(() => requireTokenWhereReachable(parseListen('unix:/x.sock'), undefined));
});

const req = (headers: Record<string, string>, url = '/v1/stream'): IncomingMessage => ({ headers, url }) as unknown as IncomingMessage;

test('tokens: Bearer, ?token= or the vxtrace.token. subprotocol, compared in constant time; Origin must be the hub itself', () => {
  assert.ok(tokensEqual('abc', 'abc') && !tokensEqual('abc', 'abd') && !tokensEqual('abc', 'abcd'));
  assert.deepEqual(checkAccess(req({ authorization: 'Bearer t0k' }), 't0k'), { ok: true });
  assert.deepEqual(checkAccess(req({}, '/v1/stream?token=t0k'), 't0k'), { ok: true });
  assert.deepEqual(checkAccess(req({ 'sec-websocket-protocol': 'vxtrace.v1, vxtrace.token.t0k' }), 't0k'), { ok: true });
  const wrong = checkAccess(req({ authorization: 'Bearer nope' }), 't0k');
  assert.deepEqual(wrong, { ok: false, status: 401, reason: 'wrong token' });
  assert.equal((checkAccess(req({}), 't0k') as { status: number }).status, 401);
  assert.deepEqual(checkAccess(req({}), undefined), { ok: true }, 'no token asked: anyone who reaches it');
  assert.deepEqual(checkAccess(req({ origin: 'http://127.0.0.1:4280', host: '127.0.0.1:4280' }), undefined), { ok: true });
  assert.equal((checkAccess(req({ origin: 'http://evil.example', host: '127.0.0.1:4280' }), undefined) as { status: number }).status, 403);
});

test('hub URLs: ws://, http:// and unix: become the endpoint address', () => {
  assert.equal(hubAddress('ws://10.0.0.1:4280', '/v1/stream').url, 'ws://10.0.0.1:4280/v1/stream');
  assert.equal(hubAddress('http://[::1]:4280/', '/v1/agent').url, 'ws://[::1]:4280/v1/agent');
  assert.equal(hubAddress('127.0.0.1:4280', '/v1/agent').url, 'ws://127.0.0.1:4280/v1/agent');
  assert.equal(hubAddress('unix:/run/vxtrace/hub.sock', '/v1/agent').url, 'ws+unix:/run/vxtrace/hub.sock:/v1/agent');
  assert.throws(() => hubAddress('ftp://x:1', '/v1/agent'), /scheme ftp: is not one a hub speaks/);
  assert.throws(() => hubAddress('ws://x:1/other', '/v1/agent'), /without a path/);
});

const { model } = fixtureModel({ podsPerNode: 2 });
const spec: PacketSpec = { src: '10.244.1.10', dst: '10.244.2.10', srcNode: 'node1', dstNode: 'node2', outer: { src: '192.168.1.121', dst: '192.168.1.122' } };
function pathOf(s: PacketSpec) {
  const c = new Correlator({ resolver: resolverFromModel(model) });
  return crossNodeHops(s).flatMap((e) => c.add(e))[0]!;
}

test('a subscription: pods resolved by the hub, paths and findings filtered, the kernel asked only for what it needs', () => {
  const pods = model.pods.map((p) => `${p.ref}=${p.ips.join(',')}@${p.node}`);
  const a = model.pods.find((p) => p.ips.includes('10.244.1.10'))!;
  const b = model.pods.find((p) => p.ips.includes('10.244.2.10'))!;
  const forward = pathOf(spec);
  const back = pathOf({ ...spec, src: spec.dst, dst: spec.src, srcNode: 'node2', dstNode: 'node1' });
  const pair = new SubscriptionFilter({ from: a.name, to: b.name }, model);
  assert.ok(pair.wantsPath(forward), pods.join(' '));
  assert.ok(!pair.wantsPath(back), 'from -> to only');
  const both = new SubscriptionFilter({ from: a.name, to: b.name, bothWays: true }, model);
  assert.ok(both.wantsPath(forward) && both.wantsPath(back));
  assert.deepEqual(both.kernelRules(), [{ between: ['10.244.1.10', '10.244.2.10'] }]);
  assert.deepEqual(new SubscriptionFilter({ pod: a.name, protocol: 'icmp' }, model).kernelRules(), [{ between: ['10.244.1.10', 'any'], protocol: 'icmp' }]);
  assert.equal(new SubscriptionFilter({}, model).kernelRules(), 'everything');
  assert.ok(!new SubscriptionFilter({ outcomes: ['dropped'] }, model).wantsPath(forward));
  assert.ok(!new SubscriptionFilter({ protocol: 'tcp' }, model).wantsPath(forward));
  assert.ok(new SubscriptionFilter({ node: 'node2' }, model).wantsPath(forward));
  assert.ok(!new SubscriptionFilter({ node: 'node3' }, model).wantsPath(forward));
  for (const bad of [{ from: 'pod-zz' }, { node: 'node9' }, { codes: ['NOPE'] }, { outcomes: ['lost'] }, { protocol: 'sctp' }, { from: a.name, bothWays: true }]) {
    assert.throws(() => new SubscriptionFilter(bad, model), UsageError, JSON.stringify(bad));
  }
  const f = (code: Finding['code'], nodes: string[], packetCount = 0): Finding => ({ code, severity: 'error', nodes, cause: 'c', fix: 'f', evidence: { observed: 'o' }, packetCount, key: `${code}/${nodes}` });
  // State findings for the nodes of the pods asked for; a path's own findings go with it.
  assert.ok(pair.wantsFinding(f('VNI_MISMATCH', ['node2'])));
  assert.ok(!pair.wantsFinding(f('VNI_MISMATCH', ['node3'])));
  assert.ok(pair.wantsFinding(f('DROPPED', ['node3'], 1), true));
  assert.ok(!new SubscriptionFilter({ codes: ['DROPPED'] }, model).wantsFinding(f('VNI_MISMATCH', ['node2'])));
});

test('with settle time, a path whose sending side is in is handed out at once; one missing it waits (the hub\'s agents arrive apart)', () => {
  const resolver = resolverFromModel(model);
  const hops = crossNodeHops({ ...spec, fingerprint: 'cc00000000000001' });
  const early = new Correlator({ resolver, settleNs: 300_000_000n, wholeNeedsNoSettle: true });
  const done = hops.flatMap((e) => early.add(e));
  assert.equal(done.length, 1, 'handed out with its delivery hop');
  assert.equal(done[0]!.hops.length, 6);
  // The receiver's agent was quicker: the delivery comes before the sender's hops; it waits for them.
  const late = new Correlator({ resolver, settleNs: 300_000_000n, wholeNeedsNoSettle: true });
  assert.deepEqual([hops[3]!, hops[4]!, hops[5]!].flatMap((e) => late.add(e)), []);
  const joined = [hops[0]!, hops[1]!, hops[2]!].flatMap((e) => late.add(e));
  assert.equal(joined.length, 1);
  assert.equal(joined[0]!.hops.length, 6);
  assert.equal(joined[0]!.outcome, 'delivered');
});
