/**
 * Training set-up shared by the browser app and its Node-side test: the app's training configuration
 * (the official one at a small size), the seeded hold-out split of the Node trainer, and a Trainer over
 * decoded images.
 */
import { Rng } from '../model/init.js';
import { Rdpp } from '../model/rdpp.js';
import type { Teacher } from '../model/teacher/torchvision.js';
import { defaultConfig, type TeacherChoice, type TrainConfig } from '../train/config.js';
import { Trainer, type TrainerHooks } from '../train/trainer.js';

export interface AppTrainOptions {
  imageSize: number;
  batch: number;
  epochs: number;
  seed: number;
  /** optimizer step every this many batches (official: 2) */
  accumulate?: number;
  /** the teacher's configuration name (default the Keras ResNet-50) */
  teacher?: TeacherChoice;
}

/** Small defaults for a browser tab: 64×64, batch 4, 3 epochs, seed 111, optimizer step every 2 batches. */
export const APP_TRAIN_DEFAULTS: Readonly<AppTrainOptions> = Object.freeze({
  imageSize: 64,
  batch: 4,
  epochs: 3,
  seed: 111,
  accumulate: 2,
});

/** The official training configuration with the app's teacher, size, batch, epochs and seed. */
export function appConfig(o: AppTrainOptions): TrainConfig {
  if (!Number.isInteger(o.imageSize) || o.imageSize <= 0 || o.imageSize % 32 !== 0)
    throw new Error(`image size ${o.imageSize} must be a positive multiple of 32`);
  if (!(Number.isInteger(o.batch) && o.batch >= 1)) throw new Error(`batch ${o.batch} must be ≥ 1`);
  if (o.imageSize === 32 && o.batch === 1)
    throw new Error(
      'batch 1 at 32×32 leaves the bottleneck 1×1, and batch norm needs more than one value per channel: use batch ≥ 2 or size ≥ 64',
    );
  if (!(Number.isInteger(o.epochs) && o.epochs >= 1)) throw new Error(`epochs ${o.epochs} must be ≥ 1`);
  if (!Number.isInteger(o.seed)) throw new Error(`seed ${o.seed} must be an integer`);
  const accumulate = o.accumulate ?? 2;
  if (!(Number.isInteger(accumulate) && accumulate >= 1))
    throw new Error(`accumulate ${accumulate} must be ≥ 1`);
  return {
    ...defaultConfig(),
    teacher: o.teacher ?? 'resnet50-keras',
    imageSize: o.imageSize,
    batch: o.batch,
    epochs: o.epochs,
    seed: o.seed,
    accumulate,
  };
}

/**
 * The held-out split of the Node trainer (src/pipeline/train.ts) when there is no validation folder:
 * a seeded permutation (Rng(seed + 7)) of the n good images, the first k = max(1, round(n·fraction)) held
 * out (in permutation order), the rest trained on in their original order. Nothing is held out when
 * fraction is 0 or fewer than 2 images would remain… i.e. when n − k < 1.
 */
export function holdoutSplit(n: number, seed: number, fraction: number): { train: number[]; held: number[] } {
  const all = Array.from({ length: n }, (_, i) => i);
  if (!(fraction > 0) || n < 2) return { train: all, held: [] };
  const order = new Rng(seed + 7).permutation(n);
  const k = Math.max(1, Math.round(n * fraction));
  if (n - k < 1) return { train: all, held: [] };
  const held = order.slice(0, k);
  const set = new Set(held);
  return { train: all.filter((i) => !set.has(i)), held };
}

/** A fresh RD++ on `teacher` and its Trainer over `images` (CHW at cfg.imageSize). */
export function makeTrainer(
  teacher: Teacher,
  cfg: TrainConfig,
  images: Float32Array[],
  hooks: TrainerHooks,
): { model: Rdpp; trainer: Trainer } {
  const model = new Rdpp(teacher);
  const trainer = new Trainer(model, cfg, { train: images, selection: [] }, hooks);
  return { model, trainer };
}
