/**
 * Vectorised operand loads (GEMM_VEC4, GemmOperand.load4): where an operand's 4-row groups are contiguous
 * and aligned, the SIMT GEMM reads each group with one vec4 load. The values and the order of the sums
 * are unchanged, so every result must be bit-identical to the scalar loads — on every tile shape
 * (4×4 and 8×8 per invocation, double-buffered), in f32 and f16 — and the vector path must really run
 * where the layout allows it and nowhere else (the pipeline keys say which operands load vec4s).
 */
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Precision } from '../../src/engine/flags.js';
import {
  backward,
  conv2d,
  convTranspose2d,
  convTuning,
  EMULATED_MMA_TILE,
  runtime,
  scope,
  setFlags,
  type Tensor,
  tensor,
  withinStorageLimit,
} from '../../src/engine/index.js';
import type { Program } from '../../src/engine/program.js';
import { IM2COL_VEC4, weightOperand } from '../../src/shaders/conv.js';
import { GEMM_TILES, type GemmOperand, type GemmTile, mmaGemmTile } from '../../src/shaders/matmul.js';
import { type Conv, convRef, outSize, relErr } from '../helpers/conv-ref.js';
import { gpu } from '../helpers/gpu.js';
import { randn } from '../helpers/gradcheck.js';

beforeAll(async () => {
  await gpu();
});

afterEach(() => {
  convTuning.tile = null;
  vi.restoreAllMocks();
});

function leaf(data: Float32Array, shape: number[]): Tensor {
  const t = tensor(data, shape);
  t.requiresGrad = true;
  return t;
}

/** y, dx, dw of one conv (or 2×2 s2 transposed conv) with GEMM_VEC4 as given, and the GEMM keys it ran. */
async function run(c: Conv, deconv: boolean, vec4: boolean, seed: number) {
  const restore = setFlags({ GEMM_VEC4: vec4 });
  const keys: string[] = [];
  const rt = runtime();
  const original = rt.run.bind(rt);
  const spy = vi.spyOn(rt, 'run').mockImplementation((p: Program) => {
    // the key, and whether the kernel really issues vector loads (a call of a_load4 / b_load4)
    if (/^(conv2d_fwd|conv2d_dgrad|deconv2x2_fwd)$/.test(p.name))
      keys.push(`${p.name} ${p.key}${/_load4\(c, [ab]R/.test(p.wgsl('')) ? ' calls-load4' : ''}`);
    return original(p);
  });
  try {
    const x = leaf(randn(c.n * c.ci * c.h * c.w, seed), [c.n, c.ci, c.h, c.w]);
    const wShape = deconv ? [c.ci, c.co, 2, 2] : [c.co, c.ci, c.kh, c.kw];
    const w = leaf(randn(c.co * c.ci * c.kh * c.kw, seed + 1, 0.5), wShape);
    const y = scope(() => {
      const y = deconv ? convTranspose2d(x, w) : conv2d(x, w, null, { stride: c.s, padding: c.p });
      backward(y, tensor(randn(y.size, seed + 2), y.shape));
      return y;
    });
    const out = [await y.read(), await x.grad!.read(), await w.grad!.read()];
    for (const t of [y, x, w]) t.dispose();
    return { out, keys };
  } finally {
    spy.mockRestore();
    restore();
  }
}

// [what, conv, deconv, the vec4 part the forward's key must have, the dgrad's]
const cases: [string, Conv, boolean, string, string][] = [
  // 1×1 s1: input, weight and upstream gradient all load vec4s (H·W = 20, Co = 12: a partial N tile)
  ['1×1 s1', { n: 3, ci: 8, h: 4, w: 5, co: 12, kh: 1, kw: 1, s: 1, p: 0 }, false, '|v4:a', '|v4:ab'],
  // 3×3: the packed weight only (the input's groups straddle the taps' offsets)
  ['3×3 s1 p1', { n: 2, ci: 20, h: 7, w: 6, co: 36, kh: 3, kw: 3, s: 1, p: 1 }, false, '|v4:b', '|v4:b'],
  // the stem-like flat walk over 3 channels, Co a multiple of 4
  [
    '7×7 s2 p3, 3 channels',
    { n: 1, ci: 3, h: 13, w: 11, co: 8, kh: 7, kw: 7, s: 2, p: 3 },
    false,
    '|v4:b',
    '',
  ],
  // the decoder's 2×2 s2 transposed conv: its forward is a 1×1 GEMM (x and the weight as vec4s)
  ['convT 2×2 s2', { n: 2, ci: 12, h: 3, w: 4, co: 5, kh: 2, kw: 2, s: 2, p: 0 }, true, '|v4:ab', ''],
];

