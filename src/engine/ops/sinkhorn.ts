/**
 * sinkhornLoss(x, y): geomloss `SamplesLoss('sinkhorn', p=2, blur=0.05, diameter=1e7, scaling=0.95,
 * debias=True)` with uniform weights (spec §4.2, Appendix A), forward and envelope-theorem backward.
 *   2-D x [N, D], y [M, D] → [1]: one point cloud of N points in D dimensions (what the official RD++ code
 *   passes: N = batch, D = C·H·W up to 2^20);
 *   3-D x [B, N, D], y [B, M, D] → [B]: B independent problems.
 * Per call: Gram matrices over D (two dispatches), the whole ε schedule in one workgroup per problem (one
 * dispatch), and one dispatch for the gradient over D. Kernels: src/shaders/sinkhorn.ts.
 */
import { grid1d } from '../../shaders/common.js';
import {
  GRAD_COLS,
  GRAD_ROWS,
  gramConfig,
  gramPartialWGSL,
  gramReduceWGSL,
  MAX_POINTS,
  sinkhornGradWGSL,
  sinkhornLoopWGSL,
} from '../../shaders/sinkhorn.js';
import { record } from '../autograd.js';
import { runtime } from '../runtime.js';
import { empty, type Tensor, tensor } from '../tensor.js';

export interface SinkhornOptions {
  /** Target blur σ: the last ε is σ² (default 0.05). */
  blur?: number;
  /** ε ratio between steps is scaling² (default 0.95). */
  scaling?: number;
  /** The first ε is diameter² (default 1e7, as in RD++). */
  diameter?: number;
}

/**
 * geomloss's ε schedule for p = 2, in float64 exactly as numpy builds it:
 * [diameter²] + exp(arange(2 ln diameter, 2 ln blur, 2 ln scaling)) + [blur²].
 * numpy's arange has ceil((stop − start)/step) values start + i·δ with δ = (start + step) − start.
 */
export function epsilonSchedule(diameter = 1e7, blur = 0.05, scaling = 0.95): number[] {
  const start = 2 * Math.log(diameter);
  const stop = 2 * Math.log(blur);
  const step = 2 * Math.log(scaling);
  const n = Math.max(0, Math.ceil((stop - start) / step));
  const delta = start + step - start;
  const mid: number[] = [];
  for (let i = 0; i < n; i++)
    mid.push(Math.exp(i === 0 ? start : i === 1 ? start + step : start + i * delta));
  return [diameter ** 2, ...mid, blur ** 2];
}

const schedules = new Map<string, Float32Array>();

/** (ε, 1/ε) pairs in float32 for the loop kernel, cached per option set. */
function epsPairs(diameter: number, blur: number, scaling: number): Float32Array {
  const key = `${diameter}|${blur}|${scaling}`;
  let out = schedules.get(key);
  if (!out) {
    const eps = epsilonSchedule(diameter, blur, scaling);
    out = new Float32Array(2 * eps.length);
    eps.forEach((e, i) => {
      out![2 * i] = e;
      out![2 * i + 1] = 1 / e;
    });
    schedules.set(key, out);
  }
  return out;
}

function checkOptions(opts: SinkhornOptions): { blur: number; scaling: number; diameter: number } {
  const blur = opts.blur ?? 0.05;
  const scaling = opts.scaling ?? 0.95;
  const diameter = opts.diameter ?? 1e7;
  if (!(blur > 0) || !Number.isFinite(blur)) throw new Error(`sinkhornLoss: blur must be > 0, got ${blur}`);
  if (!(scaling > 0 && scaling < 1))
    throw new Error(`sinkhornLoss: scaling must be in (0, 1), got ${scaling}`);
  if (!(diameter > 0) || !Number.isFinite(diameter))
    throw new Error(`sinkhornLoss: diameter must be a positive number, got ${diameter}`);
  const steps = Math.ceil((2 * Math.log(blur) - 2 * Math.log(diameter)) / (2 * Math.log(scaling)));
  if (steps > 100000)
    throw new Error(
      `sinkhornLoss: the ε schedule would have ${steps} steps (scaling ${scaling} too close to 1)`,
    );
  return { blur, scaling, diameter };
}

interface Dims {
  batched: boolean;
  B: number;
  N: number;
  M: number;
  D: number;
  K: number;
}

function checkInputs(x: Tensor, y: Tensor): Dims {
  const what = `x ${x.describe()}, y ${y.describe()}`;
  if (x.rank !== y.rank || (x.rank !== 2 && x.rank !== 3))
    throw new Error(`sinkhornLoss: x and y must both be 2-D [N, D] or both 3-D [B, N, D]; got ${what}`);
  const batched = x.rank === 3;
  const B = batched ? x.shape[0]! : 1;
  if (batched && y.shape[0] !== B) throw new Error(`sinkhornLoss: batch sizes differ: ${what}`);
  const N = x.shape[x.rank - 2]!;
  const M = y.shape[y.rank - 2]!;
  const D = x.shape[x.rank - 1]!;
  if (y.shape[y.rank - 1] !== D)
    throw new Error(`sinkhornLoss: point dimensions (last axis) differ: ${what}`);
  if (N === 0 || M === 0 || D === 0 || B === 0)
    throw new Error(`sinkhornLoss: empty point cloud (every dimension must be ≥ 1): ${what}`);
  if (N + M > MAX_POINTS)
    throw new Error(`sinkhornLoss: N + M = ${N + M} points exceed the supported ${MAX_POINTS}: ${what}`);
  if (B > 65535) throw new Error(`sinkhornLoss: at most 65535 problems per call, got B = ${B}: ${what}`);
  return { batched, B, N, M, D, K: N + M };
}

