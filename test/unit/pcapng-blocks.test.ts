// Block codecs: what the encoders write, the decoders read back, in both byte orders.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  customStringOption,
  encodeCustomBlock,
  encodeEnhancedPacket,
  encodeInterfaceDescription,
  encodeSectionHeader,
  truncateUtf8,
} from '../../src/pcapng/blocks.js';
import { parseBlocks } from '../../src/pcapng/parser.js';
import { scaleToNs } from '../../src/pcapng/reader.js';
import { VXTRACE_PEN } from '../../src/pcapng/format.js';

for (const littleEndian of [true, false]) {
  test(`blocks round-trip in ${littleEndian ? 'little' : 'big'}-endian order`, () => {
    const data = Buffer.from('0123456789abcdefg'); // 17 bytes: padded
    const bytes = Buffer.concat([
      encodeSectionHeader({ comment: 'sec', hardware: 'hw', os: 'os', userApplication: 'vxtrace 0.1.0' }, littleEndian),
      encodeInterfaceDescription({ linkType: 1, snapLength: 1500, name: 'node1/eth1', description: 'd', tsresol: 9 }, littleEndian),
      encodeEnhancedPacket({
        interfaceId: 0, timestamp: 0x0123456789abcdefn, data, originalLength: 60, flags: 2, comment: 'héllo',
        customOptions: [customStringOption(VXTRACE_PEN, 'raw', littleEndian)],
        customStrings: [{ pen: VXTRACE_PEN, text: '{"ünïcode":1}' }],
      }, littleEndian),
      encodeEnhancedPacket({ interfaceId: 0, timestamp: 5n, data: new Uint8Array(0), originalLength: 0 }, littleEndian),
      encodeCustomBlock(VXTRACE_PEN, Buffer.from('{"x":1}\0'), true, littleEndian),
      encodeCustomBlock(1234, Buffer.from('abcd'), false, littleEndian),
    ]);
    const { blocks, damage } = parseBlocks(bytes);
    assert.equal(damage, undefined);
    assert.equal(blocks.length, 6);
    const [s, i, p, empty, c, c2] = blocks;
    assert.ok(s!.type === 'section' && i!.type === 'interface' && p!.type === 'packet' && empty!.type === 'packet' && c!.type === 'custom' && c2!.type === 'custom');
    assert.equal(s.littleEndian, littleEndian);
    assert.deepEqual([s.comments, s.hardware, s.os, s.userApplication, s.majorVersion], [['sec'], 'hw', 'os', 'vxtrace 0.1.0', 1]);
    assert.deepEqual([i.linkType, i.snapLength, i.name, i.description, i.tsresol], [1, 1500, 'node1/eth1', 'd', 9]);
    assert.equal(p.timestamp, 0x0123456789abcdefn);
    assert.deepEqual([p.capturedLength, p.originalLength, p.flags, p.comments], [17, 60, 2, ['héllo']]);
    assert.deepEqual(Buffer.from(p.data), data);
    assert.deepEqual(p.customOptions.map((o) => [o.code, o.pen, Buffer.from(o.value).toString()]), [[2988, VXTRACE_PEN, 'raw'], [2988, VXTRACE_PEN, '{"ünïcode":1}']]);
    assert.deepEqual([empty.capturedLength, empty.comments, empty.flags], [0, [], undefined]);
    assert.deepEqual([c.copyable, c.pen, Buffer.from(c.data).toString()], [true, VXTRACE_PEN, '{"x":1}\0']);
    assert.deepEqual([c2.copyable, c2.pen], [false, 1234]);
    for (const b of blocks) assert.equal(b.length % 4, 0);
  });
}

test('an original length below the captured length is raised to it (Wireshark rejects the opposite)', () => {
  const b = encodeEnhancedPacket({ interfaceId: 0, timestamp: 0n, data: Buffer.alloc(100), originalLength: 10 });
  assert.equal(b.readUInt32LE(8 + 16), 100);
});

test('strings are cut at a UTF-8 character boundary', () => {
  assert.equal(Buffer.from(truncateUtf8('aé', 2)).toString(), 'a');
  assert.equal(Buffer.from(truncateUtf8('aé', 3)).toString(), 'aé');
  const long = 'é'.repeat(40000);
  const b = encodeEnhancedPacket({ interfaceId: 0, timestamp: 0n, data: Buffer.alloc(0), originalLength: 0, comment: long });
  const { blocks } = parseBlocks(Buffer.concat([encodeSectionHeader({}), b]));
  const p = blocks[1]!;
  assert.ok(p.type === 'packet' && p.comments[0]!.length === 32767);
});

test('timestamps scale from any if_tsresol to nanoseconds', () => {
  assert.equal(scaleToNs(123n, 9), 123n);
  assert.equal(scaleToNs(123n, 6), 123_000n);
  assert.equal(scaleToNs(123n, 0), 123_000_000_000n);
  assert.equal(scaleToNs(123_000n, 12), 123n);
  assert.equal(scaleToNs(1n << 20n, 0x80 | 20), 1_000_000_000n);
});
