/**
 * Checkpoints written at most every N minutes (Trainer saveEveryMs, `rdpp train --save-every`): on a GPU
 * an epoch can take seconds while a 256² resume checkpoint is ~1.3 GB to read back, encode and write, so
 * writing after every epoch would cost as much as the training. The files written when they are written
 * must be those of writing after every epoch (the same tensors bit for bit and metadata): `last` of the last epoch, and `best` of the best
 * epoch even when that epoch's weights were kept on the GPU for several epochs. A stop request writes
 * them at once, and the kept copy is given back.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { decodeCheckpoint } from '../../src/model/checkpoint.js';
import { Rdpp } from '../../src/model/rdpp.js';
import { defaultConfig, type TrainConfig } from '../../src/train/config.js';
import { Trainer } from '../../src/train/trainer.js';
import { sameBits } from '../helpers/bits.js';
import { formulaTeacher, syntheticImages } from '../helpers/formula-teacher.js';
import { gpu, runtime } from '../helpers/gpu.js';

const SIZE = 32;

beforeAll(gpu);

const images = (n: number) => syntheticImages(n, SIZE);

interface Write {
  kind: 'last' | 'best';
  bytes: Uint8Array;
  /** the trainer's epoch count when the write was asked for */
  epoch: number;
}

/**
 * Train `epochs` epochs of one batch (ResNet-18 formula teacher, 32², batch 2) with selection scores
 * 0.5, 0.9, 0.7, … (epoch 2 is the best), collecting what is saved.
 */
async function train(epochs: number, saveEveryMs: number, stopAfter?: number) {
  const model = new Rdpp(formulaTeacher());
  const cfg: TrainConfig = {
    ...defaultConfig('tire'),
    teacher: 'resnet18',
    imageSize: SIZE,
    batch: 2,
    epochs,
  };
  const scores = [0.5, 0.9, 0.7, 0.6];
  const writes: Write[] = [];
  let epoch = 0;
  const trainer: Trainer = new Trainer(
    model,
    cfg,
    { train: images(2), selection: [] },
    {
      select: async () => scores[epoch++]!,
      save: async (kind, bytes) => {
        writes.push({ kind, bytes, epoch: trainer.state.epoch });
      },
      saveEveryMs,
      ...(stopAfter ? { shouldStop: () => trainer.state.epoch >= stopAfter } : {}),
    },
  );
  const state = await trainer.run();
  trainer.dispose();
  model.dispose();
  return { writes, state };
}

/**
 * Whether two checkpoints hold the same tensors bit for bit and the same metadata, the epochs' wall times
 * (history[].seconds, which differ from run to run) aside.
 */
function sameCheckpoint(a: Uint8Array, b: Uint8Array): boolean {
  const x = decodeCheckpoint(a, 'a');
  const y = decodeCheckpoint(b, 'b');
  const meta = (m: typeof x.meta) =>
    JSON.stringify(m, (k, v) => (k === 'seconds' && typeof v === 'number' ? 0 : v));
  return (
    meta(x.meta) === meta(y.meta) &&
    x.tensors.size === y.tensors.size &&
    [...x.tensors].every(([k, t]) => {
      const u = y.tensors.get(k);
      return u !== undefined && `${u.shape}` === `${t.shape}` && sameBits(u.data, t.data);
    })
  );
}

describe('checkpoints at most every N minutes', () => {
  it('writes the same best and last checkpoints once at the end as after every epoch, and keeps nothing after', async () => {
    const liveBefore = runtime().pool.snapshot().liveBytes;
    const every = await train(3, 0);
    // after every epoch: best at epochs 1 and 2 (the scores improve), last at 1, 2, 3
    expect(every.writes.map((w) => `${w.kind}@${w.epoch}`)).toEqual([
      'best@1',
      'last@1',
      'best@2',
      'last@2',
      'last@3',
    ]);
    const rarely = await train(3, 3_600_000);
    // once, after the last epoch: best (epoch 2's weights, kept on the GPU through epoch 3), then last
    expect(rarely.writes.map((w) => `${w.kind}@${w.epoch}`)).toEqual(['best@3', 'last@3']);
    expect(sameCheckpoint(rarely.writes[0]!.bytes, every.writes[2]!.bytes), 'best = epoch 2 best').toBe(true);
    expect(sameCheckpoint(rarely.writes[1]!.bytes, every.writes[4]!.bytes), 'last = epoch 3 last').toBe(true);
    // and the kept best is epoch 2's, not the last epoch's weights
    expect(sameCheckpoint(rarely.writes[0]!.bytes, every.writes[0]!.bytes), 'best ≠ epoch 1 best').toBe(
      false,
    );
    expect(rarely.state.bestEpoch).toBe(2);
    // the kept copy of the best weights is given back
    expect(runtime().pool.snapshot().liveBytes).toBe(liveBefore);
  }, 300_000);

  it('a stop request writes the checkpoints at once', async () => {
    const stopped = await train(4, 3_600_000, 2);
    expect(stopped.state.epoch).toBe(2);
    expect(stopped.writes.map((w) => `${w.kind}@${w.epoch}`)).toEqual(['best@2', 'last@2']);
  }, 300_000);
});
