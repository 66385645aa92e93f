/**
 * `rdpp bench shapes`: the conv tracer records each GEMM of a convolution (forward, input and weight
 * gradients) with its geometry; a network's traced shapes are the ones its layers define (the teacher's
 * frozen stem has a forward only, the decoder's 2×2 deconvolutions appear as dgrad GEMMs) and scale
 * exactly to larger images; the command times them and sums each workload's conv time per step.
 */

import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { knownPeakGflops } from '../../bench/harness.js';
import { scaleGeom, shapeCases, traceWorkload } from '../../bench/shapes.js';
import {
  backward,
  conv2d,
  convTranspose2d,
  full,
  param,
  scope,
  sum,
  traceConvs,
} from '../../src/engine/index.js';
import { cli } from '../helpers/cli.js';
import { gpu } from '../helpers/gpu.js';

beforeAll(async () => {
  await gpu();
});

describe('peaks for the share-of-peak column', () => {
  it('float32 FMAs, or dense f16 tensor cores when the GEMMs ran on subgroup matrices; unknown: null', () => {
    const h200 = 'node: nvidia / hopper / NVIDIA H200';
    expect(knownPeakGflops(h200)).toBe(67_000);
    expect(knownPeakGflops(h200, true)).toBe(989_000);
    expect(knownPeakGflops('node: mesa / software / llvmpipe', true)).toBeNull();
  });
});

describe('traceConvs', () => {
  it("records forward, dgrad and wgrad with the conv geometry, and deconvolutions in their conv's geometry", () => {
    const { calls } = traceConvs(() =>
      scope(() => {
        const x = param(full([2, 4, 8, 8], 0.1));
        const w = param(full([6, 4, 3, 3], 0.1));
        const d = param(full([6, 5, 2, 2], 0.1));
        const y = convTranspose2d(conv2d(x, w, null, { stride: 2, padding: 1 }), d);
        backward(sum(y));
      }),
    );
    const conv = { n: 2, ci: 4, h: 8, w: 8, co: 6, kh: 3, kw: 3, s: 2, p: 1, ho: 4, wo: 4 };
    const deconv = { n: 2, ci: 5, h: 8, w: 8, co: 6, kh: 2, kw: 2, s: 2, p: 0, ho: 4, wo: 4 };
    expect(calls.map((c) => [c.pass, c.geom])).toEqual([
      ['fwd', conv],
      ['deconv', deconv], // the deconvolution's forward
      ['deconv-dx', deconv], // its input gradient
      ['wgrad', deconv],
      ['dgrad', conv],
      ['wgrad', conv],
    ]);
    // outside a trace nothing is recorded, and nested traces pass their calls up
    const outer = traceConvs(() =>
      traceConvs(() => conv2d(full([1, 1, 4, 4], 1), full([1, 1, 1, 1], 1), null).dispose()),
    );
    expect(outer.calls).toHaveLength(1);
    expect(outer.result.calls).toHaveLength(1);
  });
});

