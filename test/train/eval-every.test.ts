/**
 * `train --eval-every N` through the real command path (runTraining; ResNet-18 formula teacher, 32²,
 * four tire images, batch 2): the test set is scored after every N-th and the last epoch, logged as
 * 'test-eval' events right after that epoch's 'epoch' event with metrics in [0, 1], drawn as a chart of
 * the curve, kept across --resume — and training is untouched: the checkpoints (weights,
 * optimizer moments, RNG, selection history) equal those of the same run without it, bit for bit.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runTraining } from '../../src/cli/train-run.js';
import { decodeCheckpoint } from '../../src/model/checkpoint.js';
import { isTestEvalEpoch } from '../../src/pipeline/train.js';
import { expectSameBits } from '../helpers/bits.js';
import { sharedPath } from '../helpers/fixtures.js';
import { formulaTeacherDir, formulaTrainConfig } from '../helpers/formula-teacher.js';

const { dir, teacherPath } = formulaTeacherDir('rdpp-eval-every-');

const cfg = (epochs: number) => formulaTrainConfig('tire', teacherPath, { epochs, seed: 3 });

const base = {
  data: sharedPath('datasets', 'mvtec3d-tire-half'),
  category: 'tire',
  resume: false,
  skipBad: false,
  maxTrain: 4,
  maxSelection: 2,
  maxTest: 6,
  evaluate: false,
  log: () => {},
};

const events = (out: string) =>
  readFileSync(join(out, 'train.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe('train --eval-every', () => {
  it('scores after every N-th epoch and after the last', () => {
    const at = (every: number, epochs: number) =>
      Array.from({ length: epochs }, (_, i) => i + 1).filter((e) => isTestEvalEpoch(e, every, epochs));
    expect(at(2, 5)).toEqual([2, 4, 5]);
    expect(at(1, 3)).toEqual([1, 2, 3]);
    expect(at(10, 3)).toEqual([3]);
  });

  it('logs and draws the test metrics, survives --resume, and leaves training bit-identical', async () => {
    // with --eval-every 2: epochs 1–2, then resumed to 3 (events at 2, and at 3 as the last)
    const outA = join(dir, 'with');
    await runTraining({ ...base, out: outA, cfg: cfg(2), evalEvery: 2 });
    const a = await runTraining({ ...base, out: outA, cfg: cfg(3), evalEvery: 2, resume: true });
    // the same run without it
    const outB = join(dir, 'without');
    const b = await runTraining({ ...base, out: outB, cfg: cfg(3) });

    expect(a.testEvals.map((r) => r.epoch)).toEqual([2, 3]);
    expect(b.testEvals).toEqual([]);
    const log = events(outA);
    const kinds = log
      .filter((e) => e.event === 'epoch' || e.event === 'test-eval')
      .map((e) => `${e.event}${e.epoch}`);
    expect(kinds).toEqual(['epoch1', 'epoch2', 'test-eval2', 'epoch3', 'test-eval3']);
    for (const e of log.filter((x) => x.event === 'test-eval')) {
      expect(Object.keys(e).sort()).toEqual(
        [
          'auproOfficial',
          'auproStandard',
          'epoch',
          'event',
          'imageAuroc',
          'pixelAuroc',
          'seconds',
          'time',
        ].sort(),
      );
      for (const k of ['imageAuroc', 'pixelAuroc', 'auproStandard', 'auproOfficial']) {
        expect(e[k], k).toBeGreaterThanOrEqual(0);
        expect(e[k], k).toBeLessThanOrEqual(1);
      }
      expect(e.seconds).toBeGreaterThan(0);
    }
    expect(events(outB).some((e) => e.event === 'test-eval')).toBe(false);
    // the curve: a test-metrics chart only with test evaluations
    const curve = (out: string) => readFileSync(join(out, 'training-curve.svg'), 'utf8');
    expect(curve(outA)).toContain('id="test-metrics"');
    expect(curve(outA)).toContain('id="selection-score"');
    expect(curve(outB)).not.toContain('id="test-metrics"');

    // training is untouched: last and best checkpoints equal bit for bit, selection history included
    for (const kind of ['last', 'best']) {
      const read = (out: string) =>
        decodeCheckpoint(new Uint8Array(readFileSync(join(out, `${kind}.safetensors`))), `${out} ${kind}`);
      const ca = read(outA);
      const cb = read(outB);
      expect([...ca.tensors.keys()]).toEqual([...cb.tensors.keys()]);
      for (const [k, v] of cb.tensors) expectSameBits(ca.tensors.get(k)!.data, v.data, `${kind} ${k}`);
      // the same state except for the wall-clock seconds of each epoch
      const strip = (t: Record<string, unknown> | undefined) => {
        expect(t?.history).toHaveLength(3);
        return { ...t, history: (t!.history as { seconds: number }[]).map(({ seconds: _s, ...h }) => h) };
      };
      expect(strip(ca.meta.training)).toEqual(strip(cb.meta.training));
    }
    expect(a.epochs.map((e) => e.score)).toEqual(b.epochs.map((e) => e.score));
  }, 600_000);
});
