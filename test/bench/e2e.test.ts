/** The end-to-end benchmarks run and report what they promise (tiny shapes; speed is not tested). */
import { beforeAll, describe, expect, it } from 'vitest';
import { benchE2e } from '../../bench/e2e.js';
import { runtime } from '../../src/engine/index.js';
import { gpu } from '../helpers/gpu.js';

beforeAll(async () => {
  await gpu();
});

describe('bench train / infer', () => {
  for (const kind of ['train', 'infer'] as const) {
    it(`${kind}: times the whole ${kind === 'train' ? 'step' : 'inference'} and reports memory and the adapter`, async () => {
      const live = runtime().pool.snapshot().liveBytes;
      const r = await benchE2e(kind, { teacher: 'resnet18', batch: 2, imageSize: 32, iters: 1, warmup: 1 });
      expect(r.kind).toBe(kind);
      expect(r.median_ms).toBeGreaterThan(0);
      expect(r.images_per_s).toBeCloseTo((2 * 1000) / r.median_ms, 1);
      expect(r.peak_gpu_mib).toBeGreaterThan(0);
      expect(r.adapter).toMatch(/^node: /);
      // everything the benchmark allocated is released
      expect(runtime().pool.snapshot().liveBytes).toBe(live);
    });
  }
});
