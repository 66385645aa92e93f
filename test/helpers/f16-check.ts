/**
 * Checks shared by the f16 GEMM tests (f16.test.ts, mma.test.ts): each result is compared with a float64
 * reference from the operands rounded to f16 (the kernel must match it as closely as f32 kernels match
 * theirs: it rounds each operand once and accumulates in f32) and with the exact reference (the error of
 * f16 itself, bounded above and below).
 */
import { expect } from 'vitest';
import {
  backward,
  conv2d,
  conv2dFused,
  convTranspose2d,
  convTuning,
  matmul,
  noGrad,
  scope,
  setFlags,
  type Tensor,
  tensor,
} from '../../src/engine/index.js';
import { floatToHalfBits, halfBitsToFloat } from '../../src/engine/io/f16.js';
import { type Conv, convRef, deconvRef, fusedCase, matmulRef, outSize, relErr } from './conv-ref.js';
import { randn } from './gradcheck.js';

/** x rounded to the nearest f16 (ties to even), as a float32 array. */
export const toF16 = (x: Float32Array) => x.map((v) => halfBitsToFloat(floatToHalfBits(v)));

/** Errors against the rounded operands' reference must be f32-accumulation small. */
export const ROUNDED_TOL = 2e-6;
/**
 * Against the exact reference: operands uniform in [-1, 1] have a relative rounding error ≤ 2^-11 each, a
 * product ≤ 2^-10; with K terms of random sign the max error over the outputs stays well under 2e-3 of
 * the largest output for these K (≤ ~600). The lower bound shows the rounding happened at all.
 */
export const EXACT_MAX = 2e-3;
export const EXACT_MIN = 2e-5;

export async function readAll(...ts: (Tensor | null)[]): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  for (const t of ts) {
    if (!t) throw new Error('missing tensor');
    out.push(await t.read());
  }
  for (const t of ts) t?.dispose();
  return out;
}

/** Run `body` with PRECISION=f16. */
export async function inF16<T>(body: () => Promise<T>): Promise<T> {
  const restore = setFlags({ PRECISION: 'f16' });
  try {
    return await body();
  } finally {
    restore();
  }
}

export function check(
  what: string,
  got: Float32Array,
  rounded: ArrayLike<number>,
  exact: ArrayLike<number>,
): { rounded: number; exact: number } {
  const e = { rounded: relErr(got, rounded), exact: relErr(got, exact) };
  console.log(
    `f16 ${what}: vs f16-rounded reference ${e.rounded.toExponential(2)}, vs exact ${e.exact.toExponential(2)}`,
  );
  expect(e.rounded, `${what} vs the f16-rounded reference`).toBeLessThan(ROUNDED_TOL);
  expect(e.exact, `${what} vs the exact reference`).toBeLessThan(EXACT_MAX);
  expect(e.exact, `${what} vs the exact reference (f16 rounding must show)`).toBeGreaterThan(EXACT_MIN);
  return e;
}

export function leaf(data: Float32Array, shape: number[]): Tensor {
  const t = tensor(data, shape);
  t.requiresGrad = true;
  return t;
}

/** conv2d forward + backward in f16 against both references (bias is added in f32: not rounded). */
export async function checkConv(name: string, c: Conv, bias: boolean, seed: number): Promise<void> {
  const [ho, wo] = outSize(c) as [number, number];
  const x = randn(c.n * c.ci * c.h * c.w, seed);
  const w = randn(c.co * c.ci * c.kh * c.kw, seed + 1, 0.5);
  const b = bias ? randn(c.co, seed + 2) : null;
  const g = randn(c.n * c.co * ho * wo, seed + 3);
  const exact = convRef(c, x, w, b, g);
  const rounded = convRef(c, toF16(x), toF16(w), b, toF16(g));
  const xt = leaf(x, [c.n, c.ci, c.h, c.w]);
  const wt = leaf(w, [c.co, c.ci, c.kh, c.kw]);
  const bt = b ? leaf(b, [c.co]) : null;
  // the forward's K walked both ways where the kernel has several taps: tap-major, and flat (shaders/conv.ts)
  const saved = convTuning.flatK;
  try {
    for (const flat of c.kh * c.kw > 1 ? [false, true] : [false]) {
      convTuning.flatK = flat;
      const [y, dx, dw] = await inF16(async () => {
        const y = scope(() => {
          const y = conv2d(xt, wt, bt, { stride: c.s, padding: c.p });
          backward(y, tensor(g, y.shape));
          return y;
        });
        const got = await readAll(y, xt.grad, wt.grad); // (disposes them)
        xt.grad = null;
        wt.grad = null;
        if (bt) {
          bt.grad?.dispose();
          bt.grad = null;
        }
        return got;
      });
      const label = `${name}${flat ? ' (K flat)' : ''}`;
      check(`${label} y`, y!, rounded.y, exact.y);
      check(`${label} dx`, dx!, rounded.dx, exact.dx);
      check(`${label} dw`, dw!, rounded.dw, exact.dw);
    }
  } finally {
    convTuning.flatK = saved;
  }
  for (const t of [xt, wt, bt]) t?.dispose();
}

