/**
 * Shape ops: concat (along any axis; RD++ concatenates OCBE features on channels), slice (a range along
 * one axis) and reshape (a view with autograd). All data movement is one strided block copy per slab
 * (src/shaders/pool.ts, `blockCopyWgsl`); the backward of concat is a slice of the gradient per input
 * and the backward of slice is the gradient copied into zeros.
 */

import { grid1d, main1d } from '../../shaders/common.js';
import { blockCopyWgsl } from '../../shaders/pool.js';
import { record } from '../autograd.js';
import { runtime } from '../runtime.js';
import { empty, numel, type Tensor } from '../tensor.js';
import { zeros } from './elementwise.js';

interface Block {
  outer: number;
  inner: number;
  srcStride: number;
  srcOff: number;
  dstStride: number;
  dstOff: number;
}

/** dst[o·dstStride + dstOff + j] = src[o·srcStride + srcOff + j] (o < outer, j < inner), in elements. */
function blockCopy(src: Tensor, dst: Tensor, b: Block): void {
  if (b.outer * b.inner === 0) return;
  const v = [b.inner, b.srcStride, b.srcOff, b.dstStride, b.dstOff].every((e) => e % 4 === 0) ? 4 : 1;
  // a copy of the stored values: f16 tensors (inference activations) move as halves
  const T = v === 4 ? `vec4<${src.dtype}>` : src.dtype;
  const n = (b.outer * b.inner) / v;
  runtime().run({
    name: 'block_copy',
    key: `v${v}`,
    inputs: [{ name: 'src', buffer: src.buffer, type: T }],
    outputs: [{ name: 'dst', buffer: dst.buffer, type: T }],
    uniforms: {
      n: ['u32', n],
      inner: ['u32', b.inner / v],
      src_stride: ['u32', b.srcStride / v],
      src_off: ['u32', b.srcOff / v],
      dst_stride: ['u32', b.dstStride / v],
      dst_off: ['u32', b.dstOff / v],
    },
    workgroups: grid1d(n),
    wgsl: (h) => blockCopyWgsl(h, main1d()),
  });
}

function normAxis(op: string, axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= rank)
    throw new Error(`${op}: axis ${axis} is out of range for rank ${rank}`);
  return a;
}

/** Concatenate along `axis` (negative counts from the end). All other dimensions must agree. */
export function concat(tensors: readonly Tensor[], axis: number): Tensor {
  const first = tensors[0];
  if (!first) throw new Error('concat: needs at least one tensor');
  const a = normAxis('concat', axis, first.rank);
  for (const t of tensors) {
    const ok = t.rank === first.rank && t.shape.every((d, i) => i === a || d === first.shape[i]);
    if (!ok)
      throw new Error(
        `concat: ${t.describe()} does not match ${first.describe()} in every dimension except axis ${a}`,
      );
    if (t.dtype !== first.dtype)
      throw new Error(`concat: ${t.describe()} and ${first.describe()} have different storage types`);
  }
  const shape = [...first.shape];
  shape[a] = tensors.reduce((s, t) => s + t.shape[a]!, 0);
  const outer = numel(first.shape.slice(0, a));
  const y = empty(shape, first.dtype);
  const stride = numel(shape.slice(a));
  const offsets: number[] = [];
  let off = 0;
  for (const t of tensors) {
    const inner = numel(t.shape.slice(a));
    offsets.push(off);
    blockCopy(t, y, { outer, inner, srcStride: inner, srcOff: 0, dstStride: stride, dstOff: off });
    off += inner;
  }
  return record(
    'concat',
    y,
    tensors,
    (g) =>
      tensors.map((t, k) => {
        if (!t.requiresGrad) return null;
        const dt = empty(t.shape);
        const inner = numel(t.shape.slice(a));
        blockCopy(g, dt, {
          outer,
          inner,
          srcStride: stride,
          srcOff: offsets[k]!,
          dstStride: inner,
          dstOff: 0,
        });
        return dt;
      }),
    [],
  );
}

/** x[..., start:end, ...] along `axis` (a copy). */
export function slice(x: Tensor, axis: number, start: number, end: number): Tensor {
  const a = normAxis('slice', axis, x.rank);
  const len = x.shape[a]!;
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end > len || start > end)
    throw new Error(`slice: range [${start}, ${end}) is not inside axis ${a} of ${x.describe()}`);
  const shape = [...x.shape];
  shape[a] = end - start;
  const y = empty(shape);
  const outer = numel(x.shape.slice(0, a));
  const after = numel(x.shape.slice(a + 1));
  const stride = len * after;
  const inner = (end - start) * after;
  const block = { outer, inner, srcStride: stride, srcOff: start * after, dstStride: inner, dstOff: 0 };
  blockCopy(x, y, block);
  return record(
    'slice',
    y,
    [x],
    (g) => {
      const dx = zeros(x.shape);
      blockCopy(g, dx, {
        outer,
        inner,
        srcStride: inner,
        srcOff: 0,
        dstStride: stride,
        dstOff: start * after,
      });
      return [dx];
    },
    [],
  );
}

/** A view of x with another shape (one −1 allowed); `Tensor.view` itself records the gradient. */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  return x.view(shape);
}
