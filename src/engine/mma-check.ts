/**
 * prepareMma: decide, once per device, whether the f16 GEMMs run on subgroup matrices (engine/mma.ts), by
 * running them. A matmul and a 3×3 convolution with bias, each forward and with both gradients (so every
 * GEMM loader: row and k modes, the im2col forward, the input and weight gradients), run on the MMA tile
 * and on the SIMT f16 tile; both round the same operands to f16 and accumulate in f32, so they differ only
 * in summation order (≈ 1e-6 relative; exactly 0 for the emulation, whose lanes sum in the SIMT order). A wrong fragment layout, a subgroup that is not what the kernel
 * assumes, a compile or validation error: all show as a difference of order one, and the engine keeps the
 * SIMT kernel with a warning.
 */

import { DEFAULT_TILE, type GemmTile, mmaGemmTile } from '../shaders/matmul.js';
import type { MmaTile } from '../shaders/mma.js';
import { backward } from './autograd.js';
import { flag, setFlags } from './flags.js';
import { describeMma, EMULATED_MMA_TILE, mmaTileForDevice, setActiveMma } from './mma.js';
import { conv2d, convTuning, matmul } from './ops/conv.js';
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

/**
 * Decide whether the f16 GEMMs use subgroup matrices on the current device (after initEngine, once the
 * flags PRECISION and GEMM_MMA are set); returns the status line (also in mmaStatus()). Never throws for a
 * device that cannot: it says why and the SIMT f16 kernel stays.
 */
export async function prepareMma(
  /** The check (tests replace it to exercise the failure paths). */
  check: (tile: MmaTile) => Promise<number> = mmaDifference,
): Promise<string> {
  const set = (tile: MmaTile | null, line: string) => {
    setActiveMma(tile, line);
    return line;
  };
  set(null, 'subgroup matrices: deciding');
  const mode = flag('GEMM_MMA');
  if (mode === 'off') return set(null, 'subgroup matrices: off (GEMM_MMA=off)');
  if (flag('PRECISION') !== 'f16' || gemmPrecision() !== 'f16')
    return set(null, 'subgroup matrices: not used (they need --precision f16 and shader-f16)');
  const choice =
    mode === 'emulate' ? { tile: EMULATED_MMA_TILE, reason: '' } : mmaTileForDevice(runtime().gpu.report);
  if (!choice.tile)
    return set(null, `subgroup matrices: not used: ${choice.reason}; the f16 GEMMs run on the SIMT kernel`);
  let diff: number;
  try {
    diff = await check(choice.tile);
  } catch (e) {
    const line = `subgroup matrices: ${describeMma(choice.tile)} failed on this device (${(e as Error).message.split('\n')[0]}); the f16 GEMMs run on the SIMT kernel`;
    console.warn(`warning: ${line}`);
    return set(null, line);
  }
  if (!(diff <= MMA_CHECK_TOLERANCE)) {
    const line = `subgroup matrices: ${describeMma(choice.tile)} differ from the SIMT f16 kernel by ${diff.toExponential(2)} (more than ${MMA_CHECK_TOLERANCE}) on this device; the f16 GEMMs run on the SIMT kernel`;
    console.warn(`warning: ${line}`);
    return set(null, line);
  }
  return set(
    choice.tile,
    `subgroup matrices: ${describeMma(choice.tile)}, checked on this device (${diff.toExponential(1)} from the SIMT f16 kernel)`,
  );
}
