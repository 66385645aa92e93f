/**
 * cast: a tensor's values in another storage type (engine/tensor.ts DType). f32 → f16 rounds to the
 * nearest half (WGSL lets the device pick either neighbour when a value lies between two; every GPU we
 * know rounds to nearest even), f16 → f32 is exact.
 *
 * Gradients are always f32 (an f16 tensor's gradient too, as AMP keeps float32 master gradients for what
 * it feeds from half activations), so cast's backward passes the gradient through unchanged: d/dx of a
 * rounding is taken as 1, the straight-through rule autocast applies to its own casts. Training under
 * PRECISION=f16 uses it where the student's f16 activations meet the float32 losses (model/rdpp.ts).
 */
import { grid1d, main1d } from '../../shaders/common.js';
import { record } from '../autograd.js';
import { runtime } from '../runtime.js';
import { BYTES, type DType, empty, type Tensor } from '../tensor.js';

export function cast(x: Tensor, dtype: DType): Tensor {
  if ((dtype === 'f16' || x.dtype === 'f16') && !runtime().gpu.has('shader-f16'))
    throw new Error(
      `cast ${x.dtype} → ${dtype}: f16 tensors need the device feature shader-f16, which this GPU (or its WebGPU implementation) does not offer`,
    );
  // a new tensor even when the type is the same, so the caller owns (and may release) both (a view
  // records its own gradient)
  if (x.dtype === dtype) return x.view(x.shape);
  const y = empty(x.shape, dtype);
  runtime().run({
    name: 'cast',
    inputs: [{ name: 'x', buffer: x.buffer, type: x.dtype }],
    outputs: [{ name: 'y', buffer: y.buffer, type: dtype }],
    uniforms: { n: ['u32', x.size] },
    workgroups: grid1d(x.size),
    cost: { bytes: x.size * (BYTES[x.dtype] + BYTES[dtype]) },
    wgsl: (h) => `${h}
${main1d()}
  if (i >= u.n) { return; }
  y[i] = ${dtype}(x[i]);
}`,
  });
  return record('cast', y, [x], (g) => [g.view(g.shape)], []);
}
