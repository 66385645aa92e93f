/**
 * The convolution family: conv2d, convTranspose2d (2×2 stride 2) and matmul, forward and backward, all on
 * the one tiled GEMM core (src/shaders/matmul.ts) with the index maps of src/shaders/conv.ts.
 *
 * conv2d forward is an implicit GEMM with a fused bias; its input gradient is the phase-split dgrad GEMM
 * (no atomics), its weight gradient a split-K GEMM plus a slice sum, its bias gradient a channel
 * reduction. convTranspose2d k2 s2 is the same machinery: its forward one GEMM over its four output phases
 * (deconvForward), its dx one GEMM over g read space-to-depth (deconvDgrad), both on the weight as it is,
 * and its dw a wgrad.
 *
 * Every GEMM here runs in the operand precision of gemmPrecision() (the flag PRECISION: f16 operands with
 * f32 accumulation, or f32), weight gradients included; split-K partials, slice sums, bias and fused
 * epilogues stay f32.
 *
 * Temporaries (transposed weights, split-K partials) are disposed right after their dispatches are
 * recorded; the pool keeps them pending until the submit, so that is safe. Transposed copies of weights
 * that will be read again unchanged are kept instead (packedWeight, the flag KEEP_PACKED_WEIGHTS).
 */

import { grid1d } from '../../shaders/common.js';
import {
  biasGradShader,
  type ConvGeom,
  convUniforms,
  DGRAD_CTX,
  DGRAD_G,
  DGRAD_G_VEC4,
  DGRAD_STORE,
  deconvStore,
  epilogueKey,
  FWD_CTX,
  FWD_FLAT_CTX,
  type FwdEpilogue,
  fwdFlatK,
  fwdKTiles,
  fwdStore,
  IM2COL,
  IM2COL_FLAT,
  IM2COL_VEC4,
  im2colVec4,
  permute3Shader,
  SPACE_TO_DEPTH,
  splitSumEpilogueShader,
  WGRAD_CTX,
  WGRAD_G,
  WGRAD_STORE,
  WGRAD_X,
  weightOperand,
  weightVec4,
} from '../../shaders/conv.js';
import {
  DEFAULT_TILE,
  GEMM_TILES,
  type GemmOperand,
  type GemmTile,
  gemmGrid,
  gemmShader,
  type LoadMode,
  mmaGemmTile,
  PLAIN_CTX,
  PLAIN_STORE,
  precisionKey,
  splitSumShader,
  stridedOperand,
  stridedUniforms,
  tileKey,
  tileSharedBytes,
  tileStageGroups,
  vec4Key,
} from '../../shaders/matmul.js';
import type { MmaTile } from '../../shaders/mma.js';
import { isGradEnabled, noGrad, record } from '../autograd.js';
import type { AdapterReport } from '../device.js';
import { flag, type Precision } from '../flags.js';
import { activeMmaTile } from '../mma.js';
import { activationDtype, gemmPrecision } from '../precision.js';
import type { BufferBinding } from '../program.js';
import { runtime } from '../runtime.js';
import { BYTES, type DType, empty, keep, type Tensor } from '../tensor.js';
import { gemmKey, traceSplits, tunedSplits, tunedTile } from '../tile-table.js';
import { cast } from './cast.js';

export type { ConvGeom } from '../../shaders/conv.js';

/**
 * Tuning knobs. Split-K (weight gradients, matmul, and forward convolutions unless the flag
 * CONV_FWD_SPLIT_K is off): a GEMM whose M×N tiles leave much of a wave of `targetWorkgroups` workgroups
 * (the GPU's workgroups at once) idle splits its K tiles over more workgroups (at least
 * `minKTilesPerSplit` per slice) where that takes fewer waves × K tiles (splitCount), and splits so that
 * one slice accumulates at most `maxKTilesPerSplit` tiles (float32 accuracy) unless `maxSplits` or
 * `maxPartialBytes` forbid it. Input-gradient GEMMs (K = Cout·taps ≤ ~9k, M = N·H·W of a training batch)
 * run K in one pass. `tile` fixes the block tile of every GEMM (tests); null takes it from the flag
 * GEMM_TILE. Tests lower the thresholds to exercise split-K.
 */
export const convTuning = {
  tile: null as GemmTile | null,
  /** the split count of every split-K capable GEMM, forced (rdpp tune, tests); null: the table's or splitCount's */
  splits: null as number | null,
  /** the forward's K walk, forced (tests: both walks on every shape); null: fwdFlatK decides */
  flatK: null as boolean | null,
  targetWorkgroups: 528,
  minKTilesPerSplit: 8,
  maxKTilesPerSplit: 256,
  maxSplits: 64,
  /** Upper bound on the split-K partial buffer. */
  maxPartialBytes: 256 * 2 ** 20,
};

/** Candidates of GEMM_TILE=auto, largest first. */
const AUTO_TILES = ['t128x128', 't128x64', 't64x128'] as const;

/**
 * The block tile for a GEMM of M×N outputs: convTuning.tile when set, else the subgroup-matrix tile when the
 * GEMM runs in f16 and prepareMma has enabled one, else the tile the tuned table (engine/tile-table.ts)
 * lists for the GEMM's `key`, else the flag GEMM_TILE — a tile by
 * name, or `auto`: the largest tile (fewer staging loads per FMA) that still gives `targetWorkgroups`
 * workgroups, else 64×64 (and split-K where the GEMM allows it).
 */
export function gemmTileFor(M: number, N: number, key?: string): GemmTile {
  // the key is looked up (and traced for `rdpp tune`) before anything forces a tile
  const tuned = key === undefined ? null : tunedTile(key);
  if (convTuning.tile) return fitting(convTuning.tile, 'the forced tile');
  const mma = mmaTileInUse();
  if (mma) return mmaGemmTile(mma);
  if (tuned) return fitting(tuned, `the tuned table's tile for ${key}`);
  const name = flag('GEMM_TILE');
  if (name !== 'auto') {
    const t = GEMM_TILES[name];
    if (!t)
      throw new Error(
        `GEMM_TILE=${name} is not a known tile: use auto or one of ${Object.keys(GEMM_TILES).join(', ')}`,
      );
    return fitting(t, `GEMM_TILE=${name}`);
  }
  // (only tiles this device can run: SwiftShader, for one, is not offered the rectangular ones)
  for (const candidate of AUTO_TILES) {
    const t = GEMM_TILES[candidate]!;
    if (Math.ceil(M / t.bm) * Math.ceil(N / t.bn) >= convTuning.targetWorkgroups && !tileDeviceProblem(t))
      return t;
  }
  return DEFAULT_TILE;
}

/** Why `t` cannot run on this device, or null when it can (tileAdapterProblem on the engine's adapter). */
export function tileDeviceProblem(t: GemmTile): string | null {
  return tileAdapterProblem(runtime().gpu.report, t, gemmPrecision());
}

/**
 * Why `t` cannot run on the adapter `r`: more workgroup memory than it has, or a tile its driver is known
 * not to survive — Chrome's SwiftShader (the CPU WebGPU of browsers without a GPU) loses the device after
 * two to three minutes on a SIMT tile whose invocations stage more than one group of 4 rows per operand
 * (t32x32, t128x64, t64x128; measured with Chromium 156 in headless mode, 2026-12-06: forward and weight-gradient
 * convolutions; t64x64 and t128x128, and the same shapes with BK 8, run).
 */
export function tileAdapterProblem(r: AdapterReport, t: GemmTile, precision: Precision): string | null {
  const limit = r.limits.maxComputeWorkgroupStorageSize;
  const bytes = tileSharedBytes(t, precision);
  if (bytes > limit)
    return `tile ${tileKey(t)} stages ${bytes} bytes of workgroup memory, more than this adapter's ${limit}; choose a smaller tile, or one without double buffering (no trailing d)`;
  const swiftShader = /swiftshader/i.test(`${r.vendor} ${r.architecture} ${r.device} ${r.description}`);
  if (swiftShader && tileStageGroups(t) > 1)
    return `tile ${tileKey(t)} stages ${tileStageGroups(t)} groups of 4 rows per invocation, which SwiftShader (the browser's CPU WebGPU) does not survive (the device is lost after minutes): use t64x64 or t128x128 there`;
  return null;
}

