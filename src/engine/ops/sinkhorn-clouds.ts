/**
 * sinkhornClouds(x [B, N, D], y [B, M, D]) → [B]: the debiased Sinkhorn divergence of each of B
 * independent problems (geomloss `SamplesLoss('sinkhorn', p=2, blur, scaling, diameter, debias=True)`
 * with uniform weights, spec §4.2: detached right-hand cost arguments, the whole ε schedule with the
 * symmetric averaging, the final extrapolation and the envelope-theorem gradient into x and y), for
 * LARGE clouds (RD++ `--ssot pairwise`: N = M = 4096 / 1024 / 256 points of D = 256 / 512 / 1024).
 * sinkhornLoss (ops/sinkhorn.ts) is the same function for N + M ≤ 128.
 *
 * Per call: the point norms, the cost tiles (GEMM), 2 dispatches per ε-step, the values; backward: the
 * gradient GEMMs. Problems run in chunks whose cost storage (N·M + N²/2 + M²/2 floats per problem, tiled)
 * stays under `chunkBytes` (flag SINKHORN_CHUNK_BYTES); with one chunk the cost tiles are kept for the
 * backward, otherwise the backward recomputes each chunk's. Kernels and design: src/shaders/sinkhorn-clouds.ts.
 *
 * `diameter: 'auto'` (the default, geomloss's own when diameter is None) measures the diameter on the GPU
 * and builds the ε schedule there, so the op stays synchronous (it cannot read the diameter back). The
 * host then records steps for the largest diameter `diameterBound` allows (default: any finite float32
 * diameter, ~925 steps for blur 0.05 / scaling 0.95); the GPU runs exactly the schedule of the measured
 * diameter and the surplus steps return at once. A tight bound makes the call much cheaper: points of
 * unit norm (RD++'s pixel clouds) have diameter ≤ 2√D. A measured diameter above the bound, zero or not
 * finite makes the values (and gradients) NaN. For an exact host-side schedule, read
 * `cloudsDiameter(x, y)` and pass the number.
 */
import { grid1d } from '../../shaders/common.js';
import { gemmGrid } from '../../shaders/matmul.js';
import {
  combineWGSL,
  costWGSL,
  diameterWGSL,
  gradWGSL,
  normsWGSL,
  rangeWGSL,
  scheduleWGSL,
  stepWGSL,
  TILE,
  valueWGSL,
} from '../../shaders/sinkhorn-clouds.js';
import { record } from '../autograd.js';
import { flag } from '../flags.js';
import { sizeClass } from '../memory.js';
import { runtime } from '../runtime.js';
import { empty, type Tensor, tensor } from '../tensor.js';
import { full } from './elementwise.js';
import { epsilonSchedule } from './sinkhorn.js';

export interface SinkhornCloudsOptions {
  /** Target blur σ: the last ε is σ² (default 0.05). */
  blur?: number;
  /** ε ratio between steps is scaling² (default 0.95). */
  scaling?: number;
  /** The first ε is diameter²; 'auto' (default) = geomloss's max_diameter of both batches, on the GPU. */
  diameter?: number | 'auto';
  /** 'auto' only: an upper bound of the measured diameter; sets how many ε-steps are recorded. */
  diameterBound?: number;
  /** Cost-matrix bytes per chunk of problems (default: flag SINKHORN_CHUNK_BYTES). */
  chunkBytes?: number;
}

/** Tuning knobs (tests set them to exercise every path). */
export const cloudsTuning = {
  /**
   * Column tiles per workgroup of the step kernel (one row partial per 64 × 64·W segment). 'auto': the
   * largest of 8, 4, 2, 1 that still gives `stepWorkgroups` workgroups per step (N = 4096: 8, 1024: 4,
   * 256: 1 at B = 16), so that small problems spread over the GPU and large ones write few partials.
   */
  segmentTiles: 'auto' as number | 'auto',
  stepWorkgroups: 2048,
};

const OP = 'sinkhornClouds';
const MAX_STEPS = 100000;

