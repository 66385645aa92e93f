/**
 * Cosine similarities with PyTorch semantics (spec §4.0):
 *   cosineMap(a, b):  [B, C, ...] × 2 → [B, ...], cosine over channels at every pixel;
 *   cosineRows(a, b): a, b viewed as [B, D] → [B], one cosine per sample over all D values.
 * cos = a·b / (max(‖a‖, 1e-8)·max(‖b‖, 1e-8)); gradients for both inputs. Inputs may be f16 (activations
 * under PRECISION=f16), widened where every kernel reads them; cosines, norms and gradients are f32.
 *
 * The output tensor's buffer also holds the squared norms behind the n cosines (the "record" of
 * src/shaders/cosine.ts), so the backward needs nothing but the output and the inputs. The launch helpers
 * are shared with the fused losses in ./losses.ts through `cosineInternals`.
 */
import { grid1d } from '../../shaders/common.js';
import {
  type CosForm,
  cosLossWGSL,
  cosMapBwdWGSL,
  cosMapWGSL,
  cosRowsBwdWGSL,
  cosRowsWGSL,
  type GradMode,
  type LossTerm,
  mapSlices,
  type Outs,
} from '../../shaders/cosine.js';
import {
  CHUNK,
  chunksOf,
  partialsOf,
  reduceRowsWGSL,
  rowGrid,
  targetWorkgroups,
} from '../../shaders/reduce.js';
import { record } from '../autograd.js';
import type { Program } from '../program.js';
import { runtime } from '../runtime.js';
import { empty, Storage, Tensor } from '../tensor.js';

type Uniforms = NonNullable<Program['uniforms']>;

/** Where a forward writes its record: buffer, offset of the cosines, number of slots, first slot. */
interface Target {
  buffer: GPUBuffer;
  off: number;
  n: number;
  slot0: number;
}

/**
 * A tensor of shape `shape` whose buffer holds a whole record: `off` leading values, n cosines, 2n squared
 * norms (the tensor's own elements are the first of them; the rest is freed with it).
 */
function recordTensor(off: number, n: number, shape: number[]): Tensor {
  const bytes = (off + 3 * n) * 4;
  return new Tensor(shape, new Storage(runtime().pool.acquire(bytes), bytes));
}

function rowsUniforms(d: number, rows: number, t: Omit<Target, 'buffer'>): Uniforms {
  return {
    D: ['u32', d],
    nChunks: ['u32', chunksOf(d)],
    R: ['u32', rows],
    off: ['u32', t.off],
    n: ['u32', t.n],
    slot0: ['u32', t.slot0],
  };
}

/** Per-row cosines of a, b viewed as [rows, d] into the record `t` (slots t.slot0 ...). */
function rowsForward(form: CosForm, a: Tensor, b: Tensor, rows: number, d: number, t: Target): void {
  const rt = runtime();
  const [gy, gz] = rowGrid(rows);
  const w = partialsOf(d, rows, targetWorkgroups(rt.gpu.report));
  const ab = [
    { name: 'a', buffer: a.buffer, type: a.dtype },
    { name: 'b', buffer: b.buffer, type: b.dtype },
  ];
  const rec = [{ name: 'rec', buffer: t.buffer }];
  if (w === 1) {
    rt.run({
      name: 'cos_rows',
      key: `${form}|ab|record`,
      inputs: ab,
      outputs: rec,
      uniforms: rowsUniforms(d, rows, t),
      workgroups: [1, gy, gz],
      wgsl: cosRowsWGSL(form, 'ab', 'record', a.dtype, b.dtype),
    });
    return;
  }
  const part = empty([rows * w * 4]);
  rt.run({
    name: 'cos_rows',
    key: `${form}|ab|partials`,
    inputs: ab,
    outputs: [{ name: 'part', buffer: part.buffer, type: 'vec4<f32>' }],
    uniforms: rowsUniforms(d, rows, t),
    workgroups: [w, gy, gz],
    wgsl: cosRowsWGSL(form, 'ab', 'partials', a.dtype, b.dtype),
  });
  rt.run({
    name: 'cos_rows',
    key: `${form}|partials|record`,
    inputs: [{ name: 'p', buffer: part.buffer, type: 'vec4<f32>' }],
    outputs: rec,
    uniforms: rowsUniforms(w, rows, t),
    workgroups: [1, gy, gz],
    wgsl: cosRowsWGSL(form, 'partials', 'record'),
  });
  part.dispose();
}