/** `t`, or a clear error naming where it came from when the device cannot run it. */
function fitting(t: GemmTile, source: string): GemmTile {
  const problem = tileDeviceProblem(t);
  if (problem) throw new Error(`${source}: ${problem}`);
  return t;
}

/** The tensor cores' tile when the GEMMs run on them: prepareMma has checked them on this device (engine/mma.ts) and the operands are f16. */
export function mmaTileInUse(): MmaTile | null {
  const mma = activeMmaTile();
  return mma && gemmPrecision() === 'f16' ? mma : null;
}

/** The tile-table key of one pass of a convolution (every size of its geometry; see engine/tile-table.ts). */
function convKey(pass: ConvPass, g: ConvGeom): string {
  return gemmKey(pass, [g.n, g.ci, g.h, g.w, g.co, g.kh, g.kw, g.s, g.p]);
}

export interface Conv2dOptions {
  stride?: number;
  padding?: number;
}

function shapeStr(s: readonly number[]): string {
  return `[${s.join(', ')}]`;
}

/** The most bytes a split-K partial buffer may take (convTuning's bound, and the adapter's binding limit). */
function partialBytesLimit(): number {
  return Math.min(convTuning.maxPartialBytes, runtime().gpu.report.limits.maxStorageBufferBindingSize);
}

/** The most slices of `sliceBytes` each that the partial buffer may hold (at least 1). */
function maxSplitsForBytes(sliceBytes: number): number {
  return Math.max(1, Math.floor(partialBytesLimit() / Math.max(sliceBytes, 1)));
}

/**
 * The engine's split count for a GEMM of `tiles` output tiles and `kTiles` K tiles, `sliceBytes` per slice
 * of partials: the count that runs the GEMM in the fewest waves × K tiles per slice — its time when
 * `targetWorkgroups` workgroups run at once — or, of the counts within 1/16 of that time, the fewest
 * slices (each slice is written, read back and summed). At least the slices float32 accuracy asks for
 * (`maxKTilesPerSplit` K tiles per slice); at most what `minKTilesPerSplit`, `maxSplits` and the partial
 * buffer's bound allow, which win.
 * So a GEMM that fills a wave already runs K in one pass (512 tiles: splitting in two makes two waves of
 * half the work, the same time, plus the partials), and a split stops short of spilling into another wave
 * (128 tiles × 5 = 640 workgroups take two waves of 1/5 of K; × 4 one wave of 1/4).
 */
export function splitCount(tiles: number, kTiles: number, sliceBytes: number): number {
  const t = convTuning;
  const most = Math.max(
    1,
    Math.min(Math.floor(kTiles / t.minKTilesPerSplit), t.maxSplits, maxSplitsForBytes(sliceBytes)),
  );
  const least = Math.min(most, Math.max(1, Math.ceil(kTiles / t.maxKTilesPerSplit)));
  const time = (s: number) => {
    const perSlice = Math.ceil(kTiles / s);
    const slices = Math.ceil(kTiles / perSlice);
    return Math.ceil((tiles * slices) / t.targetWorkgroups) * perSlice;
  };
  let fastest = Number.POSITIVE_INFINITY;
  for (let s = least; s <= most; s++) fastest = Math.min(fastest, time(s));
  // within 1/16 of the fastest (rounding to whole waves is noise when the waves are many) the fewest slices
  for (let s = least; s < most; s++) if (time(s) <= fastest * (1 + 1 / 16)) return s;
  return most;
}

/**
 * The split count fixed for the GEMM `key`: convTuning.splits when set, else the tuned table's — only
 * where its tile is the one that runs (no tile forced, no tensor cores) — else null (splitCount decides).
 */
function fixedSplits(key: string): number | null {
  if (convTuning.splits !== null) return convTuning.splits;
  if (convTuning.tile || mmaTileInUse()) return null;
  return tunedSplits(key);
}

/** Sum `splits` slices of `part` ([splits, n]) into `out` ([n]). */
function splitSum(part: Tensor, out: Tensor, splits: number): void {
  const n = out.size;
  runtime().run({
    name: 'splitk_sum',
    inputs: [{ name: 'part', buffer: part.buffer }],
    outputs: [{ name: 'out', buffer: out.buffer }],
    uniforms: { n: ['u32', n], splits: ['u32', splits] },
    workgroups: grid1d(n),
    cost: { bytes: 4 * n * (splits + 1) },
    wgsl: splitSumShader(),
  });
}

/**
 * Run a split-K capable GEMM into `out` (m×n values): `launch(dst, splits, tps)` records the GEMM writing
 * slice z of `dst` at z·m·n; with more than one slice a temporary holds them and `sum` (the plain slice sum
 * unless given) writes `out`. `split: false` runs K in one pass.
 */
function withSplitK(
  out: Tensor,
  tiles: number,
  kTiles: number,
  launch: (dst: Tensor, splits: number, tps: number) => void,
  o: { split?: boolean; sum?: (part: Tensor, out: Tensor, splits: number) => void; key?: string } = {},
): void {
  const fixed = o.key === undefined ? null : fixedSplits(o.key);
  const splits =
    o.split === false
      ? 1
      : fixed !== null
        ? Math.min(fixed, maxSplitsForBytes(out.byteLength))
        : splitCount(tiles, kTiles, out.byteLength);
  const tps = Math.ceil(kTiles / splits);
  const used = Math.ceil(kTiles / tps);
  if (o.key !== undefined) traceSplits(o.key, used);
  if (used <= 1) {
    launch(out, 1, Math.max(kTiles, 1));
    return;
  }
  const part = empty([used, out.size]);
  launch(part, used, tps);
  (o.sum ?? splitSum)(part, out, used);
  part.dispose();
}

/**
 * A conv weight stored only the way the forward GEMM reads it — [T, Ci, Co], transposeWeight's
 * 'tap-cin-cout' — for a model that will only ever run inference (`rdpp test`, `rdpp predict`): the
 * original [Co, Ci, KH, KW] tensor is gone, so there is neither a per-call copy (KEEP_PACKED_WEIGHTS
 * `off` / `frozen` for trainable weights: one permute dispatch per conv per batch) nor a second resident
 * copy (`stable`: 347 MiB for WRN50-2 RD++). It has no gradient and cannot be trained or saved; conv2d and
 * conv2dFused take it where they take a weight (`ConvWeight`), and refuse it where a gradient would need
 * the other layout (the input gradient's 'tap-cout-cin').
 */
export class PackedConvWeight {
  readonly requiresGrad = false;
  /**
   * @param data the [T, Ci, Co] copy (one tap: [Co, Ci, 1, 1], w's layout) (owned: dispose() frees it):
   * f32, or f16 for f16 GEMMs only (see packConvWeight); @param shape the weight's [Co, Ci, KH, KW]
   */
  constructor(
    readonly data: Tensor,
    readonly shape: readonly [number, number, number, number],
  ) {}
  get dtype(): DType {
    return this.data.dtype;
  }
  get rank(): number {
    return 4;
  }
  get size(): number {
    return this.data.size;
  }
  describe(): string {
    return `${this.data.name ?? 'weight'} [${this.shape.join(', ')}] (packed for inference)`;
  }
  dispose(): void {
    this.data.dispose();
  }
}

/** What conv2d and conv2dFused take as a weight. */
export type ConvWeight = Tensor | PackedConvWeight;

