/**
 * Normalisation ops: BatchNorm2d (train: batch statistics with the running statistics updated in place;
 * eval: running statistics) and InstanceNorm2d (no affine), each with an optional fused activation
 * (`batchNormRelu`, `instanceNormLeakyRelu`). Kernels and the algorithm: src/shaders/norm.ts.
 *
 * Semantics (spec §2.1): BN train normalises with the biased batch variance over (N, H, W) and updates
 *   running_mean ← (1−m)·running_mean + m·μ,  running_var ← (1−m)·running_var + m·σ²·n/(n−1);
 * the update is a side effect on the GPU buffers of the running-stat tensors, not recorded by autograd.
 * IN normalises each (n, c) plane over (H, W) with the biased variance.
 *
 * Storage: x may be f32 or f16 (the activations of PRECISION=f16, engine/precision.ts); y is stored like x,
 * and statistics, parameters and gradients are f32 — an f16 x is widened exactly where it is read, forward
 * and backward, as AMP's batch norm reads half inputs and keeps float32 statistics.
 */

import { grid1d, main1d } from '../../shaders/common.js';
import {
  type Act,
  applyWgsl,
  dxWgsl,
  evalStatsWgsl,
  gradDxWgsl,
  gradFinalWgsl,
  gradPartialWgsl,
  REDUCE_WG,
  statsApplyWgsl,
  statsFinalWgsl,
  statsPartialWgsl,
  vecType,
} from '../../shaders/norm.js';
import { record } from '../autograd.js';
import { flag } from '../flags.js';
import type { ScalarType } from '../program.js';
import { runtime } from '../runtime.js';
import { empty, type Tensor } from '../tensor.js';

export interface BatchNormOptions {
  /** batch statistics + running-stat update (true) or running statistics (false) */
  training: boolean;
  /** running-stat momentum (default 0.1) */
  momentum?: number;
  /** variance epsilon (default 1e-5) */
  eps?: number;
}

// ---- geometry and launch plans ----

interface Geometry {
  v: 1 | 4;
  /** contiguous run (vectors), distance between runs of a group (vectors), vectors per group, groups */
  inner: number;
  outer: number;
  count: number;
  groups: number;
  /** vectors in the whole tensor */
  nvec: number;
  /** elements per group */
  elems: number;
}

/** BN groups are channels; IN groups are (n, c) planes, i.e. channels of x viewed as [1, N·C, H, W]. */
function geometry(x: Tensor, perInstance: boolean): Geometry {
  const [n, c, h, w] = x.shape as [number, number, number, number];
  const hw = h * w;
  const v: 1 | 4 = hw % 4 === 0 ? 4 : 1;
  const inner = hw / v;
  const groups = perInstance ? n * c : c;
  const runs = perInstance ? 1 : n;
  return { v, inner, outer: groups * inner, count: runs * inner, groups, nvec: x.size / v, elems: runs * hw };
}

interface Split {
  /** threads per (group, chunk) item, items per group, items in all, workgroups */
  tpg: number;
  chunk: number;
  splits: number;
  total: number;
  workgroups: number;
}

/** Vectors one item reduces when a group is split (big enough to amortise, small enough to fill). */
const CHUNK_TARGET = 2048;

function splitPlan(g: Geometry): Split {
  const splits0 = Math.max(1, Math.ceil(g.count / CHUNK_TARGET));
  const per = Math.ceil(g.count / splits0);
  // about 4+ vectors per thread; a power of two from 4 to REDUCE_WG
  let tpg = 4;
  while (tpg < REDUCE_WG && tpg * 8 <= per) tpg *= 2;
  const chunk = Math.ceil(per / tpg) * tpg;
  const splits = Math.ceil(g.count / chunk);
  const total = splits * g.groups;
  return { tpg, chunk, splits, total, workgroups: Math.ceil(total / (REDUCE_WG / tpg)) };
}

type Uniforms = Record<string, [ScalarType, number]>;

function reduceUniforms(g: Geometry, s: Split): Uniforms {
  return {
    inner: ['u32', g.inner],
    outer: ['u32', g.outer],
    count: ['u32', g.count],
    groups: ['u32', g.groups],
    chunk: ['u32', s.chunk],
    splits: ['u32', s.splits],
    total: ['u32', s.total],
  };
}

interface Affine {
  w: Tensor;
  b: Tensor;
}

