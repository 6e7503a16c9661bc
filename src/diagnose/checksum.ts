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
  let sum = 0;
  const add16 = (hi: number, lo: number): void => {
    sum += (hi << 8) | lo;
  };
  for (let i = 0; i < 8; i += 2) add16(frame[off + 12 + i]!, frame[off + 13 + i]!); // src, dst
  sum += 17 + udpLen;
  for (let i = 0; i < udpLen; i += 2) add16(frame[u + i]!, i + 1 < udpLen ? frame[u + i + 1]! : 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  if (sum === 0xffff) return true;
  // Checksum offload pending (CHECKSUM_PARTIAL, e.g. on veth before the "wire"): the field holds the
  // pseudo-header sum, not a checksum. That is not corruption: cannot tell.
  let pseudo = 17 + udpLen;
  for (let i = 0; i < 8; i += 2) pseudo += (frame[off + 12 + i]! << 8) | frame[off + 13 + i]!;
  while (pseudo > 0xffff) pseudo = (pseudo & 0xffff) + (pseudo >>> 16);
  if (csum === pseudo || csum === (~pseudo & 0xffff)) return undefined;
  return false;
}