/** convTranspose2d k2 s2 forward + backward in f16 against both references. */
export async function checkDeconv(name: string): Promise<void> {
  const [n, ci, h, wd, co] = [3, 37, 3, 6, 70];
  const x = randn(n * ci * h * wd, 41);
  const w = randn(ci * co * 4, 51, 0.5);
  const g = randn(n * co * 4 * h * wd, 61);
  const exact = deconvRef(n, ci, h, wd, co, x, w, g);
  const rounded = deconvRef(n, ci, h, wd, co, toF16(x), toF16(w), toF16(g));
  const xt = leaf(x, [n, ci, h, wd]);
  const wt = leaf(w, [ci, co, 2, 2]);
  const [y, dx, dw] = await inF16(async () => {
    const y = scope(() => {
      const y = convTranspose2d(xt, wt);
      backward(y, tensor(g, y.shape));
      return y;
    });
    return readAll(y, xt.grad, wt.grad);
  });
  check(`${name} deconv y`, y!, rounded.y, exact.y);
  check(`${name} deconv dx`, dx!, rounded.dx, exact.dx);
  check(`${name} deconv dw`, dw!, rounded.dw, exact.dw);
  xt.dispose();
  wt.dispose();
}

/**
 * matmul with dA and dB in f16 against both references, in one pass and then split-K (the split thresholds
 * are lowered in convTuning: the caller restores them).
 */
export async function checkMatmul(name: string): Promise<void> {
  const [M, K, N] = [70, 130, 33];
  const a = randn(M * K, 7);
  const b = randn(K * N, 8);
  const g = randn(M * N, 9);
  const exact = matmulRef(M, K, N, a, b, g);
  const rounded = matmulRef(M, K, N, toF16(a), toF16(b), toF16(g));
  for (const split of [false, true]) {
    if (split)
      Object.assign(convTuning, { minKTilesPerSplit: 1, maxKTilesPerSplit: 2, targetWorkgroups: 1000 });
    const at = leaf(a, [M, K]);
    const bt = leaf(b, [K, N]);
    const [y, da, db] = await inF16(async () => {
      const y = scope(() => {
        const y = matmul(at, bt);
        backward(y, tensor(g, [M, N]));
        return y;
      });
      return readAll(y, at.grad, bt.grad);
    });
    const s = split ? ' (split-K)' : '';
    check(`${name} y${s}`, y!, rounded.y, exact.y);
    check(`${name} dA${s}`, da!, rounded.da, exact.da);
    check(`${name} dB${s}`, db!, rounded.db, exact.db);
    at.dispose();
    bt.dispose();
  }
}

/**
 * conv2dFused (conv + batch norm + residual in f32 after the f16 GEMM), one pass and then split-K (the
 * split thresholds are lowered in convTuning: the caller restores them).
 */
export async function checkFused(name: string): Promise<void> {
  const { c, ho, wo, x, w, b, gamma, beta, mean, variance, res, eps, reference } = fusedCase();
  // the epilogue without ReLU, so no output is clipped to an exact zero on both sides
  const stages = { bias: true, bn: true, residual: true, relu: false };
  const exact = reference(stages);
  const rounded = reference(stages, toF16(x), toF16(w));
  for (const split of [false, true]) {
    if (split)
      Object.assign(convTuning, { minKTilesPerSplit: 1, maxKTilesPerSplit: 4, targetWorkgroups: 1000 });
    const [y] = await inF16(() =>
      readAll(
        noGrad(() =>
          scope(() =>
            conv2dFused(
              tensor(x, [c.n, c.ci, c.h, c.w]),
              tensor(w, [c.co, c.ci, 3, 3]),
              tensor(b, [c.co]),
              { padding: 1 },
              {
                bn: {
                  weight: tensor(gamma, [c.co]),
                  bias: tensor(beta, [c.co]),
                  runningMean: tensor(mean, [c.co]),
                  runningVar: tensor(variance, [c.co]),
                  eps,
                },
                residual: tensor(res, [c.n, c.co, ho, wo]),
                relu: false,
              },
            ),
          ),
        ),
      ),
    );
    check(`${name}${split ? ' (split-K)' : ''}`, y!, rounded, exact);
  }
}