const affineBindings = (a: Affine | null) =>
  a
    ? [
        { name: 'w', buffer: a.w.buffer },
        { name: 'b', buffer: a.b.buffer },
      ]
    : [];

const ACT_KEY = (act: Act, affine: Affine | null) => `${affine ? 'affine' : 'plain'}|${act}`;

// ---- kernel launches ----

/** Batch statistics [mean, invstd] per group; optionally updates running stats in place. */
function batchStats(
  x: Tensor,
  g: Geometry,
  eps: number,
  running: { rm: Tensor; rv: Tensor; momentum: number } | null,
): Tensor {
  const rt = runtime();
  const s = splitPlan(g);
  const part = empty([s.total * 3]);
  rt.run({
    name: 'norm_stats_partial',
    key: `v${g.v}|tpg${s.tpg}`,
    inputs: [{ name: 'x', buffer: x.buffer, type: vecType(g.v, x.dtype) }],
    outputs: [{ name: 'part', buffer: part.buffer }],
    uniforms: reduceUniforms(g, s),
    workgroups: grid1d(s.workgroups, 1),
    wgsl: (h) => statsPartialWgsl(h, g.v, s.tpg, x.dtype),
  });
  const stats = empty([g.groups * 2]);
  rt.run({
    name: 'norm_stats_final',
    key: running ? 'running' : 'plain',
    inputs: [{ name: 'part', buffer: part.buffer }],
    outputs: [
      { name: 'stats', buffer: stats.buffer },
      ...(running
        ? [
            { name: 'rm', buffer: running.rm.buffer },
            { name: 'rv', buffer: running.rv.buffer },
          ]
        : []),
    ],
    uniforms: {
      groups: ['u32', g.groups],
      splits: ['u32', s.splits],
      eps: ['f32', eps],
      momentum: ['f32', running?.momentum ?? 0],
    },
    workgroups: grid1d(g.groups, 64),
    wgsl: (h) => statsFinalWgsl(h, running !== null),
  });
  part.dispose();
  return stats;
}

/** The plan of a single-pass kernel (statsApply, gradDx): one split per group, NORM_SINGLE_PASS on; else null. */
function singlePassPlan(g: Geometry): Split | null {
  const s = splitPlan(g);
  return s.splits === 1 && flag('NORM_SINGLE_PASS') ? s : null;
}

/**
 * A norm's batch statistics and output in one dispatch (stats_apply) when one item reduces each group
 * whole (`splitPlan` gives one split); null otherwise, or when the flag NORM_SINGLE_PASS is off (tests
 * compare both paths). Returns y and the [mean, invstd] per group the backward reads; `running` (BN
 * train) is updated in place as batchStats does.
 */
function statsApply(
  x: Tensor,
  g: Geometry,
  eps: number,
  affine: Affine | null,
  running: { rm: Tensor; rv: Tensor; momentum: number } | null,
  act: Act,
  slope: number,
): { y: Tensor; stats: Tensor } | null {
  const s = singlePassPlan(g);
  if (!s) return null;
  const y = empty(x.shape, x.dtype);
  const stats = empty([g.groups * 2]);
  runtime().run({
    name: 'norm_stats_apply',
    key: `v${g.v}|tpg${s.tpg}|${ACT_KEY(act, affine)}|${running ? 'running' : 'plain'}`,
    inputs: [{ name: 'x', buffer: x.buffer, type: vecType(g.v, x.dtype) }, ...affineBindings(affine)],
    outputs: [
      { name: 'y', buffer: y.buffer, type: vecType(g.v, y.dtype) },
      { name: 'stats', buffer: stats.buffer },
      ...(running
        ? [
            { name: 'rm', buffer: running.rm.buffer },
            { name: 'rv', buffer: running.rv.buffer },
          ]
        : []),
    ],
    uniforms: {
      ...reduceUniforms(g, s),
      eps: ['f32', eps],
      slope: ['f32', slope],
      momentum: ['f32', running?.momentum ?? 0],
    },
    workgroups: grid1d(s.workgroups, 1),
    wgsl: (h) =>
      statsApplyWgsl(h, g.v, s.tpg, act, x.dtype, { affine: affine !== null, running: running !== null }),
  });
  return { y, stats };
}

/**
 * The input gradient with batch statistics in one dispatch (grad_dx) where statsApply could run in one
 * (one split per group); with `affine` also Σg' (dβ) and Σg'·x̂ (dγ). Null otherwise.
 */
