/**
 * prepareMma: decide, once per device, whether the f16 GEMMs run on subgroup matrices (engine/mma.ts), by
 * running them. A matmul and a 3×3 convolution with bias, each forward and with both gradients (so every
 * GEMM loader: row and k modes, the im2col forward, the input and weight gradients), run on the MMA tile
 * and on the SIMT f16 tile; both round the same operands to f16 and accumulate in f32, so they differ only
 * in summation order (≈ 1e-6 relative; exactly 0 for the emulation, whose lanes sum in the SIMT order). A wrong fragment layout, a subgroup that is not what the kernel
 * assumes, a compile or validation error: all show as a difference of order one, and the engine keeps the
 * SIMT kernel with a warning.
 *
 * Correct is not enough: tensor cores are used only where they are also faster. On the H200 a naive Dawn
 * probe ran subgroup matrices with f32 results (the configuration this engine uses, for AMP's f32
 * accumulation) at 14.9 TFLOP/s, below the SIMT f16 kernel's 29.4 (../shared/docs/webgpu-runtime.md), so a
 * device may offer them and still be slower with them. Under GEMM_MMA=auto, prepareMma therefore races
 * the two kernels on a 3×3 convolution of RD++'s size (mmaRace) and keeps the faster; GEMM_MMA=on skips
 * the race (to benchmark the tensor-core kernel itself). Under auto the tile's double-buffered twin (two
 * staging buffers, one barrier per K tile: mmaCandidates) is checked and raced too, where the device's
 * workgroup memory holds it, and the faster of the two is the one weighed against the SIMT kernel.
 */

import { DEFAULT_TILE, type GemmTile, mmaGemmTile } from '../shaders/matmul.js';
import { type MmaTile, mmaSharedBytes } from '../shaders/mma.js';
import { backward } from './autograd.js';
import { flag, setFlags } from './flags.js';
import { describeMma, EMULATED_MMA_TILE, mmaTileForDevice, setActiveMma } from './mma.js';
import { conv2d, convTuning, gemmTileFor, matmul } from './ops/conv.js';
import { gemmPrecision } from './precision.js';
import { runtime } from './runtime.js';
import { scope, type Tensor, tensor } from './tensor.js';

/** The largest relative difference from the SIMT f16 kernel that passes (summation order: ~1e-6). */
export const MMA_CHECK_TOLERANCE = 1e-4;

