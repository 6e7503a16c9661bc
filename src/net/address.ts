// IP addresses and prefixes: the one place vxtrace turns address text into numbers or bytes and
// back. Pure; every layer (datapath, cluster, diagnose) takes its parsing from here.

/** An IPv4 address in dotted-quad text as a 32-bit unsigned number; undefined when it is not one. */
export function ipv4ToInt(ip: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(ip);
  if (!m) return undefined;
  const a = Number(m[1]);
  const b = Number(m[2]);
  const c = Number(m[3]);
  const d = Number(m[4]);
  if (a > 255 || b > 255 || c > 255 || d > 255) return undefined;
  return ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;
}

export function intToIpv4(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

export const isIpv4 = (s: string | undefined): s is string => s !== undefined && ipv4ToInt(s) !== undefined;

/** 16 bytes of an IPv6 address in text form (an embedded IPv4 tail is allowed); RangeError if invalid. */
export function ipv6Bytes(text: string): Uint8Array {
  let s = text;
  const m = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(s);
  if (m) {
    const v4 = ipv4ToInt(m[0]);
    if (v4 === undefined) throw new RangeError(`'${text}' is not an IPv6 address`);
    s = s.slice(0, m.index) + (v4 >>> 16).toString(16) + ':' + (v4 & 0xffff).toString(16);
  }
  const halves = s.split('::');
  const parse = (x: string) => (x ? x.split(':').map((w) => (/^[0-9a-fA-F]{1,4}$/.test(w) ? parseInt(w, 16) : NaN)) : []);
  const head = parse(halves[0]!);
  const rest = halves.length === 2 ? parse(halves[1]!) : [];
  const words = halves.length === 2 ? [...head, ...new Array<number>(Math.max(0, 8 - head.length - rest.length)).fill(0), ...rest] : head;
  if (halves.length > 2 || words.length !== 8 || words.some((w) => Number.isNaN(w)) || (halves.length === 2 && head.length + rest.length > 7)) {
    throw new RangeError(`'${text}' is not an IPv6 address`);
  }
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    out[2 * i] = words[i]! >> 8;
    out[2 * i + 1] = words[i]! & 0xff;
  }
  return out;
}

/** The address's bytes in network order (4 for IPv4, 16 for IPv6); RangeError if it is neither. */
export function ipBytes(text: string, family: 4 | 6 = text.includes(':') ? 6 : 4): Uint8Array {
  if (family === 6) return ipv6Bytes(text);
  const n = ipv4ToInt(text);
  if (n === undefined) throw new RangeError(`'${text}' is not an IPv4 address`);
  return Uint8Array.of(n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255);
}

/** IPv4 dotted quad or RFC 5952 IPv6 text of the address at `at`. */
export function ipString(bytes: Uint8Array, at: number, family: 4 | 6): string {
  if (family === 4) return `${bytes[at]}.${bytes[at + 1]}.${bytes[at + 2]}.${bytes[at + 3]}`;
  const words: number[] = [];
  for (let i = 0; i < 8; i++) words.push((bytes[at + 2 * i]! << 8) | bytes[at + 2 * i + 1]!);
  // the longest run (>= 2) of zero words becomes "::"
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (ws: number[]) => ws.map((w) => w.toString(16)).join(':');
  if (bestStart < 0) return hex(words);
  return `${hex(words.slice(0, bestStart))}::${hex(words.slice(bestStart + bestLen))}`;
}

/** An IPv4 or IPv6 prefix (routes, pod CIDRs). */
export interface Cidr {
  family: 4 | 6;
  /** IPv4: the network as a 32-bit number (host bits cleared); 0 for IPv6. */
  network: number;
  /** The network's bytes in network order (4 or 16), host bits cleared. */
  bytes: Uint8Array;
  prefixLength: number;
  text: string;
}

const v4Mask = (len: number) => (len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0);

/**
 * An IPv4 or IPv6 prefix or address (`/32`, `/128`), or iproute2's `default` (of `family`, IPv4
 * unless told); undefined when it is not one.
 */
export function parseCidr(text: string, family: 4 | 6 = 4): Cidr | undefined {
  if (text === 'default') return family === 6 ? { family: 6, network: 0, bytes: new Uint8Array(16), prefixLength: 0, text: '::/0' } : { family: 4, network: 0, bytes: new Uint8Array(4), prefixLength: 0, text: '0.0.0.0/0' };
  const [ip, len, more] = text.split('/');
  if (more !== undefined || !ip) return undefined;
  if (ip.includes(':')) {
    let bytes: Uint8Array;
    try {
      bytes = ipv6Bytes(ip);
    } catch {
      return undefined;
    }
    const prefixLength = len === undefined ? 128 : /^\d{1,3}$/.test(len) ? Number(len) : NaN;
    if (!Number.isInteger(prefixLength) || prefixLength > 128) return undefined;
    for (let i = 0; i < 16; i++) bytes[i]! &= byteMask(prefixLength, i);
    return { family: 6, network: 0, bytes, prefixLength, text };
  }
  const n = ipv4ToInt(ip);
  const prefixLength = len === undefined ? 32 : /^\d{1,2}$/.test(len) ? Number(len) : NaN;
  if (n === undefined || !Number.isInteger(prefixLength) || prefixLength < 0 || prefixLength > 32) return undefined;
  const network = (n & v4Mask(prefixLength)) >>> 0;
  return { family: 4, network, bytes: Uint8Array.of(network >>> 24, (network >>> 16) & 255, (network >>> 8) & 255, network & 255), prefixLength, text };
}

