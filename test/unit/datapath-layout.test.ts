// The hop record and the fingerprint key are defined once (bpf/vxtrace.h) and decoded or rebuilt
// once (src/datapath/decode.ts): the sizes and offsets the addon's C++ compiler sees must be the
// decoder's, and the header's constants and defaults reach TypeScript from the addon.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FP_KEY_LAYOUT, HOP_LAYOUT, L3_LAYOUT, KIND_DROP, KIND_TC, DIR_EGRESS, F_ENCAP, F_DF, F_FRAGMENT, F_L3_START, F_HAS_L4 } from '../../src/datapath/decode.js';
import { F_SAMPLED, F_SHEDDING } from '../../src/datapath/decode.js';
import { FLOW_KEY_LAYOUT, FLOW_STATS_LAYOUT } from '../../src/datapath/flow.js';
import { defaultSnaplen, defaultVxlanPorts, headersSnaplen } from '../../src/datapath/index.js';
import { loadNative } from '../../src/datapath/native.js';

test('the decoder agrees with bpf/vxtrace.h on every field of struct vxt_hop and struct vxt_l3', () => {
  const layout = loadNative().layout();
  assert.equal(HOP_LAYOUT.size, layout.hopSize, 'sizeof(struct vxt_hop)');
  assert.equal(L3_LAYOUT.size, layout.l3Size, 'sizeof(struct vxt_l3)');
  assert.equal(HOP_LAYOUT.recordAlign, layout.recordAlign);
  assert.deepEqual(Object.keys(HOP_LAYOUT.fields).sort(), Object.keys(layout.hop).sort(), 'the same fields');
  for (const [name, field] of Object.entries(HOP_LAYOUT.fields)) {
    assert.deepEqual({ ...field }, layout.hop[name], `vxt_hop.${name}`);
  }
  const { size: _l3size, ...l3Fields } = L3_LAYOUT;
  assert.deepEqual(Object.keys(l3Fields).sort(), Object.keys(layout.l3).sort());
  for (const [name, field] of Object.entries(l3Fields)) assert.deepEqual({ ...field }, layout.l3[name], `vxt_l3.${name}`);
});

test('fingerprintOf() lays out struct vxt_fp_key as the kernel hashes it', () => {
  const layout = loadNative().layout();
  assert.equal(FP_KEY_LAYOUT.size, layout.fpKeySize, 'sizeof(struct vxt_fp_key)');
  assert.deepEqual(Object.keys(FP_KEY_LAYOUT.fields).sort(), Object.keys(layout.fpKey).sort(), 'the same fields');
  for (const [name, field] of Object.entries(FP_KEY_LAYOUT.fields)) {
    assert.deepEqual({ ...field }, layout.fpKey[name], `vxt_fp_key.${name}`);
  }
});

test("the defaults TypeScript uses are the header's, read from the addon", () => {
  const layout = loadNative().layout();
  assert.equal(defaultSnaplen(), layout.defaultSnaplen);
  assert.ok(defaultSnaplen() >= 1 && defaultSnaplen() <= layout.maxSnaplen);
  assert.deepEqual(defaultVxlanPorts(), layout.defaultVxlanPorts);
  assert.equal(defaultVxlanPorts()[0], 8472, "Linux's and flannel's VXLAN port comes first");
  assert.ok(defaultVxlanPorts().length <= layout.maxVxlanPorts);
  defaultVxlanPorts().push(1);
  assert.deepEqual(defaultVxlanPorts(), layout.defaultVxlanPorts, 'a copy: a caller cannot change the default');
  const c = layout.constants;
  assert.equal(new Set([c.FILTER_NONE, c.FILTER_ALL, c.FILTER_RULES]).size, 3, 'three distinct filter modes');
});

test('the decoder uses the kinds, directions and flags of bpf/vxtrace.h', () => {
  const c = loadNative().layout().constants;
  assert.deepEqual(
    { KIND_TC, KIND_DROP, DIR_EGRESS, F_ENCAP, F_DF, F_FRAGMENT, F_L3_START, F_HAS_L4 },
    {
      KIND_TC: c.KIND_TC, KIND_DROP: c.KIND_DROP, DIR_EGRESS: c.DIR_EGRESS, F_ENCAP: c.F_ENCAP, F_DF: c.F_DF,
      F_FRAGMENT: c.F_FRAGMENT, F_L3_START: c.F_L3_START, F_HAS_L4: c.F_HAS_L4,
    },
  );
  assert.ok(loadNative().layout().maxSnaplen >= 1600, 'a 1500-byte frame with its VXLAN encapsulation fits');
});

test('drop reason names come from the running kernel (BTF enum skb_drop_reason)', () => {
  const names = Object.values(loadNative().dropReasons());
  // the two that are not drops (their values are the kernel's: the tracer passes them to the
  // programs, test/datapath checks that)
  assert.ok(names.includes('NOT_DROPPED_YET'));
  assert.ok(names.includes('CONSUMED'));
  assert.ok(names.includes('NETFILTER_DROP'));
  assert.ok(names.length > 50, 'the whole enum, not a copied table');
  assert.ok(!names.includes('MAX'));
});

test('the flow counters decoder agrees with bpf/vxtrace.h on struct vxt_flow_key and struct vxt_flow_stats', () => {
  const layout = loadNative().layout();
  assert.equal(FLOW_KEY_LAYOUT.size, layout.flowKeySize, 'sizeof(struct vxt_flow_key)');
  assert.equal(FLOW_STATS_LAYOUT.size, layout.flowStatsSize, 'sizeof(struct vxt_flow_stats)');
  assert.deepEqual(Object.keys(FLOW_KEY_LAYOUT.fields).sort(), Object.keys(layout.flowKey).sort());
  assert.deepEqual(Object.keys(FLOW_STATS_LAYOUT.fields).sort(), Object.keys(layout.flowStats).sort());
  for (const [name, field] of Object.entries(FLOW_KEY_LAYOUT.fields)) assert.deepEqual({ ...field }, layout.flowKey[name], `vxt_flow_key.${name}`);
  for (const [name, field] of Object.entries(FLOW_STATS_LAYOUT.fields)) assert.deepEqual({ ...field }, layout.flowStats[name], `vxt_flow_stats.${name}`);
  assert.equal(F_SHEDDING, layout.constants.F_SHEDDING);
  assert.equal(F_SAMPLED, layout.constants.F_SAMPLED);
  assert.equal(headersSnaplen(), layout.headersSnaplen);
  assert.ok(headersSnaplen() >= 14 + 20 + 8 + 8 + 14 + 20 + 20, 'outer and inner headers of a VXLAN TCP packet fit');
  assert.ok(headersSnaplen() < defaultSnaplen());
});
