// Kernel addresses to function names, from /proc/kallsyms (read once, when a drop needs a name).
import { readFileSync } from 'node:fs';

export class KernelSymbols {
  private addrs: bigint[] = [];
  private names: string[] = [];
  private loaded = false;
  private cache = new Map<bigint, string | undefined>();

  constructor(private readonly path = '/proc/kallsyms') {}

  /** Reads the symbol table now (it is read on the first lookup otherwise). */
  preload(): void {
    if (!this.loaded) this.load();
  }

  private load(): void {
    this.loaded = true;
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch {
      return; // no names: drop records still carry reason and address
    }
    const rows: [bigint, string][] = [];
    for (const line of text.split('\n')) {
      const sp1 = line.indexOf(' ');
      if (sp1 <= 0) continue;
      const type = line[sp1 + 1];
      if (type !== 't' && type !== 'T') continue;
      const addr = BigInt('0x' + line.slice(0, sp1));
      if (addr === 0n) continue; // addresses hidden (kptr_restrict)
      const rest = line.slice(sp1 + 3);
      const tab = rest.indexOf('\t');
      rows.push([addr, tab >= 0 ? rest.slice(0, tab) : rest.trim()]);
    }
    rows.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    this.addrs = rows.map((r) => r[0]);
    this.names = rows.map((r) => r[1]);
  }

  /** `function+0xoff`, or undefined when unknown. */
  lookup(address: bigint): string | undefined {
    if (this.cache.has(address)) return this.cache.get(address);
    if (!this.loaded) this.load();
    let lo = 0;
    let hi = this.addrs.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.addrs[mid]! <= address) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    const name = found >= 0 ? `${this.names[found]}+0x${(address - this.addrs[found]!).toString(16)}` : undefined;
    this.cache.set(address, name);
    return name;
  }
}
