/**
 * Per-teacher input normalisation (each teacher owns its preprocessing):
 *   'imagenet' (torchvision): RGB in [0, 1], (v − mean)/std with mean (0.485, 0.456, 0.406), std (0.229,
 *     0.224, 0.225) — spec §6;
 *   'caffe' (Keras ResNet-50): RGB 0..255 → BGR, minus (103.939, 116.779, 123.68), no std — teachers.md §1.
 * Input: CHW RGB in [0, 1] (after resizing and, in training, the noise patch). Output: CHW float32.
 */

import { KERAS_CAFFE_BGR_MEAN } from './teacher/keras-weights.js';

export type Normalisation = 'imagenet' | 'caffe';

const IMAGENET_MEAN = [0.485, 0.456, 0.406];
const IMAGENET_STD = [0.229, 0.224, 0.225];

/** Each normalisation in words, with its constants (written into exported teacher files). */
export const NORMALISATION_TEXT: Record<Normalisation, string> = {
  imagenet: `RGB in [0, 1], (v - mean) / std, mean [${IMAGENET_MEAN}], std [${IMAGENET_STD}]`,
  caffe: `RGB 0..255 -> BGR, minus [${KERAS_CAFFE_BGR_MEAN}] (B, G, R), no std`,
};

export function normalise(
  rgb: Float32Array,
  h: number,
  w: number,
  mode: Normalisation,
  out = new Float32Array(3 * h * w),
): Float32Array {
  const n = h * w;
  if (rgb.length !== 3 * n)
    throw new Error(`normalise: expected ${3 * n} values (3×${h}×${w}), got ${rgb.length}`);
  for (let c = 0; c < 3; c++) {
    if (mode === 'imagenet') {
      const m = IMAGENET_MEAN[c]!;
      const s = IMAGENET_STD[c]!;
      for (let i = 0; i < n; i++) out[c * n + i] = (rgb[c * n + i]! - m) / s;
    } else {
      // output channel c is BGR channel c = RGB channel 2 − c
      const src = (2 - c) * n;
      const m = KERAS_CAFFE_BGR_MEAN[c]!;
      for (let i = 0; i < n; i++) out[c * n + i] = rgb[src + i]! * 255 - m;
    }
  }
  return out;
}
