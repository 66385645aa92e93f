/**
 * Opens the Node GPU once per test file and initialises the engine. Tests run on whatever adapter
 * Dawn finds: lavapipe on CI, the NVIDIA GPU on a server.
 */
import { afterEach, beforeAll } from 'vitest';
import {
  type Flags,
  type GpuContext,
  hasEngine,
  initEngine,
  runtime,
  setFlags,
} from '../../src/engine/index.js';
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

/**
 * For a test file whose tests change engine flags: the GPU is opened before its tests (beforeAll), and
 * whatever a test `set` is restored after it (afterEach), so no flag leaks into the next test.
 */
export function gpuAndFlags(): { set(values: Partial<Flags>): void } {
  const restores: (() => void)[] = [];
  beforeAll(async () => {
    await gpu();
  });
  afterEach(() => {
    while (restores.length) restores.pop()!();
  });
  return { set: (values) => void restores.push(setFlags(values)) };
}
