/**
 * Gaussian smoothing of anomaly maps: scipy.ndimage.gaussian_filter semantics on the last two dims.
 * Evaluation only — there is no backward. Kernels in src/shaders/blur.ts.
 */
import {
  blurDirectWgsl,
  blurTiledHWgsl,
  blurTiledVWgsl,
  H_TILE,
  MAX_TILED_RADIUS,
  V_TILE,
} from '../../shaders/blur.js';
import { grid1d } from '../../shaders/common.js';
import { isGradEnabled } from '../autograd.js';
import { runtime } from '../runtime.js';
import { empty, type Tensor, tensor } from '../tensor.js';

/** scipy's `_gaussian_kernel1d(sigma, 0, radius)`: exp(−t²/(2σ²)), t = −R..R, normalised (float64). */
export function gaussianWeights(sigma: number, radius: number): Float64Array {
  const w = new Float64Array(2 * radius + 1);
  let sum = 0;
  for (let t = -radius; t <= radius; t++) {
    const v = Math.exp((-0.5 / (sigma * sigma)) * t * t);
    w[t + radius] = v;
    sum += v;
  }
  for (let i = 0; i < w.length; i++) w[i]! /= sum;
  return w;
}

/** scipy's default radius: int(truncate·σ + 0.5). */
export function gaussianRadius(sigma: number, truncate: number): number {
  return Math.floor(truncate * sigma + 0.5);
}

/** One 1-D correlation pass along H ('v') or W ('h') of src [planes, h, w] into dst. */
function pass(
  axis: 'v' | 'h',
  src: Tensor,
  dst: Tensor,
  kern: Tensor,
  planes: number,
  h: number,
  w: number,
  r: number,
): void {
  const inputs = [
    { name: 'src', buffer: src.buffer },
    { name: 'kern', buffer: kern.buffer },
  ];
  const outputs = [{ name: 'dst', buffer: dst.buffer }];
  if (r <= MAX_TILED_RADIUS) {
    const t = axis === 'v' ? V_TILE : H_TILE;
    const tilesX = Math.ceil(w / t.cols);
    const tilesY = Math.ceil(h / t.rows);
    const groups = planes * tilesX * tilesY;
    runtime().run({
      name: `blur_tiled_${axis}`,
      key: `r${r}`,
      inputs,
      outputs,
      uniforms: {
        groups: ['u32', groups],
        tiles_x: ['u32', tilesX],
        tiles_y: ['u32', tilesY],
        h: ['u32', h],
        w: ['u32', w],
      },
      workgroups: grid1d(groups, 1),
      wgsl: (hd) => (axis === 'v' ? blurTiledVWgsl(hd, r) : blurTiledHWgsl(hd, r)),
    });
    return;
  }
  const n = planes * h * w;
  runtime().run({
    name: `blur_direct_${axis}`,
    inputs,
    outputs,
    uniforms: {
      n: ['u32', n],
      planes: ['u32', planes],
      h: ['u32', h],
      w: ['u32', w],
      r: ['u32', r],
    },
    workgroups: grid1d(n),
    wgsl: (hd) => blurDirectWgsl(hd, axis),
  });
}

/**
 * scipy.ndimage.gaussian_filter(x, sigma, truncate=truncate) applied to each image of x [..., H, W]
 * separately (σ along H and W only): radius R = int(truncate·σ + 0.5) (16 for the defaults), weights
 * ∝ exp(−t²/(2σ²)) for t = −R..R normalised to sum 1, the H pass then the W pass, boundary mode 'reflect'
 * (d c b a | a b c d | d c b a, the edge sample repeated; when R exceeds the image it keeps reflecting
 * periodically, as scipy does). Computes in float32 (scipy: float64).
 *
 * Evaluation only: there is NO backward. Calling it on a tensor that requires a gradient while
 * recording is an error (run the evaluation under `noGrad`), rather than silently dropping the gradient.
 */
export function gaussianBlur(x: Tensor, sigma = 4, truncate = 4): Tensor {
  if (x.rank < 2)
    throw new Error(
      `gaussianBlur: x ${x.describe()} must have at least 2 dims [..., H, W], got rank ${x.rank}`,
    );
  if (!(Number.isFinite(sigma) && sigma > 0))
    throw new Error(`gaussianBlur: sigma must be a positive number, got ${sigma}`);
  if (!(Number.isFinite(truncate) && truncate >= 0))
    throw new Error(`gaussianBlur: truncate must be a non-negative number, got ${truncate}`);
  if (x.requiresGrad && isGradEnabled())
    throw new Error(
      `gaussianBlur: ${x.describe()} requires a gradient, but gaussianBlur has no backward (evaluation only); ` +
        'call it inside noGrad(() => ...)',
    );
  const h = x.shape[x.rank - 2]!;
  const w = x.shape[x.rank - 1]!;
  const y = empty(x.shape);
  if (x.size === 0) return y;
  const planes = x.size / (h * w);
  const r = gaussianRadius(sigma, truncate);
  const kern = tensor(Float32Array.from(gaussianWeights(sigma, r)), [2 * r + 1]);
  const mid = empty(x.shape);
  pass('v', x, mid, kern, planes, h, w, r);
  pass('h', mid, y, kern, planes, h, w, r);
  mid.dispose();
  kern.dispose();
  return y;
}
