#!/usr/bin/env node
// Builds the page: type-checks ui/ (tsc, DOM types) and bundles it with esbuild into dist/page/
// (index.html, app.js, app.css), the static files the hub serves at `/`. `--dev`: not minified. The wire types are the
// module scripts/build.mjs generates from proto/vxtrace.proto (dist/src/generated/vxtrace.js), the
// same one the hub runs: nothing of the schema is retyped here. Everything is bundled: the page
// loads nothing from any other host.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const root = fileURLToPath(new URL('..', import.meta.url));
const out = join(root, 'dist', 'page');
const generated = join(root, 'dist', 'src', 'generated', 'vxtrace.js');
// --dev: not minified (readable names in the browser's profiler).
const dev = process.argv.includes('--dev');

const tsc = spawnSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'ui/tsconfig.json')], { stdio: 'inherit' });
if (tsc.status !== 0) process.exit(1);

// The generated wire module lives in dist/ (its types in src/generated/): point the page's import there.
const wireTypes = {
  name: 'generated-wire-types',
  setup(build) {
    build.onResolve({ filter: /\/generated\/vxtrace\.js$/ }, () => ({ path: generated }));
  },
};

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const result = await esbuild.build({
  entryPoints: { app: join(root, 'ui/src/main.tsx') },
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: ['chrome110', 'firefox115', 'safari16'],
  minify: !dev,
  sourcemap: 'linked',
  jsx: 'automatic',
  jsxImportSource: 'preact',
  outdir: out,
  plugins: [wireTypes],
  metafile: true,
  logLevel: 'warning',
  legalComments: 'linked',
});
copyFileSync(join(root, 'ui/index.html'), join(out, 'index.html'));
// What the bundle was made from, for scripts/build.mjs to know when to build it again.
const inputs = Object.keys(result.metafile.inputs).map((f) => relative(root, join(root, f))).filter((f) => !f.startsWith('node_modules'));
writeFileSync(join(out, '.inputs.json'), JSON.stringify(inputs, null, 1));
const bytes = Object.entries(result.metafile.outputs).filter(([f]) => !f.endsWith('.map')).map(([f, o]) => `${f.split('/').pop()} ${(o.bytes / 1024).toFixed(0)} KiB`);
process.stdout.write(`  dist/page: index.html, ${bytes.join(', ')}\n`);
