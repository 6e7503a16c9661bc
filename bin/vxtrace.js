#!/usr/bin/env node
// Thin launcher: the CLI is compiled TypeScript in dist/.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const main = fileURLToPath(new URL('../dist/src/cli/main.js', import.meta.url));
if (!existsSync(main)) {
  process.stderr.write('vxtrace: not built yet: run `npm run setup` (or `npm run build`) in the vxtrace checkout first\n');
  process.exit(3);
}
const { run } = await import(main);
process.exitCode = await run(process.argv);
