/**
 * Checkpoint sizes, known before training starts (for the run folder's space check and the README):
 * - a weights checkpoint (best, the calibrated copy, what the app saves): every student tensor as float32,
 *   plus the configuration and decision as JSON;
 * - the resume checkpoint (`last`): the same plus both Adam moments of every trainable tensor and, when an
 *   epoch ends between two accumulated batches, the pending gradients (counted always: an upper bound).
 * The safetensors header (one JSON entry per tensor, the metadata, the per-epoch history) is bounded
 * generously. Only declarations are built here: no GPU, no weights.
 */
import { Decoder } from './decoder.js';
import { Ocbe } from './ocbe.js';
import { Projection } from './projection.js';
import type { NetState } from './state.js';

export interface CheckpointSizes {
  /** best.safetensors, best.calibrated.safetensors: weights + configuration (+ decision) */
  weights: number;
  /** last.safetensors: weights + Adam moments + pending gradients + training state */
  resume: number;
  trainableParameters: number;
}

/** The student networks RD++ builds for a teacher (the same choice as the Rdpp constructor). */
function studentStates(teacher: string): NetState[] {
  const wide = teacher !== 'resnet18'; // resnet50-keras and wide_resnet50_2 have 256 channels at layer1
  return [
    new Projection(wide ? 64 : 16).state,
    new Ocbe(wide ? 'bottleneck' : 'basic').state,
    new Decoder(wide ? 'de_wide_resnet50_2' : 'de_resnet18').state,
  ];
}

const HEADER_PER_TENSOR = 160;
const HEADER_FIXED = 16 * 1024;
const HEADER_PER_EPOCH = 400;

export function checkpointSizes(teacher: string, epochs: number): CheckpointSizes {
  let all = 0;
  let trainable = 0;
  let tensors = 0;
  let trainableTensors = 0;
  for (const st of studentStates(teacher))
    for (const d of st.decls) {
      const n = d.shape.reduce((a, b) => a * b, 1);
      all += n;
      tensors++;
      if (d.trainable) {
        trainable += n;
        trainableTensors++;
      }
    }
  const weights = all * 4 + tensors * HEADER_PER_TENSOR + HEADER_FIXED;
  const resume =
    weights + trainable * 3 * 4 + trainableTensors * 3 * HEADER_PER_TENSOR + epochs * HEADER_PER_EPOCH;
  return { weights, resume, trainableParameters: trainable };
}

/**
 * What a training run may have on disk at its peak: `last` twice (the previous one stays until the new one
 * is renamed over it), `best` twice for the same reason, the calibrated copy, and a margin for the log,
 * the training curve and the report.
 */
export function runSpaceNeed(
  teacher: string,
  epochs: number,
): { bytes: number; detail: string; replaces: string[] } {
  const s = checkpointSizes(teacher, epochs);
  const margin = 32e6;
  const mb = (n: number) => `${Math.ceil(n / 1e6)} MB`;
  return {
    bytes: 2 * s.resume + 3 * s.weights + margin,
    detail:
      `last.safetensors ${mb(s.resume)} with optimizer state and best.safetensors ${mb(s.weights)}, each twice ` +
      `while it is replaced, the calibrated copy ${mb(s.weights)}, ${mb(margin)} for logs and the report`,
    replaces: ['last.safetensors', 'best.safetensors', 'best.calibrated.safetensors'],
  };
}