/**
 * w [Co, Ci, KH, KW] (f32, more than one tap; or one tap with `dtype` f16) as a PackedConvWeight: a kept
 * [T, Ci, Co] copy (one tap: [Co, Ci, 1, 1], the layout the GEMM reads w in); w itself is left to the caller
 * (NetState.packConvWeights disposes it). With `dtype` f16 (for a model whose GEMMs run
 * in f16, PRECISION=f16) each value is rounded to f16 here instead of at every staging, so the GEMMs
 * compute exactly what they would from the f32 weight, from half the bytes; such a weight is refused by
 * f32 GEMMs.
 */
export function packConvWeight(w: Tensor, dtype: DType = 'f32'): PackedConvWeight {
  const taps = w.shape[2]! * w.shape[3]!;
  if (w.rank !== 4 || w.dtype !== 'f32' || (taps < 2 && dtype !== 'f16'))
    throw new Error(
      `packConvWeight: ${w.describe()} is not an f32 conv weight with more than one tap (a 1×1 weight is read as it is; only its f16 copy is worth making)`,
    );
  if (dtype === 'f16' && gemmPrecision() !== 'f16')
    throw new Error(
      `packConvWeight: an f16 weight is for f16 GEMMs, but the GEMMs run in ${gemmPrecision()}`,
    );
  // one tap: the GEMM reads w's own [Co, Ci] layout, so the packed weight is w rounded to f16
  const data = keep(taps === 1 ? noGrad(() => cast(w, 'f16')) : transposeWeight(w, 'tap-cin-cout', dtype));
  if (w.name) data.name = w.name;
  return new PackedConvWeight(data, w.shape as [number, number, number, number]);
}

/** How a conv GEMM reads a multi-tap weight (see transposeWeight). */
export type WeightLayout = 'tap-cin-cout' | 'tap-cout-cin';

/**
 * w as one GEMM reads it: a PackedConvWeight's data (the forward only), w itself when it has one tap
 * (either layout is w's own [Co, Ci], read along the other axis), else w in `layout`, kept in
 * runtime().derived and reused by later calls until w is written or freed (engine/derived.ts) when the flag
 * KEEP_PACKED_WEIGHTS allows it — `stable` (nothing will write w before its next use: it has no gradient,
 * or this is inference) or w has no gradient at all — else a `temporary` the caller disposes after
 * recording its dispatch.
 */
function packedWeight(
  w: ConvWeight,
  layout: WeightLayout,
  stable: boolean,
): { wt: Tensor; temporary: boolean } {
  if (w instanceof PackedConvWeight) {
    if (layout !== 'tap-cin-cout') throw new Error(`${w.describe()} is packed for the forward only`);
    return { wt: w.data, temporary: false };
  }
  if (w.shape[2]! * w.shape[3]! === 1) return { wt: w, temporary: false };
  const policy = flag('KEEP_PACKED_WEIGHTS');
  const keepIt = policy === 'stable' ? stable : policy === 'frozen' && !w.requiresGrad;
  if (!keepIt) return { wt: transposeWeight(w, layout), temporary: true };
  const key = `${layout}|${w.shape.join('x')}`;
  const wt = runtime().derived.get(w.buffer, key, () => keep(transposeWeight(w, layout)));
  return { wt, temporary: false };
}

/**
 * The weight w [Co, Ci, KH, KW] as the GEMMs read it: [T, Ci, Co] for the forward ('tap-cin-cout'), [T, Co,
 * Ci] for the input gradient ('tap-cout-cin'); see permute3Shader. `dtype` f16 rounds each value once, as
 * an f16 GEMM's staging would (packConvWeight under PRECISION=f16).
 */
export function transposeWeight(w: Tensor, layout: WeightLayout, dtype: DType = 'f32'): Tensor {
  const [co, ci, kh, kw] = w.shape as [number, number, number, number];
  const taps = kh * kw;
  const [e, s]: [[number, number, number], [number, number, number]] =
    layout === 'tap-cin-cout'
      ? [
          [taps, ci, co],
          [1, taps, ci * taps],
        ]
      : [
          [taps, co, ci],
          [1, ci * taps, taps],
        ];
  const y = empty(e, dtype);
  runtime().run({
    name: 'permute3',
    key: dtype,
    inputs: [{ name: 'x', buffer: w.buffer }],
    outputs: [{ name: 'y', buffer: y.buffer, type: dtype }],
    uniforms: {
      n: ['u32', y.size],
      e0: ['u32', e[0]],
      e1: ['u32', e[1]],
      e2: ['u32', e[2]],
      s0: ['u32', s[0]],
      s1: ['u32', s[1]],
      s2: ['u32', s[2]],
    },
    workgroups: grid1d(y.size),
    cost: { bytes: (4 + BYTES[dtype]) * y.size },
    wgsl: permute3Shader(256, dtype),
  });
  return y;
}

function weightUniforms(t: number, c: number, n: number, cn: number): Record<string, ['u32', number]> {
  return { ws_t: ['u32', t], ws_c: ['u32', c], ws_n: ['u32', n], ws_cn: ['u32', cn] };
}

/**
 * A weight as GEMM operand B (shaders/conv.ts weightOperand) with its uniforms: tap, channel and column
 * strides t, c, n, cn channels, `columns` columns; vectorised loads where the layout allows (vectorised()
 * then decides whether they are used).
 */
function weightB(
  mode: LoadMode,
  t: number,
  c: number,
  n: number,
  cn: number,
  columns: number,
): { operand: GemmOperand; uniforms: Record<string, ['u32', number]> } {
  const vec4 = mode === 'row' && n === 1 && weightVec4(t, c, columns);
  return { operand: weightOperand(mode, vec4), uniforms: weightUniforms(t, c, n, cn) };
}

/**
 * The operands, without vectorised loads where their vec4 views would take the program past `limit`
 * storage buffers per shader stage (`others`: the buffers it binds besides the views) — B's view is given up
 * first, then A's. WebGPU guarantees 8; a fused forward with bias, batch norm and a residual binds 9 already,
 * which is why the engine asks for the adapter's maximum (16 on lavapipe and NVIDIA under Dawn).
 */
export function withinStorageLimit(
  a: GemmOperand,
  b: GemmOperand,
  others: number,
  limit: number,
): [GemmOperand, GemmOperand] {
  const views = () => (a.load4 ? 1 : 0) + (b.load4 ? 1 : 0);
  if (b.load4 && others + views() > limit) b = plain(b);
  if (a.load4 && others + views() > limit) a = plain(a);
  return [a, b];
}

/** `op` with element-by-element loads only. */
function plain(op: GemmOperand): GemmOperand {
  return { mode: op.mode, wgsl: op.wgsl };
}

/**
 * The operands a conv GEMM runs with: their vectorised loads (where the layout allowed them) kept when
 * GEMM_VEC4 is on and the views fit the adapter's storage-buffer limit beside the program's `others`.
 */
function vectorised(a: GemmOperand, b: GemmOperand, others: number): [GemmOperand, GemmOperand] {
  if (!flag('GEMM_VEC4')) return [plain(a), plain(b)];
  return withinStorageLimit(a, b, others, runtime().gpu.report.limits.maxStorageBuffersPerShaderStage);
}

/** The storage buffers of a fused epilogue (batch norm's four, the residual). */
function epilogueBuffers(e: EpilogueInputs | null): number {
  return (e?.bn ? 4 : 0) + (e?.residual ? 1 : 0);
}

/** The vec4 views (`<name>4`) of the operands' tensors that read them with vectorised loads. */
function vec4Bindings(
  a: GemmOperand,
  aName: string,
  aTensor: Tensor,
  b: GemmOperand,
  bName: string,
  bTensor: Tensor,
): BufferBinding[] {
  const views: BufferBinding[] = [];
  if (a.load4) views.push({ name: `${aName}4`, buffer: aTensor.buffer, type: `vec4<${aTensor.dtype}>` });
  if (b.load4) views.push({ name: `${bName}4`, buffer: bTensor.buffer, type: `vec4<${bTensor.dtype}>` });
  return views;
}