interface Dims {
  B: number;
  N: number;
  M: number;
  D: number;
  TN: number;
  TM: number;
  NP: number;
  MP: number;
  /** tiles per problem, and where the xx / yy triangles start */
  Q: number;
  xxBase: number;
  yyBase: number;
  /** potential entries per problem: 4 vectors f_ba (NP), g_ab (MP), f_aa (NP), g_bb (MP) */
  PS: number;
}

function checkInputs(x: Tensor, y: Tensor): Dims {
  const what = `x ${x.describe()}, y ${y.describe()}`;
  if (x.rank !== 3 || y.rank !== 3)
    throw new Error(`${OP}: x and y must both be 3-D [B, N, D] and [B, M, D]; got ${what}`);
  const [B, N, D] = x.shape as [number, number, number];
  const [By, M, Dy] = y.shape as [number, number, number];
  if (By !== B) throw new Error(`${OP}: batch sizes differ (${B} vs ${By}): ${what}`);
  if (Dy !== D) throw new Error(`${OP}: point dimensions (last axis) differ (${D} vs ${Dy}): ${what}`);
  if (B === 0 || N === 0 || M === 0 || D === 0)
    throw new Error(`${OP}: empty input (every dimension must be ≥ 1): ${what}`);
  const TN = Math.ceil(N / TILE);
  const TM = Math.ceil(M / TILE);
  if (TN > 0x7fff || TM > 0x7fff) throw new Error(`${OP}: clouds of more than 2^21 points: ${what}`);
  const xxBase = TN * TM;
  const yyBase = xxBase + (TN * (TN + 1)) / 2;
  return {
    B,
    N,
    M,
    D,
    TN,
    TM,
    NP: TN * TILE,
    MP: TM * TILE,
    Q: yyBase + (TM * (TM + 1)) / 2,
    xxBase,
    yyBase,
    PS: 2 * (TN + TM) * TILE,
  };
}

interface Opts {
  blur: number;
  scaling: number;
  diameter: number | 'auto';
  bound: number;
  chunkBytes: number;
}

const F32_MAX = 3.4028234663852886e38;

function checkOptions(opts: SinkhornCloudsOptions): Opts {
  const blur = opts.blur ?? 0.05;
  const scaling = opts.scaling ?? 0.95;
  const diameter = opts.diameter ?? 'auto';
  if (!(blur > 0) || !Number.isFinite(blur)) throw new Error(`${OP}: blur must be > 0, got ${blur}`);
  if (!(scaling > 0 && scaling < 1)) throw new Error(`${OP}: scaling must be in (0, 1), got ${scaling}`);
  if (diameter !== 'auto' && (typeof diameter !== 'number' || !(diameter > 0) || !Number.isFinite(diameter)))
    throw new Error(`${OP}: diameter must be 'auto' or a finite number > 0, got ${diameter}`);
  // the 'auto' diameter is a float32 √Σ range²: finite means ≤ √(float32 max)
  const bound = opts.diameterBound ?? Math.sqrt(F32_MAX);
  if (!(bound > 0) || !Number.isFinite(bound))
    throw new Error(`${OP}: diameterBound must be a finite number > 0, got ${bound}`);
  const steps = numpySteps(diameter === 'auto' ? Math.fround(bound) : diameter, blur, scaling);
  if (steps > MAX_STEPS)
    throw new Error(
      `${OP}: the ε schedule would have ${steps} steps (more than ${MAX_STEPS}; scaling ${scaling} too close to 1 ` +
        `or ${diameter === 'auto' ? 'diameterBound' : 'diameter'} too large)`,
    );
  const chunkBytes = opts.chunkBytes ?? flag('SINKHORN_CHUNK_BYTES');
  if (!(chunkBytes > 0)) throw new Error(`${OP}: chunkBytes must be > 0, got ${chunkBytes}`);
  return { blur, scaling, diameter, bound, chunkBytes };
}

/** numpy's len(arange(2 ln d, 2 ln blur, 2 ln scaling)) (the ε list has 2 more values). */
function numpySteps(d: number, blur: number, scaling: number): number {
  const start = 2 * Math.log(d);
  const stop = 2 * Math.log(blur);
  const step = 2 * Math.log(scaling);
  return Math.max(0, Math.ceil((stop - start) / step));
}

// ---- the ε schedule buffer: entry 0 = (L, poisoned, NaN), entry 1 + s = (ε, 1/ε, mode) of step s ----