/** Gradient outputs wanted: fresh tensors shaped like a / b, or null. */
function gradOutputs(a: Tensor, b: Tensor, wantA: boolean, wantB: boolean) {
  const da = wantA ? empty(a.shape) : null;
  const db = wantB ? empty(b.shape) : null;
  const outs: Outs = wantA && wantB ? 'ab' : wantA ? 'a' : 'b';
  const bindings = [];
  if (da) bindings.push({ name: 'da', buffer: da.buffer });
  if (db) bindings.push({ name: 'db', buffer: db.buffer });
  return { da, db, outs, bindings };
}

interface BackwardArgs {
  mode: GradMode;
  /** the record buffer written by the forward */
  rec: GPUBuffer;
  /** the upstream gradient: per cosine (mode `each`) or the loss's [1] */
  g: Tensor;
  /** loss weight and margin (modes oneMinus / hinge) */
  w?: number;
  margin?: number;
  wantA: boolean;
  wantB: boolean;
}

/** da, db of per-row cosines (see rowsForward) given the upstream gradient. */
function rowsBackward(
  form: CosForm,
  a: Tensor,
  b: Tensor,
  rows: number,
  d: number,
  t: Omit<Target, 'buffer'>,
  x: BackwardArgs,
): [Tensor | null, Tensor | null] {
  if (!x.wantA && !x.wantB) return [null, null];
  const { da, db, outs, bindings } = gradOutputs(a, b, x.wantA, x.wantB);
  const [gy, gz] = rowGrid(rows);
  runtime().run({
    name: 'cos_rows_bwd',
    key: `${form}|${x.mode}|${outs}`,
    inputs: [
      { name: 'a', buffer: a.buffer, type: a.dtype },
      { name: 'b', buffer: b.buffer, type: b.dtype },
      { name: 'rec', buffer: x.rec },
      { name: 'g', buffer: x.g.buffer },
    ],
    outputs: bindings,
    uniforms: {
      ...rowsUniforms(d, rows, t),
      w: ['f32', x.w ?? 0],
      margin: ['f32', x.margin ?? 0],
    },
    workgroups: [Math.min(chunksOf(d), 65535), gy, gz],
    wgsl: cosRowsBwdWGSL(form, x.mode, outs, a.dtype, b.dtype),
  });
  return [da, db];
}

/** Geometry of a map input [B, C, ...rest]: pixels P = B·HW. */
function mapDims(a: Tensor) {
  const B = a.shape[0]!;
  const C = a.shape[1]!;
  const HW = a.size / (B * C);
  return { B, C, HW, P: B * HW, S: mapSlices(B * HW, C) };
}

function mapUniforms(a: Tensor, off: number): Uniforms {
  const { C, HW, P } = mapDims(a);
  return { C: ['u32', C], HW: ['u32', HW], P: ['u32', P], off: ['u32', off], n: ['u32', P] };
}

/** Per-pixel cosines over channels into the record at `off` (n = P slots). */
function mapForward(a: Tensor, b: Tensor, rec: GPUBuffer, off: number): void {
  const { P, S } = mapDims(a);
  runtime().run({
    name: 'cos_map',
    key: `${S}`,
    inputs: [
      { name: 'a', buffer: a.buffer, type: a.dtype },
      { name: 'b', buffer: b.buffer, type: b.dtype },
    ],
    outputs: [{ name: 'rec', buffer: rec }],
    uniforms: mapUniforms(a, off),
    workgroups: grid1d(P, 256 / S),
    wgsl: cosMapWGSL(S, a.dtype, b.dtype),
  });
}

function mapBackward(a: Tensor, b: Tensor, off: number, x: BackwardArgs): [Tensor | null, Tensor | null] {
  if (!x.wantA && !x.wantB) return [null, null];
  const { P, S } = mapDims(a);
  const { da, db, outs, bindings } = gradOutputs(a, b, x.wantA, x.wantB);
  runtime().run({
    name: 'cos_map_bwd',
    key: `${S}|${x.mode}|${outs}`,
    inputs: [
      { name: 'a', buffer: a.buffer, type: a.dtype },
      { name: 'b', buffer: b.buffer, type: b.dtype },
      { name: 'rec', buffer: x.rec },
      { name: 'g', buffer: x.g.buffer },
    ],
    outputs: bindings,
    uniforms: { ...mapUniforms(a, off), w: ['f32', x.w ?? 0] },
    workgroups: grid1d(P, 256 / S),
    wgsl: cosMapBwdWGSL(S, x.mode, outs, a.dtype, b.dtype),
  });
  return [da, db];
}

