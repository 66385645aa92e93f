/**
 * The engine's public entry point: tensors, memory, programs, autograd and every op.
 * Platform-neutral: Node and the browser get their GpuContext from src/platform and call initEngine.
 */
export * from './autograd.js';
export * from './device.js';
export * from './flags.js';
export * from './memory.js';
export * from './ops/elementwise.js';
export * from './program.js';
export * from './runtime.js';
export * from './tensor.js';
