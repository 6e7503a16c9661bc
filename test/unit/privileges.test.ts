// Which capabilities a command needs, from the CapEff mask of /proc/self/status: the parser, and
// the one line that names what is missing and what to do, for root and for other users.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { EnvironmentError } from '../../src/errors.js';
import {
  CAPABILITY_BITS, hasCapability, parseCapabilityMask, parseEffectiveCapabilities, privilegeProblem, privilegeShortfall, type Capability,
} from '../../src/util/privileges.js';

// /proc/self/status of root on this kind of machine, trimmed to the lines around the sets.
const STATUS = `Name:\tnode
Uid:\t0\t0\t0\t0
CapInh:\t0000000000000000
CapPrm:\t000001fffeffffff
CapEff:\t000001fffeffffff
CapBnd:\t000001fffeffffff
CapAmb:\t0000000000000000
NoNewPrivs:\t0
`;
const mask = (...caps: Capability[]) => caps.reduce((m, c) => m | (1n << BigInt(CAPABILITY_BITS[c])), 0n);
/** Docker's default set: CHOWN, DAC_OVERRIDE, FOWNER, FSETID, KILL, SETGID, SETUID, SETPCAP, NET_BIND_SERVICE, NET_RAW, SYS_CHROOT, MKNOD, AUDIT_WRITE, SETFCAP. */
const DOCKER_DEFAULT = 0x00000000a80425fbn;

test('CapEff is read from the status text, not CapPrm or CapBnd', () => {
  assert.equal(parseEffectiveCapabilities(STATUS), 0x1fffeffffffn);
  assert.equal(parseEffectiveCapabilities(STATUS.replace('CapEff:\t000001fffeffffff', 'CapEff:\t0000000000000000')), 0n);
  assert.equal(parseEffectiveCapabilities('CapEff:\t000000c000201000\n'), mask('CAP_BPF', 'CAP_PERFMON', 'CAP_NET_ADMIN', 'CAP_SYS_ADMIN'));
  assert.equal(parseEffectiveCapabilities('CapEff: ffffffffffffffff'), 0xffffffffffffffffn, 'all 64 bits');
});

test('the bits are the kernel numbers', () => {
  const m = parseCapabilityMask('000000c000201002');
  for (const c of ['CAP_BPF', 'CAP_PERFMON', 'CAP_NET_ADMIN', 'CAP_SYS_ADMIN', 'CAP_DAC_OVERRIDE'] as const) assert.ok(hasCapability(m, c), c);
  assert.equal(CAPABILITY_BITS.CAP_BPF, 39);
  assert.equal(CAPABILITY_BITS.CAP_PERFMON, 38);
  assert.equal(CAPABILITY_BITS.CAP_SYS_ADMIN, 21);
  assert.equal(CAPABILITY_BITS.CAP_NET_ADMIN, 12);
  assert.equal(CAPABILITY_BITS.CAP_DAC_OVERRIDE, 1);
  assert.ok(!hasCapability(parseCapabilityMask('000000c000200000'), 'CAP_NET_ADMIN'));
});

test('a status without a well-formed CapEff is an EnvironmentError that says so', () => {
  for (const bad of ['', 'CapPrm:\t000001fffeffffff\n', 'CapEff:\n', 'CapEff:\tzz\n', 'CapEff:\t0000000000000000001\n', 'CapEff:\t-1\n', 'CapEff:\t0x1f\n']) {
    assert.throws(() => parseEffectiveCapabilities(bad), (e: Error) => e instanceof EnvironmentError && /CapEff|capability mask/.test(e.message), JSON.stringify(bad));
  }
});

test('any text: a mask or an EnvironmentError, nothing else', () => {
  fc.assert(
    fc.property(fc.string(), fc.stringMatching(/^[0-9a-fA-F]{0,20}$/), (junk, hex) => {
      for (const text of [junk, `CapEff:\t${junk}`, `${junk}\nCapEff:\t${hex}\n${junk}`]) {
        try {
          const m = parseEffectiveCapabilities(text);
          assert.ok(m >= 0n && m < 1n << 64n);
        } catch (e) {
          if (!(e instanceof EnvironmentError)) throw e;
        }
      }
    }),
  );
  fc.assert(fc.property(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), (m) => parseEffectiveCapabilities(`CapEff:\t${m.toString(16).padStart(16, '0')}\n`) === m));
});