function gradDx(
  x: Tensor,
  gy: Tensor,
  g: Geometry,
  stats: Tensor,
  affine: Affine | null,
  act: Act,
  slope: number,
): { dx: Tensor; sums: { sg: Tensor; sgx: Tensor } | null } | null {
  const s = singlePassPlan(g);
  if (!s) return null;
  const dx = empty(x.shape);
  const sums = affine ? { sg: empty([g.groups]), sgx: empty([g.groups]) } : null;
  const T = vecType(g.v);
  runtime().run({
    name: 'norm_grad_dx',
    key: `v${g.v}|tpg${s.tpg}|${ACT_KEY(act, affine)}`,
    inputs: [
      { name: 'x', buffer: x.buffer, type: vecType(g.v, x.dtype) },
      { name: 'gy', buffer: gy.buffer, type: T },
      { name: 'stats', buffer: stats.buffer },
      ...affineBindings(affine),
    ],
    outputs: [
      { name: 'dx', buffer: dx.buffer, type: T },
      ...(sums
        ? [
            { name: 'sum_g', buffer: sums.sg.buffer },
            { name: 'sum_gx', buffer: sums.sgx.buffer },
          ]
        : []),
    ],
    uniforms: { ...reduceUniforms(g, s), slope: ['f32', slope], inv_n: ['f32', 1 / g.elems] },
    workgroups: grid1d(s.workgroups, 1),
    wgsl: (h) => gradDxWgsl(h, g.v, s.tpg, act, affine !== null, x.dtype),
  });
  return { dx, sums };
}

/** [mean, invstd] per channel from running statistics (a snapshot: later updates don't change it). */
function runningStats(rm: Tensor, rv: Tensor, eps: number): Tensor {
  const c = rm.size;
  const stats = empty([c * 2]);
  runtime().run({
    name: 'norm_eval_stats',
    inputs: [
      { name: 'rm', buffer: rm.buffer },
      { name: 'rv', buffer: rv.buffer },
    ],
    outputs: [{ name: 'stats', buffer: stats.buffer }],
    uniforms: { groups: ['u32', c], eps: ['f32', eps] },
    workgroups: grid1d(c, 64),
    wgsl: evalStatsWgsl,
  });
  return stats;
}

function apply(
  x: Tensor,
  g: Geometry,
  stats: Tensor,
  affine: Affine | null,
  act: Act,
  slope: number,
): Tensor {
  // the output is stored like the input
  const y = empty(x.shape, x.dtype);
  runtime().run({
    name: 'norm_apply',
    key: `v${g.v}|${ACT_KEY(act, affine)}`,
    inputs: [
      { name: 'x', buffer: x.buffer, type: vecType(g.v, x.dtype) },
      { name: 'stats', buffer: stats.buffer },
      ...affineBindings(affine),
    ],
    outputs: [{ name: 'y', buffer: y.buffer, type: vecType(g.v, y.dtype) }],
    uniforms: {
      n: ['u32', g.nvec],
      inner: ['u32', g.inner],
      groups: ['u32', g.groups],
      slope: ['f32', slope],
    },
    workgroups: grid1d(g.nvec),
    wgsl: (h) => applyWgsl(h, main1d(), g.v, affine !== null, act, x.dtype),
  });
  return y;
}

/** Per group Σg' (→ sg, = dβ) and Σg'·x̂ (→ sgx, = dγ), as two fresh [groups] tensors. */
function gradSums(
  x: Tensor,
  gy: Tensor,
  g: Geometry,
  stats: Tensor,
  affine: Affine | null,
  act: Act,
  slope: number,
): { sg: Tensor; sgx: Tensor } {
  const rt = runtime();
  const s = splitPlan(g);
  const part = empty([s.total * 2]);
  const T = vecType(g.v);
  const bindAffine = act !== 'none' ? affineBindings(affine) : [];
  rt.run({
    name: 'norm_grad_partial',
    key: `v${g.v}|tpg${s.tpg}|${ACT_KEY(act, bindAffine.length ? affine : null)}`,
    inputs: [
      { name: 'x', buffer: x.buffer, type: vecType(g.v, x.dtype) },
      { name: 'gy', buffer: gy.buffer, type: T },
      { name: 'stats', buffer: stats.buffer },
      ...bindAffine,
    ],
    outputs: [{ name: 'part', buffer: part.buffer }],
    uniforms: { ...reduceUniforms(g, s), slope: ['f32', slope] },
    workgroups: grid1d(s.workgroups, 1),
    wgsl: (h) => gradPartialWgsl(h, g.v, s.tpg, bindAffine.length > 0, act, x.dtype),
  });
  const sg = empty([g.groups]);
  const sgx = empty([g.groups]);
  rt.run({
    name: 'norm_grad_final',
    inputs: [{ name: 'part', buffer: part.buffer }],
    outputs: [
      { name: 'sg', buffer: sg.buffer },
      { name: 'sgx', buffer: sgx.buffer },
    ],
    uniforms: { groups: ['u32', g.groups], splits: ['u32', s.splits] },
    workgroups: grid1d(g.groups, 64),
    wgsl: gradFinalWgsl,
  });
  part.dispose();
  return { sg, sgx };
}