/** Host schedule for a known diameter: steps 0 (init), 1..L (averaging), L + 1 (final). */
function hostSchedule(diameter: number, blur: number, scaling: number): Float32Array {
  const eps = epsilonSchedule(diameter, blur, scaling);
  const L = eps.length;
  const out = new Float32Array(4 * (L + 3));
  out[0] = L;
  out[2] = Number.NaN;
  const put = (s: number, e: number, mode: number) => out.set([e, 1 / e, mode, 0], 4 * (1 + s));
  put(0, eps[0]!, 0);
  for (let s = 1; s <= L; s++) put(s, eps[s - 1]!, 1);
  put(L + 1, eps[L - 1]!, 2);
  return out;
}

const tables = new Map<string, Float32Array>();

/**
 * For the GPU schedule: per i ≤ ncap, (r_i = exp(i·2 ln s), 1/r_i, thr_i) where thr_i is the smallest
 * float32 diameter whose numpy step count exceeds i (binary search over float32 bit patterns), so that
 * the GPU's n = #{i : thr_i ≤ d} equals numpy's count for the same float32 d.
 */
function scheduleTable(blur: number, scaling: number, ncap: number): Float32Array {
  const key = `${blur}|${scaling}|${ncap}`;
  let t = tables.get(key);
  if (t) return t;
  const view = new DataView(new ArrayBuffer(4));
  const f32 = (bits: number) => {
    view.setUint32(0, bits);
    return view.getFloat32(0);
  };
  const step = 2 * Math.log(scaling);
  t = new Float32Array(4 * (ncap + 1));
  for (let i = 0; i <= ncap; i++) {
    let lo = 1;
    let hi = 0x7f7fffff;
    let thr = Number.POSITIVE_INFINITY;
    if (numpySteps(f32(hi), blur, scaling) > i) {
      while (lo < hi) {
        const mid = Math.floor((lo + hi) / 2);
        if (numpySteps(f32(mid), blur, scaling) > i) hi = mid;
        else lo = mid + 1;
      }
      thr = f32(lo);
    }
    t.set([Math.exp(i * step), Math.exp(-i * step), thr, 0], 4 * i);
  }
  t[3] = Number.NaN; // the poison value (WGSL has no NaN literal)
  tables.set(key, t);
  return t;
}

// ---- diameter ----

function diameterInto(x: Tensor, y: Tensor, D: number): Tensor {
  const rt = runtime();
  const rows = x.size / D + y.size / D;
  const R = Math.max(1, Math.min(256, Math.ceil(rows / 256)));
  const per = Math.ceil(rows / R);
  const part = empty([R, D, 2]);
  rt.run({
    name: 'clouds_range',
    inputs: [
      { name: 'x', buffer: x.buffer },
      { name: 'y', buffer: y.buffer },
    ],
    outputs: [{ name: 'part', buffer: part.buffer, type: 'vec2<f32>' }],
    uniforms: { rows: ['u32', rows], nx: ['u32', x.size / D], D: ['u32', D], per: ['u32', per] },
    workgroups: [Math.ceil(D / 64), R],
    wgsl: rangeWGSL(),
  });
  const diam = empty([1]);
  rt.run({
    name: 'clouds_diameter',
    inputs: [{ name: 'part', buffer: part.buffer, type: 'vec2<f32>' }],
    outputs: [{ name: 'diam', buffer: diam.buffer }],
    uniforms: { R: ['u32', R], D: ['u32', D] },
    workgroups: [1],
    wgsl: diameterWGSL(),
  });
  part.dispose();
  return diam;
}

/**
 * geomloss's default diameter for 3-D inputs, max_diameter(x.view(-1, D), y.view(-1, D)): the Euclidean
 * norm of (max − min) per coordinate over all points of both batches, as a [1] tensor on the GPU.
 */
export function cloudsDiameter(x: Tensor, y: Tensor): Tensor {
  const d = checkInputs(x, y);
  return diameterInto(x, y, d.D);
}

// ---- the op ----

interface Chunk {
  b0: number;
  P: number;
}

