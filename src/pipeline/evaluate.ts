/**
 * THE evaluation of a model on a set of images, used by `rdpp test`, by `rdpp train` (its final test and
 * `--eval-every`) and by the browser app's inspection: anomaly maps and image scores on the GPU in
 * batches, then, when every image carries a label, the metrics (image / pixel AUROC, both AUPROs, F1-max,
 * per defect type). One function, so that the numbers of the three can only differ in their inputs.
 */
import {
  computeMetrics,
  type EvalMetrics,
  type EvalSample,
  type MetricParts,
  type ScoredSample,
  scoreImages,
  type TestEvalRecord,
} from '../eval/evaluate.js';
import type { Rdpp } from '../model/rdpp.js';

/** An image to evaluate: the model input, and its labels when known (unlabelled images get no metrics). */
export interface EvalInput {
  /** CHW RGB in [0, 1] at size×size */
  rgb: Float32Array;
  label?: 0 | 1;
  /** size×size 0/1 ground truth (null: all normal) */
  mask?: Uint8Array | null;
  defectType?: string;
  path?: string;
}

export interface EvaluateOptions {
  size: number;
  /** images per GPU pass */
  batch: number;
  onProgress?: (done: number, total: number) => void;
  /** which metrics (default 'all'; see computeMetrics) */
  metrics?: MetricParts;
}

export interface Evaluation {
  /** per image, in input order: its score and smoothed anomaly map */
  scored: ScoredSample[];
  /** null unless every image is labelled (an empty set has metrics: zero images) */
  metrics: EvalMetrics | null;
}

function labelled(samples: EvalInput[]): samples is EvalSample[] {
  return samples.every((s) => s.label !== undefined && s.defectType !== undefined);
}

export async function evaluate(model: Rdpp, samples: EvalInput[], o: EvaluateOptions): Promise<Evaluation> {
  const scored = await scoreImages(
    model,
    samples.map((s) => s.rgb),
    o.size,
    o.batch,
    o.onProgress,
  );
  const metrics = labelled(samples) ? computeMetrics(samples, scored, o.size, o.metrics) : null;
  return { scored, metrics };
}

/** One `--eval-every` point: the evaluation's headline metrics at `epoch`, and how long it took. */
export async function testEvalRecord(
  model: Rdpp,
  samples: EvalSample[],
  epoch: number,
  o: EvaluateOptions,
): Promise<TestEvalRecord> {
  const t1 = performance.now();
  // the record keeps the headline figures only: F1-max and the per-type breakdown are not computed
  const { metrics } = await evaluate(model, samples, { ...o, metrics: 'headline' });
  if (!metrics) throw new Error('testEvalRecord: the test set has no images');
  return {
    epoch,
    imageAuroc: metrics.imageAuroc,
    pixelAuroc: metrics.pixelAuroc,
    auproStandard: metrics.auproStandard,
    auproOfficial: metrics.auproOfficial,
    seconds: (performance.now() - t1) / 1000,
  };
}
