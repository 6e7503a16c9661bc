// Outer UDP checksum check on a captured frame (Ethernet onwards). Pure.

/**
 * true: the outer IPv4/UDP checksum is right (or 0, "none", legal for IPv4); false: it is wrong;
 * undefined: cannot tell (not IPv4/UDP, truncated capture, fragment, or checksum offload still pending).
 */
export function verifyOuterUdpChecksum(frame: Uint8Array | undefined): boolean | undefined {
  if (!(frame instanceof Uint8Array) || frame.length < 14) return undefined;
  let off = 12;
  let type = (frame[off]! << 8) | frame[off + 1]!;
  off += 2;
  while ((type === 0x8100 || type === 0x88a8) && frame.length >= off + 4) {
    type = (frame[off + 2]! << 8) | frame[off + 3]!;
    off += 4;
  }
  if (type !== 0x0800 || frame.length < off + 20) return undefined;
  const ihl = (frame[off]! & 0x0f) * 4;
  if ((frame[off]! >> 4) !== 4 || ihl < 20 || frame[off + 9] !== 17) return undefined;
  const fragment = ((frame[off + 6]! & 0x3f) << 8) | frame[off + 7]!;
  if (fragment !== 0) return undefined;
  const u = off + ihl;
  if (frame.length < u + 8) return undefined;
  const udpLen = (frame[u + 4]! << 8) | frame[u + 5]!;
  const csum = (frame[u + 6]! << 8) | frame[u + 7]!;
  if (csum === 0) return true;
  if (udpLen < 8 || frame.length < u + udpLen) return undefined;
  const pseudoOf = (ipOff: number, proto: number, len: number): number => fold(proto + len + onesSum(frame, ipOff + 12, ipOff + 20));
  if (fold(pseudoOf(off, 17, udpLen) + onesSum(frame, u, u + udpLen)) === 0xffff) return true;
  // Checksum offload pending (CHECKSUM_PARTIAL, e.g. on veth before the "wire"): the field holds the
  // pseudo-header sum, not a checksum. That is not corruption: cannot tell.
  const pseudo = pseudoOf(off, 17, udpLen);
  if (csum === pseudo || csum === (~pseudo & 0xffff)) return undefined;
  // Local checksum offload: the outer checksum was computed for the inner packet as it will be once
  // its own pending L4 checksum is filled in (TCP/UDP inside VXLAN with tx-checksum offload on).
  // Complete the inner checksum the way the offload will, then check the outer one again.
  const inner = pendingInnerChecksum(frame, u + 8 + 8, u + udpLen, pseudoOf);
  if (inner) {
    const copy = Uint8Array.from(frame.subarray(0, u + udpLen));
    copy[inner.at] = inner.value >> 8;
    copy[inner.at + 1] = inner.value & 0xff;
    return fold(pseudoOf(off, 17, udpLen) + onesSum(copy, u, u + udpLen)) === 0xffff;
  }
  return false;
}

function fold(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

/** One's-complement sum of bytes [start, end) as 16-bit big-endian words (odd tail padded with 0). */
function onesSum(b: Uint8Array, start: number, end: number): number {
  let sum = 0;
  for (let i = start; i < end; i += 2) sum += (b[i]! << 8) | (i + 1 < end ? b[i + 1]! : 0);
  return fold(sum);
}

/**
 * The inner frame (Ethernet at `eth`, ending at `end`) carries an IPv4 TCP/UDP packet whose L4
 * checksum is still the pseudo-header sum (offload pending): where the field is and the value the
 * offload will write. undefined when it is not pending, not IPv4 TCP/UDP, or not wholly captured.
 */
function pendingInnerChecksum(
  b: Uint8Array,
  eth: number,
  end: number,
  pseudoOf: (ipOff: number, proto: number, len: number) => number,
): { at: number; value: number } | undefined {
  let off = eth + 12;
  if (end < off + 2) return undefined;
  let type = (b[off]! << 8) | b[off + 1]!;
  off += 2;
  while ((type === 0x8100 || type === 0x88a8) && end >= off + 4) {
    type = (b[off + 2]! << 8) | b[off + 3]!;
    off += 4;
  }
  if (type !== 0x0800 || end < off + 20 || b[off]! >> 4 !== 4) return undefined;
  const ihl = (b[off]! & 0x0f) * 4;
  const total = (b[off + 2]! << 8) | b[off + 3]!;
  const proto = b[off + 9]!;
  const l4 = off + ihl;
  const l4len = total - ihl;
  if (ihl < 20 || l4len < 8 || l4 + l4len > end || (((b[off + 6]! & 0x3f) << 8) | b[off + 7]!) !== 0) return undefined;
  const at = proto === 6 ? l4 + 16 : proto === 17 ? l4 + 6 : -1;
  if (at < 0 || at + 2 > l4 + l4len) return undefined;
  const field = (b[at]! << 8) | b[at + 1]!;
  const pseudo = pseudoOf(off, proto, l4len);
  if (field !== pseudo) return undefined;
  // With the field holding the pseudo-header sum, the checksum is the complement of the L4 bytes' sum.
  const value = ~onesSum(b, l4, l4 + l4len) & 0xffff;
  return { at, value: proto === 17 && value === 0 ? 0xffff : value };
}