/** The mask byte `i` of a prefix of length `len`. */
const byteMask = (len: number, i: number): number => (len >= (i + 1) * 8 ? 0xff : len <= i * 8 ? 0 : (0xff << (8 - (len - i * 8))) & 0xff);

export function cidrContains(cidr: Cidr, ip: string): boolean {
  if (cidr.family === 4) {
    const n = ipv4ToInt(ip);
    if (n === undefined) return false;
    return ((n & v4Mask(cidr.prefixLength)) >>> 0) === cidr.network;
  }
  if (!ip.includes(':')) return false;
  let b: Uint8Array;
  try {
    b = ipv6Bytes(ip);
  } catch {
    return false;
  }
  for (let i = 0; i < 16; i++) if ((b[i]! & byteMask(cidr.prefixLength, i)) !== cidr.bytes[i]) return false;
  return true;
}

/** The network address of a prefix as text: `10.244.2.0`, `fd00:10:244:2::` (flannel's VTEP address of a pod CIDR). */
export function networkAddress(cidr: Cidr): string {
  return ipString(cidr.bytes, 0, cidr.family);
}

/** The prefix of length `len` that holds the address `bytes` (4 or 16 of them), as text. */
export function prefixText(bytes: Uint8Array, len: number): string {
  const family = bytes.length === 16 ? 6 : 4;
  const masked = Uint8Array.from(bytes, (b, i) => b & byteMask(len, i));
  return `${ipString(masked, 0, family)}/${len}`;
}

/** The IPv4 prefix of length `len` that holds `n`, as text. */
export function ipv4Prefix(n: number, len: number): string {
  return `${intToIpv4((n & v4Mask(len)) >>> 0)}/${len}`;
}

/** 4 for an IPv4 address, 6 for an IPv6 one, undefined for anything else. */
export function ipFamily(text: string | undefined): 4 | 6 | undefined {
  if (text === undefined) return undefined;
  if (ipv4ToInt(text) !== undefined) return 4;
  if (!text.includes(':')) return undefined;
  try {
    ipv6Bytes(text);
    return 6;
  } catch {
    return undefined;
  }
}

/** An address or prefix of either family in the kernel's form: 16 bytes of address and of mask. */
export interface AddressPrefix {
  family: 4 | 6;
  /** The network (host bits cleared), 16 bytes, IPv4 in the first 4. */
  addr: Uint8Array;
  mask: Uint8Array;
  prefixLength: number;
}

/** Parses `ADDR` or `ADDR/LEN` of either family; RangeError saying what is wrong. */
export function parseAddressPrefix(text: string): AddressPrefix {
  const [ip, len, more] = text.split('/');
  if (more !== undefined || !ip) throw new RangeError(`'${text}' is not an IPv4 or IPv6 address or CIDR`);
  const family: 4 | 6 = ip.includes(':') ? 6 : 4;
  const addr = new Uint8Array(16);
  try {
    addr.set(ipBytes(ip, family));
  } catch {
    throw new RangeError(`'${text}' is not an IPv4 or IPv6 address or CIDR`);
  }
  const max = family === 4 ? 32 : 128;
  const bits = len === undefined ? max : /^\d+$/.test(len) ? Number(len) : NaN;
  if (!Number.isInteger(bits) || bits < 0 || bits > max) throw new RangeError(`'${text}' has an invalid prefix length (0..${max})`);
  const mask = new Uint8Array(16);
  for (let i = 0; i < bits; i++) mask[i >> 3]! |= 0x80 >> (i & 7);
  for (let i = 0; i < 16; i++) addr[i]! &= mask[i]!;
  return { family, addr, mask, prefixLength: bits };
}

/**
 * Whether `ip` lies in `prefix` (an address or ADDR/LEN of either family, or iproute2's `default`);
 * false across families; undefined when either is not an address.
 */
export function addressInPrefix(ip: string, prefix: string): boolean | undefined {
  let p: AddressPrefix;
  let a: Uint8Array;
  try {
    p = parseAddressPrefix(prefix === 'default' ? (ip.includes(':') ? '::/0' : '0.0.0.0/0') : prefix);
    a = ipBytes(ip);
  } catch {
    return undefined;
  }
  if ((a.length === 16 ? 6 : 4) !== p.family) return false;
  for (let i = 0; i < a.length; i++) if ((a[i]! & p.mask[i]!) !== p.addr[i]) return false;
  return true;
}