// ---- the three conv GEMMs (in the forward orientation of `g`) ----

/** Floating-point operations of one conv GEMM (forward, dgrad and wgrad are the same product). */
function convFlops(g: ConvGeom): number {
  return 2 * g.n * g.ho * g.wo * g.co * g.ci * g.kh * g.kw;
}

// ---- shape tracing (benchmarks) ----

/**
 * Which GEMM of a convolution ran: the forward, the input gradient, the weight gradient, or a 2×2 s2
 * transposed conv's forward (deconvForward) or input gradient (deconvDgrad).
 */
export type ConvPass = 'fwd' | 'dgrad' | 'wgrad' | 'deconv' | 'deconv-dx';

/**
 * One convolution GEMM as it ran, in the geometry of the conv it belongs to (a 2×2 s2 transposed conv is
 * traced in the geometry of the conv whose input gradient it is, deconvGeom).
 */
export interface ConvCall {
  pass: ConvPass;
  geom: Readonly<ConvGeom>;
  bias: boolean;
  /** the weight has no gradient (the teacher's): its GEMM-layout copy may be kept (packedWeight) */
  frozenWeight: boolean;
}

let convTrace: ConvCall[] | null = null;

/**
 * Runs `body` and returns every convolution GEMM it recorded, in order, with repeats: what a benchmark
 * needs to time a network's distinct conv shapes (bench/shapes.ts) without hand-written shape lists.
 */
export function traceConvs<T>(body: () => T): { result: T; calls: ConvCall[] } {
  const outer = convTrace;
  const calls: ConvCall[] = [];
  convTrace = calls;
  try {
    return { result: body(), calls };
  } finally {
    convTrace = outer;
    outer?.push(...calls);
  }
}

function traced(pass: ConvPass, g: ConvGeom, bias: boolean, w: ConvWeight | null): void {
  convTrace?.push({ pass, geom: { ...g }, bias, frozenWeight: w !== null && !w.requiresGrad });
}

/** The tensors of a fused inference epilogue (see FwdEpilogue in shaders/conv.ts). */
interface EpilogueInputs {
  spec: FwdEpilogue;
  bn: { weight: Tensor; bias: Tensor; mean: Tensor; variance: Tensor; eps: number } | null;
  residual: Tensor | null;
  /** the output's storage type */
  out: DType;
}

function epilogueBindings(e: EpilogueInputs): {
  inputs: BufferBinding[];
  uniforms: Record<string, ['f32', number]>;
} {
  const inputs: BufferBinding[] = [];
  if (e.bn)
    inputs.push(
      { name: 'bn_w', buffer: e.bn.weight.buffer },
      { name: 'bn_b', buffer: e.bn.bias.buffer },
      { name: 'bn_rm', buffer: e.bn.mean.buffer },
      { name: 'bn_rv', buffer: e.bn.variance.buffer },
    );
  if (e.residual) inputs.push({ name: 'res', buffer: e.residual.buffer, type: e.residual.dtype });
  return { inputs, uniforms: e.bn ? { eps: ['f32', e.bn.eps] } : {} };
}

function convForward(
  x: Tensor,
  w: ConvWeight,
  bias: Tensor | null,
  g: ConvGeom,
  epilogue: EpilogueInputs | null,
  stableWeight: boolean,
): Tensor {
  traced('fwd', g, bias !== null, w);
  const y = empty([g.n, g.co, g.ho, g.wo], epilogue?.out ?? 'f32');
  const taps = g.kh * g.kw;
  // B(k = (tap, c), o): w itself when there is one tap ([Co, Ci]: contiguous along c), else a [T, Ci, Co]
  // copy (contiguous along o).
  const { wt, temporary } = packedWeight(w, 'tap-cin-cout', stableWeight);
  const mode: LoadMode = taps === 1 ? 'k' : 'row';
  const M = g.n * g.ho * g.wo;
  const key = convKey('fwd', g);
  const tile = gemmTileFor(M, g.co, key);
  // few input channels (the stem): K = (tap, channel) walked flat, the [T, Ci, Co] copy as a [T·Ci, Co] matrix
  const flat = taps > 1 && (convTuning.flatK ?? fwdFlatK(g, tile.bk));
  const wb =
    taps === 1
      ? weightB(mode, 0, 1, g.ci, g.ci, g.co)
      : flat
        ? weightB(mode, 0, g.co, 1, taps * g.ci, g.co)
        : weightB(mode, g.ci * g.co, g.co, 1, g.ci, g.co);
  const kTiles = fwdKTiles(g, tile.bk, flat);
  const tiles = Math.ceil(M / tile.bm) * Math.ceil(g.co / tile.bn);
  const precision = gemmPrecision();
  if (wt.dtype === 'f16' && precision !== 'f16')
    throw new Error(
      `${w.describe()} was packed as f16 for f16 GEMMs, but the GEMMs run in ${precision} (load the model again)`,
    );
  // x, wt, y, the bias and the epilogue's buffers, and the vec4 views where they fit
  const [a, b] = vectorised(
    im2colVec4(g) ? IM2COL_VEC4 : flat ? IM2COL_FLAT : IM2COL,
    wb.operand,
    3 + (bias ? 1 : 0) + epilogueBuffers(epilogue),
  );
  const launch = (dst: Tensor, splits: number, tps: number, epi: EpilogueInputs | null) => {
    const grid = gemmGrid(M, g.co, splits, tile);
    const inputs: BufferBinding[] = [
      { name: 'x', buffer: x.buffer, type: x.dtype },
      { name: 'wt', buffer: wt.buffer, type: wt.dtype },
      ...vec4Bindings(a, 'x', x, b, 'wt', wt),
    ];
    if (bias) inputs.push({ name: 'bias', buffer: bias.buffer });
    const fused = epi ? epilogueBindings(epi) : { inputs: [], uniforms: {} };
    runtime().run({
      name: epi ? 'conv2d_fwd_fused' : 'conv2d_fwd',
      key: `${tileKey(tile)}|w:${mode}${flat ? '|flatK' : ''}|bias:${!!bias}|${epilogueKey(epi?.spec ?? null)}${precisionKey(precision)}${vec4Key(a, b)}`,
      inputs: [...inputs, ...fused.inputs],
      outputs: [{ name: 'y', buffer: dst.buffer, type: dst.dtype }],
      uniforms: {
        ...convUniforms(g),
        ...wb.uniforms,
        ...fused.uniforms,
        tps: ['u32', tps],
        tiles_m: ['u32', grid.tiles_m],
        tiles_n: ['u32', grid.tiles_n],
      },
      workgroups: grid.workgroups,
      cost: { flops: convFlops(g) },
      wgsl: gemmShader({
        tile,
        ctx: flat ? FWD_FLAT_CTX : FWD_CTX,
        a,
        b,
        store: fwdStore(!!bias, epi?.spec ?? null, dst.dtype),
        fast: 'm',
        precision,
      }),
    });
  };
  // the epilogue runs in the GEMM's store when K is one pass, else in the slice sum
  withSplitK(
    y,
    tiles,
    kTiles,
    (dst, splits, tps) => launch(dst, splits, tps, splits === 1 ? epilogue : null),
    {
      split: flag('CONV_FWD_SPLIT_K'),
      key,
      ...(epilogue ? { sum: (part, out, splits) => splitSumEpilogue(part, out, splits, g, epilogue) } : {}),
    },
  );
  if (temporary) wt.dispose();
  return y;
}

