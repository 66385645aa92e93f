/**
 * Training on images already in memory (the browser app): which good images train and which set the
 * decision threshold (the validation images, else a seeded hold-out like the Node trainer's), the
 * Trainer run with a Stop that works between steps, a recovery snapshot after every epoch, and at the
 * end the threshold calibrated on the images the model did not train on and the student checkpoint
 * (with that decision) as bytes. Reported through events; the caller presents them.
 */
import type { Decision } from '../eval/threshold.js';
import type { Rdpp } from '../model/rdpp.js';
import type { Teacher } from '../model/teacher/torchvision.js';
import type { TrainConfig } from '../train/config.js';
import type { StepInfo, Trainer } from '../train/trainer.js';
import { calibrateModel } from './calibrate.js';
import { studentCheckpoint } from './checkpoint.js';
import { holdoutSplit, makeTrainer } from './train-setup.js';

export interface ImageTrainingPlan {
  /** the images trained on (CHW at the training size) */
  images: Float32Array[];
  /** the good images the threshold is calibrated on (none: no calibrated threshold) */
  calibration: Float32Array[];
  /** where the calibration images come from, for the decision and messages */
  calibratedOn: string;
  /** one line for people: the split */
  plan: string;
}

/**
 * With validation images, all good images train and the validation images calibrate; without, a seeded
 * `holdoutPercent` % of the good images is held out for the threshold (holdoutSplit).
 */
export function planImageTraining(
  all: Float32Array[],
  validation: Float32Array[],
  seed: number,
  holdoutPercent: number,
): ImageTrainingPlan {
  if (validation.length)
    return {
      images: all,
      calibration: validation,
      calibratedOn: 'the validation images',
      plan: `${all.length} training images; the threshold from ${validation.length} validation image(s)`,
    };
  const split = holdoutSplit(all.length, seed, holdoutPercent / 100);
  const images = split.train.map((i) => all[i]!);
  return {
    images,
    calibration: split.held.map((i) => all[i]!),
    calibratedOn: `held-out good images (a seeded ${holdoutPercent} % of the ${all.length} chosen, not trained on)`,
    plan: split.held.length
      ? `no validation images: ${split.held.length} of ${all.length} good images held out (seeded) for the threshold, ${images.length} trained on`
      : `no validation images and none held out (${holdoutPercent === 0 ? 'hold-out 0 %' : 'too few images'}): no calibrated threshold`,
  };
}

/** Where training stood when it ended. */
export interface TrainedState {
  steps: number;
  epoch: number;
  /** ended by Stop before the last epoch */
  stopped: boolean;
}

export interface ImageTrainingEvents {
  /** the model and its trainer exist (e.g. to drop them when the device is lost) */
  started?(model: Rdpp, trainer: Trainer): void;
  step?(s: StepInfo): void;
  /**
   * a recovery snapshot (student checkpoint bytes) at the end of an epoch but the last, when
   * `snapshotEveryMs` has passed since the previous one (or since the start)
   */
  snapshot?(bytes: Uint8Array, at: { epoch: number; globalStep: number }): void;
  /**
   * (not a callback) the least time between two snapshots: default SNAPSHOT_EVERY_MS; 0: after every epoch.
   * A snapshot reads the student back and encodes it (431 MB at 256² with the wide teachers), which on a
   * GPU can cost as much as an epoch; a lost device then loses at most this much training.
   */
  snapshotEveryMs?: number;
  /** training is over; calibration (if any) follows */
  trained?(state: TrainedState): void;
  /** asked between steps and at epoch ends: true stops training (the model so far is kept) */
  shouldStop?(): boolean;
}

export interface ImageTrainingResult extends TrainedState {
  model: Rdpp;
  decision: Decision | null;
  /** the student checkpoint at the end, with the decision when calibrated */
  checkpoint: Uint8Array;
}

class StopTraining extends Error {}

/** The default least time between two recovery snapshots (ImageTrainingEvents.snapshotEveryMs). */
export const SNAPSHOT_EVERY_MS = 60_000;

/** Train a fresh RD++ on `plan.images`; the trainer's GPU memory is freed at the end, the model is returned. */
export async function trainOnImages(
  teacher: Teacher,
  cfg: TrainConfig,
  plan: ImageTrainingPlan,
  events: ImageTrainingEvents = {},
): Promise<ImageTrainingResult> {
  const stopAsked = () => events.shouldStop?.() ?? false;
  let trainer: Trainer | null = null;
  const every = events.snapshotEveryMs ?? SNAPSHOT_EVERY_MS;
  let snapshotAt = performance.now();
  const { model, trainer: tr } = makeTrainer(teacher, cfg, plan.images, {
    onStep: (st) => {
      events.step?.(st);
      // the Trainer asks shouldStop at epoch ends; stop between steps too
      if (stopAsked() && st.globalStep < st.epochs * st.batches) throw new StopTraining();
    },
    onEpoch: async (e) => {
      // a snapshot for recovery at an epoch end but the last (the end of training takes one), when due
      const due = performance.now() - snapshotAt >= every;
      if (e.epoch < cfg.epochs && due && !stopAsked() && trainer && events.snapshot) {
        const at = { epoch: e.epoch, globalStep: trainer.state.globalStep };
        events.snapshot(await studentCheckpoint(model, cfg, { training: at }), at);
        snapshotAt = performance.now();
      }
    },
    shouldStop: stopAsked,
  });
  trainer = tr;
  events.started?.(model, trainer);
  let stopped = false;
  try {
    await trainer.run();
  } catch (e) {
    if (!(e instanceof StopTraining)) throw e;
    stopped = true;
  }
  // Stop seen at an epoch end ends the run normally: still a stop
  stopped ||= stopAsked() && trainer.state.epoch < cfg.epochs;
  const state: TrainedState = { steps: trainer.state.globalStep, epoch: trainer.state.epoch, stopped };
  events.trained?.(state);
  const decision = plan.calibration.length
    ? await calibrateModel(model, plan.calibration, cfg.imageSize, cfg.batch, plan.calibratedOn)
    : null;
  const checkpoint = await studentCheckpoint(model, cfg, {
    training: { epoch: state.epoch, globalStep: state.steps },
    ...(decision ? { decision: decision as unknown as Record<string, unknown> } : {}),
  });
  // the optimizer state is not needed for inspection: free its GPU memory (twice the model's)
  trainer.dispose();
  return { ...state, model, decision, checkpoint };
}
