/** Open the GPU and initialise the engine for a command; prints the adapter line unless quiet. */
import { adapterLine, type GpuContext, initEngine } from '../engine/index.js';
import { openNodeGpu } from '../platform/node.js';

export async function startEngine(
  opts: { quiet?: boolean; allowUnsafeApis?: boolean } = {},
): Promise<GpuContext> {
  const gpu = await openNodeGpu({ allowUnsafeApis: opts.allowUnsafeApis ?? false });
  initEngine(gpu);
  if (!opts.quiet) console.error(`GPU ${adapterLine(gpu.report)}`);
  return gpu;
}