/** y = epilogue(Σ slices of part): the split-K sum of a fused forward convolution. */
function splitSumEpilogue(part: Tensor, y: Tensor, splits: number, g: ConvGeom, e: EpilogueInputs): void {
  const n = y.size;
  const fused = epilogueBindings(e);
  runtime().run({
    name: 'splitk_sum_fused',
    key: epilogueKey(e.spec),
    inputs: [{ name: 'part', buffer: part.buffer }, ...fused.inputs],
    outputs: [{ name: 'y', buffer: y.buffer, type: y.dtype }],
    uniforms: {
      n: ['u32', n],
      splits: ['u32', splits],
      hw: ['u32', g.ho * g.wo],
      co: ['u32', g.co],
      ...fused.uniforms,
    },
    workgroups: grid1d(n),
    cost: { bytes: n * (4 * splits + BYTES[y.dtype] + (e.residual ? BYTES[e.residual.dtype] : 0)) },
    wgsl: splitSumEpilogueShader(e.spec, y.dtype),
  });
}

function convDgrad(gy: Tensor, w: Tensor, g: ConvGeom, stableWeight: boolean): Tensor {
  traced('dgrad', g, false, w);
  const dx = empty([g.n, g.ci, g.h, g.w]);
  // B(k = (tap, o), c) = w[o, c, tap]: w itself when there is one tap, else a [T, Co, Ci] copy.
  const { wt, temporary } = packedWeight(w, 'tap-cout-cin', stableWeight);
  // the largest phase has ceil(H/S)·ceil(W/S) pixels
  const maxM = g.n * Math.ceil(g.h / g.s) * Math.ceil(g.w / g.s);
  const tile = gemmTileFor(maxM * g.s * g.s, g.ci, convKey('dgrad', g));
  const grid = gemmGrid(maxM, g.ci, g.s * g.s, tile);
  const precision = gemmPrecision();
  const wb = weightB('row', g.co * g.ci, g.ci, 1, g.co, g.ci);
  // g, wt, dx, and the vec4 views
  const [a, b] = vectorised(im2colVec4(g) ? DGRAD_G_VEC4 : DGRAD_G, wb.operand, 3);
  runtime().run({
    name: 'conv2d_dgrad',
    key: `${tileKey(tile)}${precisionKey(precision)}${vec4Key(a, b)}`,
    inputs: [
      { name: 'g', buffer: gy.buffer },
      { name: 'wt', buffer: wt.buffer },
      ...vec4Bindings(a, 'g', gy, b, 'wt', wt),
    ],
    outputs: [{ name: 'dx', buffer: dx.buffer }],
    uniforms: {
      ...convUniforms(g),
      ...wb.uniforms,
      tiles_m: ['u32', grid.tiles_m],
      tiles_n: ['u32', grid.tiles_n],
    },
    workgroups: grid.workgroups,
    cost: { flops: convFlops(g) },
    wgsl: gemmShader({
      tile,
      ctx: DGRAD_CTX,
      a,
      b,
      store: DGRAD_STORE,
      fast: 'm',
      precision,
    }),
  });
  if (temporary) wt.dispose();
  return dx;
}

function convWgrad(x: Tensor, gy: Tensor, g: ConvGeom): Tensor {
  traced('wgrad', g, false, null);
  const dw = empty([g.co, g.ci, g.kh, g.kw]);
  const cols = g.ci * g.kh * g.kw;
  const key = convKey('wgrad', g);
  const tile = gemmTileFor(g.co, cols, key);
  const kTiles = g.n * Math.ceil((g.ho * g.wo) / tile.bk);
  const tiles = Math.ceil(g.co / tile.bm) * Math.ceil(cols / tile.bn);
  const precision = gemmPrecision();
  withSplitK(
    dw,
    tiles,
    kTiles,
    (dst, splits, tps) => {
      const grid = gemmGrid(g.co, cols, splits, tile);
      runtime().run({
        name: 'conv2d_wgrad',
        key: `${tileKey(tile)}${precisionKey(precision)}`,
        // either operand may be an f16 activation (a conv's input x; a transposed conv's input, here
        // in g's place), widened where it is loaded
        inputs: [
          { name: 'g', buffer: gy.buffer, type: gy.dtype },
          { name: 'x', buffer: x.buffer, type: x.dtype },
        ],
        outputs: [{ name: 'out', buffer: dst.buffer }],
        uniforms: {
          ...convUniforms(g),
          tps: ['u32', tps],
          tiles_m: ['u32', grid.tiles_m],
          tiles_n: ['u32', grid.tiles_n],
        },
        workgroups: grid.workgroups,
        cost: { flops: convFlops(g) },
        wgsl: gemmShader({
          tile,
          ctx: WGRAD_CTX,
          a: WGRAD_G,
          b: WGRAD_X,
          store: WGRAD_STORE,
          fast: 'n',
          precision,
        }),
      });
    },
    { key },
  );
  return dw;
}

function biasGrad(gy: Tensor, g: ConvGeom): Tensor {
  const db = empty([g.co]);
  runtime().run({
    name: 'conv2d_bias_grad',
    inputs: [{ name: 'g', buffer: gy.buffer }],
    outputs: [{ name: 'db', buffer: db.buffer }],
    uniforms: { nb: ['u32', g.n], co: ['u32', g.co], hw: ['u32', g.ho * g.wo] },
    workgroups: [g.co],
    wgsl: biasGradShader(),
  });
  return db;
}

// ---- conv2d ----

function intOpt(op: string, name: string, v: number, min: number): number {
  if (!Number.isInteger(v) || v < min)
    throw new Error(`${op}: ${name} must be an integer ≥ ${min}, got ${v}`);
  return v;
}

function convGeom(op: string, xShape: readonly number[], wShape: readonly number[], opts: Conv2dOptions) {
  const s = intOpt(op, 'stride', opts.stride ?? 1, 1);
  const p = intOpt(op, 'padding', opts.padding ?? 0, 0);
  const [n, ci, h, w] = xShape as [number, number, number, number];
  const [co, , kh, kw] = wShape as [number, number, number, number];
  const ho = Math.floor((h + 2 * p - kh) / s) + 1;
  const wo = Math.floor((w + 2 * p - kw) / s) + 1;
  if (ho < 1 || wo < 1)
    throw new Error(
      `${op}: input ${shapeStr(xShape)} with kernel ${kh}×${kw}, stride ${s}, padding ${p} gives an empty output (${ho}×${wo})`,
    );
  if (co > 65535) throw new Error(`${op}: ${co} output channels exceed the 65,535 supported`);
  return { n, ci, h, w, co, kh, kw, s, p, ho, wo } satisfies ConvGeom;
}

function checkConvInputs(op: string, x: Tensor, w: ConvWeight, bias: Tensor | null): void {
  if (x.rank !== 4) throw new Error(`${op}: input ${x.describe()} must be 4-D [N, Cin, H, W]`);
  if (w.rank !== 4)
    throw new Error(`${op}: weight ${w.describe()} must be 4-D [Cout, Cin, kh, kw], got rank ${w.rank}`);
  if (x.shape[1] !== w.shape[1])
    throw new Error(
      `${op}: input ${x.describe()} has ${x.shape[1]} channels but weight ${w.describe()} expects ${w.shape[1]} (weight layout [Cout, Cin, kh, kw])`,
    );
  if (x.size === 0 || w.size === 0)
    throw new Error(`${op}: empty input ${x.describe()} or weight ${w.describe()}`);
  if (bias && (bias.rank !== 1 || bias.shape[0] !== w.shape[0]))
    throw new Error(
      `${op}: bias ${bias.describe()} must have shape [${w.shape[0]}] (one per output channel)`,
    );
}

/**
 * What a bilinear op's backward reads (y = x ⊛ w): x only for w's gradient, w only for x's gradient.
 * The output is never needed, so a conv output can be freed as soon as its consumer is recorded.
 */
function savedFor(x: Tensor, w: Tensor): Tensor[] {
  return [...(w.requiresGrad ? [x] : []), ...(x.requiresGrad ? [w] : [])];
}

/**
 * 2-D convolution (cross-correlation), NCHW: x [N, Cin, H, W], w [Cout, Cin, kh, kw], optional bias
 * [Cout], zero padding, dilation 1, groups 1. Output [N, Cout, floor((H+2p−kh)/s)+1, floor((W+2p−kw)/s)+1].
 */
