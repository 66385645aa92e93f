/**
 * Reductions: sum, mean, max over all elements (→ [1]) and sumRows, maxRows over each sample
 * (x viewed as [B, D] with B = x.shape[0] → [B]). sum, mean and sumRows have gradients (a broadcast of the
 * upstream gradient); max and maxRows are for scores and have none. Kernels and the accuracy argument are
 * in src/shaders/reduce.ts.
 */
import { grid1d } from '../../shaders/common.js';
import {
  broadcastRowsWGSL,
  chunksOf,
  partialsOf,
  type ReduceOp,
  reduceRowsWGSL,
  reduceSmallRowsWGSL,
  rowGrid,
  SMALL_ROW,
  targetWorkgroups,
} from '../../shaders/reduce.js';
import { record } from '../autograd.js';
import { runtime } from '../runtime.js';
import { empty, type Tensor } from '../tensor.js';

/**
 * Reduce the buffer of `x` viewed as [rows, d] into a fresh [rows] tensor (result · scale for sums).
 * Not recorded for autograd.
 */
function reduceRows(
  op: ReduceOp,
  x: Tensor,
  rows: number,
  d: number,
  scale: number,
  shape: number[],
): Tensor {
  const rt = runtime();
  const out = empty(shape);
  if (d <= SMALL_ROW) {
    rt.run({
      name: `reduce_small_${op}`,
      inputs: [{ name: 'x', buffer: x.buffer }],
      outputs: [{ name: 'out', buffer: out.buffer }],
      uniforms: { D: ['u32', d], R: ['u32', rows], scale: ['f32', scale] },
      workgroups: grid1d(rows),
      wgsl: reduceSmallRowsWGSL(op),
    });
    return out;
  }
  const [gy, gz] = rowGrid(rows);
  const w = partialsOf(d, rows, targetWorkgroups(rt.gpu.report));
  const pass = (input: GPUBuffer, output: GPUBuffer, len: number, gx: number, final: boolean) =>
    rt.run({
      name: `reduce_${op}`,
      key: final ? 'final' : 'partial',
      inputs: [{ name: 'x', buffer: input }],
      outputs: [{ name: 'out', buffer: output }],
      uniforms: {
        D: ['u32', len],
        nChunks: ['u32', chunksOf(len)],
        R: ['u32', rows],
        scale: ['f32', scale],
      },
      workgroups: [gx, gy, gz],
      wgsl: reduceRowsWGSL(op, final),
    });
  if (w === 1) {
    pass(x.buffer, out.buffer, d, 1, true);
    return out;
  }
  const partials = empty([rows, w]);
  pass(x.buffer, partials.buffer, d, w, false);
  pass(partials.buffer, out.buffer, w, 1, true);
  partials.dispose();
  return out;
}

/** dx = g[row] · scale broadcast over rows of d values, shaped like `like`. */
function broadcastRows(g: Tensor, like: Tensor, d: number, scale: number): Tensor {
  const dx = empty(like.shape);
  runtime().run({
    name: 'reduce_broadcast',
    inputs: [{ name: 'g', buffer: g.buffer }],
    outputs: [{ name: 'dx', buffer: dx.buffer }],
    uniforms: { n: ['u32', like.size], D: ['u32', d], scale: ['f32', scale] },
    workgroups: grid1d(like.size),
    wgsl: broadcastRowsWGSL(),
  });
  return dx;
}

function nonEmpty(op: string, x: Tensor): void {
  if (x.size === 0) throw new Error(`${op}: ${x.describe()} has no elements; expected at least one`);
}

function rowsOf(op: string, x: Tensor): { rows: number; d: number } {
  nonEmpty(op, x);
  if (x.rank < 1) throw new Error(`${op}: ${x.describe()} has rank 0; expected [B, ...]`);
  const rows = x.shape[0]!;
  return { rows, d: x.size / rows };
}

/** Sum of all elements → [1]. */
export function sum(x: Tensor): Tensor {
  nonEmpty('sum', x);
  const y = reduceRows('sum', x, 1, x.size, 1, [1]);
  return record('sum', y, [x], (g) => [broadcastRows(g, x, x.size, 1)], []);
}

/** Mean of all elements → [1]. */
export function mean(x: Tensor): Tensor {
  nonEmpty('mean', x);
  const y = reduceRows('sum', x, 1, x.size, 1 / x.size, [1]);
  return record('mean', y, [x], (g) => [broadcastRows(g, x, x.size, 1 / x.size)], []);
}

/** Largest element → [1] (no gradient). */
export function max(x: Tensor): Tensor {
  nonEmpty('max', x);
  return reduceRows('max', x, 1, x.size, 1, [1]);
}

/** Sum of each sample: x viewed as [B, D] (B = x.shape[0]) → [B]. */
export function sumRows(x: Tensor): Tensor {
  const { rows, d } = rowsOf('sumRows', x);
  const y = reduceRows('sum', x, rows, d, 1, [rows]);
  return record('sum_rows', y, [x], (g) => [broadcastRows(g, x, d, 1)], []);
}

/** Largest value of each sample: x viewed as [B, D] → [B] (no gradient; image scores from maps). */
export function maxRows(x: Tensor): Tensor {
  const { rows, d } = rowsOf('maxRows', x);
  return reduceRows('max', x, rows, d, 1, [rows]);
}
