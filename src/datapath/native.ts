// Loads the native addon and locates the BPF object, with errors that say how to get them.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { EnvironmentError } from '../errors.js';
import type { NativeAddon } from './native-addon.js';

/** The repository root (this file runs from dist/src/datapath/). */
const root = fileURLToPath(new URL('../../../', import.meta.url));

export const ADDON_PATH = process.env.VXTRACE_NATIVE ?? join(root, 'native', 'build', 'Release', 'vxtrace_native.node');
export const BPF_OBJECT_PATH = process.env.VXTRACE_BPF_OBJECT ?? join(root, 'bpf', '.output', 'vxtrace.bpf.o');

let addon: NativeAddon | undefined;

export function loadNative(): NativeAddon {
  if (addon) return addon;
  if (!existsSync(ADDON_PATH)) {
    throw new EnvironmentError(`the native addon ${ADDON_PATH} is not built: run \`npm run build\` (needs cmake, g++, libbpf-dev; \`npm run setup\` installs them)`);
  }
  try {
    addon = createRequire(import.meta.url)(ADDON_PATH) as NativeAddon;
  } catch (err) {
    throw new EnvironmentError(`cannot load the native addon ${ADDON_PATH}: ${(err as Error).message} (rebuild it with \`npm run build\`)`, { cause: err });
  }
  return addon;
}