/** Shared-memory capacity (points per side) for the cost matrix in the loop kernel; 0 = global memory. */
function sharedCost(k: number): number {
  const limit = runtime().gpu.report.limits.maxComputeWorkgroupStorageSize;
  const fixed = 6 * 2 * MAX_POINTS; // hb and ps (2 × 2·MAX each), fin and wsum (2·MAX each)
  for (const kc of [32, 64]) if (k <= kc && (kc * kc + fixed) * 4 <= limit) return kc;
  return 0;
}

/** Envelope-theorem gradient dZ = g_b · A_b Z_b for both clouds. */
function gradient(x: Tensor, y: Tensor, A: Tensor, g: Tensor, d: Dims): [Tensor, Tensor] {
  const dx = empty(x.shape);
  const dy = empty(y.shape);
  const tiles = Math.ceil(d.D / GRAD_COLS);
  const groups = Math.ceil(d.K / GRAD_ROWS);
  runtime().run({
    name: 'sinkhorn_grad',
    inputs: [
      { name: 'x', buffer: x.buffer },
      { name: 'y', buffer: y.buffer },
      { name: 'A', buffer: A.buffer },
      { name: 'g', buffer: g.buffer },
    ],
    outputs: [
      { name: 'dx', buffer: dx.buffer },
      { name: 'dy', buffer: dy.buffer },
    ],
    uniforms: {
      B: ['u32', d.B],
      N: ['u32', d.N],
      M: ['u32', d.M],
      K: ['u32', d.K],
      D: ['u32', d.D],
      tiles: ['u32', tiles],
      groups: ['u32', groups],
    },
    workgroups: grid1d(tiles * groups * d.B, 1),
    wgsl: sinkhornGradWGSL(),
  });
  return [dx, dy];
}

/** The debiased Sinkhorn divergence S(x, y) (geomloss semantics); [1] for 2-D inputs, [B] for 3-D. */
export function sinkhornLoss(x: Tensor, y: Tensor, opts: SinkhornOptions = {}): Tensor {
  const d = checkInputs(x, y);
  const { blur, scaling, diameter } = checkOptions(opts);
  const rt = runtime();
  const cfg = gramConfig(d.K);

  // 1-2. Gram matrix of the joint cloud, split over chunks of D (~1024 workgroups for large D)
  const tiles = Math.ceil(d.D / cfg.td);
  const chunkLen = cfg.td * Math.max(1, Math.ceil((tiles * d.B) / 1024));
  const chunks = Math.ceil(d.D / chunkLen);
  const part = empty([d.B * chunks * 16 * cfg.pairs]);
  rt.run({
    name: 'gram_partial',
    key: `nb${cfg.nb}`,
    inputs: [
      { name: 'x', buffer: x.buffer },
      { name: 'y', buffer: y.buffer },
    ],
    outputs: [{ name: 'part', buffer: part.buffer }],
    uniforms: {
      N: ['u32', d.N],
      M: ['u32', d.M],
      K: ['u32', d.K],
      D: ['u32', d.D],
      chunkLen: ['u32', chunkLen],
      chunks: ['u32', chunks],
    },
    workgroups: [chunks, d.B],
    wgsl: gramPartialWGSL(cfg),
  });
  const G = empty([d.B, d.K, d.K]);
  rt.run({
    name: 'gram_reduce',
    key: `nb${cfg.nb}`,
    inputs: [{ name: 'part', buffer: part.buffer }],
    outputs: [{ name: 'G', buffer: G.buffer }],
    uniforms: { K: ['u32', d.K], chunks: ['u32', chunks] },
    workgroups: [16 * cfg.pairs, d.B],
    wgsl: gramReduceWGSL(cfg),
  });
  part.dispose();

  // 3. the whole ε schedule, the value and the plans (as the gradient's weight matrix A)
  const pairs = epsPairs(diameter, blur, scaling);
  const eps = tensor(pairs, [pairs.length / 2, 2]);
  const value = empty(d.batched ? [d.B] : [1]);
  const A = empty([d.B, d.K, d.K]);
  const kc = sharedCost(d.K);
  const cg = kc > 0 ? null : empty([d.B, d.K, d.K]);
  rt.run({
    name: 'sinkhorn_loop',
    key: `kc${kc}`,
    inputs: [
      { name: 'G', buffer: G.buffer },
      { name: 'eps', buffer: eps.buffer, type: 'vec2<f32>' },
    ],
    outputs: [
      { name: 'value', buffer: value.buffer },
      { name: 'A', buffer: A.buffer },
      ...(cg ? [{ name: 'cg', buffer: cg.buffer }] : []),
    ],
    uniforms: {
      B: ['u32', d.B],
      N: ['u32', d.N],
      M: ['u32', d.M],
      K: ['u32', d.K],
      L: ['u32', pairs.length / 2],
    },
    workgroups: grid1d(d.B, 1),
    wgsl: sinkhornLoopWGSL(kc),
  });
  G.dispose();
  eps.dispose();
  cg?.dispose();

  record('sinkhorn', value, [x, y], (g) => {
    const grads = gradient(x, y, A, g, d);
    A.dispose();
    return grads;
  });
  if (!value.node) A.dispose();
  return value;
}