/** rec[0] = w · Σ_i term(rec[1 + i]) over the n cosines of a loss record. */
function lossFinal(term: LossTerm, rec: GPUBuffer, n: number, w: number, margin = 0): void {
  const rt = runtime();
  const uniforms: Uniforms = {
    D: ['u32', n],
    nChunks: ['u32', chunksOf(n)],
    R: ['u32', 1],
    w: ['f32', w],
    margin: ['f32', margin],
  };
  if (n <= CHUNK) {
    rt.run({
      name: 'cos_loss',
      key: `${term}|inplace`,
      inputs: [],
      outputs: [{ name: 'rec', buffer: rec }],
      uniforms,
      workgroups: [1, 1, 1],
      wgsl: cosLossWGSL(term, 'inplace'),
    });
    return;
  }
  const wgs = partialsOf(n, 1, targetWorkgroups(rt.gpu.report));
  const part = empty([wgs]);
  rt.run({
    name: 'cos_loss',
    key: `${term}|partials`,
    inputs: [{ name: 'rec', buffer: rec }],
    outputs: [{ name: 'part', buffer: part.buffer }],
    uniforms,
    workgroups: [wgs, 1, 1],
    wgsl: cosLossWGSL(term, 'partials'),
  });
  // the reduce family's final pass (same program as sum()'s), writing rec[0]
  rt.run({
    name: 'reduce_sum',
    key: 'final',
    inputs: [{ name: 'x', buffer: part.buffer }],
    outputs: [{ name: 'out', buffer: rec }],
    uniforms: { D: ['u32', wgs], nChunks: ['u32', chunksOf(wgs)], R: ['u32', 1], scale: ['f32', w] },
    workgroups: [1, 1, 1],
    wgsl: reduceRowsWGSL('sum', true),
  });
  part.dispose();
}

/** Throws unless a and b have the same shape of rank ≥ minRank and at least one element. */
function checkPair(op: string, a: Tensor, b: Tensor, minRank: number, expect: string): void {
  if (a.shape.join() !== b.shape.join())
    throw new Error(
      `${op}: shapes differ: ${a.describe()} vs ${b.describe()}; expected equal ${expect} shapes`,
    );
  if (a.rank < minRank) throw new Error(`${op}: ${a.describe()} has rank ${a.rank}; expected ${expect}`);
  if (a.size === 0) throw new Error(`${op}: ${a.describe()} has no elements; expected ${expect}`);
}

/** @internal Launch helpers shared with ./losses.ts (not part of the public API). */
export const cosineInternals = {
  recordTensor,
  rowsForward,
  rowsBackward,
  mapForward,
  mapBackward,
  mapDims,
  lossFinal,
  checkPair,
};

/** Per-pixel cosine over channels: [B, C, H, W] × 2 → [B, H, W] (any rank ≥ 2: reduces dim 1). */
export function cosineMap(a: Tensor, b: Tensor): Tensor {
  checkPair('cosineMap', a, b, 2, '[B, C, H, W]');
  const { P } = mapDims(a);
  const y = recordTensor(0, P, [a.shape[0]!, ...a.shape.slice(2)]);
  mapForward(a, b, y.buffer, 0);
  return record('cosine_map', y, [a, b], (g) =>
    mapBackward(a, b, 0, { mode: 'each', rec: y.buffer, g, wantA: a.requiresGrad, wantB: b.requiresGrad }),
  );
}

/** One cosine per sample over all of its values: a, b viewed as [B, D] (B = shape[0]) → [B]. */
export function cosineRows(a: Tensor, b: Tensor): Tensor {
  checkPair('cosineRows', a, b, 2, '[B, D] or [B, C, H, W]');
  const B = a.shape[0]!;
  const D = a.size / B;
  const y = recordTensor(0, B, [B]);
  const t = { off: 0, n: B, slot0: 0 };
  rowsForward('torch', a, b, B, D, { ...t, buffer: y.buffer });
  return record('cosine_rows', y, [a, b], (g) =>
    rowsBackward('torch', a, b, B, D, t, {
      mode: 'each',
      rec: y.buffer,
      g,
      wantA: a.requiresGrad,
      wantB: b.requiresGrad,
    }),
  );
}
