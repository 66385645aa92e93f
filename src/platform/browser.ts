/**
 * The browser side of the platform layer: `navigator.gpu`, with advice when WebGPU is missing.
 */
import { type GpuContext, openGpu } from '../engine/device.js';

const HINT =
  'Use a browser with WebGPU (Chrome/Edge 113+, Safari 26+, Firefox 141+). In Chromium on Linux or without ' +
  'a GPU, start it with --enable-unsafe-webgpu (and --enable-features=Vulkan on Linux); check chrome://gpu.';

export async function openBrowserGpu(): Promise<GpuContext> {
  const gpu = (globalThis.navigator as Navigator | undefined)?.gpu;
  return openGpu(gpu, { platform: 'browser', noAdapterHint: HINT });
}
