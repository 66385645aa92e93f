/**
 * The Node side of the platform layer: the only place (with the CLI) that touches Node APIs.
 * Gets a GPU from Dawn's Node bindings (`webgpu` package), reads flags from the environment, and offers
 * file helpers that never leave a half-written file behind (write to a temp file, then rename).
 */
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { rename, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { type GpuContext, openGpu } from '../engine/device.js';
import { flag, flagsFromEnv, setFlags } from '../engine/flags.js';
import { applyDawnPolling } from './dawn-poll.js';
import { makeDir, outputError } from './fs-errors.js';
import { withoutDawnLimitWarnings } from './quiet-dawn.js';

/** How to get a WebGPU adapter on this machine, for the no-adapter error. */
function linuxHint(): string {
  let osRelease = '';
  try {
    osRelease = readFileSync('/etc/os-release', 'utf8');
  } catch {}
  const bookworm = /VERSION_CODENAME=bookworm/.test(osRelease);
  return [
    'Dawn (the `webgpu` package) needs a Vulkan driver.',
    'With an NVIDIA GPU: install the driver plus `libvulkan1 libglvnd0 libegl1 libgl1 libglx0 libgles2 libopengl0`',
    '(set VK_DRIVER_FILES to the nvidia_icd.json if it is not in /usr/share/vulkan/icd.d).',
    'Without a GPU: Mesa lavapipe >= 24 (CPU Vulkan):',
    bookworm
      ? "  echo 'deb http://deb.debian.org/debian bookworm-backports main' > /etc/apt/sources.list.d/bookworm-backports.list && apt-get update && apt-get install -y -t bookworm-backports mesa-vulkan-drivers"
      : '  apt-get install -y mesa-vulkan-drivers libvulkan1   (Debian 12 needs bookworm-backports: its Mesa 22 is rejected)',
    '`bash scripts/setup.sh` does this for you.',
  ].join('\n');
}

function noAdapterHint(): string {
  if (process.platform === 'linux') return linuxHint();
  if (process.platform === 'darwin')
    return 'On macOS, Dawn uses Metal; check that the machine has a Metal GPU.';
  return 'On Windows, Dawn uses D3D12; update the GPU driver.';
}

export interface NodeGpuOptions {
  /** Adds Dawn's allow_unsafe_apis (subgroup matrices); also set by RDPP_ALLOW_UNSAFE_APIS=1. */
  allowUnsafeApis?: boolean;
}

/** Open the GPU in Node. Applies RDPP_* flags from the environment first. */
export async function openNodeGpu(opts: NodeGpuOptions = {}): Promise<GpuContext> {
  setFlags(flagsFromEnv(process.env));
  const require = createRequire(import.meta.url);
  let webgpu: { create: (flags: string[]) => GPU; globals: Record<string, unknown> };
  try {
    webgpu = require('webgpu');
  } catch (e) {
    throw new Error(
      `cannot load the \`webgpu\` package (Dawn for Node): ${(e as Error).message}. Run \`npm ci\` in the project folder.`,
    );
  }
  // WebGPU enum objects (GPUBufferUsage, GPUMapMode, ...) are globals in browsers; provide them in Node.
  Object.assign(globalThis, webgpu.globals);
  // On NVIDIA under Linux, Dawn only exposes shader-f16 with this toggle; harmless elsewhere.
  const features = ['vulkan_enable_f16_on_nvidia'];
  // the toggles that change what the engine's figures mean, named in every report (adapterLine)
  const toggles: string[] = [];
  if (opts.allowUnsafeApis || flag('ALLOW_UNSAFE_APIS')) toggles.push('allow_unsafe_apis');
  if (flag('DAWN_SKIP_VALIDATION')) toggles.push('skip_validation');
  if (flag('DAWN_DISABLE_ROBUSTNESS')) toggles.push('disable_robustness');
  const dawn = webgpu.create([`enable-dawn-features=${[...features, ...toggles].join(',')}`]);
  // the same GPU (its prototype, so it stays referenced) whose requestAdapter hides Dawn's two lavapipe
  // limit warnings (src/platform/quiet-dawn.ts)
  const gpu = Object.create(dawn, {
    requestAdapter: {
      value: (o?: GPURequestAdapterOptions) => withoutDawnLimitWarnings(() => dawn.requestAdapter(o)),
    },
  }) as GPU;
  const ctx = await openGpu(gpu, { platform: 'node', noAdapterHint: noAdapterHint(), toggles });
  applyDawnPolling(ctx);
  return ctx;
}

/** The name of the temporary file writeFileAtomic writes first (run folders remove leftover ones). */
export const TEMP_FILE_RE = /\.tmp-\d+-\d+$/;

/** The OutputError for a failed atomic write of `path`. */
function writeError(e: unknown, path: string, data: string | Uint8Array) {
  const size = typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength;
  const err = outputError(e, 'cannot write the file', path, size);
  err.message += ' (an earlier file of that name, if any, is unchanged)';
  return err;
}

/** writeFileAtomic without blocking the event loop (the write runs on libuv's thread pool). */
export async function writeFileAtomicAsync(path: string, data: string | Uint8Array): Promise<void> {
  makeDir(dirname(path));
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  try {
    await writeFile(tmp, data);
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw writeError(e, path, data);
  }
}

/**
 * Write a file so that readers see either the old or the new content, never a torn one. Failures (a full
 * disk, a read-only mount, no permission) are OutputErrors that name the file and its size and say that the
 * previous file, if any, is unchanged.
 */
export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  makeDir(dirname(path));
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  try {
    writeFileSync(tmp, data);
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw writeError(e, path, data);
  }
}
