// The hop record is defined once (bpf/vxtrace.h) and decoded once (src/datapath/decode.ts):
// the sizes and offsets the addon's C++ compiler sees must be the decoder's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HOP_LAYOUT, L3_LAYOUT, KIND_DROP, KIND_TC, DIR_EGRESS, F_ENCAP, F_DF, F_FRAGMENT, F_L3_START, F_HAS_L4 } from '../../src/datapath/decode.js';
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
  const names = loadNative().dropReasons();
  assert.equal(names['0'], 'NOT_DROPPED_YET');
  assert.equal(names['1'], 'CONSUMED');
  assert.ok(Object.values(names).includes('NETFILTER_DROP'));
  assert.ok(Object.keys(names).length > 50, 'the whole enum, not a copied table');
  assert.ok(!Object.values(names).includes('MAX'));
});
