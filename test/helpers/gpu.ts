/**
 * Opens the Node GPU once per test file and initialises the engine. Tests run on whatever adapter
 * Dawn finds: lavapipe on CI, the NVIDIA GPU on a server.
 */
import { type GpuContext, hasEngine, initEngine, runtime } from '../../src/engine/index.js';
import { openNodeGpu } from '../../src/platform/node.js';

let ctx: GpuContext | null = null;

export async function gpu(): Promise<GpuContext> {
  if (!ctx) {
    ctx = await openNodeGpu();
    initEngine(ctx);
  }
  if (!hasEngine()) initEngine(ctx);
  return ctx;
}

export { runtime };
