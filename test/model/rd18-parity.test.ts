/**
 * Whole-network parity with the official PyTorch code (ResNet-18 variant, batch 4, 64×64): every
 * intermediate, the losses, every gradient, the BN running statistics and the eval-mode anomaly maps,
 * within the fixture's per-category tolerances.
 */
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { runModelParity } from '../../src/parity/model.js';
import { readJson, sharedPath } from '../helpers/fixtures.js';
import { gpu } from '../helpers/gpu.js';

beforeAll(async () => {
  await gpu();
});

describe('rd18.json: one RD++ training step and evaluation equal the official code', () => {
  it('passes every check', async () => {
    const base = sharedPath('fixtures', 'golden', 'rd18');
    const res = await runModelParity(
      readJson(`${base}.json`),
      new Uint8Array(readFileSync(`${base}.safetensors`)),
    );
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