/** Deterministic values in [-1, 1). */
function values(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

function leaf(data: Float32Array, shape: number[]): Tensor {
  const t = tensor(data, shape);
  t.requiresGrad = true;
  return t;
}

/** The outputs and input gradients of the check's GEMMs with every GEMM on `tile`. */
async function run(tile: GemmTile): Promise<Float32Array[]> {
  const saved = convTuning.tile;
  const restore = setFlags({ PRECISION: 'f16' });
  const leaves: Tensor[] = [];
  try {
    convTuning.tile = tile;
    const a = leaf(values(37 * 70, 1), [37, 70]);
    const b = leaf(values(70 * 45, 2), [70, 45]);
    const x = leaf(values(2 * 11 * 7 * 6, 3), [2, 11, 7, 6]);
    const w = leaf(values(21 * 11 * 9, 4), [21, 11, 3, 3]);
    const bias = leaf(values(21, 5), [21]);
    leaves.push(a, b, x, w, bias);
    const outs = scope(() => {
      const y = matmul(a, b);
      backward(y, tensor(values(37 * 45, 6), [37, 45]));
      const z = conv2d(x, w, bias, { padding: 1 });
      backward(z, tensor(values(2 * 21 * 7 * 6, 7), [2, 21, 7, 6]));
      return [y, z];
    });
    const got: Float32Array[] = [];
    for (const t of [...outs, a.grad, b.grad, x.grad, w.grad]) got.push(await t!.read());
    for (const t of outs) t.dispose();
    return got;
  } finally {
    for (const t of leaves) {
      t.grad?.dispose();
      t.dispose();
    }
    restore();
    convTuning.tile = saved;
  }
}

/** The largest difference between the MMA and the SIMT results, relative to each result's largest value. */
export async function mmaDifference(tile: MmaTile): Promise<number> {
  const device = runtime().gpu.device;
  device.pushErrorScope('validation');
  let mma: Float32Array[] | Error;
  try {
    mma = await run(mmaGemmTile(tile));
  } catch (e) {
    mma = e as Error;
  }
  // pop the scope whatever happened, so no error of the check leaks into the engine's later work
  const error = await device.popErrorScope();
  if (error) throw new Error(error.message);
  if (mma instanceof Error) throw mma;
  const simt = await run(DEFAULT_TILE);
  let worst = 0;
  simt.forEach((want, i) => {
    const got = mma[i]!;
    let scale = 0;
    let diff = 0;
    for (let j = 0; j < want.length; j++) {
      scale = Math.max(scale, Math.abs(want[j]!));
      // NaN from garbage counts as the largest difference
      const d = Math.abs(got[j]! - want[j]!);
      diff = Number.isNaN(d) ? Number.POSITIVE_INFINITY : Math.max(diff, d);
    }
    worst = Math.max(worst, diff / Math.max(scale, 1e-30));
  });
  return worst;
}

/** The convolution mmaRace times: x [n, c, size, size] ⊛ w [c, c, 3, 3], padding 1. */
export interface RaceShape {
  n: number;
  c: number;
  size: number;
  /** convolutions per timed run (recorded back to back, then one wait for the GPU) */
  reps: number;
}

/**
 * WRN50-2's layer-2 3×3 convolution at batch 16 (M = 16·32·32, N = 128, K = 1152: 4.8 GFLOP): RD++'s
 * training and batch inference spend most of their GEMM time in such shapes. Ten of them take a few
 * milliseconds on an H200, long enough for a wall-clock timing; the whole race, under a second there.
 */
export const RACE_SHAPE: RaceShape = { n: 16, c: 128, size: 32, reps: 10 };

/** Floating-point operations of one convolution of the race. */
export function raceFlops(s: RaceShape): number {
  return 2 * s.n * s.size * s.size * s.c * s.c * 9;
}

/** The race's outcome: the median wall time of one timed run (s.reps convolutions) on each kernel. */
export interface RaceResult {
  mmaMs: number;
  simtMs: number;
  shape: RaceShape;
}

/** Median wall time (ms) of `runs` timed runs of `reps` forward convolutions on `tile`, after one warm-up. */
async function timeConv(tile: GemmTile, s: RaceShape, runs = 3): Promise<number> {
  const saved = convTuning.tile;
  const restore = setFlags({ PRECISION: 'f16' });
  const x = tensor(values(s.n * s.c * s.size * s.size, 8), [s.n, s.c, s.size, s.size]);
  const w = tensor(values(s.c * s.c * 9, 9), [s.c, s.c, 3, 3]);
  const rt = runtime();
  try {
    convTuning.tile = tile;
    const once = async () => {
      await rt.sync();
      const t0 = performance.now();
      for (let r = 0; r < s.reps; r++) scope(() => conv2d(x, w, null, { padding: 1 }).dispose());
      await rt.sync();
      return performance.now() - t0;
    };
    await once(); // compiles the pipeline
    const times: number[] = [];
    for (let i = 0; i < runs; i++) times.push(await once());
    return times.sort((a, b) => a - b)[Math.floor(runs / 2)]!;
  } finally {
    x.dispose();
    w.dispose();
    restore();
    convTuning.tile = saved;
  }
}

/**
 * Time the MMA tile against the SIMT tile the engine would otherwise choose for the race's shape (the flag
 * GEMM_TILE's choice), both with f16 operands.
 */
export async function mmaRace(tile: MmaTile, shape: RaceShape = RACE_SHAPE): Promise<RaceResult> {
  const simtTile = gemmTileFor(shape.n * shape.size * shape.size, shape.c);
  if (simtTile.mma)
    throw new Error('mmaRace: subgroup matrices are active already (call it from prepareMma)');
  const mmaMs = await timeConv(mmaGemmTile(tile), shape);
  const simtMs = await timeConv(simtTile, shape);
  return { mmaMs, simtMs, shape };
}

/** "0.41 vs 0.74 ms for 10 3×3 convolutions of 4.8 GFLOP (23.4 vs 13.0 TFLOP/s)". */
function describeRace(r: RaceResult): string {
  const flops = raceFlops(r.shape) * r.shape.reps;
  const tflops = (ms: number) => (flops / (ms * 1e-3) / 1e12).toPrecision(3);
  return `${r.mmaMs.toFixed(2)} vs ${r.simtMs.toFixed(2)} ms for ${r.shape.reps} 3×3 convolutions of ${(raceFlops(r.shape) / 1e9).toPrecision(2)} GFLOP (${tflops(r.mmaMs)} vs ${tflops(r.simtMs)} TFLOP/s)`;
}

/** What prepareMma runs; tests replace parts of it to reach every outcome on any device. */
export interface MmaProbes {
  /** the subgroup-matrix tile for the device, or why none (GEMM_MMA=auto and on) */
  tileFor?: () => { tile: MmaTile | null; reason: string };
  /** the largest relative difference from the SIMT f16 kernel */
  check?: (tile: MmaTile) => Promise<number>;
  /** the speed race (GEMM_MMA=auto only) */
  race?: (tile: MmaTile) => Promise<RaceResult>;
}

/**
 * Decide whether the f16 GEMMs use subgroup matrices on the current device (after initEngine, once the
 * flags PRECISION and GEMM_MMA are set); returns the status line (also in mmaStatus()). Never throws for a
 * device that cannot: it says why and the SIMT f16 kernel stays.
 */
export async function prepareMma(probes: MmaProbes = {}): Promise<string> {
  const {
    tileFor = () => mmaTileForDevice(runtime().gpu.report),
    check = mmaDifference,
    race = (t: MmaTile) => mmaRace(t),
  } = probes;
  const set = (tile: MmaTile | null, line: string) => {
    setActiveMma(tile, line);
    return line;
  };
  set(null, 'subgroup matrices: deciding');
  const mode = flag('GEMM_MMA');
  if (mode === 'off') return set(null, 'subgroup matrices: off (GEMM_MMA=off)');
  if (flag('PRECISION') !== 'f16' || gemmPrecision() !== 'f16')
    return set(null, 'subgroup matrices: not used (they need --precision f16 and shader-f16)');
  const choice = mode === 'emulate' ? { tile: EMULATED_MMA_TILE, reason: '' } : tileFor();
  if (!choice.tile)
    return set(null, `subgroup matrices: not used: ${choice.reason}; the f16 GEMMs run on the SIMT kernel`);
  // the tile, and under auto its double-buffered twin where the workgroup memory holds it: the race decides
  const candidates =
    mode === 'auto'
      ? mmaCandidates(choice.tile, runtime().gpu.report.limits.maxComputeWorkgroupStorageSize)
      : [choice.tile];
  const passed: { tile: MmaTile; diff: number }[] = [];
  let failure = '';
  for (const tile of candidates) {
    let diff: number;
    try {
      diff = await check(tile);
    } catch (e) {
      failure ||= `subgroup matrices: ${describeMma(tile)} failed on this device (${(e as Error).message.split('\n')[0]}); the f16 GEMMs run on the SIMT kernel`;
      continue;
    }
    if (diff <= MMA_CHECK_TOLERANCE) passed.push({ tile, diff });
    else
      failure ||= `subgroup matrices: ${describeMma(tile)} differ from the SIMT f16 kernel by ${diff.toExponential(2)} (more than ${MMA_CHECK_TOLERANCE}) on this device; the f16 GEMMs run on the SIMT kernel`;
  }
  if (passed.length === 0) {
    console.warn(`warning: ${failure}`);
    return set(null, failure);
  }
  const checkedLine = (p: { tile: MmaTile; diff: number }) =>
    `subgroup matrices: ${describeMma(p.tile)}, checked on this device (${p.diff.toExponential(1)} from the SIMT f16 kernel)`;
  // the emulation is a test of the kernel's logic, never fast; `on` asks for the tensor cores regardless
  if (mode !== 'auto')
    return set(passed[0]!.tile, `${checkedLine(passed[0]!)}; speed not compared (GEMM_MMA=${mode})`);
  const raced: { p: { tile: MmaTile; diff: number }; r: RaceResult }[] = [];
  let raceFailure = '';
  for (const p of passed) {
    try {
      raced.push({ p, r: await race(p.tile) });
    } catch (e) {
      raceFailure ||= (e as Error).message.split('\n')[0]!;
    }
  }
  if (raced.length === 0) {
    const line = `${checkedLine(passed[0]!)}, but timing them failed (${raceFailure}); the f16 GEMMs run on the SIMT kernel`;
    console.warn(`warning: ${line}`);
    return set(null, line);
  }
  // the fastest tensor-core tile (the first on a tie), and what the other staging measured
  const best = raced.reduce((a, b) => (b.r.mmaMs < a.r.mmaMs ? b : a));
  const others = raced
    .filter((x) => x !== best)
    .map((x) => `; ${x.p.tile.db ? 'double-buffered' : 'single-buffered'}: ${x.r.mmaMs.toFixed(2)} ms`)
    .join('');
  const r = best.r;
  if (!(r.mmaMs < r.simtMs))
    return set(
      null,
      `${checkedLine(best.p)}, but slower than the SIMT f16 kernel (${describeRace(r)}${others}); the f16 GEMMs run on the SIMT kernel (RDPP_GEMM_MMA=on uses them anyway)`,
    );
  return set(
    best.p.tile,
    `${checkedLine(best.p)}, ${(r.simtMs / r.mmaMs).toFixed(2)}× as fast as the SIMT f16 kernel (${describeRace(r)}${others})`,
  );
}

/**
 * The tiles prepareMma weighs under auto: `tile`, and the same tile with double-buffered staging where the
 * device's workgroup memory (`limit` bytes) holds it.
 */
export function mmaCandidates(tile: MmaTile, limit: number): MmaTile[] {
  const db: MmaTile = { ...tile, db: true };
  return mmaSharedBytes(db) <= limit ? [tile, db] : [tile];
}