// the SIMT tiles (4×4 and 8×8 per invocation, double-buffered) and the tensor-core kernel in emulation,
// whose staging takes the vector loads too
const tiles: [string, GemmTile, Precision][] = [
  ['t64x64', GEMM_TILES.t64x64!, 'f32'],
  ['t128x128', GEMM_TILES.t128x128!, 'f32'],
  ['t64x128d', GEMM_TILES.t64x128d!, 'f32'],
  ['t64x64', GEMM_TILES.t64x64!, 'f16'],
  ['subgroup matrices (emulated)', mmaGemmTile(EMULATED_MMA_TILE), 'f16'],
];

describe('GEMM_VEC4: vectorised operand loads', () => {
  for (const [what, c, deconv, fwdKey, dgradKey] of cases)
    for (const [tileName, tile, precision] of tiles)
      it(`${what}, ${tileName}, ${precision}: the same bits as scalar loads`, async () => {
        convTuning.tile = tile;
        const restore = setFlags({ PRECISION: precision });
        try {
          const off = await run(c, deconv, false, 7);
          const on = await run(c, deconv, true, 7);
          for (let i = 0; i < 3; i++) expect(on.out[i]).toEqual(off.out[i]);
          expect(off.keys.join('\n')).not.toContain('|v4');
          const vecPart = (name: string) => {
            const key = on.keys.find((k) => k.startsWith(`${name} `));
            expect(key, name).toBeDefined();
            // a key naming vector loads belongs to a kernel that issues them, and only such a key
            expect(key!.includes('|v4'), key).toBe(key!.endsWith(' calls-load4'));
            return key!.match(/\|v4:\w+/)?.[0] ?? '';
          };
          expect(vecPart(deconv ? 'deconv2x2_fwd' : 'conv2d_fwd')).toBe(fwdKey);
          if (!deconv) expect(vecPart('conv2d_dgrad')).toBe(dgradKey);
          // and right, not only equal: y and dx of the conv against float64
          if (!deconv && precision === 'f32') {
            const [ho, wo] = outSize(c) as [number, number];
            const ref = convRef(
              c,
              randn(c.n * c.ci * c.h * c.w, 7),
              randn(c.co * c.ci * c.kh * c.kw, 8, 0.5),
              null,
              randn(c.n * c.co * ho * wo, 9),
            );
            expect(relErr(on.out[0]!, ref.y)).toBeLessThan(2e-6);
            expect(relErr(on.out[1]!, ref.dx)).toBeLessThan(2e-6);
          }
        } finally {
          restore();
        }
      });

  it('gives up the vec4 views, B first, where they would pass the storage-buffer limit', () => {
    const a = IM2COL_VEC4;
    const b = weightOperand('row', true);
    const views = ([x, y]: [GemmOperand, GemmOperand]) => `${x.load4 ? 'a' : ''}${y.load4 ? 'b' : ''}`;
    // a fused forward with bias, batch norm and residual: 9 buffers besides the views
    expect(views(withinStorageLimit(a, b, 9, 16))).toBe('ab');
    expect(views(withinStorageLimit(a, b, 9, 10))).toBe('a');
    expect(views(withinStorageLimit(a, b, 9, 9))).toBe('');
    expect(views(withinStorageLimit(a, b, 3, 8))).toBe('ab');
    const [plainA] = withinStorageLimit(a, b, 8, 8);
    expect(plainA.mode).toBe('row');
    expect(plainA.wgsl('a')).toBe(a.wgsl('a'));
  });

  it('a layout the vector loads cannot read keeps scalar loads (Co, Ci and H·W not multiples of 4)', async () => {
    const { keys } = await run({ n: 2, ci: 5, h: 3, w: 3, co: 6, kh: 1, kw: 1, s: 1, p: 0 }, false, true, 3);
    expect(keys.length).toBeGreaterThan(0);
    expect(keys.join('\n')).not.toContain('|v4');
  });
});
