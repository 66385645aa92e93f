/**
 * Elementwise ops, declared once in tables (after webgpu-torch's op_table): each row gives the WGSL
 * forward expression and the gradient expression; one generator makes every kernel, one function makes
 * every public op with its backward.
 *
 * Unary:  y = f(x), dx = g * f'(x)          (expressions over x, y, g and the uniform `a`)
 * Binary: y = f(x, z) on equal shapes       (no broadcasting: RD++ never needs it)
 */

import { convert, grid1d, main1d } from '../../shaders/common.js';
import { record, setBackwardHooks } from '../autograd.js';
import { runtime } from '../runtime.js';
import { BYTES, type DType, empty, type Tensor } from '../tensor.js';

interface UnaryRow {
  /** forward: WGSL expression of x (and scalar a) */
  f: string;
  /** gradient: WGSL expression of x, y, g (and a); omitted = not differentiable */
  df?: string;
}

export const UNARY = {
  relu: { f: 'max(x, 0.0)', df: 'select(0.0, g, x > 0.0)' },
  leaky_relu: { f: 'select(a * x, x, x > 0.0)', df: 'select(a * g, g, x > 0.0)' },
  scale: { f: 'a * x', df: 'a * g' },
  add_scalar: { f: 'x + a', df: 'g' },
  neg: { f: '-x', df: '-g' },
  exp: { f: 'exp(x)', df: 'g * y' },
  one_minus: { f: '1.0 - x', df: '-g' },
  fill: { f: 'a' },
} satisfies Record<string, UnaryRow>;

export type UnaryName = keyof typeof UNARY;

const BINARY = {
  add: { f: 'x + z', dx: 'g', dz: 'g' },
  sub: { f: 'x - z', dx: 'g', dz: '-g' },
  mul: { f: 'x * z', dx: 'g * z', dz: 'g * x' },
} as const;

export type BinaryName = keyof typeof BINARY;

/**
 * out[i] = expr over the inputs' values at i, computed in f32, stored as `dtype` (f32 unless said). Inputs
 * are read as f32 (the runtime refuses an f16 tensor, naming cast) unless `halves`: then an f16 input (an
 * activation under PRECISION=f16) is widened where it is read — only the ops that say so take f16.
 */
function launchMap(
  name: string,
  expr: string,
  ins: Tensor[],
  n: number,
  a = 0,
  out?: Tensor,
  o: { dtype?: DType; halves?: boolean } = {},
): Tensor {
  const y = out ?? empty(ins[0]?.shape ?? [n], o.dtype ?? 'f32');
  const vars = ['x', 'z', 'g', 'y'].slice(0, ins.length);
  const types = ins.map((t) => (o.halves ? t.dtype : 'f32'));
  runtime().run({
    name: `map_${name}`,
    key: `${ins.length}`,
    inputs: ins.map((t, i) => ({ name: `in_${vars[i]}`, buffer: t.buffer, type: types[i] })),
    outputs: [{ name: 'out', buffer: y.buffer, type: y.dtype }],
    uniforms: { n: ['u32', n], a: ['f32', a] },
    workgroups: grid1d(n),
    cost: { bytes: n * (ins.reduce((b, t) => b + BYTES[t.dtype], 0) + BYTES[y.dtype]) },
    wgsl: (h) => `${h}
${main1d()}
  if (i >= u.n) { return; }
  let a = u.a;
${vars.map((v, k) => `  let ${v} = ${convert(`in_${v}[i]`, types[k]!, 'f32')};`).join('\n')}
  out[i] = ${convert(`(${expr})`, 'f32', y.dtype)};
}`,
  });
  return y;
}

/** y = f(x) for a row of the UNARY table, with its gradient recorded. */
export function unary(name: UnaryName, x: Tensor, a = 0): Tensor {
  const row: UnaryRow = UNARY[name];
  const y = launchMap(name, row.f, [x], x.size, a);
  if (!row.df) return y;
  const needsY = /\by\b/.test(row.df);
  const needsX = /\bx\b/.test(row.df);
  const saved = [...(needsX ? [x] : []), ...(needsY ? [y] : [])];
  return record(
    name,
    y,
    [x],
    (g) => {
      // grad kernel inputs in the order x, z (unused), g, y; g stands in for values the rule does not read
      const xv = needsX ? x : g;
      const ins = needsY ? [xv, xv, g, y] : [xv, xv, g];
      return [launchMap(`d_${name}`, row.df!, ins, x.size, a)];
    },
    saved,
  );
}

