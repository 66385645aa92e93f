import type { SsotMode } from '../model/rdpp.js';

/**
 * Training configuration: the official RD++ settings (spec §4.6) as defaults, and the per-category epoch
 * counts of the official code for MVTec AD.
 */

export type TeacherChoice = 'resnet50-keras' | 'wide_resnet50_2' | 'resnet18';

export interface TrainConfig {
  teacher: TeacherChoice;
  /** weights file for torchvision teachers (.pth or .safetensors) */
  teacherPath?: string;
  imageSize: number;
  batch: number;
  epochs: number;
  seed: number;
  /**
   * 'official': the code's SSOT (fused Sinkhorn; spec §4.2: it contributes ~0); 'pairwise': one OT
   * problem per sample pair over per-pixel feature clouds (the paper's figure; src/model/rdpp.ts);
   * 'off': the constant 0
   */
  ssot: SsotMode;
  lrProj: number;
  lrStudent: number;
  betas: [number, number];
  /** optimizers step every this many batches, with summed gradients (official: 2) */
  accumulate: number;
  /** evaluate for model selection on held-out normal images ('validation') or, officially, on the test set */
  selectOn: 'validation' | 'test';
  /** fraction of train/good held out for selection when the dataset has no validation/good folder */
  holdout: number;
}

/** Official epochs per MVTec AD category (spec §4.6). */
export const OFFICIAL_EPOCHS: Record<string, number> = {
  carpet: 10,
  leather: 10,
  grid: 260,
  tile: 260,
  wood: 100,
  bottle: 200,
  cable: 240,
  capsule: 300,
  hazelnut: 160,
  metal_nut: 160,
  pill: 200,
  screw: 280,
  toothbrush: 280,
  transistor: 300,
  zipper: 300,
};

/** Epochs when the category is not an MVTec AD one (documented in the README). */
export const DEFAULT_EPOCHS = 100;

export function defaultConfig(category?: string): TrainConfig {
  return {
    teacher: 'resnet50-keras',
    imageSize: 256,
    batch: 16,
    epochs: (category && OFFICIAL_EPOCHS[category]) || DEFAULT_EPOCHS,
    seed: 111,
    ssot: 'official',
    lrProj: 1e-3,
    lrStudent: 5e-3,
    betas: [0.5, 0.999],
    accumulate: 2,
    selectOn: 'validation',
    holdout: 0.1,
  };
}
