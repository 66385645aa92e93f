/**
 * Decision thresholds for image-level pass/fail, and the statistics of normal image scores that make
 * anomaly maps comparable across images (overlay colour range). Platform-neutral (no Node API).
 *
 * The rule everywhere in this project: an image FAILS (is flagged anomalous) when `score > threshold`,
 * and passes when `score ≤ threshold`.
 *
 * `calibrateThreshold` — from held-out NORMAL image scores s_1 ≤ … ≤ s_n (sorted ascending) and a target
 * false-rejection rate f ∈ [0, 1): let k = ⌊f·n⌋ (the number of normal images we accept to reject); the
 * threshold is s_(n−k), the (n−k)-th smallest score. This is exactly the SMALLEST threshold t with at most
 * k = ⌊f·n⌋ normal scores above it (#{s_i > t} ≤ k ⇔ t ≥ s_(n−k)), i.e. the empirical (1 − f) quantile
 * taken as the order statistic at or above it ("higher" interpolation in numpy terms). With f·n < 1
 * (e.g. the default 1 % and fewer than 100 images) k = 0 and the threshold is the largest normal score:
 * no calibration image is rejected. The realised FRR on the calibration set is ≤ f (= k/n without ties).
 *
 * `f1Threshold` — from labelled scores (0 normal, 1 anomalous): the threshold maximising image F1 under
 * the `score > threshold` rule, placed halfway between the lowest flagged and the highest passed distinct
 * score (ties in F1 go to the higher threshold, i.e. fewer flagged images).
 */

/** Mean / std (population) / min / max of the normal image scores a decision was calibrated on. */
export interface NormalStats {
  count: number;
  mean: number;
  std: number;
  min: number;
  max: number;
}

export type DecisionMethod = 'frr' | 'f1' | 'manual';

/** What goes into a checkpoint's `decision` metadata. */
export interface Decision {
  /** fail when score > threshold */
  threshold: number;
  method: DecisionMethod;
  rule: 'score > threshold';
  /** for method 'frr': the target false-rejection rate */
  targetFrr?: number;
  /** the statistics of the normal image scores used (for colour ranges and score normalisation) */
  normalStats: NormalStats;
  /** where the scores came from (e.g. 'validation/good (29 images)') */
  calibratedOn?: string;
  /** for method 'f1': the F1 reached on the labelled set */
  f1?: number;
}

export function normalStats(scores: ArrayLike<number>): NormalStats {
  const n = scores.length;
  if (n === 0) throw new Error('normalStats: no scores');
  let sum = 0;
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < n; i++) {
    const v = scores[i]!;
    if (!Number.isFinite(v)) throw new Error(`normalStats: score ${i} is not finite (${v})`);
    sum += v;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const mean = sum / n;
  let ss = 0;
  for (let i = 0; i < n; i++) ss += (scores[i]! - mean) ** 2;
  return { count: n, mean, std: Math.sqrt(ss / n), min, max };
}

/** Threshold at the (1 − FRR) quantile of normal scores (see the file header for the exact definition). */
export function calibrateThreshold(
  normalScores: ArrayLike<number>,
  opts: { targetFrr?: number; calibratedOn?: string } = {},
): Decision {
  const targetFrr = opts.targetFrr ?? 0.01;
  if (!(targetFrr >= 0 && targetFrr < 1))
    throw new Error(`calibrateThreshold: targetFrr must be in [0, 1), got ${targetFrr}`);
  const stats = normalStats(normalScores);
  const sorted = Float64Array.from(normalScores).sort();
  const n = sorted.length;
  // tiny epsilon so that e.g. 0.1·30 = 3.0000000000000004 or 2.9999999999999996 both give 3
  const k = Math.min(n - 1, Math.floor(targetFrr * n + 1e-9));
  const d: Decision = {
    threshold: sorted[n - 1 - k]!,
    method: 'frr',
    rule: 'score > threshold',
    targetFrr,
    normalStats: stats,
  };
  if (opts.calibratedOn) d.calibratedOn = opts.calibratedOn;
  return d;
}

export interface F1Threshold {
  threshold: number;
  f1: number;
  precision: number;
  recall: number;
}

