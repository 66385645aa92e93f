/**
 * The engine's public entry point: tensors, memory, programs, autograd and every op.
 * Platform-neutral: Node and the browser get their GpuContext from src/platform and call initEngine.
 */
export * from './autograd.js';
export * from './derived.js';
export * from './device.js';
export * from './flags.js';
export * from './graph.js';
export * from './memory.js';
export * from './mma.js';
export * from './mma-check.js';
export * from './ops/blur.js';
export * from './ops/cast.js';
export * from './ops/conv.js';
export * from './ops/cosine.js';
export * from './ops/elementwise.js';
export * from './ops/losses.js';
export * from './ops/norm.js';
export * from './ops/normalize.js';
export * from './ops/permute.js';
export * from './ops/pool.js';
export * from './ops/reduce.js';
export * from './ops/resize.js';
export * from './ops/shape.js';
export * from './ops/sinkhorn.js';
export * from './ops/sinkhorn-clouds.js';
export * from './ops/softmax.js';
export * from './optim.js';
export * from './precision.js';
export * from './profiler.js';
export * from './program.js';
export * from './runtime.js';
export * from './tensor.js';
export * from './tile-table.js';