export const relu = (x: Tensor) => unary('relu', x);
export const leakyRelu = (x: Tensor, slope = 0.01) => unary('leaky_relu', x, slope);
export const scale = (x: Tensor, a: number) => unary('scale', x, a);
export const addScalar = (x: Tensor, a: number) => unary('add_scalar', x, a);
export const oneMinus = (x: Tensor) => unary('one_minus', x);

/** A tensor filled with `value`. */
export function full(shape: readonly number[], value: number): Tensor {
  const y = empty(shape);
  launchMap('fill', UNARY.fill.f, [], y.size, value, y);
  return y;
}
export const zeros = (shape: readonly number[]) => full(shape, 0);
export const ones = (shape: readonly number[]) => full(shape, 1);

function sameShape(op: string, a: Tensor, b: Tensor): void {
  if (a.size !== b.size || a.shape.join() !== b.shape.join())
    throw new Error(`${op}: shapes differ: ${a.describe()} vs ${b.describe()}`);
}

/** y = f(x, z) elementwise on equal shapes. */
export function binary(name: BinaryName, x: Tensor, z: Tensor): Tensor {
  sameShape(name, x, z);
  const row = BINARY[name];
  const y = launchMap(name, row.f, [x, z], x.size);
  const readsValues = ![row.dx, row.dz].every((e: string) => e === 'g' || e === '-g');
  return record(
    name,
    y,
    [x, z],
    (g) => [grad(name, 'x', row.dx, x, z, g), grad(name, 'z', row.dz, x, z, g)],
    readsValues ? [x, z] : [],
  );
}

/** One input's gradient of a binary op: a view of g when it is g itself, else a kernel. */
function grad(name: string, which: 'x' | 'z', expr: string, x: Tensor, z: Tensor, g: Tensor): Tensor {
  if (expr === 'g') return g.view(g.shape);
  // ±g reads no input values: g stands in for them (they may have been released)
  const ins = expr === '-g' ? [g, g, g] : [x, z, g];
  return launchMap(`d${which}_${name}`, expr, ins, x.size);
}

export const add = (x: Tensor, z: Tensor) => binary('add', x, z);
export const sub = (x: Tensor, z: Tensor) => binary('sub', x, z);
export const mul = (x: Tensor, z: Tensor) => binary('mul', x, z);

/**
 * relu(x + z) in one kernel (the residual join of every ResNet block). Its backward reads only the
 * output (y > 0 ⇔ x + z > 0), so the sum is never stored and x, z can be freed right away — what
 * PyTorch's in-place ReLU achieves. Gradients equal add → relu exactly. x and z are both f32 or both f16
 * (then y is f16: the sum is formed in f32 and rounded once, and the backward's y > 0 tests the rounded
 * value — a sum below f16's smallest subnormal, 6e-8, counts as 0, as in PyTorch's half ReLU).
 */
export function addRelu(x: Tensor, z: Tensor): Tensor {
  sameShape('addRelu', x, z);
  if (x.dtype !== z.dtype)
    throw new Error(`addRelu: ${x.describe()} and ${z.describe()} have different storage types (cast one)`);
  // stored like its inputs: the residual stream of a network whose activations are f16 stays f16
  const y = launchMap('add_relu', 'max(x + z, 0.0)', [x, z], x.size, 0, undefined, {
    dtype: x.dtype,
    halves: true,
  });
  return record(
    'add_relu',
    y,
    [x, z],
    (g) => {
      const d = launchMap('d_add_relu', 'select(0.0, g, y > 0.0)', [g, g, g, y], x.size, 0, undefined, {
        halves: true,
      });
      return [d, d.view(d.shape)];
    },
    [y],
  );
}

/** dst += src, in place, not recorded (gradient accumulation, optimizer internals). */
export function addInto(dst: Tensor, src: Tensor): void {
  sameShape('addInto', dst, src);
  runtime().run({
    name: 'add_into',
    inputs: [{ name: 'src', buffer: src.buffer }],
    outputs: [{ name: 'dst', buffer: dst.buffer }],
    uniforms: { n: ['u32', dst.size] },
    workgroups: grid1d(dst.size),
    wgsl: (h) => `${h}
${main1d()}
  if (i >= u.n) { return; }
  dst[i] = dst[i] + src[i];
}`,
  });
}

/** A copy with its own buffer (not recorded). */
export function clone(x: Tensor): Tensor {
  const y = empty(x.shape);
  runtime().copy(x.buffer, 0, y.buffer, 0, x.byteLength);
  return y;
}

setBackwardHooks({ add: (a, b) => binary('add', a, b), addInto, ones, clone });
