/**
 * The app's recovery snapshots (src/pipeline/train-images.ts): one at an epoch's end when
 * `snapshotEveryMs` has passed since the previous (every epoch but the last with 0), none within the
 * interval — a snapshot reads back and encodes the whole student, which on a GPU can cost an epoch — and
 * always the end-of-training checkpoint.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { trainOnImages } from '../../src/pipeline/train-images.js';
import { defaultConfig, type TrainConfig } from '../../src/train/config.js';
import { formulaTeacher } from '../helpers/formula-teacher.js';
import { gpu } from '../helpers/gpu.js';

beforeAll(gpu);

const SIZE = 32;
const images = Array.from({ length: 2 }, (_, k) =>
  Float32Array.from({ length: 3 * SIZE * SIZE }, (_, i) => (Math.sin(i * 0.21 + k) + 1) / 2),
);

async function epochsSnapshotted(snapshotEveryMs: number): Promise<number[]> {
  const teacher = formulaTeacher();
  const cfg: TrainConfig = { ...defaultConfig(), teacher: 'resnet18', imageSize: SIZE, batch: 2, epochs: 3 };
  const at: number[] = [];
  const r = await trainOnImages(
    teacher,
    cfg,
    { images, calibration: [], calibratedOn: '', plan: '' },
    { snapshot: (_bytes, a) => at.push(a.epoch), snapshotEveryMs },
  );
  expect(r.checkpoint.byteLength).toBeGreaterThan(0);
  r.model.dispose();
  teacher.state.dispose();
  return at;
}

describe('recovery snapshots while training in the app', () => {
  it('come after every epoch but the last with no interval, and not within one', async () => {
    expect(await epochsSnapshotted(0)).toEqual([1, 2]);
    expect(await epochsSnapshotted(3_600_000)).toEqual([]);
  }, 300_000);
});