export function conv2d(x: Tensor, w: ConvWeight, bias: Tensor | null, opts: Conv2dOptions = {}): Tensor {
  checkConvInputs('conv2d', x, w, bias);
  checkActivationTypes('conv2d', [x], [w, bias]);
  const g = convGeom('conv2d', x.shape, w.shape, opts);
  if (w instanceof PackedConvWeight) {
    // inference only: no input gradient from a weight without its [T, Co, Ci] layout
    if (!canFuseInference(x, bias))
      throw new Error(
        `conv2d: ${w.describe()} is packed for inference, but an input requires a gradient (train with an unpacked model)`,
      );
    return convForward(x, w, bias, g, storedAs(activationDtype()), true);
  }
  // kept packed when w cannot change before the next call (see packedWeight)
  const y = convForward(x, w, bias, g, storedAs(activationDtype()), canFuseInference(w));
  const inputs = bias ? [x, w, bias] : [x, w];
  return record(
    'conv2d',
    y,
    inputs,
    (gy) => [
      x.requiresGrad ? convDgrad(gy, w, g, !w.requiresGrad) : null,
      w.requiresGrad ? convWgrad(x, gy, g) : null,
      ...(bias ? [bias.requiresGrad ? biasGrad(gy, g) : null] : []),
    ],
    savedFor(x, w),
  );
}

/** Batch norm with running statistics, fused into conv2dFused's store. */
export interface FusedBatchNorm {
  weight: Tensor;
  bias: Tensor;
  runningMean: Tensor;
  runningVar: Tensor;
  /** variance epsilon (default 1e-5, as batchNorm) */
  eps?: number;
}

export interface ConvEpilogue {
  /** batch norm in eval mode (running statistics) on the conv output */
  bn?: FusedBatchNorm;
  /** added after the batch norm (a ResNet block's shortcut), shaped like the output */
  residual?: Tensor;
  /** ReLU last */
  relu?: boolean;
  /**
   * The output's storage type: f16 rounds the epilogue's f32 result once, when it is stored (needs
   * shader-f16). Default: activationDtype() — f32 unless a withActivations scope says otherwise.
   */
  dtype?: DType;
}

/**
 * relu(batchNorm_eval(conv2d(x, w, bias)) + residual) in one pass over the output: the conv → BN (→ add)
 * (→ ReLU) chains of ResNet blocks in inference and in the frozen teacher, without writing the conv's
 * output and reading it back for each step (every part optional). It has no gradient: use it where
 * nothing needs one (`canFuseInference`), and conv2d + batchNorm + addRelu where something does.
 */
export function conv2dFused(
  x: Tensor,
  w: ConvWeight,
  bias: Tensor | null,
  opts: Conv2dOptions,
  epilogue: ConvEpilogue,
): Tensor {
  checkConvInputs('conv2dFused', x, w, bias);
  const g = convGeom('conv2dFused', x.shape, w.shape, opts);
  const e = fusedEpilogue('conv2dFused', [x, w, bias], epilogue, [g.n, g.co, g.ho, g.wo]);
  // nothing here records a gradient, so w is read unchanged until someone writes it (stable)
  return convForward(x, w, bias, g, e, true);
}

/**
 * The checked tensors of a fused inference epilogue on an output of shape `out` (channels out[1]); `op`
 * names the caller in errors. Throws where a gradient could flow (the fused kernels have none).
 */
function fusedEpilogue(
  op: string,
  operands: [Tensor, ConvWeight, Tensor | null] | [Tensor, Tensor],
  epilogue: ConvEpilogue,
  out: number[],
): EpilogueInputs {
  const bn = epilogue.bn ?? null;
  const co = out[1]!;
  const inputs = [...operands, bn?.weight, bn?.bias, bn?.runningMean, bn?.runningVar, epilogue.residual];
  if (!canFuseInference(...inputs))
    throw new Error(
      `${op}: an input requires a gradient, and the fused epilogue has none (use the unfused op, batchNorm and addRelu)`,
    );
  if (bn)
    for (const [name, t] of Object.entries({
      weight: bn.weight,
      bias: bn.bias,
      runningMean: bn.runningMean,
      runningVar: bn.runningVar,
    }))
      if (t.rank !== 1 || t.shape[0] !== co)
        throw new Error(`${op}: batch-norm ${name} ${t.describe()} must be [${co}] (the output channels)`);
  const eps = bn?.eps ?? 1e-5;
  if (!(eps > 0)) throw new Error(`${op}: eps must be positive, got ${eps}`);
  if (epilogue.residual) expectShape(`${op} (residual)`, epilogue.residual, out);
  const dtype = epilogue.dtype ?? activationDtype();
  // only activations (the input x = operands[0] and the residual) may be f16; parameters are f32
  checkActivationTypes(
    op,
    [operands[0], epilogue.residual],
    [...operands.slice(1), bn?.weight, bn?.bias, bn?.runningMean, bn?.runningVar],
    dtype,
  );
  return {
    spec: { bn: !!bn, residual: !!epilogue.residual, relu: !!epilogue.relu },
    bn: bn ? { weight: bn.weight, bias: bn.bias, mean: bn.runningMean, variance: bn.runningVar, eps } : null,
    residual: epilogue.residual ?? null,
    out: dtype,
  };
}

/**
 * Storage types of a conv's tensors: activations (`acts`: the input, a residual) f32 or f16, parameters
 * (`params`: weights, bias, batch-norm tensors) f32; f16 anywhere (`out` included) needs shader-f16.
 */
function checkActivationTypes(
  op: string,
  acts: (Tensor | null | undefined)[],
  params: (Tensor | PackedConvWeight | null | undefined)[],
  out: DType = activationDtype(),
): void {
  for (const t of params)
    if (t && t.dtype !== 'f32' && !(t instanceof PackedConvWeight))
      throw new Error(
        `${op}: ${t.describe()} is ${t.dtype}; weights, bias and batch-norm parameters are f32`,
      );
  if ((out === 'f16' || acts.some((t) => t?.dtype === 'f16')) && !runtime().gpu.has('shader-f16'))
    throw new Error(
      `${op}: f16 tensors need the device feature shader-f16, which this GPU (or its WebGPU implementation) does not offer`,
    );
}

/**
 * The epilogue of a conv whose output is only stored (no batch norm, residual or ReLU): none for f32 (the
 * plain store), the empty epilogue for f16, whose store rounds the f32 result once (split-K sums its f32
 * partials first). conv2d and convTranspose2d store in activationDtype(): f16 for the student's
 * activations in training under PRECISION=f16 (model/rdpp.ts).
 */
function storedAs(dtype: DType): EpilogueInputs | null {
  if (dtype === 'f32') return null;
  return { spec: { bn: false, residual: false, relu: false }, bn: null, residual: null, out: dtype };
}

/** True when no gradient can flow through these tensors (grad mode off, or none requires one). */
export function canFuseInference(...ts: ({ readonly requiresGrad: boolean } | null | undefined)[]): boolean {
  return !isGradEnabled() || ts.every((t) => !t?.requiresGrad);
}

/** The input gradient of conv2d (not recorded): dx [N, Cin, H, W] from g [N, Cout, Ho, Wo]. */
export function conv2dBackwardInput(
  g: Tensor,
  w: Tensor,
  xShape: readonly number[],
  opts: Conv2dOptions = {},
): Tensor {
  checkShapes('conv2dBackwardInput', xShape, w.shape);
  const geo = convGeom('conv2dBackwardInput', xShape, w.shape, opts);
  expectShape('conv2dBackwardInput', g, [geo.n, geo.co, geo.ho, geo.wo]);
  return convDgrad(g, w, geo, !w.requiresGrad);
}

