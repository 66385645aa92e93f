/**
 * Whole-network parity with the official PyTorch code (ResNet-18 variant, batch 4, 64×64): every
 * intermediate, the losses, every gradient, the BN running statistics and the eval-mode anomaly maps,
 * within the fixture's per-category tolerances — and again under PRECISION=f16 within the f16 ones
 * (src/parity/f16.ts; ~10 s on lavapipe).
 */
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { setFlags } from '../../src/engine/index.js';
import { F16_MODEL_TOLERANCE, modelFixture, modelTolerance } from '../../src/parity/f16.js';
import { runModelParity } from '../../src/parity/model.js';
import { readJson, sharedPath } from '../helpers/fixtures.js';
import { gpu } from '../helpers/gpu.js';

let hasF16 = false;
beforeAll(async () => {
  hasF16 = (await gpu()).has('shader-f16');
});

const run = () => {
  const base = sharedPath('fixtures', 'golden', 'rd18');
  return runModelParity(readJson(`${base}.json`), new Uint8Array(readFileSync(`${base}.safetensors`)));
};

describe('rd18.json: one RD++ training step and evaluation equal the official code', () => {
  it('passes every check', async () => {
    const res = await run();
    const failed = res.checks
      .filter((c) => !c.pass)
      .map((c) => `${c.category} ${c.name}: ${c.error} > ${c.tolerance}`);
    expect(failed).toEqual([]);
    const cats = new Set(res.checks.map((c) => c.category));
    for (const c of ['names', 'features', 'scalars', 'grads_val', 'grads_l2', 'grads_abs', 'running', 'eval'])
      expect(cats).toContain(c);
    expect(res.skipped).toEqual([]);
  });
});

describe('rd18.json under PRECISION=f16 (f16 GEMM operands, f32 accumulation)', () => {
  it('passes every check within the f16 tolerances, and f16 really ran', async (ctx) => {
    if (!hasF16) ctx.skip();
    const restore = setFlags({ PRECISION: 'f16' });
    try {
      const res = await run();
      const failed = res.checks
        .filter((c) => !c.pass)
        .map((c) => `${c.category} ${c.name}: ${c.error} > ${c.tolerance}`);
      expect(failed).toEqual([]);
      const worst = (cat: string) =>
        Math.max(...res.checks.filter((c) => c.category === cat).map((c) => c.error));
      for (const [cat, t] of Object.entries(F16_MODEL_TOLERANCE.rd18))
        expect(res.checks.find((c) => c.category === cat)?.tolerance, cat).toBe(t);
      // features are 7e-3 off in f16 (measured), ~8e-6 in float32: far beyond the fixture's float32 bound
      expect(worst('features')).toBeGreaterThan(1e-3);
    } finally {
      restore();
    }
  });
});

describe('f16 tolerances per model fixture', () => {
  it('wrn50 (projection base 64) has its own table; f32 keeps the fixture’s; f16 never tightens', () => {
    expect(modelFixture(16)).toBe('rd18');
    expect(modelFixture(64)).toBe('wrn50');
    expect(modelTolerance('wrn50', 'features', 1.42e-3, 'f16')).toBe(F16_MODEL_TOLERANCE.wrn50.features);
    expect(modelTolerance('rd18', 'features', 6.71e-5, 'f16')).toBe(F16_MODEL_TOLERANCE.rd18.features);
    expect(modelTolerance('wrn50', 'features', 1.42e-3, 'f32')).toBe(1.42e-3);
    expect(modelTolerance('wrn50', 'grads_abs', 1e-6, 'f16')).toBe(1e-6);
    expect(modelTolerance('rd18', 'grads_val', 2, 'f16')).toBe(2);
  });
});
