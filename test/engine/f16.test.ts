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
  convTuning,
  flagsFromEnv,
  matmul,
  parsePrecision,
  resetPrecisionWarning,
  runtime,
  scope,
  selectPrecision,
  tensor,
} from '../../src/engine/index.js';
import { GEMM_TILES, gemmShader, PLAIN_CTX, PLAIN_STORE, stridedOperand } from '../../src/shaders/matmul.js';
import { relErr } from '../helpers/conv-ref.js';
import {
  checkConv,
  checkDeconv,
  checkFused,
  checkMatmul,
  EXACT_MIN,
  inF16,
  readAll,
} from '../helpers/f16-check.js';
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
    await checkDeconv('deconv');
  });

  it('matmul with dA and dB, one pass and split-K', async (ctx) => {
    if (!hasF16) ctx.skip();
    await checkMatmul('matmul');
  });

  it('conv2dFused (batch norm + residual + ReLU in f32 after the f16 GEMM), one pass and split-K', async (ctx) => {
    if (!hasF16) ctx.skip();
    await checkFused('fused');
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
