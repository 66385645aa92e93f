/**
 * softmaxRows(x): x viewed as [B, D] (B = shape[0], D = the product of the other dimensions), softmax over
 * each row with the max subtracted; the output has x's shape. Backward: dx = y ⊙ (g − Σ g⊙y) per row.
 * Kernels and their layout: src/shaders/softmax.ts (one fused kernel when a row fits one chunk of 4096
 * values, otherwise a stats/partials pass and an apply pass).
 */
import { grid1d } from '../../shaders/common.js';
import {
  SOFTMAX_CHUNK,
  softmaxBwdApplyWGSL,
  softmaxBwdDotWGSL,
  softmaxNormWGSL,
  softmaxStatsWGSL,
} from '../../shaders/softmax.js';
import { record } from '../autograd.js';
import { runtime } from '../runtime.js';
import { empty, type Tensor } from '../tensor.js';

interface RowShape {
  rows: number;
  d: number;
  chunks: number;
}

function rowShape(x: Tensor): RowShape {
  if (x.rank < 2)
    throw new Error(`softmaxRows: ${x.describe()} must have rank ≥ 2 (rows × values), got rank ${x.rank}`);
  const rows = x.shape[0]!;
  const d = x.size / Math.max(rows, 1);
  return { rows, d, chunks: Math.ceil(d / SOFTMAX_CHUNK) };
}

function uniforms(s: RowShape) {
  return { rows: ['u32', s.rows], chunks: ['u32', s.chunks], D: ['u32', s.d] } as const satisfies Record<
    string,
    ['u32', number]
  >;
}

function gradient(y: Tensor, g: Tensor, s: RowShape): Tensor {
  const rt = runtime();
  const dx = empty(y.shape);
  const workgroups = grid1d(s.rows * s.chunks, 1);
  if (s.chunks === 1) {
    rt.run({
      name: 'softmax_bwd',
      key: 'fused',
      inputs: [
        { name: 'y', buffer: y.buffer },
        { name: 'g', buffer: g.buffer },
      ],
      outputs: [{ name: 'dx', buffer: dx.buffer }],
      uniforms: uniforms(s),
      workgroups,
      wgsl: softmaxBwdDotWGSL(true),
    });
    return dx;
  }
  const pd = empty([s.rows * s.chunks]);
  rt.run({
    name: 'softmax_bwd_dot',
    inputs: [
      { name: 'y', buffer: y.buffer },
      { name: 'g', buffer: g.buffer },
    ],
    outputs: [{ name: 'pd', buffer: pd.buffer }],
    uniforms: uniforms(s),
    workgroups,
    wgsl: softmaxBwdDotWGSL(false),
  });
  rt.run({
    name: 'softmax_bwd_apply',
    inputs: [
      { name: 'y', buffer: y.buffer },
      { name: 'g', buffer: g.buffer },
      { name: 'pd', buffer: pd.buffer },
    ],
    outputs: [{ name: 'dx', buffer: dx.buffer }],
    uniforms: uniforms(s),
    workgroups,
    wgsl: softmaxBwdApplyWGSL(),
  });
  pd.dispose();
  return dx;
}

/** Softmax over each row of x viewed as [shape[0], rest]; output of x's shape. */
export function softmaxRows(x: Tensor): Tensor {
  const s = rowShape(x);
  const rt = runtime();
  const y = empty(x.shape);
  if (x.size === 0) return y;
  const workgroups = grid1d(s.rows * s.chunks, 1);
  if (s.chunks === 1) {
    rt.run({
      name: 'softmax_fwd',
      key: 'fused',
      inputs: [{ name: 'x', buffer: x.buffer }],
      outputs: [{ name: 'y', buffer: y.buffer }],
      uniforms: uniforms(s),
      workgroups,
      wgsl: softmaxStatsWGSL(true),
    });
  } else {
    const st = empty([s.rows * s.chunks, 2]);
    rt.run({
      name: 'softmax_stats',
      inputs: [{ name: 'x', buffer: x.buffer }],
      outputs: [{ name: 'st', buffer: st.buffer, type: 'vec2<f32>' }],
      uniforms: uniforms(s),
      workgroups,
      wgsl: softmaxStatsWGSL(false),
    });
    rt.run({
      name: 'softmax_norm',
      inputs: [
        { name: 'x', buffer: x.buffer },
        { name: 'st', buffer: st.buffer, type: 'vec2<f32>' },
      ],
      outputs: [{ name: 'y', buffer: y.buffer }],
      uniforms: uniforms(s),
      workgroups,
      wgsl: softmaxNormWGSL(),
    });
    st.dispose();
  }
  return record('softmax_rows', y, [x], (g) => [gradient(y, g, s)], [y]);
}
