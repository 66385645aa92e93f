/**
 * PRECISION=f16 (f16 operands, f32 accumulation) for every kind of GEMM: matmul with both gradients, conv2d
 * forward / input gradient / weight gradient on every named tile, split-K, convTranspose2d and the fused
 * inference conv. Each result is compared with two float64 references:
 *   - from the operands rounded to f16 (round to nearest even, as the staging does): the kernel must match
 *     it as closely as the f32 kernels match their reference (2e-6), which shows it rounds each operand
 *     exactly once and then accumulates in f32;
 *   - from the unrounded operands: the error of f16 itself, measured and printed, and bounded here.
 * Plus: f16 really differs from f32 (a cached f32 pipeline reused for f16 would fail), and a device without
 * shader-f16 falls back to f32 with one warning.
 */
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  backward,
  conv2d,
  conv2dFused,
  convTranspose2d,
  convTuning,
  flagsFromEnv,
  matmul,
  noGrad,
  parsePrecision,
  resetPrecisionWarning,
  runtime,
  scope,
  selectPrecision,
  setFlags,
  type Tensor,
  tensor,
} from '../../src/engine/index.js';
import { floatToHalfBits, halfBitsToFloat } from '../../src/engine/io/f16.js';
import { GEMM_TILES, gemmShader, PLAIN_CTX, PLAIN_STORE, stridedOperand } from '../../src/shaders/matmul.js';
import { type Conv, convRef, deconvRef, outSize, relErr } from '../helpers/conv-ref.js';
import { gpu } from '../helpers/gpu.js';
import { randn } from '../helpers/gradcheck.js';

let hasF16 = false;
beforeAll(async () => {
  hasF16 = (await gpu()).has('shader-f16');
});

const tuningDefaults = { ...convTuning };
afterEach(() => {
  Object.assign(convTuning, tuningDefaults);
  vi.restoreAllMocks();
});

/** x rounded to the nearest f16 (ties to even), as a float32 array. */
const toF16 = (x: Float32Array) => x.map((v) => halfBitsToFloat(floatToHalfBits(v)));

/** Errors against the rounded operands' reference must be f32-accumulation small. */
const ROUNDED_TOL = 2e-6;
/**
 * Against the exact reference: operands uniform in [-1, 1] have a relative rounding error ≤ 2^-11 each, a
 * product ≤ 2^-10; with K terms of random sign the max error over the outputs stays well under 2e-3 of
 * the largest output for these K (≤ ~600). The lower bound shows the rounding happened at all.
 */
const EXACT_MAX = 2e-3;
const EXACT_MIN = 2e-5;

async function readAll(...ts: (Tensor | null)[]): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  for (const t of ts) {
    if (!t) throw new Error('missing tensor');
    out.push(await t.read());
  }
  for (const t of ts) t?.dispose();
  return out;
}

/** Run `body` with PRECISION=f16. */
async function inF16<T>(body: () => Promise<T>): Promise<T> {
  const restore = setFlags({ PRECISION: 'f16' });
  try {
    return await body();
  } finally {
    restore();
  }
}

