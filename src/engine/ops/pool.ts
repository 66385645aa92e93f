/**
 * Pooling ops: maxPool2d (NCHW, square kernel, padding counts as −∞, floor output size), with the
 * gradient routed to the first maximum of each window. Kernels: src/shaders/pool.ts.
 */

import { grid1d, main1d } from '../../shaders/common.js';
import { maxPoolBackwardWgsl, maxPoolForwardWgsl } from '../../shaders/pool.js';
import { isGradEnabled, record } from '../autograd.js';
import type { ScalarType } from '../program.js';
import { runtime } from '../runtime.js';
import { empty, type Tensor } from '../tensor.js';

export interface MaxPoolOptions {
  kernel: number;
  stride: number;
  padding: number;
}

export function maxPool2d(x: Tensor, opts: MaxPoolOptions): Tensor {
  const { kernel: k, stride: s, padding: p } = opts;
  if (x.rank !== 4) throw new Error(`maxPool2d: x must be NCHW (rank 4), got ${x.describe()}`);
  if (!Number.isInteger(k) || k < 1 || !Number.isInteger(s) || s < 1 || !Number.isInteger(p) || p < 0)
    throw new Error(`maxPool2d: kernel ${k}, stride ${s} must be positive integers and padding ${p} ≥ 0`);
  if (2 * p > k)
    throw new Error(`maxPool2d: padding ${p} must be at most half the kernel size ${k} (as in PyTorch)`);
  const [n, c, h, w] = x.shape as [number, number, number, number];
  const oh = Math.floor((h + 2 * p - k) / s) + 1;
  const ow = Math.floor((w + 2 * p - k) / s) + 1;
  if (oh < 1 || ow < 1)
    throw new Error(`maxPool2d: input ${x.describe()} is smaller than the ${k}×${k} window (padding ${p})`);
  const withArg = isGradEnabled() && x.requiresGrad;
  if (withArg && x.dtype !== 'f32')
    throw new Error(
      `maxPool2d: ${x.describe()} is ${x.dtype} and requires a gradient; only f32 pools have one`,
    );
  // the window's maximum is one of its values, so an f16 input gives an exact f16 output
  const y = empty([n, c, oh, ow], x.dtype);
  const arg = withArg ? empty([n, c, oh, ow]) : null;
  const uniforms: Record<string, [ScalarType, number]> = {
    n: ['u32', y.size],
    planes: ['u32', n * c],
    h: ['u32', h],
    w: ['u32', w],
    oh: ['u32', oh],
    ow: ['u32', ow],
    k: ['u32', k],
    stride: ['u32', s],
    pad: ['u32', p],
  };
  const rt = runtime();
  rt.run({
    name: 'maxpool_fwd',
    key: withArg ? 'arg' : 'noarg',
    inputs: [{ name: 'x', buffer: x.buffer, type: x.dtype }],
    outputs: [
      { name: 'y', buffer: y.buffer, type: y.dtype },
      ...(arg ? [{ name: 'arg', buffer: arg.buffer, type: 'u32' }] : []),
    ],
    uniforms: { ...uniforms },
    workgroups: grid1d(y.size),
    wgsl: (hd) => maxPoolForwardWgsl(hd, main1d(), withArg),
  });
  if (!arg) return y;
  record(
    'maxPool2d',
    y,
    [x],
    (gy) => {
      const dx = empty(x.shape);
      rt.run({
        name: 'maxpool_bwd',
        inputs: [
          { name: 'gy', buffer: gy.buffer },
          { name: 'arg', buffer: arg.buffer, type: 'u32' },
        ],
        outputs: [{ name: 'dx', buffer: dx.buffer }],
        uniforms: { ...uniforms, n: ['u32', x.size] },
        workgroups: grid1d(x.size),
        wgsl: (hd) => maxPoolBackwardWgsl(hd, main1d()),
      });
      arg.dispose();
      return [dx];
    },
    [],
  );
  return y;
}