/** The weight gradient of conv2d (not recorded): dw [Cout, Cin, kh, kw]. */
export function conv2dBackwardWeight(
  x: Tensor,
  g: Tensor,
  wShape: readonly number[],
  opts: Conv2dOptions = {},
): Tensor {
  checkShapes('conv2dBackwardWeight', x.shape, wShape);
  const geo = convGeom('conv2dBackwardWeight', x.shape, wShape, opts);
  expectShape('conv2dBackwardWeight', g, [geo.n, geo.co, geo.ho, geo.wo]);
  return convWgrad(x, g, geo);
}

function checkShapes(op: string, xShape: readonly number[], wShape: readonly number[]): void {
  if (xShape.length !== 4 || wShape.length !== 4 || xShape[1] !== wShape[1])
    throw new Error(
      `${op}: input shape ${shapeStr(xShape)} and weight shape ${shapeStr(wShape)} must be [N, Cin, H, W] and [Cout, Cin, kh, kw]`,
    );
}

function expectShape(op: string, t: Tensor, shape: number[]): void {
  if (t.shape.join() !== shape.join())
    throw new Error(`${op}: ${t.describe()} should have shape ${shapeStr(shape)}`);
}

// ---- convTranspose2d (kernel 2, stride 2) ----

/**
 * The conv whose input gradient the transposed conv is: its input is [N, Cout, 2H, 2W], its output
 * [N, Cin, H, W] and its weight [Cin, Cout, 2, 2] — the transposed conv's own weight tensor.
 */
function deconvGeom(xShape: readonly number[], cout: number): ConvGeom {
  const [n, ci, h, w] = xShape as [number, number, number, number];
  return { n, ci: cout, h: 2 * h, w: 2 * w, co: ci, kh: 2, kw: 2, s: 2, p: 0, ho: h, wo: w };
}

function checkDeconv(op: string, xShape: readonly number[], w: Tensor): void {
  if (xShape.length !== 4) throw new Error(`${op}: input ${shapeStr(xShape)} must be 4-D [N, Cin, H, W]`);
  if (w.rank !== 4 || w.shape[2] !== 2 || w.shape[3] !== 2)
    throw new Error(`${op}: weight ${w.describe()} must be [Cin, Cout, 2, 2] (kernel 2, stride 2)`);
  if (xShape[1] !== w.shape[0])
    throw new Error(
      `${op}: input ${shapeStr(xShape)} has ${xShape[1]} channels but weight ${w.describe()} expects ${w.shape[0]} (weight layout [Cin, Cout, 2, 2])`,
    );
}

/**
 * PyTorch ConvTranspose2d with kernel 2, stride 2, no padding, no bias: x [N, Cin, H, W], weight
 * [Cin, Cout, 2, 2] → [N, Cout, 2H, 2W], out[n, o, 2y+i, 2x+j] = Σ_c x[n, c, y, x]·W[c, o, i, j].
 */
export function convTranspose2d(x: Tensor, w: Tensor): Tensor {
  checkDeconv('convTranspose2d', x.shape, w);
  checkActivationTypes('convTranspose2d', [x], [w]);
  if (x.size === 0 || w.size === 0)
    throw new Error(`convTranspose2d: empty input ${x.describe()} or weight ${w.describe()}`);
  const g = deconvGeom(x.shape, w.shape[1]!);
  const y = deconvForward(x, w, g, storedAs(activationDtype()));
  return record(
    'convTranspose2d',
    y,
    [x, w],
    (gy) => [x.requiresGrad ? deconvDgrad(gy, w, g) : null, w.requiresGrad ? convWgrad(gy, x, g) : null],
    savedFor(x, w),
  );
}

/**
 * convTranspose2d's forward (k2 s2) as one GEMM: x as [N·H·W, Cin] times the weight as [Cin, Cout·4] (its
 * own layout: no weight copy), scattered by deconvStore to out[n, o, 2y + i, 2x + j]. Each output value
 * is one sum over Cin, as in the phase-split dgrad GEMM this replaced (K = Cin there too), but here all four
 * phases are one dispatch, the weight is not transposed first, and split-K fills the GPU where the
 * tiles are few (batch-1 inference: 64 input pixels × 4·Cout columns). `g`: deconvGeom (for the trace).
 */
function deconvForward(x: Tensor, w: Tensor, g: ConvGeom, epilogue: EpilogueInputs | null = null): Tensor {
  traced('deconv', g, false, w);
  const [n, cin, h, wd] = x.shape as [number, number, number, number];
  const cout = w.shape[1]!;
  const y = empty([n, cout, 2 * h, 2 * wd], epilogue?.out ?? 'f32');
  // the 1×1 conv whose output columns are (o, i, j)
  const g1: ConvGeom = { n, ci: cin, h, w: wd, co: 4 * cout, kh: 1, kw: 1, s: 1, p: 0, ho: h, wo: wd };
  const M = n * h * wd;
  const key = convKey('deconv', g);
  const tile = gemmTileFor(M, g1.co, key);
  const kTiles = fwdKTiles(g1, tile.bk, false);
  const tiles = Math.ceil(M / tile.bm) * Math.ceil(g1.co / tile.bn);
  const precision = gemmPrecision();
  // B(k = input channel, column) = w[k·Cout·4 + column]
  const wb = weightB('row', 0, g1.co, 1, cin, g1.co);
  // x, wt, y and the epilogue's buffers, and the vec4 views where they fit
  const [a, b] = vectorised(im2colVec4(g1) ? IM2COL_VEC4 : IM2COL, wb.operand, 3 + epilogueBuffers(epilogue));
  const launch = (dst: Tensor, splits: number, tps: number, epi: EpilogueInputs | null) => {
    const grid = gemmGrid(M, g1.co, splits, tile);
    const fused = epi ? epilogueBindings(epi) : { inputs: [], uniforms: {} };
    runtime().run({
      name: epi ? 'deconv2x2_fwd_fused' : 'deconv2x2_fwd',
      key: `${tileKey(tile)}|${epilogueKey(epi?.spec ?? null)}${precisionKey(precision)}${vec4Key(a, b)}`,
      inputs: [
        { name: 'x', buffer: x.buffer, type: x.dtype },
        { name: 'wt', buffer: w.buffer },
        ...vec4Bindings(a, 'x', x, b, 'wt', w),
        ...fused.inputs,
      ],
      outputs: [{ name: 'y', buffer: dst.buffer, type: dst.dtype }],
      uniforms: {
        ...convUniforms(g1),
        ...wb.uniforms,
        ...fused.uniforms,
        tps: ['u32', tps],
        tiles_m: ['u32', grid.tiles_m],
        tiles_n: ['u32', grid.tiles_n],
      },
      workgroups: grid.workgroups,
      cost: { flops: convFlops(g1) },
      wgsl: gemmShader({
        tile,
        ctx: FWD_CTX,
        a,
        b,
        store: deconvStore(epi?.spec ?? null, dst.dtype),
        fast: 'm',
        precision,
      }),
    });
  };
  // the epilogue runs in the store when K is one pass, else in the slice sum (on y's NCHW layout: channel
  // (i / (2H·2W)) % Cout)
  const out: ConvGeom = { ...g1, co: cout, ho: 2 * h, wo: 2 * wd };
  withSplitK(
    y,
    tiles,
    kTiles,
    (dst, splits, tps) => launch(dst, splits, tps, splits === 1 ? epilogue : null),
    {
      split: flag('CONV_FWD_SPLIT_K'),
      key,
      ...(epilogue ? { sum: (part, o, splits) => splitSumEpilogue(part, o, splits, out, epilogue) } : {}),
    },
  );
  return y;
}