function inputGrad(
  x: Tensor,
  gy: Tensor,
  g: Geometry,
  stats: Tensor,
  sums: { sg: Tensor; sgx: Tensor } | null,
  affine: Affine | null,
  act: Act,
  slope: number,
): Tensor {
  const dx = empty(x.shape);
  const T = vecType(g.v);
  runtime().run({
    name: 'norm_dx',
    key: `v${g.v}|${sums ? 'batch' : 'fixed'}|${ACT_KEY(act, affine)}`,
    inputs: [
      { name: 'x', buffer: x.buffer, type: vecType(g.v, x.dtype) },
      { name: 'gy', buffer: gy.buffer, type: T },
      { name: 'stats', buffer: stats.buffer },
      ...affineBindings(affine),
      ...(sums
        ? [
            { name: 'sg', buffer: sums.sg.buffer },
            { name: 'sgx', buffer: sums.sgx.buffer },
          ]
        : []),
    ],
    outputs: [{ name: 'dx', buffer: dx.buffer, type: T }],
    uniforms: {
      n: ['u32', g.nvec],
      inner: ['u32', g.inner],
      groups: ['u32', g.groups],
      slope: ['f32', slope],
      inv_n: ['f32', 1 / g.elems],
    },
    workgroups: grid1d(g.nvec),
    wgsl: (h) => dxWgsl(h, main1d(), g.v, sums !== null, affine !== null, act, x.dtype),
  });
  return dx;
}

// ---- validation ----

function checkNCHW(op: string, x: Tensor): void {
  if (x.rank !== 4) throw new Error(`${op}: x must be NCHW (rank 4), got ${x.describe()}`);
}

function checkChannelVector(op: string, what: string, t: Tensor, x: Tensor): void {
  const c = x.shape[1]!;
  if (t.rank !== 1 || t.shape[0] !== c)
    throw new Error(
      `${op}: ${what} ${t.describe()} must have shape [${c}] (the channel count of x ${x.describe()})`,
    );
}

function checkEps(op: string, eps: number): void {
  if (!(eps > 0) || !Number.isFinite(eps))
    throw new Error(`${op}: eps must be a positive number, got ${eps}`);
}

// ---- public ops ----

