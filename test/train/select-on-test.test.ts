/**
 * `train --select-on test --eval-every 1` (the official protocol with its curve): the selection set is the
 * test set, so each epoch's selection evaluation is also its test-eval record — the test set is scored once
 * per epoch, not twice, and the logged metrics are the ones the selection score averages. Through the real
 * command path (runTraining; ResNet-18 formula teacher, 32², a tiny generated demo dataset, batch 2).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { runTraining } from '../../src/cli/train-run.js';
import { writeDemoDataset } from '../../src/platform/demo-writer.js';
import type { TrainConfig } from '../../src/train/config.js';
import { DEMO_CATEGORY } from '../../src/train/demo-data.js';
import { formulaTeacherDir, formulaTrainConfig } from '../helpers/formula-teacher.js';

// every whole-set evaluation the training pipeline asks for, counted (the real functions run)
const passes = vi.hoisted(() => ({ count: 0 }));
vi.mock('../../src/pipeline/evaluate.js', async (importOriginal) => {
  const m = await importOriginal<typeof import('../../src/pipeline/evaluate.js')>();
  return {
    ...m,
    evaluate: (...a: Parameters<typeof m.evaluate>) => {
      passes.count++;
      return m.evaluate(...a);
    },
    testEvalRecord: (...a: Parameters<typeof m.testEvalRecord>) => {
      passes.count++;
      return m.testEvalRecord(...a);
    },
  };
});

const { dir, teacherPath } = formulaTeacherDir('rdpp-select-on-test-');

beforeAll(() => {
  // 4 train, 2 good + 4 × 1 defective test images
  writeDemoDataset(join(dir, 'data'), {
    seed: 5,
    size: 32,
    trainCount: 4,
    validationCount: 2,
    testGoodCount: 2,
    testDefectCount: 1,
  });
});

const cfg = (selectOn: TrainConfig['selectOn'], epochs: number) =>
  formulaTrainConfig(DEMO_CATEGORY, teacherPath, { epochs, seed: 3, selectOn });

const run = (name: string, selectOn: TrainConfig['selectOn'], epochs: number, maxTest?: number) =>
  runTraining({
    ...(maxTest ? { maxTest } : {}),
    data: join(dir, 'data'),
    category: DEMO_CATEGORY,
    out: join(dir, name),
    cfg: cfg(selectOn, epochs),
    resume: false,
    skipBad: false,
    evaluate: false,
    evalEvery: 1,
    log: () => {},
  });

const events = (name: string) =>
  readFileSync(join(dir, name, 'train.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe('train --select-on test --eval-every 1', () => {
  it('scores the test set once per epoch and logs what the selection score averages', async () => {
    passes.count = 0;
    const r = await run('test', 'test', 2);
    // two epochs, one pass each (selection and test-eval were two passes of the same images)
    expect(passes.count).toBe(2);
    expect(r.testEvals.map((e) => e.epoch)).toEqual([1, 2]);
    const log = events('test');
    const kinds = log
      .filter((e) => e.event === 'epoch' || e.event === 'test-eval')
      .map((e) => `${e.event}${e.epoch}`);
    expect(kinds).toEqual(['epoch1', 'test-eval1', 'epoch2', 'test-eval2']);
    r.epochs.forEach((ep, i) => {
      const t = r.testEvals[i]!;
      const parts = [t.imageAuroc, t.pixelAuroc, t.auproOfficial].filter((v): v is number => v !== null);
      expect(parts).toHaveLength(3);
      expect(ep.score).toBe(parts.reduce((a, b) => a + b, 0) / 3);
    });
  }, 600_000);

  it('selects on the test set the run uses: the one limited by maxTest (one pass per epoch)', async () => {
    passes.count = 0;
    const r = await run('test-max', 'test', 1, 3);
    expect(passes.count).toBe(1);
    const start = events('test-max').find((e) => e.event === 'start') as { selection?: number } | undefined;
    expect(start?.selection).toBe(3);
    expect(r.testEvals).toHaveLength(1);
  }, 600_000);

  it('still scores the test set separately when selection has its own images', async () => {
    passes.count = 0;
    const r = await run('validation', 'validation', 1);
    // the held-out selection set, then the test set
    expect(passes.count).toBe(2);
    expect(r.testEvals.map((e) => e.epoch)).toEqual([1]);
  }, 600_000);
});
