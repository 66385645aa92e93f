/**
 * ROC AUC (sklearn `roc_auc_score`), the ROC curve (sklearn `roc_curve`) and the best F1, for binary labels.
 *
 * All three walk the distinct scores from the highest down, with tp/fp = the positives/negatives scoring
 * ≥ the current score (ties enter together: one curve point per distinct score, which is what makes the
 * AUC tie-aware — a tie between a positive and a negative counts ½, as in the Mann–Whitney statistic).
 * The scores are put in order by a radix sort with the labels as payload (see ./sort.ts); 10^7 pixels take
 * a fraction of a second.
 *
 * The AUC's trapezoid sum is accumulated in integers: 2·area·P·N = Σ (fp_k − fp_{k−1})(tp_k + tp_{k−1}),
 * exact while below 2^53 (P·N < 4.5·10^15, e.g. any split of 10^8 pixels), so the result is the correctly
 * rounded exact AUC. sklearn's floating-point trapezoid over normalised rates agrees to ~1e-16.
 */
import { type KeyWords, keyValue, radixSort, scoreKeys } from './sort.js';

/** Labels as 0/1 bytes; throws unless every label is exactly 0 or 1. */
export function binaryLabels(labels: ArrayLike<number>, what: string): Uint8Array {
  const out = new Uint8Array(labels.length);
  for (let i = 0; i < labels.length; i++) {
    const v = labels[i]!;
    if (v === 1) out[i] = 1;
    else if (v !== 0)
      throw new Error(
        `${what}: labels must be 0 (normal) or 1 (anomalous); found ${v} at index ${i}` +
          ' (binarise masks first, e.g. mask > 0.5)',
      );
  }
  return out;
}

/** Scores sorted ascending with their labels; counts of each class. */
interface Ranked {
  words: KeyWords;
  labels: Uint8Array;
  nPos: number;
  nNeg: number;
}

function rank(labels: ArrayLike<number>, scores: ArrayLike<number>, what: string): Ranked {
  if (labels.length !== scores.length)
    throw new Error(`${what}: labels and scores differ in length (${labels.length} vs ${scores.length})`);
  const lab = binaryLabels(labels, what);
  let nPos = 0;
  for (let i = 0; i < lab.length; i++) nPos += lab[i]!;
  const keys = scoreKeys([scores], what);
  const sorted = radixSort(keys, lab);
  return { words: sorted.words, labels: sorted.payload, nPos, nNeg: lab.length - nPos };
}

function needBothClasses(r: Ranked, what: string): void {
  if (r.nPos === 0 || r.nNeg === 0)
    throw new Error(
      `${what}: only one class present in the labels (${r.nPos} positive, ${r.nNeg} negative); ` +
        'ROC AUC is not defined in that case',
    );
}

/**
 * Visit each distinct score, highest first, with the cumulative counts at "score ≥ threshold".
 * `visit(tp, fp, i)`: i is an index into the sorted keys holding that score.
 */
function walk(r: Ranked, visit: (tp: number, fp: number, i: number) => void): void {
  const { words, labels } = r;
  const k0 = words[0];
  const k1 = words.length === 2 ? words[1] : null;
  let tp = 0;
  let fp = 0;
  let i = labels.length - 1;
  while (i >= 0) {
    const a = k0[i]!;
    const b = k1 ? k1[i]! : 0;
    let j = i;
    do {
      if (labels[j]) tp++;
      else fp++;
      j--;
    } while (j >= 0 && k0[j] === a && (k1 === null || k1[j] === b));
    visit(tp, fp, i);
    i = j;
  }
}

/**
 * Area under the ROC curve, exactly sklearn's `roc_auc_score(labels, scores)` for binary labels
 * (tie-aware trapezoid over the distinct thresholds). Labels must be 0/1 (1 = anomalous, the positive
 * class); scores finite. Throws when only one class is present.
 */
export function rocAuc(labels: ArrayLike<number>, scores: ArrayLike<number>): number {
  const r = rank(labels, scores, 'rocAuc');
  needBothClasses(r, 'rocAuc');
  return aucOf(r);
}

function aucOf(r: Ranked): number {
  let tp = 0;
  let fp = 0;
  let area2 = 0; // Σ (fp − fpPrev)(tp + tpPrev), an exact integer below 2^53
  walk(r, (t, f) => {
    area2 += (f - fp) * (t + tp);
    tp = t;
    fp = f;
  });
  return area2 / (2 * r.nPos * r.nNeg);
}

