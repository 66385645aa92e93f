/**
 * End-to-end training through the real command path (runTraining): a tiny configuration (ResNet-18
 * formula teacher written to a weights file, 64×64, three tire images, batch 1: an odd number of batches
 * per epoch, so gradients carry across epochs as in the official code). The loss goes down, checkpoints are written and
 * load back, and an interrupted run resumed with --resume ends bit-identical to an uninterrupted one.
 * best and the calibrated copy hold weights only, within the predicted sizes; the run folder of a finished
 * run is refused without --resume and moved aside, byte for byte, with --overwrite.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runTraining } from '../../src/cli/train-run.js';
import { decodeCheckpoint, isStudentTensor } from '../../src/model/checkpoint.js';
import { checkpointSizes } from '../../src/model/checkpoint-size.js';
import { sameBits } from '../helpers/bits.js';
import { hashTree } from '../helpers/cli.js';
import { sharedPath } from '../helpers/fixtures.js';
import { formulaTeacherDir, formulaTrainConfig } from '../helpers/formula-teacher.js';
import { runtime } from '../helpers/gpu.js';

const { dir, teacherPath } = formulaTeacherDir('rdpp-train-');

const cfg = (epochs: number) => formulaTrainConfig('tire', teacherPath, { imageSize: 64, epochs, seed: 5 });

const base = {
  data: sharedPath('datasets', 'mvtec3d-tire-half'),
  category: 'tire',
  resume: false,
  skipBad: false,
  maxTrain: 3,
  maxSelection: 2,
  log: () => {},
};

describe('rdpp train (tiny configuration on tire images)', () => {
  it('trains, lowers the loss, writes checkpoints, evaluates, and resumes bit-identically', async () => {
    const outA = join(dir, 'a');
    const liveBefore = runtime().pool.snapshot().liveBytes;
    const a = await runTraining({ ...base, out: outA, cfg: cfg(2), evaluate: true, maxTest: 5 });
    expect(a.epochs.map((e) => e.epoch)).toEqual([1, 2]);
    // training, selection and evaluation leave nothing allocated on the GPU
    expect(runtime().pool.snapshot().liveBytes).toBe(liveBefore);
    expect(a.epochs[1]!.loss).toBeLessThan(a.epochs[0]!.loss);
    expect(a.metrics?.images).toBe(5);
    expect(a.metrics?.anomalous).toBeGreaterThan(0);
    expect(a.report).toBe(join(outA, 'report', 'report.html'));
    expect(readFileSync(a.report!, 'utf8')).toContain('<h1');
    // the threshold calibrated on held-out normal images is stored in a calibrated copy
    const cal = decodeCheckpoint(
      new Uint8Array(readFileSync(join(outA, 'best.calibrated.safetensors'))),
      'cal',
    );
    expect(cal.meta.decision?.threshold).toBeGreaterThan(0);
    expect(a.metrics?.imageAuroc).toBeGreaterThanOrEqual(0);
    const lastA = decodeCheckpoint(new Uint8Array(readFileSync(join(outA, 'last.safetensors'))), 'A');
    expect(lastA.meta.training?.epoch).toBe(2);
    const curve = readFileSync(join(outA, 'training-curve.svg'), 'utf8');
    expect(curve.startsWith('<?xml')).toBe(true);
    expect(curve).toContain('<svg xmlns="http://www.w3.org/2000/svg"');
    expect(curve).toContain('Training loss per step');
    const log = readFileSync(join(outA, 'train.jsonl'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l));
    expect(log.length).toBeGreaterThan(6);
    // the start line says how the run computed: precision and where activations were stored
    const start = log.find((e) => e.event === 'start');
    expect(start.precision).toBe('f32');
    expect(start.activations).toEqual({ frozen: 'f32', training: 'f32' });
    // every step logs each loss part; L_proj = (L_SSOT + 0.01·L_Recon + 0.1·L_Con) / 1.11
    for (const s of log.filter((e) => e.event === 'step')) {
      const inner = (s.ssot ?? 0) + 0.01 * s.recon + 0.1 * s.contrast;
      expect(Math.abs(s.proj - inner / 1.11)).toBeLessThan(1e-6 + 1e-4 * s.proj);
    }

    // best and its calibrated copy hold weights (+ configuration, decision) only; last also the optimizer
    // state; both sizes within what the space check predicts before training
    const sizes = checkpointSizes('resnet18', 2);
    const size = (n: string) => statSync(join(outA, n)).size;
    const bestA = decodeCheckpoint(new Uint8Array(readFileSync(join(outA, 'best.safetensors'))), 'best');
    expect([...bestA.tensors.keys()].every(isStudentTensor)).toBe(true);
    expect([...cal.tensors.keys()]).toEqual([...bestA.tensors.keys()]);
    expect([...lastA.tensors.keys()].some((k) => k.startsWith('optim.'))).toBe(true);
    expect(bestA.meta.training?.format).toBe('rdpp-weights/1');
    expect(bestA.meta.training?.rng).toBeUndefined();
    for (const n of ['best.safetensors', 'best.calibrated.safetensors']) {
      expect(size(n)).toBeLessThanOrEqual(sizes.weights);
      expect(size(n)).toBeGreaterThan(0.95 * sizes.weights);
    }
    expect(size('last.safetensors')).toBeLessThanOrEqual(sizes.resume);
    expect(size('last.safetensors')).toBeGreaterThan(
      size('best.safetensors') + 2 * 4 * sizes.trainableParameters,
    );

    // a second run into the folder without --resume is refused and changes nothing; --overwrite moves
    // the earlier run into previous-<time>/ byte for byte and trains anew in its place
    const before = hashTree(outA);
    await expect(runTraining({ ...base, out: outA, cfg: cfg(1), evaluate: false })).rejects.toThrow(
      /already holds a training run/,
    );
    expect(hashTree(outA)).toEqual(before);
    await runTraining({ ...base, out: outA, cfg: cfg(1), evaluate: false, overwrite: true });
    const previous = readdirSync(outA).filter((n) => n.startsWith('previous-'));
    expect(previous).toHaveLength(1);
    expect(hashTree(join(outA, previous[0]!))).toEqual(before);
    const lastNew = decodeCheckpoint(new Uint8Array(readFileSync(join(outA, 'last.safetensors'))), 'new');
    expect(lastNew.meta.training?.epoch).toBe(1);
    expect(existsSync(join(outA, '.rdpp.lock'))).toBe(false);

    // the same run, interrupted after epoch 1 and resumed
    const outB = join(dir, 'b');
    await runTraining({ ...base, out: outB, cfg: cfg(1), evaluate: false });
    await runTraining({ ...base, out: outB, cfg: cfg(2), evaluate: false, resume: true });
    const lastB = decodeCheckpoint(new Uint8Array(readFileSync(join(outB, 'last.safetensors'))), 'B');
    expect([...lastB.tensors.keys()]).toEqual([...lastA.tensors.keys()]);
    for (const [k, v] of lastA.tensors) expect(sameBits(lastB.tensors.get(k)!.data, v.data), k).toBe(true);
    expect(lastB.meta.training?.rng).toEqual(lastA.meta.training?.rng);
    expect(lastB.meta.training?.globalStep).toBe(lastA.meta.training?.globalStep);
    // ~45 s alone on 2 cores; the limit allows for the browser tests running beside it
  }, 600_000);
});
