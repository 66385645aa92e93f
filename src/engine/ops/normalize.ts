/**
 * normalizeChannels(x): every pixel's channel vector scaled to unit length, x [B, C, ...] → same shape.
 * With unit vectors ½‖a − b‖² = 1 − cos(a, b), which is how `--ssot pairwise` measures transport costs in
 * the cosine geometry the rest of RD++ uses (src/model/rdpp.ts). Kernels: src/shaders/normalize.ts.
 */
import { grid1d } from '../../shaders/common.js';
import { normalizeBackwardWGSL, normalizeForwardWGSL } from '../../shaders/normalize.js';
import { record } from '../autograd.js';
import { runtime } from '../runtime.js';
import { empty, type Tensor } from '../tensor.js';

export function normalizeChannels(x: Tensor): Tensor {
  if (x.rank < 2 || x.size === 0)
    throw new Error(`normalizeChannels: expected a non-empty tensor [B, C, ...], got ${x.describe()}`);
  const B = x.shape[0]!;
  const C = x.shape[1]!;
  const P = x.size / (B * C);
  const cols = B * P;
  const uniforms: Record<string, ['u32', number]> = { cols: ['u32', cols], C: ['u32', C], P: ['u32', P] };
  const y = empty(x.shape);
  const norm = empty([cols]);
  runtime().run({
    name: 'normalize_channels',
    inputs: [{ name: 'x', buffer: x.buffer }],
    outputs: [
      { name: 'y', buffer: y.buffer },
      { name: 'norm', buffer: norm.buffer },
    ],
    uniforms,
    workgroups: grid1d(cols),
    wgsl: normalizeForwardWGSL,
  });
  record(
    'normalize_channels',
    y,
    [x],
    (g) => {
      const dx = empty(x.shape);
      runtime().run({
        name: 'normalize_channels_bwd',
        inputs: [
          { name: 'y', buffer: y.buffer },
          { name: 'norm', buffer: norm.buffer },
          { name: 'g', buffer: g.buffer },
        ],
        outputs: [{ name: 'dx', buffer: dx.buffer }],
        uniforms,
        workgroups: grid1d(cols),
        wgsl: normalizeBackwardWGSL,
      });
      norm.dispose();
      return [dx];
    },
    [y],
  );
  if (!y.node) norm.dispose();
  return y;
}
