/**
 * The current runtime (device, pool, pipeline cache, encoder). One per process or page, like a tfjs
 * backend: ops find it here instead of threading it through every call.
 */
import type { GpuContext } from './device.js';
import { setActiveMma } from './mma.js';
import { Runtime } from './program.js';

let current: Runtime | null = null;

export function runtime(): Runtime {
  if (!current) throw new Error('the engine is not initialised: call initEngine(gpu) first');
  return current;
}

export function initEngine(gpu: GpuContext): Runtime {
  current = new Runtime(gpu);
  // a subgroup-matrix tile was checked on the previous device only (engine/mma-check.ts)
  setActiveMma(null, 'subgroup matrices: not prepared (the SIMT kernels run)');
  return current;
}

export function hasEngine(): boolean {
  return current !== null;
}