/** The F1-optimal threshold under `score > threshold` (labels 0/1; at least one anomalous needed). */
export function f1Threshold(labels: ArrayLike<number>, scores: ArrayLike<number>): F1Threshold {
  const n = labels.length;
  if (n !== scores.length)
    throw new Error(`f1Threshold: ${n} labels but ${scores.length} scores (they must pair up)`);
  let pos = 0;
  for (let i = 0; i < n; i++) {
    const l = labels[i];
    if (l !== 0 && l !== 1) throw new Error(`f1Threshold: label ${i} is ${l}, expected 0 or 1`);
    if (!Number.isFinite(scores[i]!)) throw new Error(`f1Threshold: score ${i} is not finite`);
    pos += l;
  }
  if (pos === 0) throw new Error('f1Threshold: no anomalous (label 1) image; F1 is undefined');
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[b]! - scores[a]!);
  let tp = 0;
  let fp = 0;
  let best: F1Threshold | null = null;
  let i = 0;
  while (i < n) {
    const v = scores[order[i]!]!;
    // flag every image with this score (a group of ties)
    while (i < n && scores[order[i]!]! === v) {
      if (labels[order[i]!] === 1) tp++;
      else fp++;
      i++;
    }
    const f1 = (2 * tp) / (2 * tp + fp + (pos - tp));
    if (!best || f1 > best.f1) {
      const next = i < n ? scores[order[i]!]! : null;
      let t: number;
      if (next === null) t = v - Math.max(Math.abs(v), 1) * 1e-6;
      else {
        t = (v + next) / 2;
        if (!(t < v)) t = next; // adjacent floats: the lower score itself still passes under '>'
      }
      best = { threshold: t, f1, precision: tp / (tp + fp), recall: tp / pos };
    }
  }
  return best!;
}

/** The F1-optimal decision (`normalStats` from the label-0 scores; all scores when there is none). */
export function f1Decision(
  labels: ArrayLike<number>,
  scores: ArrayLike<number>,
  calibratedOn?: string,
): Decision {
  const f = f1Threshold(labels, scores);
  const normal: number[] = [];
  for (let i = 0; i < labels.length; i++) if (labels[i] === 0) normal.push(scores[i]!);
  const d: Decision = {
    threshold: f.threshold,
    method: 'f1',
    rule: 'score > threshold',
    normalStats: normalStats(normal.length ? normal : Array.from(scores)),
    f1: f.f1,
  };
  if (calibratedOn) d.calibratedOn = calibratedOn;
  return d;
}

/** 'fail' when score > threshold, else 'pass'. */
export function decide(score: number, threshold: number): 'pass' | 'fail' {
  return score > threshold ? 'fail' : 'pass';
}

/** A checkpoint's `decision` metadata as a Decision, or null when absent; throws when malformed. */
export function parseDecision(meta: Record<string, unknown> | undefined, source: string): Decision | null {
  if (!meta) return null;
  const t = meta.threshold;
  const s = meta.normalStats as Record<string, unknown> | undefined;
  const num = (v: unknown) => typeof v === 'number' && Number.isFinite(v);
  if (!num(t))
    throw new Error(`${source}: decision metadata has no finite 'threshold' (${JSON.stringify(t)})`);
  if (!s || !['count', 'mean', 'std', 'min', 'max'].every((k) => num(s[k])))
    throw new Error(`${source}: decision metadata has no valid 'normalStats' {count, mean, std, min, max}`);
  const method = meta.method;
  if (method !== 'frr' && method !== 'f1' && method !== 'manual')
    throw new Error(`${source}: decision method '${String(method)}' is not frr, f1 or manual`);
  return { ...(meta as unknown as Decision), rule: 'score > threshold' };
}

/**
 * The anomaly-map colour range for a decision: [t − w, t + w] around the threshold t, with
 * w = max(t − min, max − min) of the normal image scores (at least 1e-6·max(|t|, 1)), so the threshold sits in
 * the middle of the colour map (green), pixels above it go yellow → red and pixels well inside the normal
 * score spread blue, the same for every image. Anomaly maps are ≥ 0, so a negative lower end becomes
 * [0, 2t] (the threshold stays in the middle).
 */
export function mapRangeFor(d: Decision): { min: number; max: number } {
  const t = d.threshold;
  const { min, max } = d.normalStats;
  const w = Math.max(t - min, max - min, 1e-6 * Math.max(Math.abs(t), 1));
  if (t - w < 0 && t > 0) return { min: 0, max: 2 * t };
  return { min: t - w, max: t + w };
}
