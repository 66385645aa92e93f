/**
 * Training steps replayed from captured graphs (flag TRAIN_GRAPH_CAPTURE, train/trainer.ts): a window of
 * `accumulate` batches and the optimizers' update that ends it is recorded op by op the first time,
 * captured the second and replayed after, with the batches, SSOT pairings and Adam's step scalars as the
 * graph's inputs. The run must be the op-by-op run bit for bit — every step's losses, the student's
 * weights and running statistics, Adam's moments and step counts — through windows that run op by op in
 * between (gradients carried over an odd batch count, a smaller last batch), and give its memory back.
 */
import { describe, expect, it } from 'vitest';
import { Rdpp } from '../../src/model/rdpp.js';
import { defaultConfig, type TrainConfig } from '../../src/train/config.js';
import { type StepInfo, Trainer } from '../../src/train/trainer.js';
import { expectSameBits } from '../helpers/bits.js';
import { formulaTeacher, syntheticImages } from '../helpers/formula-teacher.js';
import { gpuAndFlags, runtime } from '../helpers/gpu.js';

const flags = gpuAndFlags();
const SIZE = 32;

interface Outcome {
  steps: StepInfo[];
  weights: [string, Float32Array][];
  moments: Float32Array[];
  adamSteps: number[][];
  counts: { eager: number; captured: number; replayed: number };
  notes: string[];
}

async function train(
  capture: boolean,
  images: number,
  batch: number,
  epochs: number,
  ssot: TrainConfig['ssot'],
): Promise<Outcome> {
  flags.set({ TRAIN_GRAPH_CAPTURE: capture });
  const cfg: TrainConfig = {
    ...defaultConfig('tire'),
    teacher: 'resnet18',
    imageSize: SIZE,
    batch,
    epochs,
    ssot,
  };
  const model = new Rdpp(formulaTeacher());
  const steps: StepInfo[] = [];
  const notes: string[] = [];
  const trainer = new Trainer(
    model,
    cfg,
    { train: syntheticImages(images, SIZE), selection: [] },
    { onStep: (s) => steps.push(s), note: (line) => notes.push(line) },
  );
  try {
    await trainer.run();
    const named = model.studentStates().flatMap((st) => st.named());
    const weights = await Promise.all(
      named.map(async ([name, t]) => [name, await t.read()] as [string, Float32Array]),
    );
    const opts = [trainer.optProj, trainer.optStudent];
    const moments = await Promise.all(
      opts.flatMap((o) => [...o.state().m, ...o.state().v]).map((t) => t.read()),
    );
    return {
      steps,
      weights,
      moments,
      adamSteps: opts.map((o) => o.state().step),
      counts: { ...trainer.windows.counts },
      notes,
    };
  } finally {
    trainer.dispose();
    model.dispose();
  }
}

function expectSameRun(got: Outcome, want: Outcome): void {
  expect(got.steps.map((s) => [s.epoch, s.batch, s.globalStep])).toEqual(
    want.steps.map((s) => [s.epoch, s.batch, s.globalStep]),
  );
  got.steps.forEach((s, i) => {
    const w = want.steps[i]!;
    const parts = (x: StepInfo) =>
      Float32Array.from([x.loss, x.kd, x.proj, x.recon, x.contrast, x.ssot ?? 0]);
    expectSameBits(parts(s), parts(w), `losses of step ${s.globalStep}`);
  });
  got.weights.forEach(([name, data], i) => {
    expectSameBits(data, want.weights[i]![1], name);
  });
  got.moments.forEach((m, i) => {
    expectSameBits(m, want.moments[i]!, `Adam moment ${i}`);
  });
  expect(got.adamSteps).toEqual(want.adamSteps);
}

describe('Trainer: training windows replayed from captured graphs', () => {
  it('trains bit for bit as op by op, through windows run op by op in between, and frees everything', async () => {
    await runtime().sync();
    const live = runtime().pool.snapshot().liveBytes;
    // 14 images, batch 3: batches of 3, 3, 3, 3, 2 per epoch (accumulate 2). Epoch 1: window (1, 2) runs
    // op by op, window (3, 4) is captured, batch 5 runs op by op and leaves its gradients; epoch 2:
    // batches 1 and 2 op by op (they add to them, then update), window (3, 4) replayed, batch 5
    const eager = await train(false, 14, 3, 2, 'official');
    const graphs = await train(true, 14, 3, 2, 'official');
    expect(eager.counts).toEqual({ eager: 0, captured: 0, replayed: 0 });
    expect(graphs.counts).toEqual({ eager: 1, captured: 1, replayed: 1 });
    expect(graphs.steps).toHaveLength(10);
    // the log says once that (and where) the steps' graph was captured
    expect(eager.notes).toEqual([]);
    expect(graphs.notes).toEqual([
      expect.stringMatching(
        /^training steps: captured as a graph at steps 3–4 \(a window of 2 batches and the update, \d+ dispatches, holding \d+ MiB\); later windows are replayed/,
      ),
    ]);
    expectSameRun(graphs, eager);
    await runtime().sync();
    expect(runtime().pool.snapshot().liveBytes).toBe(live);
  }, 600_000);

  it('replays every window of an even epoch, with the pairwise SSOT term', async () => {
    // 12 images, batch 3: two windows per epoch, so epoch 2 replays both; the pairwise SSOT term depends on
    // each batch's pairing (a graph input: one uploaded inside would replay the captured pairing)
    const eager = await train(false, 12, 3, 2, 'pairwise');
    const graphs = await train(true, 12, 3, 2, 'pairwise');
    expect(graphs.counts).toEqual({ eager: 1, captured: 1, replayed: 2 });
    expect(graphs.steps.every((s) => s.ssot !== null && Number.isFinite(s.ssot))).toBe(true);
    expectSameRun(graphs, eager);
  }, 600_000);
});
