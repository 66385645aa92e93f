/**
 * Bilinear resize (align_corners = True) of the last two dims, with its backward: the anomaly-map
 * upsampling of RD++ (spec §7.3: 64², 32², 16² cosine maps → 256²). Kernels in src/shaders/resize.ts.
 */
import { grid1d } from '../../shaders/common.js';
import { bilinearAdjointWgsl, bilinearForwardWgsl } from '../../shaders/resize.js';
import { record } from '../autograd.js';
import { runtime } from '../runtime.js';
import { empty, type Tensor } from '../tensor.js';

function checkSize(what: string, v: number): void {
  if (!Number.isInteger(v) || v < 1)
    throw new Error(`resizeBilinear: ${what} must be a positive integer, got ${v}`);
}

/** gi = adjoint of the 1-D interpolation along the middle axis of go viewed as [outer, lout, inner]. */
function adjoint1d(go: Tensor, outer: number, lout: number, inner: number, lin: number): Tensor {
  const gi = empty([outer, lin, inner]);
  const n = gi.size;
  runtime().run({
    name: 'bilinear_adjoint',
    inputs: [{ name: 'go', buffer: go.buffer }],
    outputs: [{ name: 'gi', buffer: gi.buffer }],
    uniforms: {
      n: ['u32', n],
      outer: ['u32', outer],
      lin: ['u32', lin],
      lout: ['u32', lout],
      inner: ['u32', inner],
    },
    workgroups: grid1d(n),
    wgsl: bilinearAdjointWgsl,
  });
  return gi;
}

/**
 * PyTorch `F.interpolate(x, size=[outH, outW], mode='bilinear', align_corners=True)` on the last two
 * dims of x, [N, C, H, W] or [N, H, W]: source coordinate u·(in − 1)/(out − 1) per axis (0 when
 * out = 1), the standard 4-tap bilinear blend. Differentiable in x (the backward is the exact adjoint,
 * computed by gathering, no atomics).
 */
export function resizeBilinear(x: Tensor, outH: number, outW: number): Tensor {
  if (x.rank !== 3 && x.rank !== 4)
    throw new Error(
      `resizeBilinear: x ${x.describe()} must be [N, C, H, W] or [N, H, W] (rank 4 or 3), got rank ${x.rank}`,
    );
  checkSize('outH', outH);
  checkSize('outW', outW);
  const ih = x.shape[x.rank - 2]!;
  const iw = x.shape[x.rank - 1]!;
  if (ih < 1 || iw < 1) throw new Error(`resizeBilinear: x ${x.describe()} has an empty spatial dim`);
  // the kernels form o·(in − 1) and (t + 1)·(out − 1) in u32
  if ((ih + 1) * (outH + 1) >= 2 ** 32 || (iw + 1) * (outW + 1) >= 2 ** 32)
    throw new Error(`resizeBilinear: ${x.describe()} → ${outH}×${outW} exceeds the 32-bit index range`);
  const planes = x.size / (ih * iw);
  const outShape = [...x.shape.slice(0, -2), outH, outW];
  const y = empty(outShape);
  const n = y.size;
  runtime().run({
    name: 'bilinear_forward',
    inputs: [{ name: 'x', buffer: x.buffer }],
    outputs: [{ name: 'y', buffer: y.buffer }],
    uniforms: {
      n: ['u32', n],
      planes: ['u32', planes],
      ih: ['u32', ih],
      iw: ['u32', iw],
      oh: ['u32', outH],
      ow: ['u32', outW],
    },
    workgroups: grid1d(n),
    wgsl: bilinearForwardWgsl,
  });
  return record(
    'resize_bilinear',
    y,
    [x],
    (g) => {
      // along W: [planes·outH, outW, 1] → [planes·outH, iw, 1]; then along H: [planes, outH, iw] → [planes, ih, iw]
      const gw = adjoint1d(g, planes * outH, outW, 1, iw);
      const gx = adjoint1d(gw, planes, outH, iw, ih);
      gw.dispose();
      const dx = gx.view(x.shape);
      gx.dispose();
      return [dx];
    },
    [],
  );
}
