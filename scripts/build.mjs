#!/usr/bin/env node
// Incremental build of every part of vxtrace, in dependency order:
//   bpf/     C eBPF objects (clang -target bpf)       -> bpf/.output/*.bpf.o
//   native/  libbpf addon (cmake-js, node-addon-api)  -> native/build/Release/vxtrace_native.node
//   proto/   wire types (protobufjs pbjs + pbts)       -> dist/src/generated/vxtrace.js, src/generated/vxtrace.d.ts
//   src/     TypeScript (tsc, incremental)            -> dist/
//   ui/      the web page (esbuild)                   -> dist/page/
// Each step says what it builds, and is skipped quietly when its outputs are newer than its inputs.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
process.chdir(root);

function newestMtime(paths) {
  let newest = 0;
  const visit = (p) => {
    if (!existsSync(p)) return;
    const st = statSync(p);
    if (st.isDirectory()) {
      for (const e of readdirSync(p)) if (e !== 'build' && e !== '.output' && e !== 'node_modules') visit(join(p, e));
    } else newest = Math.max(newest, st.mtimeMs);
  };
  paths.forEach(visit);
  return newest;
}
function oldestMtime(paths) {
  let oldest = Infinity;
  for (const p of paths) {
    if (!existsSync(p)) return 0;
    oldest = Math.min(oldest, statSync(p).mtimeMs);
  }
  return oldest;
}
function run(what, cmd, args, { quiet = false } = {}) {
  process.stdout.write(`build: ${what}\n`);
  // quiet: the tool's progress chatter (cmake, ninja) is shown only if the step fails, since that
  // is also where ninja prints the compiler's errors.
  const r = spawnSync(cmd, args, { stdio: ['ignore', quiet ? 'pipe' : 'inherit', 'inherit'], encoding: 'utf8' });
  if (quiet && r.status !== 0 && r.stdout) process.stderr.write(r.stdout);
  if (r.error) {
    process.stderr.write(`build: cannot run ${cmd}: ${r.error.message} (run \`npm run setup\` to install what the build needs)\n`);
    process.exit(1);
  }
  if (r.status !== 0) {
    process.stderr.write(`build: ${what} failed (exit ${r.status})\n`);
    process.exit(1);
  }
}
/** Stop with the Debian package to install when a build tool is missing. */
function requireTools(step, tools) {
  const path = (process.env.PATH ?? '').split(':').filter(Boolean);
  for (const [tool, pkg] of tools) {
    if (!path.some((d) => existsSync(join(d, tool)))) {
      process.stderr.write(`build: ${step} needs ${tool}, which is missing: install the Debian package ${pkg} (\`npm run setup\` as root does)\n`);
      process.exit(1);
    }
  }
}
function requirePkgConfig(step, module, pkgs) {
  const r = spawnSync('pkg-config', ['--exists', module], { stdio: 'ignore' });
  if (r.status !== 0) {
    process.stderr.write(`build: ${step} needs ${module} (pkg-config cannot find it): install the Debian packages ${pkgs} (\`npm run setup\` as root does)\n`);
    process.exit(1);
  }
}
function stale(inputs, outputs) {
  return newestMtime(inputs) > oldestMtime(outputs);
}

// 1. BPF objects: the Makefile is incremental itself.
if (existsSync('bpf/Makefile')) {
  requireTools('the BPF build', [['make', 'make'], ['clang', 'clang']]);
  const q = spawnSync('make', ['-q', '-C', 'bpf'], { stdio: 'ignore' });
  if (q.status !== 0) run('BPF objects (make -C bpf)', 'make', ['-s', '-C', 'bpf']);
}

// 2. Native addon.
if (existsSync('native/CMakeLists.txt')) {
  const out = ['native/build/Release/vxtrace_native.node'];
  if (stale(['native', 'bpf/vxtrace.h'], out)) {
    requireTools('the native addon', [['cmake', 'cmake'], ['g++', 'g++'], ['make', 'make'], ['pkg-config', 'pkg-config']]);
    requirePkgConfig('the native addon', 'libbpf', 'libbpf-dev libelf-dev zlib1g-dev');
    run('native addon (cmake-js)', process.execPath, [
      'node_modules/cmake-js/bin/cmake-js', 'compile', '--directory', 'native', '--out', 'native/build',
      '--log-level', 'error',
    ], { quiet: true });
    // ninja relinks only on content changes: mark the addon as built now, or a touched source would
    // make every later build run cmake again.
    const now = new Date();
    utimesSync(out[0], now, now);
  }
}

// 3. Wire types from proto/vxtrace.proto: the encoder/decoder (pbjs, an ES module) goes straight to
// dist/, where the compiled code imports it; its types (pbts) go to src/generated/, where tsc finds
// them. Both are generated, never edited, and not in git.
const PROTO_JS = 'dist/src/generated/vxtrace.js';
const PROTO_DTS = 'src/generated/vxtrace.d.ts';
if (stale(['proto/vxtrace.proto'], [PROTO_JS, PROTO_DTS])) {
  const header = '// GENERATED from proto/vxtrace.proto by scripts/build.mjs (protobufjs-cli): do not edit.\n';
  mkdirSync('dist/src/generated', { recursive: true });
  mkdirSync('src/generated', { recursive: true });
  run('wire types (pbjs, pbts)', process.execPath, [
    'node_modules/protobufjs-cli/bin/pbjs', '-t', 'static-module', '-w', 'esm', '--dependency', 'protobufjs/minimal.js',
    '--no-verify', '--no-delimited', '--no-typeurl', '--no-service', '-o', PROTO_JS, 'proto/vxtrace.proto',
  ]);
  run('wire type declarations (pbts)', process.execPath, ['node_modules/protobufjs-cli/bin/pbts', '-o', PROTO_DTS, PROTO_JS], { quiet: true });
  for (const f of [PROTO_JS, PROTO_DTS]) writeFileSync(f, header + readFileSync(f, 'utf8'));
}

// 4. TypeScript.
if (stale(['src', 'test', 'bench', 'tsconfig.json', 'proto'], ['dist/.tsbuildinfo'])) {
  run('TypeScript (tsc)', process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.json']);
}

// 5. The page: ui/ type-checked and bundled (esbuild) into dist/page/, which the hub serves at `/`.
// It is built again when ui/, the schema, the npm packages or any src/ file it bundles changed
// (ui/build.mjs lists those in dist/page/.inputs.json).
if (existsSync('ui/build.mjs')) {
  const listed = existsSync('dist/page/.inputs.json') ? JSON.parse(readFileSync('dist/page/.inputs.json', 'utf8')) : [];
  if (stale(['ui', 'proto', 'package-lock.json', ...listed], ['dist/page/index.html', 'dist/page/app.js'])) {
    run('web page (tsc -p ui, esbuild)', process.execPath, ['ui/build.mjs']);
  }
}