function batchNormImpl(
  op: string,
  x: Tensor,
  weight: Tensor,
  bias: Tensor,
  runningMean: Tensor,
  runningVar: Tensor,
  opts: BatchNormOptions,
  act: Act,
): Tensor {
  checkNCHW(op, x);
  checkChannelVector(op, 'weight', weight, x);
  checkChannelVector(op, 'bias', bias, x);
  checkChannelVector(op, 'runningMean', runningMean, x);
  checkChannelVector(op, 'runningVar', runningVar, x);
  for (const t of [weight, bias, runningMean, runningVar])
    if (t.dtype !== 'f32')
      throw new Error(
        `${op}: ${t.describe()} is ${t.dtype}; batch-norm parameters and running statistics are f32`,
      );
  const momentum = opts.momentum ?? 0.1;
  const eps = opts.eps ?? 1e-5;
  checkEps(op, eps);
  if (!(momentum >= 0 && momentum <= 1))
    throw new Error(`${op}: momentum must be in [0, 1], got ${momentum}`);
  const g = geometry(x, false);
  if (opts.training) {
    if (g.elems < 2)
      throw new Error(
        `${op}: training needs more than 1 value per channel (N·H·W = ${g.elems} for x ${x.describe()})`,
      );
    if (runningMean.storage === runningVar.storage)
      throw new Error(`${op}: runningMean and runningVar must be different tensors (both are updated)`);
    for (const t of [x, weight, bias])
      if (t.storage === runningMean.storage || t.storage === runningVar.storage)
        throw new Error(`${op}: ${t.describe()} shares its buffer with a running statistic that is updated`);
  }
  const affine = { w: weight, b: bias };
  const running = { rm: runningMean, rv: runningVar, momentum };
  const single = opts.training ? statsApply(x, g, eps, affine, running, act, 0) : null;
  const stats =
    single?.stats ??
    (opts.training ? batchStats(x, g, eps, running) : runningStats(runningMean, runningVar, eps));
  const y = single?.y ?? apply(x, g, stats, affine, act, 0);
  record(
    op,
    y,
    [x, weight, bias],
    (gy) => {
      const needX = x.requiresGrad;
      const needParams = weight.requiresGrad || bias.requiresGrad;
      // batch statistics and a gradient for x: dx, dβ and dγ in one dispatch where the groups allow it
      const one = opts.training && needX ? gradDx(x, gy, g, stats, affine, act, 0) : null;
      const sums =
        one?.sums ?? (opts.training || needParams ? gradSums(x, gy, g, stats, affine, act, 0) : null);
      const dx =
        one?.dx ?? (needX ? inputGrad(x, gy, g, stats, opts.training ? sums : null, affine, act, 0) : null);
      stats.dispose();
      const db = sums && bias.requiresGrad ? sums.sg.view(bias.shape) : null;
      const dw = sums && weight.requiresGrad ? sums.sgx.view(weight.shape) : null;
      sums?.sg.dispose();
      sums?.sgx.dispose();
      return [dx, dw, db];
      // the output is not read: the activation's mask is recomputed from x and the statistics
    },
    [x, weight, bias],
  );
  if (!y.node) stats.dispose();
  return y;
}

/**
 * BatchNorm2d on NCHW x. Train mode: batch statistics and running stats updated in place; eval mode:
 * running statistics. Gradients for x, weight and bias in both modes.
 */
export function batchNorm(
  x: Tensor,
  weight: Tensor,
  bias: Tensor,
  runningMean: Tensor,
  runningVar: Tensor,
  opts: BatchNormOptions,
): Tensor {
  return batchNormImpl('batchNorm', x, weight, bias, runningMean, runningVar, opts, 'none');
}

/** relu(batchNorm(...)) in one pass forward and backward (same semantics, one tensor less traffic). */
export function batchNormRelu(
  x: Tensor,
  weight: Tensor,
  bias: Tensor,
  runningMean: Tensor,
  runningVar: Tensor,
  opts: BatchNormOptions,
): Tensor {
  return batchNormImpl('batchNormRelu', x, weight, bias, runningMean, runningVar, opts, 'relu');
}

function instanceNormImpl(op: string, x: Tensor, eps: number, act: Act, slope: number): Tensor {
  checkNCHW(op, x);
  checkEps(op, eps);
  const g = geometry(x, true);
  if (g.elems < 2)
    throw new Error(
      `${op}: needs more than 1 spatial element per plane (H·W = ${g.elems} for ${x.describe()})`,
    );
  const single = statsApply(x, g, eps, null, null, act, slope);
  const stats = single?.stats ?? batchStats(x, g, eps, null);
  const y = single?.y ?? apply(x, g, stats, null, act, slope);
  record(
    op,
    y,
    [x],
    (gy) => {
      const single = gradDx(x, gy, g, stats, null, act, slope);
      if (single) {
        stats.dispose();
        return [single.dx];
      }
      const sums = gradSums(x, gy, g, stats, null, act, slope);
      const dx = inputGrad(x, gy, g, stats, sums, null, act, slope);
      stats.dispose();
      sums.sg.dispose();
      sums.sgx.dispose();
      return [dx];
    },
    [x],
  );
  if (!y.node) stats.dispose();
  return y;
}

/** InstanceNorm2d (no affine, no running stats): per (n, c) plane over (H, W), biased variance. */
export function instanceNorm(x: Tensor, eps = 1e-5): Tensor {
  return instanceNormImpl('instanceNorm', x, eps, 'none', 0);
}

/** leakyRelu(instanceNorm(x, eps), slope) fused (RD++'s projection layers: IN + LReLU(0.01)). */
export function instanceNormLeakyRelu(x: Tensor, slope = 0.01, eps = 1e-5): Tensor {
  if (!Number.isFinite(slope)) throw new Error(`instanceNormLeakyRelu: slope must be finite, got ${slope}`);
  return instanceNormImpl('instanceNormLeakyRelu', x, eps, 'leaky', slope);
}