export interface RocCurve {
  /** False-positive rate per point, non-decreasing, from 0 to 1. */
  fpr: Float64Array;
  /** True-positive rate per point. */
  tpr: Float64Array;
  /** Threshold per point (predict anomalous when score ≥ threshold); the first is +Infinity. */
  thresholds: Float64Array;
}

/**
 * The ROC curve as sklearn's `roc_curve`: a first point (0, 0) at threshold +Infinity, then one point per
 * distinct score, highest first. With `dropIntermediate` (sklearn's default), points that lie on a straight
 * segment between their neighbours are dropped (same rule as sklearn: second differences of fp and tp
 * both zero); by default every distinct threshold is kept.
 */
export function rocCurve(
  labels: ArrayLike<number>,
  scores: ArrayLike<number>,
  opts: { dropIntermediate?: boolean } = {},
): RocCurve {
  const r = rank(labels, scores, 'rocCurve');
  needBothClasses(r, 'rocCurve');
  let m = 0;
  walk(r, () => {
    m++;
  });
  let tps = new Float64Array(m);
  let fps = new Float64Array(m);
  let thr = new Float64Array(m);
  let c = 0;
  walk(r, (tp, fp, i) => {
    tps[c] = tp;
    fps[c] = fp;
    thr[c++] = keyValue(r.words, i);
  });
  if (opts.dropIntermediate && m > 2) {
    const keep: number[] = [0];
    for (let k = 1; k < m - 1; k++) {
      const d2f = fps[k + 1]! - 2 * fps[k]! + fps[k - 1]!;
      const d2t = tps[k + 1]! - 2 * tps[k]! + tps[k - 1]!;
      if (d2f !== 0 || d2t !== 0) keep.push(k);
    }
    keep.push(m - 1);
    tps = Float64Array.from(keep, (k) => tps[k]!);
    fps = Float64Array.from(keep, (k) => fps[k]!);
    thr = Float64Array.from(keep, (k) => thr[k]!);
    m = keep.length;
  }
  const fpr = new Float64Array(m + 1);
  const tpr = new Float64Array(m + 1);
  const thresholds = new Float64Array(m + 1);
  thresholds[0] = Number.POSITIVE_INFINITY;
  for (let k = 0; k < m; k++) {
    fpr[k + 1] = fps[k]! / r.nNeg;
    tpr[k + 1] = tps[k]! / r.nPos;
    thresholds[k + 1] = thr[k]!;
  }
  return { fpr, tpr, thresholds };
}

export interface F1Max {
  /** The best F1 = 2·TP / (2·TP + FP + FN) over all thresholds. */
  f1: number;
  /** The threshold reaching it (predict anomalous when score ≥ threshold); the highest such. */
  threshold: number;
  precision: number;
  recall: number;
}

/**
 * The best F1 score over all thresholds "score ≥ t" at the distinct scores (image level: image scores vs
 * image labels; pixel level: map values vs binarised masks) and the threshold that reaches it. Labels
 * 0/1; at least one positive is needed.
 */
export function f1Max(labels: ArrayLike<number>, scores: ArrayLike<number>): F1Max {
  const r = rank(labels, scores, 'f1Max');
  if (r.nPos === 0) throw new Error('f1Max: no positive labels; F1 is not defined');
  return f1Of(r);
}

function f1Of(r: Ranked): F1Max {
  let best: F1Max = { f1: -1, threshold: Number.NaN, precision: 0, recall: 0 };
  let bestAt = -1;
  walk(r, (tp, fp, i) => {
    const f1 = (2 * tp) / (tp + fp + r.nPos);
    if (f1 > best.f1) {
      best = { f1, threshold: 0, precision: tp / (tp + fp), recall: tp / r.nPos };
      bestAt = i;
    }
  });
  best.threshold = keyValue(r.words, bestAt);
  return best;
}

/**
 * `rocAuc` and `f1Max` of the same labels and scores with one sort (most of the cost: ~1 s for the 7·10^6
 * pixels of a 112-image test set at 256²); the same values and errors as the two calls.
 */
export function rocAucAndF1Max(
  labels: ArrayLike<number>,
  scores: ArrayLike<number>,
): { auc: number; f1: F1Max } {
  const r = rank(labels, scores, 'rocAuc');
  needBothClasses(r, 'rocAuc');
  return { auc: aucOf(r), f1: f1Of(r) };
}
