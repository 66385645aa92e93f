/**
 * Evaluation of a trained model on labelled images (spec §7): anomaly maps on the GPU in batches, then
 * image AUROC, pixel AUROC, both AUPROs (labelled: the standard MVTec one and the official RD++ per-image
 * one), F1-max, and a per-defect-type breakdown. Platform-neutral.
 */
import { scope, tensor } from '../engine/index.js';
import { normalise } from '../model/preprocess.js';
import type { Rdpp } from '../model/rdpp.js';
import {
  auproOfficial,
  auproStandard,
  f1Max,
  metricsByDefectType,
  rocAuc,
  rocAucAndF1Max,
} from './metrics.js';

export interface EvalSample {
  rgb: Float32Array; // CHW RGB [0, 1] at size×size
  label: 0 | 1;
  mask: Uint8Array | null; // size×size 0/1 (null = all normal)
  defectType: string;
  path?: string;
}

export interface ScoredSample {
  score: number;
  map: Float32Array; // smoothed anomaly map, size×size
}

/** Anomaly maps and image scores, `batch` images per GPU pass. */
export async function scoreImages(
  model: Rdpp,
  images: Float32Array[],
  size: number,
  batch: number,
  onProgress?: (done: number, total: number) => void,
): Promise<ScoredSample[]> {
  const out: ScoredSample[] = [];
  const per = 3 * size * size;
  // batches after the second of a size are replayed from a captured graph (Rdpp.scorer)
  const scorer = model.scorer();
  // batch i+1 is prepared and recorded while the GPU runs batch i: one batch's results are read back
  // while the next one computes
  let previous: Promise<void> | null = null;
  try {
    for (let i = 0; i < images.length; i += batch) {
      const chunk = images.slice(i, i + batch);
      const x = new Float32Array(chunk.length * per);
      chunk.forEach((rgb, k) => {
        normalise(rgb, size, size, model.teacher.preprocess, x.subarray(k * per, (k + 1) * per));
      });
      const r = scope(() => {
        const m = scorer.maps(tensor(x, [chunk.length, 3, size, size]));
        return [m.smooth, m.scores];
      });
      const results = Promise.all([r[0]!.read(), r[1]!.read()]);
      results.catch(() => {}); // handled below; this only keeps a failure from being reported as unhandled
      if (previous) await previous;
      const done = Math.min(i + batch, images.length);
      previous = results.then(([maps, scores]) => {
        for (const t of r) t.dispose();
        chunk.forEach((_, k) => {
          out.push({ score: scores[k]!, map: maps.slice(k * size * size, (k + 1) * size * size) });
        });
        onProgress?.(done, images.length);
      });
    }
    await previous;
  } finally {
    // a failed batch's read may still be pending: its outcome was reported above, not here
    await previous?.catch(() => {});
    scorer.dispose();
  }
  return out;
}

export interface EvalMetrics {
  images: number;
  anomalous: number;
  imageAuroc: number | null;
  pixelAuroc: number | null;
  /** standard MVTec AD AUPRO (per-region over the set, FPR ≤ 0.3, normalised by 0.3) */
  auproStandard: number | null;
  /** the official RD/RD++ code's per-image AUPRO (the number the paper reports) */
  auproOfficial: number | null;
  imageF1Max: { f1: number; threshold: number } | null;
  pixelF1Max: { f1: number; threshold: number } | null;
  byType: ReturnType<typeof metricsByDefectType> | null;
}

/**
 * The test-set metrics of one training epoch (`train --eval-every N`, logged to train.jsonl as event
 * 'test-eval' and drawn on the training curve). Never used for model selection (unless --select-on test,
 * which selects on its own evaluation).
 */
export interface TestEvalRecord {
  epoch: number;
  imageAuroc: number | null;
  pixelAuroc: number | null;
  auproStandard: number | null;
  auproOfficial: number | null;
  /** seconds the evaluation took (scoring + metrics) */
  seconds: number;
}

/**
 * Which metrics computeMetrics computes: 'all', or 'headline' — image and pixel AUROC and both AUPROs, the
 * figures of a `--eval-every` point and of `--select-on test` (F1-max and the per-defect-type breakdown
 * are null then: the breakdown sorts the good images' pixels again for every type, 60 % of the time at
 * 256² on 112 tire images).
 */
export type MetricParts = 'all' | 'headline';

export function computeMetrics(
  samples: EvalSample[],
  scored: ScoredSample[],
  size: number,
  parts: MetricParts = 'all',
): EvalMetrics {
  const all = parts === 'all';
  const labels = samples.map((s) => s.label);
  const scores = scored.map((s) => s.score);
  const anomalous = labels.filter((l) => l === 1).length;
  const both = anomalous > 0 && anomalous < samples.length;
  const hw = size * size;
  const masks = samples.map((s) => s.mask ?? new Uint8Array(hw));
  const maps = scored.map((s) => s.map);
  const hasPixelLabels = samples.some((s) => s.mask?.some((v) => v === 1));
  let pixelAuroc: number | null = null;
  let pixelF1: EvalMetrics['pixelF1Max'] = null;
  if (hasPixelLabels) {
    const allMasks = new Uint8Array(samples.length * hw);
    const allMaps = new Float32Array(samples.length * hw);
    for (let i = 0; i < samples.length; i++) {
      allMasks.set(masks[i]!, i * hw);
      allMaps.set(maps[i]!, i * hw);
    }
    if (all) {
      // one sort of the pixels for both
      const { auc, f1: f } = rocAucAndF1Max(allMasks, allMaps);
      pixelAuroc = auc;
      pixelF1 = { f1: f.f1, threshold: f.threshold };
    } else pixelAuroc = rocAuc(allMasks, allMaps);
  }
  const imgF1 = both && all ? f1Max(labels, scores) : null;
  return {
    images: samples.length,
    anomalous,
    imageAuroc: both ? rocAuc(labels, scores) : null,
    pixelAuroc,
    auproStandard: hasPixelLabels ? auproStandard(masks, maps, size, size).aupro : null,
    auproOfficial: hasPixelLabels ? auproOfficial(masks, maps, size, size).mean : null,
    imageF1Max: imgF1 ? { f1: imgF1.f1, threshold: imgF1.threshold } : null,
    pixelF1Max: pixelF1,
    byType:
      both && hasPixelLabels && all
        ? metricsByDefectType({
            types: samples.map((s) => s.defectType),
            imageScores: scores,
            masks,
            maps,
            h: size,
            w: size,
          })
        : null,
  };
}