test('root with every capability may trace and build the lab; read needs nothing', () => {
  assert.equal(privilegeProblem('vxtrace follow', 'trace', 0x1fffeffffffn, 0), undefined);
  assert.equal(privilegeProblem('vxtrace demo', ['trace', 'lab'], 0x1fffeffffffn, 0), undefined);
  assert.equal(privilegeProblem('vxtrace lab exec', 'netns', 0x1fffeffffffn, 0), undefined);
});

test('root in a container that drops them is refused, naming exactly what is missing', () => {
  assert.equal(
    privilegeProblem('vxtrace follow', 'trace', DOCKER_DEFAULT, 0),
    "vxtrace follow needs CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN, CAP_SYS_ADMIN (missing; it has none of them): root here lacks them (a container or service that drops capabilities): grant them (the container's securityContext capabilities, or the service's CapabilityBoundingSet)",
  );
  assert.match(privilegeProblem('vxtrace follow', 'trace', mask('CAP_BPF', 'CAP_PERFMON', 'CAP_NET_ADMIN'), 0)!, /^vxtrace follow needs CAP_SYS_ADMIN \(missing; it has CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN\): root here lacks them/);
  assert.match(privilegeProblem('vxtrace lab up', 'lab', 0n, 0)!, /^vxtrace lab up needs CAP_NET_ADMIN, CAP_SYS_ADMIN \(missing; it has none of them\)/, 'root needs no CAP_DAC_OVERRIDE: it owns /run/netns');
});

test('a user granted them (ambient set, file capabilities) may trace; one without is told how to get them', () => {
  const granted = mask('CAP_BPF', 'CAP_PERFMON', 'CAP_NET_ADMIN', 'CAP_SYS_ADMIN');
  assert.equal(privilegeProblem('vxtrace follow', 'trace', granted, 65534), undefined);
  assert.equal(privilegeProblem('vxtrace capture', 'trace', granted, 1000), undefined);
  assert.equal(
    privilegeProblem('vxtrace follow', 'trace', 0n, 1000),
    "vxtrace follow needs CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN, CAP_SYS_ADMIN (missing; it has none of them): run it as root (sudo), or grant them (setcap, an ambient set, or the container's securityContext)",
  );
  assert.equal(privilegeShortfall('trace', mask('CAP_BPF', 'CAP_PERFMON'), 1000).missing.join(), 'CAP_NET_ADMIN,CAP_SYS_ADMIN');
});

test('CAP_SYS_ADMIN stands in for CAP_BPF and CAP_PERFMON, as the kernel takes it', () => {
  assert.equal(privilegeProblem('vxtrace follow', 'trace', mask('CAP_NET_ADMIN', 'CAP_SYS_ADMIN'), 0), undefined);
  const noSysAdmin = privilegeShortfall('trace', mask('CAP_NET_ADMIN'), 0);
  assert.deepEqual(noSysAdmin, { missing: ['CAP_BPF', 'CAP_PERFMON', 'CAP_SYS_ADMIN'], has: ['CAP_NET_ADMIN'] });
});

test('the lab: CAP_NET_ADMIN and CAP_SYS_ADMIN, and CAP_DAC_OVERRIDE for a user other than root', () => {
  const netAndSys = mask('CAP_NET_ADMIN', 'CAP_SYS_ADMIN');
  assert.equal(privilegeProblem('vxtrace lab up', 'lab', netAndSys, 0), undefined);
  assert.match(privilegeProblem('vxtrace lab up', 'lab', netAndSys, 65534)!, /^vxtrace lab up needs CAP_DAC_OVERRIDE \(missing; it has CAP_NET_ADMIN, CAP_SYS_ADMIN\): run it as root \(sudo\), or grant them/);
  assert.equal(privilegeProblem('vxtrace lab up', 'lab', netAndSys | mask('CAP_DAC_OVERRIDE'), 65534), undefined);
  assert.equal(privilegeProblem('vxtrace lab exec', 'netns', netAndSys, 65534), undefined, 'entering a namespace writes nothing of root');
  assert.match(privilegeProblem('vxtrace lab exec', 'netns', mask('CAP_SYS_ADMIN'), 65534)!, /needs CAP_NET_ADMIN \(missing; it has CAP_SYS_ADMIN\)/);
  // the demo needs both, each capability named once
  assert.deepEqual(privilegeShortfall(['trace', 'lab'], 0n, 65534).missing, ['CAP_BPF', 'CAP_PERFMON', 'CAP_NET_ADMIN', 'CAP_SYS_ADMIN', 'CAP_DAC_OVERRIDE']);
});