/**
 * The input gradient of convTranspose2d (k2 s2) as one GEMM: dx[n, c, y, x] = Σ_(o, i, j) g[n, o, 2y + i,
 * 2x + j]·W[c, o, i, j], i.e. g seen space-to-depth as [N·H·W, Cout·4] (SPACE_TO_DEPTH) times the weight as
 * the [Cin, Cout·4] matrix it is, transposed by the loader ('k' mode) — no weight copy. The same sum as the
 * tap-major 2×2 s2 forward conv it replaces, K walked (o, i, j) instead of (i, j, o). `g` (the geometry):
 * deconvGeom.
 */
function deconvDgrad(gy: Tensor, w: Tensor, g: ConvGeom): Tensor {
  traced('deconv-dx', g, false, w);
  // dx [N, Cin, H, W]; the 1×1 conv over H × W pixels with K = Cout·4 input "channels" and Cin outputs
  const g1: ConvGeom = {
    n: g.n,
    ci: 4 * g.ci,
    h: g.ho,
    w: g.wo,
    co: g.co,
    kh: 1,
    kw: 1,
    s: 1,
    p: 0,
    ho: g.ho,
    wo: g.wo,
  };
  const dx = empty([g.n, g.co, g.ho, g.wo]);
  const M = g.n * g.ho * g.wo;
  const key = convKey('deconv-dx', g);
  const tile = gemmTileFor(M, g1.co, key);
  const kTiles = fwdKTiles(g1, tile.bk, false);
  const tiles = Math.ceil(M / tile.bm) * Math.ceil(g1.co / tile.bn);
  const precision = gemmPrecision();
  withSplitK(
    dx,
    tiles,
    kTiles,
    (dst, splits, tps) => {
      const grid = gemmGrid(M, g1.co, splits, tile);
      runtime().run({
        name: 'deconv2x2_dgrad',
        key: `${tileKey(tile)}${precisionKey(precision)}`,
        inputs: [
          { name: 'g', buffer: gy.buffer },
          { name: 'wt', buffer: w.buffer },
        ],
        outputs: [{ name: 'y', buffer: dst.buffer }],
        uniforms: {
          ...convUniforms(g1),
          // B(k = (o, i, j), column c) = w[c·Cout·4 + k]
          ...weightUniforms(0, 1, g1.ci, g1.ci),
          tps: ['u32', tps],
          tiles_m: ['u32', grid.tiles_m],
          tiles_n: ['u32', grid.tiles_n],
        },
        workgroups: grid.workgroups,
        cost: { flops: convFlops(g1) },
        wgsl: gemmShader({
          tile,
          ctx: FWD_CTX,
          a: SPACE_TO_DEPTH,
          b: weightOperand('k'),
          store: fwdStore(false),
          fast: 'm',
          precision,
        }),
      });
    },
    { split: flag('CONV_FWD_SPLIT_K'), key },
  );
  return dx;
}

/**
 * relu(batchNorm_eval(convTranspose2d(x, w)) + residual) in one pass over the output (every part
 * optional): the decoder's 2×2 s2 deconv → BN (→ ReLU) in inference, as conv2dFused for convolutions. No
 * gradient: use it where nothing needs one (`canFuseInference`).
 */
export function convTranspose2dFused(x: Tensor, w: Tensor, epilogue: ConvEpilogue): Tensor {
  checkDeconv('convTranspose2dFused', x.shape, w);
  if (x.size === 0 || w.size === 0)
    throw new Error(`convTranspose2dFused: empty input ${x.describe()} or weight ${w.describe()}`);
  const cout = w.shape[1]!;
  const [n, , h, wd] = x.shape as [number, number, number, number];
  const e = fusedEpilogue('convTranspose2dFused', [x, w], epilogue, [n, cout, 2 * h, 2 * wd]);
  return deconvForward(x, w, deconvGeom(x.shape, cout), e);
}

/** Input gradient of convTranspose2d (not recorded): dx [N, Cin, H, W] from g [N, Cout, 2H, 2W]. */
export function convTranspose2dBackwardInput(g: Tensor, w: Tensor, xShape: readonly number[]): Tensor {
  checkDeconv('convTranspose2dBackwardInput', xShape, w);
  const geo = deconvGeom(xShape, w.shape[1]!);
  expectShape('convTranspose2dBackwardInput', g, [geo.n, geo.ci, geo.h, geo.w]);
  return deconvDgrad(g, w, geo);
}

/** Weight gradient of convTranspose2d (not recorded): dW [Cin, Cout, 2, 2]. */
export function convTranspose2dBackwardWeight(x: Tensor, g: Tensor, cout: number): Tensor {
  const geo = deconvGeom(x.shape, cout);
  expectShape('convTranspose2dBackwardWeight', g, [geo.n, cout, geo.h, geo.w]);
  return convWgrad(g, x, geo);
}

// ---- matmul ----

interface Strided {
  t: Tensor;
  /** row stride (rows = M for A, N for B) and k stride */
  sr: number;
  sk: number;
}

/** out [M, N] = A·B with A(m, k) = a.t[m·a.sr + k·a.sk], B(k, n) = b.t[n·b.sr + k·b.sk]. */
function gemm(a: Strided, b: Strided, M: number, N: number, K: number): Tensor {
  const out = empty([M, N]);
  const am: LoadMode = a.sk === 1 ? 'k' : 'row';
  const bm: LoadMode = b.sk === 1 ? 'k' : 'row';
  const key = gemmKey('matmul', [M, N, K, am, bm]);
  const tile = gemmTileFor(M, N, key);
  const kTiles = Math.ceil(K / tile.bk);
  const tiles = Math.ceil(M / tile.bm) * Math.ceil(N / tile.bn);
  const precision = gemmPrecision();
  withSplitK(
    out,
    tiles,
    kTiles,
    (dst, splits, tps) => {
      const grid = gemmGrid(M, N, splits, tile);
      runtime().run({
        name: 'matmul',
        key: `${tileKey(tile)}|a:${am}|b:${bm}${precisionKey(precision)}`,
        inputs: [
          { name: 'ma', buffer: a.t.buffer },
          { name: 'mb', buffer: b.t.buffer },
        ],
        outputs: [{ name: 'out', buffer: dst.buffer }],
        uniforms: {
          gm: ['u32', M],
          gn: ['u32', N],
          gk: ['u32', K],
          tps: ['u32', tps],
          tiles_m: ['u32', grid.tiles_m],
          tiles_n: ['u32', grid.tiles_n],
          ...stridedUniforms('a', M, K, a.sr, a.sk),
          ...stridedUniforms('b', N, K, b.sr, b.sk),
        },
        workgroups: grid.workgroups,
        cost: { flops: 2 * M * N * K },
        wgsl: gemmShader({
          tile,
          ctx: PLAIN_CTX,
          a: stridedOperand('ma', am),
          b: stridedOperand('mb', bm),
          store: PLAIN_STORE,
          fast: 'n',
          precision,
        }),
      });
    },
    { key },
  );
  return out;
}

/** [M, K] × [K, N] → [M, N], with its gradients dA = G·Bᵀ and dB = Aᵀ·G. */
export function matmul(a: Tensor, b: Tensor): Tensor {
  if (a.rank !== 2 || b.rank !== 2)
    throw new Error(`matmul: operands must be 2-D, got ${a.describe()} and ${b.describe()}`);
  const [M, K] = a.shape as [number, number];
  const [K2, N] = b.shape as [number, number];
  if (K !== K2)
    throw new Error(`matmul: inner dimensions differ: ${a.describe()} × ${b.describe()} (${K} vs ${K2})`);
  const y = gemm({ t: a, sr: K, sk: 1 }, { t: b, sr: 1, sk: N }, M, N, K);
  return record(
    'matmul',
    y,
    [a, b],
    (g) => [
      a.requiresGrad ? gemm({ t: g, sr: N, sk: 1 }, { t: b, sr: N, sk: 1 }, M, K, N) : null,
      b.requiresGrad ? gemm({ t: a, sr: 1, sk: K }, { t: g, sr: 1, sk: N }, K, N, M) : null,
    ],
    savedFor(a, b),
  );
}