/** Problems per chunk: cost storage under the budget and the device's largest binding (≥ 1 problem). */
function chunkSize(d: Dims, budget: number): number {
  const per = d.Q * TILE * TILE * 4;
  const maxBinding = runtime().gpu.report.limits.maxStorageBufferBindingSize;
  if (sizeClass(per) > maxBinding)
    throw new Error(
      `${OP}: one problem's cost matrices need ${(per / 2 ** 20).toFixed(1)} MiB, more than this GPU's largest ` +
        `storage binding (${(maxBinding / 2 ** 20).toFixed(0)} MiB): N = ${d.N}, M = ${d.M} is too large`,
    );
  const zper = 2 * d.TN + d.TM;
  let P = Math.max(1, Math.min(d.B, Math.floor(budget / per), Math.floor(65535 / zper)));
  while (P > 1 && sizeClass(P * per) > maxBinding) P--;
  return P;
}

function layoutUniforms(d: Dims): Record<string, ['u32', number]> {
  return {
    N: ['u32', d.N],
    M: ['u32', d.M],
    NP: ['u32', d.NP],
    MP: ['u32', d.MP],
    TN: ['u32', d.TN],
    TM: ['u32', d.TM],
    Q: ['u32', d.Q],
    xxBase: ['u32', d.xxBase],
    yyBase: ['u32', d.yyBase],
    PS: ['u32', d.PS],
  };
}

/** Step-kernel tasks of one problem (kind | tile-row << 2 | segment << 17) and the partial layout. */
function stepPlan(d: Dims, W: number) {
  const tasks: number[] = [];
  const S0 = Math.ceil(d.TM / W);
  for (let I = 0; I < d.TN; I++) for (let s = 0; s < S0; s++) tasks.push(0 | (I << 2) | (s << 17));
  for (const [kind, T] of [
    [1, d.TN],
    [2, d.TM],
  ] as const)
    for (let I = 0; I < T; I++)
      for (let s = 0; s < Math.ceil((T - I) / W); s++) tasks.push(kind | (I << 2) | (s << 17));
  const po1 = S0 * d.NP;
  const po2 = po1 + d.TN * d.MP;
  const po3 = po2 + d.TN * d.NP;
  const pstride = po3 + d.TM * d.MP;
  return { tasks: Uint32Array.from(tasks), S0, po1, po2, po3, pstride };
}

function runCost(x: Tensor, y: Tensor, sq: Tensor, cost: Tensor, d: Dims, c: Chunk): void {
  const zper = 2 * d.TN + d.TM;
  const grid = gemmGrid(TILE, Math.max(d.NP, d.MP), c.P * zper);
  runtime().run({
    name: 'clouds_cost',
    inputs: [
      { name: 'x', buffer: x.buffer },
      { name: 'y', buffer: y.buffer },
      { name: 'sq', buffer: sq.buffer },
    ],
    outputs: [{ name: 'cost', buffer: cost.buffer }],
    uniforms: {
      tiles_m: ['u32', grid.tiles_m],
      tiles_n: ['u32', grid.tiles_n],
      b0: ['u32', c.b0],
      D: ['u32', d.D],
      KP: ['u32', d.NP + d.MP],
      zper: ['u32', zper],
      ...layoutUniforms(d),
    },
    workgroups: grid.workgroups,
    wgsl: costWGSL(),
  });
}

/** dx or dy of one chunk (rows of cloud `ry`), accumulated GEMM with on-the-fly plan entries. */
function runGrad(
  x: Tensor,
  y: Tensor,
  st: { cost: Tensor; pot: Tensor; mi: Tensor; sched: Tensor },
  g: Tensor,
  out: Tensor,
  ry: 0 | 1,
  ie: number,
  d: Dims,
  c: Chunk,
): void {
  const grid = gemmGrid(ry ? d.M : d.N, d.D, c.P);
  runtime().run({
    name: 'clouds_grad',
    inputs: [
      { name: 'x', buffer: x.buffer },
      { name: 'y', buffer: y.buffer },
      { name: 'cost', buffer: st.cost.buffer },
      { name: 'pot', buffer: st.pot.buffer },
      { name: 'mi', buffer: st.mi.buffer, type: 'vec2<f32>' },
      { name: 'sched', buffer: st.sched.buffer, type: 'vec4<f32>' },
      { name: 'g', buffer: g.buffer },
    ],
    outputs: [{ name: 'out', buffer: out.buffer }],
    uniforms: {
      tiles_m: ['u32', grid.tiles_m],
      tiles_n: ['u32', grid.tiles_n],
      b0: ['u32', c.b0],
      ry: ['u32', ry],
      D: ['u32', d.D],
      ie: ['f32', ie],
      ...layoutUniforms(d),
    },
    workgroups: grid.workgroups,
    wgsl: gradWGSL(),
  });
}

