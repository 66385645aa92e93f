/**
 * The trainer reads a step's losses back while the next step runs: it records step b + 1 (and step b's
 * optimizer update) before it waits for step b's losses, so that the GPU is never idle between steps
 * while the CPU records. With training graphs (TRAIN_GRAPH_CAPTURE) the unit is a window of `accumulate`
 * steps recorded at once, and the same holds unit by unit. Steps are still reported in order, each with its own numbers; an epoch's last
 * step is waited for before the epoch ends (checkpoints and the RNG state saved with them never run
 * ahead of what was reported); a non-finite loss still stops training with its batch named, and the
 * step left in flight is freed.
 */
import { describe, expect, it } from 'vitest';
import { binary, full } from '../../src/engine/index.js';
import { Rdpp } from '../../src/model/rdpp.js';
import { defaultConfig, type TrainConfig } from '../../src/train/config.js';
import { NonFiniteLossError, type StepInfo, Trainer } from '../../src/train/trainer.js';
import { formulaTeacher, syntheticImages } from '../helpers/formula-teacher.js';
import { gpuAndFlags, runtime } from '../helpers/gpu.js';

const SIZE = 32;

const flags = gpuAndFlags();

const images = (n: number) => syntheticImages(n, SIZE);

const config = (epochs: number): TrainConfig => ({
  ...defaultConfig('tire'),
  teacher: 'resnet18',
  imageSize: SIZE,
  batch: 2,
  epochs,
});

describe('Trainer: losses read back while the next step runs', () => {
  // 6 images, batch 2: three steps per epoch (an odd count: gradients carry across the epoch's end)
  it.each([
    // op by op: when a step is reported, the next step of its epoch is already recorded; an epoch's last
    // step is reported before the next epoch records anything
    ['step by step', false, [2, 3, 3, 5, 6, 6]],
    // epoch 1's steps 1–2 are one window, recorded at once and reported once step 3 is recorded; epoch 2
    // starts with step 3's gradients, so its steps are recorded one by one
    ['a window of steps at a time', true, [3, 3, 3, 5, 6, 6]],
  ])(
    'records the next unit before waiting for one, and reports every step in order (%s)',
    async (_, windows, recorded) => {
      flags.set({ TRAIN_GRAPH_CAPTURE: windows });
      const model = new Rdpp(formulaTeacher());
      const seen: { info: StepInfo; recorded: number }[] = [];
      const trainer: Trainer = new Trainer(
        model,
        config(2),
        { train: images(6), selection: [] },
        { onStep: (info) => seen.push({ info, recorded: trainer.state.globalStep }) },
      );
      try {
        await trainer.run();
      } finally {
        trainer.dispose();
        model.dispose();
      }
      expect(seen.map((s) => [s.info.epoch, s.info.batch, s.info.globalStep])).toEqual([
        [1, 1, 1],
        [1, 2, 2],
        [1, 3, 3],
        [2, 1, 4],
        [2, 2, 5],
        [2, 3, 6],
      ]);
      expect(seen.map((s) => s.recorded)).toEqual(recorded);
      for (const { info } of seen) {
        expect(Number.isFinite(info.loss)).toBe(true);
        expect(info.imagesPerSecond).toBeGreaterThan(0);
      }
      expect(trainer.state.history.map((e) => e.epoch)).toEqual([1, 2]);
    },
    300_000,
  );

  it('stops at a non-finite loss, names its batch, and frees the step in flight', async () => {
    const live = runtime().pool.snapshot().liveBytes;
    const model = new Rdpp(formulaTeacher());
    // the loss made NaN from the first step on (NaN pixels would not do: ReLU turns NaN into 0 on some
    // GPUs); the second step is recorded when the first is checked (it is the same window: the window's
    // first call runs op by op, so the replaced trainForward is what runs)
    const forward = model.trainForward.bind(model);
    model.trainForward = (...args) => {
      const f = forward(...args);
      return { ...f, loss: binary('mul', f.loss, full([1], Number.NaN)) };
    };
    const steps: StepInfo[] = [];
    const trainer = new Trainer(
      model,
      config(1),
      { train: images(4), selection: [] },
      { onStep: (s) => steps.push(s) },
    );
    let error: unknown = null;
    try {
      await trainer.run();
    } catch (e) {
      error = e;
    } finally {
      trainer.dispose();
      model.dispose();
    }
    expect(error).toBeInstanceOf(NonFiniteLossError);
    expect((error as Error).message).toMatch(/^the loss became NaN at epoch 1, batch 1 /);
    expect(steps).toEqual([]);
    expect(trainer.state.globalStep).toBe(2);
    expect(runtime().pool.snapshot().liveBytes).toBe(live);
  }, 300_000);
});