describe('network shapes', () => {
  it('traces the resnet18 RD++ training step and inference', async () => {
    const train = await traceWorkload('resnet18', 'train');
    const infer = await traceWorkload('resnet18', 'infer');
    const isStem = (s: (typeof train)[number]) => s.geom.ci === 3 && s.geom.kh === 7;
    // the frozen teacher's stem: forward only, on the clean and the noisy images (traced batch 2 → n = 4)
    expect(train.filter(isStem).map((s) => [s.pass, s.geom.n, s.geom.h, s.geom.ho])).toEqual([
      ['fwd', 2, 32, 16],
    ]);
    expect(infer.filter(isStem).map((s) => [s.pass, s.geom.n])).toEqual([['fwd', 2]]);
    // the teacher's weights are frozen (their GEMM-layout copies kept), the student's trainable: the
    // benchmark gives its weight the same status, so it copies where the workload copies
    expect(train.filter(isStem).every((s) => s.frozenWeight)).toBe(true);
    expect(train.some((s) => s.pass === 'fwd' && !s.frozenWeight)).toBe(true);
    expect(train.filter((s) => s.pass === 'dgrad').every((s) => !s.frozenWeight)).toBe(true);
    // student convs train: every wgrad has its forward
    const fwd = new Set(
      train.filter((s) => s.pass === 'fwd').map((s) => JSON.stringify({ ...s.geom, n: 0 })),
    );
    for (const s of train.filter((t) => t.pass === 'wgrad' && t.geom.kh !== 2))
      expect(fwd.has(JSON.stringify({ ...s.geom, n: 0 }))).toBe(true);
    // the decoder's 2×2 s2 deconvolutions run in inference (as one GEMM each, deconvForward)
    expect(infer.some((s) => s.pass === 'deconv' && s.geom.kh === 2 && s.geom.s === 2)).toBe(true);
    expect(infer.some((s) => s.pass === 'dgrad')).toBe(false);
    expect(infer.every((s) => s.calls >= 1)).toBe(true);
    // resnet18's teacher stem..layer3 has 1 + 6·2 + 2 (downsample) = 15 convs per image
    const teacherConvs = infer
      .filter((s) => s.pass === 'fwd' && [3, 64, 128].includes(s.geom.ci) && s.geom.n === 2)
      .reduce((a, s) => a + s.calls, 0);
    expect(teacherConvs).toBeGreaterThanOrEqual(15);
  });

  it('gives every shape of a workload its own name (tune and best_tiles pair timings by name)', async () => {
    // resnet18's inference at batch 32 has a teacher 3×3 and a decoder 3×3 of the same sizes and calls:
    // once both were "fwd conv3x3 16x16 256→256 N32 ×3 (infer)" although only the teacher's weight was
    // kept packed, and tune kept one's time. Inference now packs every weight (Rdpp.packForInference):
    // the two are the same GEMM on a packed weight, one case with both calls
    const cases = await shapeCases({
      teacher: 'resnet18',
      imageSize: 256,
      trainBatch: 16,
      inferBatches: [1, 32],
    });
    const named = cases.map((c) => `${c.group}|${c.name}`);
    expect(new Set(named).size).toBe(named.length);
    const twins = cases.filter((c) => c.group === 'infer b32' && / conv3x3 16x16 256→256 N32 /.test(c.name));
    expect(twins.map((c) => c.name)).toEqual(['fwd   conv3x3 16x16 256→256 N32 frozen ×6 (infer)']);
  });

  it('scales a traced shape to the image size and batch exactly, and refuses sizes it cannot', () => {
    const stem = { n: 4, ci: 3, h: 32, w: 32, co: 64, kh: 7, kw: 7, s: 2, p: 3, ho: 16, wo: 16 };
    expect(scaleGeom(stem, 256, 16)).toEqual({ ...stem, n: 32, h: 256, w: 256, ho: 128, wo: 128 });
    expect(() => scaleGeom(stem, 48, 1)).toThrow(/multiple of 32/);
  });

  it('rdpp bench shapes times each shape and sums the conv time per step', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'rdpp-shapes-')), 'shapes.json');
    const r = await cli([
      'bench',
      'shapes',
      '--teacher',
      'resnet18',
      '--image-size',
      '32',
      '--batch',
      '1',
      '--iters',
      '1',
      '--filter',
      'infer',
      '--out',
      out,
    ]);
    expect(r.code).toBe(0);
    const report = JSON.parse(readFileSync(out, 'utf8'));
    expect(report.size).toBe('shapes');
    expect(report.peak_gflops).toBeNull(); // lavapipe: no data-sheet peak
    expect(report.mma).toMatch(/^subgroup matrices: /); // f32 here: which kernel ran, and why
    expect(report.results.length).toBeGreaterThan(10);
    for (const res of report.results) {
      expect(res.group).toBe('infer b1');
      expect(res.calls_per_step).toBeGreaterThanOrEqual(1);
      expect(res.gflops).toBeGreaterThan(0);
    }
    const total = report.results.reduce(
      (a: number, res: { calls_per_step: number; median_ms: number }) =>
        a + res.calls_per_step * res.median_ms,
      0,
    );
    expect(report.groups).toHaveLength(1);
    expect(report.groups[0].conv_ms_per_step).toBeCloseTo(total, 2);
    expect(r.err).toMatch(/infer b1: .* ms of convs per step/);
  });

  it('--tiles times each shape with every tile named and says which tile wins each shape', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'rdpp-tiles-')), 'tiles.json');
    const args = ['bench', 'shapes', '--teacher', 'resnet18', '--image-size', '32', '--batch', '1'];
    const r = await cli([
      ...args,
      '--iters',
      '1',
      '--filter',
      'fwd +conv1x1 .*\\(infer\\)',
      '--tiles',
      't64x64,t128x128',
      '--out',
      out,
    ]);
    expect(r.code).toBe(0);
    const report = JSON.parse(readFileSync(out, 'utf8'));
    const shapes = new Set(report.results.map((res: { name: string }) => res.name));
    expect(shapes.size).toBeGreaterThan(0);
    expect(report.results).toHaveLength(2 * shapes.size);
    expect(report.groups.map((g: { group: string }) => g.group).sort()).toEqual([
      'infer b1 t128x128',
      'infer b1 t64x64',
    ]);
    expect(report.best_tiles).toHaveLength(shapes.size);
    for (const b of report.best_tiles) {
      const timed = report.results.filter((res: { name: string }) => res.name === b.name);
      expect(b.group).toBe('infer b1');
      expect(b.median_ms).toBe(Math.min(...timed.map((res: { median_ms: number }) => res.median_ms)));
      expect(timed.find((res: { tile: string }) => res.tile === b.tile).median_ms).toBe(b.median_ms);
      expect(b.speedup_over_worst).toBeGreaterThanOrEqual(1);
    }
    const bad = await cli([...args, '--tiles', 't64x64,t7x7']);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/--tiles: unknown tile 't7x7' \(use all or some of t64x64, t128x128/);
  });
});
