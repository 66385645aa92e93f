/**
 * Float64 CPU references of the conv family (conv2d forward and gradients, convTranspose2d k2 s2) and the
 * relative error the conv tests compare with, shared by conv.test.ts and f16.test.ts.
 */
import { expect } from 'vitest';
import { randn } from './gradcheck.js';

export interface Conv {
  n: number;
  ci: number;
  h: number;
  w: number;
  co: number;
  kh: number;
  kw: number;
  s: number;
  p: number;
}

export const outSize = (c: Conv) => [
  Math.floor((c.h + 2 * c.p - c.kh) / c.s) + 1,
  Math.floor((c.w + 2 * c.p - c.kw) / c.s) + 1,
];

/** y, and for upstream gradient g: dx, dw, db — straight from the definition, in float64. */
export function convRef(c: Conv, x: Float32Array, w: Float32Array, b: Float32Array | null, g: Float32Array) {
  const [ho, wo] = outSize(c) as [number, number];
  const y = new Float64Array(c.n * c.co * ho * wo);
  const dx = new Float64Array(x.length);
  const dw = new Float64Array(w.length);
  const db = new Float64Array(c.co);
  for (let n = 0; n < c.n; n++)
    for (let o = 0; o < c.co; o++)
      for (let oy = 0; oy < ho; oy++)
        for (let ox = 0; ox < wo; ox++) {
          const yi = ((n * c.co + o) * ho + oy) * wo + ox;
          const gv = g[yi]!;
          let acc = b ? b[o]! : 0;
          db[o]! += gv;
          for (let ci = 0; ci < c.ci; ci++)
            for (let ky = 0; ky < c.kh; ky++) {
              const iy = oy * c.s - c.p + ky;
              if (iy < 0 || iy >= c.h) continue;
              for (let kx = 0; kx < c.kw; kx++) {
                const ix = ox * c.s - c.p + kx;
                if (ix < 0 || ix >= c.w) continue;
                const xi = ((n * c.ci + ci) * c.h + iy) * c.w + ix;
                const wi = ((o * c.ci + ci) * c.kh + ky) * c.kw + kx;
                acc += x[xi]! * w[wi]!;
                dx[xi]! += gv * w[wi]!;
                dw[wi]! += gv * x[xi]!;
              }
            }
          y[yi] = acc;
        }
  return { y, dx, dw, db };
}

/** ConvTranspose2d k2 s2, weight [ci, co, 2, 2]. */
export function deconvRef(
  n: number,
  ci: number,
  h: number,
  wd: number,
  co: number,
  x: Float32Array,
  w: Float32Array,
  g: Float32Array,
) {
  const H = 2 * h;
  const W = 2 * wd;
  const y = new Float64Array(n * co * H * W);
  const dx = new Float64Array(x.length);
  const dw = new Float64Array(w.length);
  for (let b = 0; b < n; b++)
    for (let c = 0; c < ci; c++)
      for (let yy = 0; yy < h; yy++)
        for (let xx = 0; xx < wd; xx++) {
          const xi = ((b * ci + c) * h + yy) * wd + xx;
          for (let o = 0; o < co; o++)
            for (let i = 0; i < 2; i++)
              for (let j = 0; j < 2; j++) {
                const yi = ((b * co + o) * H + 2 * yy + i) * W + 2 * xx + j;
                const wi = ((c * co + o) * 2 + i) * 2 + j;
                y[yi]! += x[xi]! * w[wi]!;
                dx[xi]! += g[yi]! * w[wi]!;
                dw[wi]! += g[yi]! * x[xi]!;
              }
        }
  return { y, dx, dw };
}

/** y = a·b ([M, K] × [K, N]) and, for the upstream gradient g [M, N], dA = g·bᵀ and dB = aᵀ·g. */
export function matmulRef(
  M: number,
  K: number,
  N: number,
  a: Float32Array,
  b: Float32Array,
  g: Float32Array,
) {
  const y = new Float64Array(M * N);
  const da = new Float64Array(M * K);
  const db = new Float64Array(K * N);
  for (let i = 0; i < M; i++)
    for (let j = 0; j < N; j++)
      for (let k = 0; k < K; k++) {
        y[i * N + j]! += a[i * K + k]! * b[k * N + j]!;
        da[i * K + k]! += g[i * N + j]! * b[k * N + j]!;
        db[k * N + j]! += a[i * K + k]! * g[i * N + j]!;
      }
  return { y, da, db };
}

/** max |got − want| / max |want| */
export function relErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  expect(got.length).toBe(want.length);
  let d = 0;
  let s = 0;
  for (let i = 0; i < want.length; i++) {
    const g = got[i]!;
    if (!Number.isFinite(g)) return Number.POSITIVE_INFINITY;
    d = Math.max(d, Math.abs(g - want[i]!));
    s = Math.max(s, Math.abs(want[i]!));
  }
  return s > 0 ? d / s : d;
}

/** Which stages of conv2dFused's chain a reference includes. */
export interface FusedStages {
  bias: boolean;
  bn: boolean;
  residual: boolean;
  relu: boolean;
}

/**
 * The conv2dFused case of conv.test.ts and the f16 checks: a 3×3 conv's inputs, batch-norm running
 * statistics, a residual, and the float64 reference of conv → BN → + residual → ReLU for any stages and
 * any x, w (the f16 checks pass the f16-rounded operands).
 */
export function fusedCase() {
  const c: Conv = { n: 2, ci: 21, h: 7, w: 6, co: 9, kh: 3, kw: 3, s: 1, p: 1 };
  const [ho, wo] = outSize(c) as [number, number];
  const x = randn(c.n * c.ci * c.h * c.w, 301);
  const w = randn(c.co * c.ci * 9, 302, 0.5);
  const b = randn(c.co, 303);
  const gamma = randn(c.co, 304);
  const beta = randn(c.co, 305);
  const mean = randn(c.co, 306);
  const variance = randn(c.co, 307).map((v) => 0.5 + v * v);
  const res = randn(c.n * c.co * ho * wo, 308);
  const eps = 1e-3;
  const hw = ho * wo;
  const reference = (o: FusedStages, xs = x, ws = w): Float64Array =>
    convRef(c, xs, ws, o.bias ? b : null, new Float32Array(c.n * c.co * hw)).y.map((v, i) => {
      const ch = Math.floor(i / hw) % c.co;
      let z = o.bn ? ((v - mean[ch]!) / Math.sqrt(variance[ch]! + eps)) * gamma[ch]! + beta[ch]! : v;
      if (o.residual) z += res[i]!;
      return o.relu ? Math.max(z, 0) : z;
    });
  return { c, ho, wo, x, w, b, gamma, beta, mean, variance, res, eps, reference };
}