/** The debiased Sinkhorn divergence of each problem b: x [B, N, D], y [B, M, D] → [B]. */
export function sinkhornClouds(x: Tensor, y: Tensor, opts: SinkhornCloudsOptions = {}): Tensor {
  const d = checkInputs(x, y);
  const o = checkOptions(opts);
  const rt = runtime();

  // the ε schedule: on the host for a given diameter, on the GPU for 'auto'
  let sched: Tensor;
  let Lcap: number;
  if (o.diameter === 'auto') {
    const ncap = numpySteps(Math.fround(o.bound), o.blur, o.scaling);
    Lcap = ncap + 2;
    const diam = diameterInto(x, y, d.D);
    const tab = tensor(scheduleTable(o.blur, o.scaling, ncap), [ncap + 1, 4]);
    sched = empty([Lcap + 3, 4]);
    rt.run({
      name: 'clouds_schedule',
      inputs: [
        { name: 'diam', buffer: diam.buffer },
        { name: 'tab', buffer: tab.buffer, type: 'vec4<f32>' },
      ],
      outputs: [{ name: 'sched', buffer: sched.buffer, type: 'vec4<f32>' }],
      uniforms: {
        ncap: ['u32', ncap],
        steps: ['u32', Lcap + 2],
        eb: ['f32', o.blur ** 2],
        ieb: ['f32', 1 / o.blur ** 2],
      },
      workgroups: [1],
      wgsl: scheduleWGSL(),
    });
    diam.dispose();
    tab.dispose();
  } else {
    const h = hostSchedule(o.diameter, o.blur, o.scaling);
    Lcap = h[0]!;
    sched = tensor(h, [h.length / 4, 4]);
  }
  const ieFinal = Math.fround(1 / o.blur ** 2);

  // point norms, state vectors (zero potentials and gauge), per-chunk scratch
  const sq = empty([d.B, d.NP + d.MP]);
  const npts = d.B * (d.N + d.M);
  rt.run({
    name: 'clouds_norms',
    inputs: [
      { name: 'x', buffer: x.buffer },
      { name: 'y', buffer: y.buffer },
    ],
    outputs: [{ name: 'sq', buffer: sq.buffer }],
    uniforms: {
      B: ['u32', d.B],
      N: ['u32', d.N],
      M: ['u32', d.M],
      D: ['u32', d.D],
      NP: ['u32', d.NP],
      KP: ['u32', d.NP + d.MP],
    },
    workgroups: grid1d(npts * 64, 256),
    wgsl: normsWGSL(),
  });
  const pot = full([d.B, d.PS], 0);
  const gauge = full([d.B, 4], 0);
  const fin = empty([d.B, d.PS]);
  const mi = empty([d.B, d.PS, 2]);
  const value = empty([d.B]);

  // as few chunks as the budget allows, of balanced sizes (16 problems at 3 per chunk: 3,3,3,3,2,2)
  const count = Math.ceil(d.B / chunkSize(d, o.chunkBytes));
  const chunks: Chunk[] = [];
  for (let k = 0, b0 = 0; k < count; k++) {
    const n = Math.floor(d.B / count) + (k < d.B % count ? 1 : 0);
    chunks.push({ b0, P: n });
    b0 += n;
  }
  const P = chunks[0]!.P;
  const seg = cloudsTuning.segmentTiles;
  let W = seg === 'auto' ? 8 : Math.max(1, Math.floor(seg));
  if (seg === 'auto') while (W > 1 && P * stepPlan(d, W).tasks.length < cloudsTuning.stepWorkgroups) W /= 2;
  const sp = stepPlan(d, W);
  const tasks = empty([sp.tasks.length], 'f32', { upload: true });
  rt.write(tasks.buffer, sp.tasks);
  const ntasks = sp.tasks.length;
  const cost = empty([P * d.Q, TILE * TILE]);
  const part = empty([P * sp.pstride, 2]);
  const partUniforms: Record<string, ['u32', number]> = {
    po1: ['u32', sp.po1],
    po2: ['u32', sp.po2],
    po3: ['u32', sp.po3],
    pstride: ['u32', sp.pstride],
  };

  for (const c of chunks) {
    runCost(x, y, sq, cost, d, c);
    const tx = Math.min(ntasks, 65535);
    for (let s = 0; s < Lcap + 2; s++) {
      rt.run({
        name: 'clouds_step',
        inputs: [
          { name: 'cost', buffer: cost.buffer, type: 'vec4<f32>' },
          { name: 'pot', buffer: pot.buffer },
          { name: 'sched', buffer: sched.buffer, type: 'vec4<f32>' },
          { name: 'tasks', buffer: tasks.buffer, type: 'u32' },
        ],
        outputs: [{ name: 'part', buffer: part.buffer, type: 'vec2<f32>' }],
        uniforms: {
          step: ['u32', s],
          b0: ['u32', c.b0],
          ntasks: ['u32', ntasks],
          W: ['u32', W],
          ...layoutUniforms(d),
          ...partUniforms,
        },
        workgroups: [tx, Math.ceil(ntasks / tx), c.P],
        wgsl: stepWGSL(),
      });
      rt.run({
        name: 'clouds_combine',
        inputs: [
          { name: 'part', buffer: part.buffer, type: 'vec2<f32>' },
          { name: 'sched', buffer: sched.buffer, type: 'vec4<f32>' },
        ],
        outputs: [
          { name: 'pot', buffer: pot.buffer },
          { name: 'gauge', buffer: gauge.buffer },
          { name: 'fin', buffer: fin.buffer },
          { name: 'mi', buffer: mi.buffer, type: 'vec2<f32>' },
        ],
        uniforms: {
          step: ['u32', s],
          b0: ['u32', c.b0],
          total: ['u32', c.P * d.PS],
          W: ['u32', W],
          S0: ['u32', sp.S0],
          ...layoutUniforms(d),
          ...partUniforms,
        },
        workgroups: grid1d(c.P * d.PS, 256),
        wgsl: combineWGSL(),
      });
    }
    rt.run({
      name: 'clouds_value',
      inputs: [
        { name: 'fin', buffer: fin.buffer },
        { name: 'sched', buffer: sched.buffer, type: 'vec4<f32>' },
      ],
      outputs: [{ name: 'value', buffer: value.buffer }],
      uniforms: {
        b0: ['u32', c.b0],
        N: ['u32', d.N],
        M: ['u32', d.M],
        NP: ['u32', d.NP],
        MP: ['u32', d.MP],
        PS: ['u32', d.PS],
      },
      workgroups: [c.P],
      wgsl: valueWGSL(),
    });
  }
  for (const t of [gauge, fin, tasks, part]) t.dispose();

  // backward: the cost tiles are kept when there was one chunk, else recomputed per chunk
  const keepCost = chunks.length === 1;
  record('sinkhorn_clouds', value, [x, y], (g) => {
    const st = { cost: keepCost ? cost : empty([P * d.Q, TILE * TILE]), pot, mi, sched };
    const dx = x.requiresGrad ? empty(x.shape) : null;
    const dy = y.requiresGrad ? empty(y.shape) : null;
    for (const c of chunks) {
      if (!keepCost) runCost(x, y, sq, st.cost, d, c);
      if (dx) runGrad(x, y, st, g, dx, 0, ieFinal, d, c);
      if (dy) runGrad(x, y, st, g, dy, 1, ieFinal, d, c);
    }
    for (const t of [st.cost, pot, mi, sched, sq]) t.dispose();
    return [dx, dy];
  });
  if (!value.node || !keepCost) cost.dispose();
  if (!value.node || keepCost) sq.dispose();
  if (!value.node) for (const t of [pot, mi, sched]) t.dispose();
  return value;
}