function check(
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

function leaf(data: Float32Array, shape: number[]): Tensor {
  const t = tensor(data, shape);
  t.requiresGrad = true;
  return t;
}

/** conv2d forward + backward in f16 against both references (bias is added in f32: not rounded). */
async function checkConv(name: string, c: Conv, bias: boolean, seed: number): Promise<void> {
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
  const [y, dx, dw] = await inF16(async () => {
    const y = scope(() => {
      const y = conv2d(xt, wt, bt, { stride: c.s, padding: c.p });
      backward(y, tensor(g, y.shape));
      return y;
    });
    return readAll(y, xt.grad, wt.grad);
  });
  check(`${name} y`, y!, rounded.y, exact.y);
  check(`${name} dx`, dx!, rounded.dx, exact.dx);
  check(`${name} dw`, dw!, rounded.dw, exact.dw);
  for (const t of [xt, wt, bt]) t?.dispose();
}

describe('PRECISION=f16: f16 operands, f32 accumulation, in every GEMM', () => {
  it('conv2d 3×3 s1 p1 with bias (forward, dx, dw)', async (ctx) => {
    if (!hasF16) ctx.skip();
    await checkConv('conv 3×3', { n: 2, ci: 19, h: 9, w: 8, co: 35, kh: 3, kw: 3, s: 1, p: 1 }, true, 5);
  });

  it('conv2d 1×1 s2 and 3×3 s2 (the phase-split dgrad, the k-mode weight loader)', async (ctx) => {
    if (!hasF16) ctx.skip();
    await checkConv('conv 1×1 s2', { n: 2, ci: 40, h: 9, w: 8, co: 12, kh: 1, kw: 1, s: 2, p: 0 }, false, 15);
    await checkConv('conv 3×3 s2', { n: 1, ci: 17, h: 11, w: 13, co: 9, kh: 3, kw: 3, s: 2, p: 1 }, true, 25);
  });

  for (const [name, tile] of Object.entries(GEMM_TILES)) {
    it(`named tile ${name}`, async (ctx) => {
      if (!hasF16) ctx.skip();
      convTuning.tile = tile;
      await checkConv(name, { n: 2, ci: 19, h: 9, w: 8, co: 131, kh: 3, kw: 3, s: 1, p: 1 }, true, 55);
    });
  }

  it('split-K forward and weight gradient (many slices, ragged last slice)', async (ctx) => {
    if (!hasF16) ctx.skip();
    Object.assign(convTuning, { minKTilesPerSplit: 1, maxKTilesPerSplit: 3, targetWorkgroups: 1000 });
    await checkConv('split-K', { n: 3, ci: 21, h: 9, w: 11, co: 6, kh: 3, kw: 3, s: 1, p: 1 }, true, 99);
  });

  it('convTranspose2d k2 s2 (forward, dx, dw)', async (ctx) => {
    if (!hasF16) ctx.skip();
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
    check('deconv y', y!, rounded.y, exact.y);
    check('deconv dx', dx!, rounded.dx, exact.dx);
    check('deconv dw', dw!, rounded.dw, exact.dw);
    xt.dispose();
    wt.dispose();
  });

  it('matmul with dA and dB, one pass and split-K', async (ctx) => {
    if (!hasF16) ctx.skip();
    const [M, K, N] = [70, 130, 33];
    const a = randn(M * K, 7);
    const b = randn(K * N, 8);
    const g = randn(M * N, 9);
    const ref = (a: Float32Array, b: Float32Array, g: Float32Array) => {
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
    };
    const exact = ref(a, b, g);
    const rounded = ref(toF16(a), toF16(b), toF16(g));
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
      check(`matmul y${s}`, y!, rounded.y, exact.y);
      check(`matmul dA${s}`, da!, rounded.da, exact.da);
      check(`matmul dB${s}`, db!, rounded.db, exact.db);
      at.dispose();
      bt.dispose();
    }
  });

  it('conv2dFused (batch norm + residual + ReLU in f32 after the f16 GEMM), one pass and split-K', async (ctx) => {
    if (!hasF16) ctx.skip();
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
    // the epilogue without ReLU, so no output is clipped to an exact zero on both sides
    const chain = (x: Float32Array, w: Float32Array) =>
      convRef(c, x, w, b, new Float32Array(c.n * c.co * hw)).y.map((v, i) => {
        const ch = Math.floor(i / hw) % c.co;
        return ((v - mean[ch]!) / Math.sqrt(variance[ch]! + eps)) * gamma[ch]! + beta[ch]! + res[i]!;
      });
    const exact = chain(x, w);
    const rounded = chain(toF16(x), toF16(w));
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
      check(`fused${split ? ' (split-K)' : ''}`, y!, rounded, exact);
    }
  });

  it('differs from f32 on the same inputs (its own pipelines, not the cached f32 ones)', async (ctx) => {
    if (!hasF16) ctx.skip();
    const a = tensor(randn(40 * 50, 1), [40, 50]);
    const b = tensor(randn(50 * 30, 2), [50, 30]);
    const [f32] = await readAll(scope(() => matmul(a, b)));
    const [f16] = await inF16(() => readAll(scope(() => matmul(a, b))));
    expect(relErr(f16!, f32!)).toBeGreaterThan(EXACT_MIN);
    // and back: f32 again is bit-identical to the first f32 run
    const [again] = await readAll(scope(() => matmul(a, b)));
    expect(again).toEqual(f32);
    a.dispose();
    b.dispose();
  });
});

describe('precision selection', () => {
  it('a device without shader-f16 runs f32, with one warning', async () => {
    const gpuCtx = runtime().gpu;
    const has = gpuCtx.has.bind(gpuCtx);
    vi.spyOn(gpuCtx, 'has').mockImplementation((f) => f !== 'shader-f16' && has(f));
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    resetPrecisionWarning();
    const a = tensor(randn(40 * 50, 1), [40, 50]);
    const b = tensor(randn(50 * 30, 2), [50, 30]);
    const [f32] = await readAll(scope(() => matmul(a, b)));
    const [asked16] = await inF16(() => readAll(scope(() => matmul(a, b))));
    await inF16(() => readAll(scope(() => matmul(a, b))));
    expect(asked16).toEqual(f32);
    expect(warn).toHaveBeenCalledTimes(1);
    expect(String(warn.mock.calls[0]![0])).toMatch(
      /PRECISION=f16: .*does not offer shader-f16, so the GEMMs run in f32/,
    );
    a.dispose();
    b.dispose();
  });

  it('selectPrecision, parsePrecision and RDPP_PRECISION', () => {
    expect(selectPrecision('f16', true)).toEqual({ precision: 'f16', warning: null });
    expect(selectPrecision('f32', false)).toEqual({ precision: 'f32', warning: null });
    expect(selectPrecision('f16', false).precision).toBe('f32');
    expect(() => parsePrecision('bf16', '--precision')).toThrow(
      "--precision: 'bf16' is not a precision (use f32 or f16)",
    );
    expect(flagsFromEnv({ RDPP_PRECISION: 'f16' })).toEqual({ PRECISION: 'f16' });
    expect(() => flagsFromEnv({ RDPP_PRECISION: 'half' })).toThrow(
      'RDPP_PRECISION=half: expected one of f32, f16',
    );
  });

  it('the f16 kernel stages vec4<f16> after `enable f16`, and f32 kernels have no f16 at all', () => {
    const spec = {
      tile: GEMM_TILES.t64x64!,
      ctx: PLAIN_CTX,
      a: stridedOperand('ma', 'k'),
      b: stridedOperand('mb', 'row'),
      store: PLAIN_STORE,
      fast: 'n' as const,
    };
    const f16 = gemmShader({ ...spec, precision: 'f16' })('// header');
    expect(f16.startsWith('enable f16;\n// header')).toBe(true);
    expect(f16).toMatch(/var<workgroup> As: array<vec4<f16>/);
    expect(f16).toMatch(/vec4<f32>\(As\[/);
    expect(gemmShader(spec)('// header')).not.toMatch(/f16/);
    expect(gemmShader({ ...spec, precision: 'f32' })('// header')).toBe(gemmShader(spec)('// header'));
  });
});
