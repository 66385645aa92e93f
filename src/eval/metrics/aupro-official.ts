/**
 * AUPRO — area under the per-region-overlap curve up to a false-positive rate of 0.3 — in the two variants
 * that circulate (spec §7). They give different numbers; every name here says which one it is. This file:
 * the official RD/RD++ code's; ./aupro-standard.ts: the standard MVTec one.
 *
 * OFFICIAL RD/RD++ (`compute_pro` in the RD++ repository's utils/utils_test.py): `auproOfficial` (per
 *   image, what the paper and the official code report) and `auproOfficialWholeSet` (`compute_pro` called
 *   on a whole stack). For a stack of maps (one image, or the whole set):
 *   thresholds = numpy `arange(min, max, δ)` with δ = (max − min)/200 over the stack — numpy's exact
 *   values: length ceil((max − min)/δ) (normally 200, sometimes 201 from rounding), th_0 = min,
 *   th_1 = min + δ, th_k = min + k·((min + δ) − min) for k ≥ 2 (numpy fills from the first two). At each
 *   th: binary = map > th (strict); PRO = mean over the stack's 8-connected mask components of their
 *   overlap; FPR = |binary ∩ ¬mask| / |¬mask| over the stack. Points with FPR < 0.3 (strict) are kept in
 *   threshold order, FPR is divided by the largest kept FPR, and sklearn `auc` (trapezoid, direction
 *   from the monotonicity of x, area taken positive) integrates PRO over it. The per-image AUPRO is the
 *   mean of this over the anomalous images (empty masks are skipped, as the official code skips label-0
 *   images). Each pixel's threshold bin is found by binary search, so the cost is O(N log T + T·regions)
 *   instead of the reference's O(T·N).
 *   Degenerate cases return NaN where the reference returns NaN or raises (fewer than two points kept,
 *   largest kept FPR zero — e.g. a perfectly separating map, constant map); a NaN image makes the mean
 *   NaN, as `np.mean` would.
 */
import { type ImageStack, type MaskInfo, pairUp } from './stack.js';

/**
 * numpy `np.arange(min, max, (max − min)/numTh)` exactly (float64): length ceil((max − min)/δ), values
 * min, min + δ, then min + k·((min + δ) − min). Usually numTh values, sometimes numTh + 1.
 */
export function arangeThresholds(min: number, max: number, numTh = 200): Float64Array {
  const delta = (max - min) / numTh;
  const len = Math.ceil((max - min) / delta);
  if (!(len > 0)) return new Float64Array(0); // max ≤ min, or a NaN (a constant map: 0/0)
  const th = new Float64Array(len);
  th[0] = min;
  if (len > 1) th[1] = min + delta;
  const d = min + delta - min;
  for (let k = 2; k < len; k++) th[k] = min + k * d;
  return th;
}

export interface OfficialCurve {
  /** The numpy-arange thresholds (binary = map > threshold). */
  thresholds: Float64Array;
  /** PRO and FPR at every threshold (before the FPR < limit filter). */
  pro: Float64Array;
  fpr: Float64Array;
}

/** The official compute_pro on one stack (already validated); see the file header. */
function officialPro(
  maps: ArrayLike<number>[],
  info: MaskInfo[],
  numTh: number,
  fprLimit: number,
): { aupro: number; curve: OfficialCurve } {
  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  for (const m of maps)
    for (let p = 0; p < m.length; p++) {
      const v = m[p]!;
      if (v < min) min = v;
      if (v > max) max = v;
      if (v - v !== 0) throw new Error(`official AUPRO: maps must be finite; found ${v}`);
    }
  const th = arangeThresholds(min, max, numTh);
  const T = th.length;
  let regions = 0;
  for (const m of info) regions += m.count;
  // histograms of "number of thresholds strictly below the value" (0..T): normal pixels and per region
  const hN = new Float64Array(T + 1);
  const hR = new Float64Array(regions * (T + 1));
  const size = new Float64Array(regions);
  let normal = 0;
  let base = 0;
  maps.forEach((m, i) => {
    const { labels, count, sizes } = info[i]!;
    for (let c = 1; c <= count; c++) size[base + c - 1] = sizes[c]!;
    normal += sizes[0]!;
    for (let p = 0; p < m.length; p++) {
      const v = m[p]!;
      let lo = 0;
      let hi = T;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (th[mid]! < v) lo = mid + 1;
        else hi = mid;
      }
      const l = labels[p]!;
      if (l === 0) hN[lo]!++;
      else hR[(base + l - 1) * (T + 1) + lo]!++;
    }
    base += count;
  });
  // at threshold k the binary map is 1 where (thresholds below the value) > k: suffix sums
  const pro = new Float64Array(T);
  const fpr = new Float64Array(T);
  const above = new Float64Array(regions);
  let fpAbove = 0;
  for (let k = T - 1; k >= 0; k--) {
    fpAbove += hN[k + 1]!;
    fpr[k] = fpAbove / normal;
    // statistics.mean: the exactly rounded mean; a compensated (Neumaier) sum comes within an ulp
    let sum = 0;
    let comp = 0;
    for (let r = 0; r < regions; r++) {
      above[r]! += hR[r * (T + 1) + k + 1]!;
      const v = above[r]! / size[r]!;
      const t = sum + v;
      comp += Math.abs(sum) >= Math.abs(v) ? sum - t + v : v - t + sum;
      sum = t;
    }
    pro[k] = (sum + comp) / regions;
  }
  const curve = { thresholds: th, pro, fpr };
  // df[fpr < limit]; fpr /= max(fpr); sklearn auc(fpr, pro)
  const xs: number[] = [];
  const ys: number[] = [];
  let fmax = Number.NEGATIVE_INFINITY;
  for (let k = 0; k < T; k++)
    if (fpr[k]! < fprLimit) {
      xs.push(fpr[k]!);
      ys.push(pro[k]!);
      if (fpr[k]! > fmax) fmax = fpr[k]!;
    }
  if (xs.length < 2) return { aupro: Number.NaN, curve };
  for (let k = 0; k < xs.length; k++) xs[k] = xs[k]! / fmax;
  let anyDown = false;
  let allDown = true;
  for (let k = 1; k < xs.length; k++) {
    const dx = xs[k]! - xs[k - 1]!;
    if (dx < 0) anyDown = true;
    if (!(dx <= 0)) allDown = false;
  }
  if (anyDown && !allDown) return { aupro: Number.NaN, curve }; // sklearn raises: x not monotonic
  const direction = anyDown ? -1 : 1;
  let area = 0;
  for (let k = 1; k < xs.length; k++) area += ((xs[k]! - xs[k - 1]!) * (ys[k]! + ys[k - 1]!)) / 2;
  return { aupro: direction * area, curve };
}

export interface OfficialOptions {
  /** Number of thresholds (numpy arange step (max − min)/numTh); 200 in the official code. */
  numTh?: number;
  /** Points with FPR < fprLimit (strict) are kept; 0.3 in the official code. */
  fprLimit?: number;
}

export interface AuproOfficialResult {
  /** OFFICIAL RD/RD++ per-image AUPRO: the mean over the anomalous images (what the paper reports). */
  mean: number;
  /** The OFFICIAL per-image AUPRO of each anomalous image, in order. */
  perImage: Float64Array;
  /** Index in the stack of each entry of perImage (images with an empty mask are skipped). */
  images: Int32Array;
}

/**
 * OFFICIAL RD/RD++ AUPRO, per-image variant (spec §7; the official code's number): compute_pro on each
 * anomalous image alone, averaged. Images whose mask is empty (good images) are skipped. Throws when no
 * image has an anomalous pixel.
 */
export function auproOfficial(
  masks: ImageStack,
  maps: ImageStack,
  h: number,
  w: number,
  opts: OfficialOptions = {},
): AuproOfficialResult {
  const what = 'auproOfficial';
  const s = pairUp(masks, maps, h, w, what);
  const per: number[] = [];
  const idx: number[] = [];
  s.info.forEach((m, i) => {
    if (m.count === 0) return;
    per.push(officialPro([s.maps[i]!], [m], opts.numTh ?? 200, opts.fprLimit ?? 0.3).aupro);
    idx.push(i);
  });
  if (per.length === 0) throw new Error(`${what}: no image has an anomalous pixel; AUPRO is not defined`);
  return {
    mean: per.reduce((a, b) => a + b, 0) / per.length,
    perImage: Float64Array.from(per),
    images: Int32Array.from(idx),
  };
}

/**
 * OFFICIAL RD/RD++ compute_pro applied to a whole stack at once (the fixture's `official_whole_set`):
 * thresholds from the stack's min/max, PRO over all components of all images, FPR over all normal pixels
 * (good images included). Also returns the curve at every threshold. Throws when the stack has no
 * anomalous pixel.
 */
export function auproOfficialWholeSet(
  masks: ImageStack,
  maps: ImageStack,
  h: number,
  w: number,
  opts: OfficialOptions = {},
): { aupro: number; curve: OfficialCurve } {
  const what = 'auproOfficialWholeSet';
  const s = pairUp(masks, maps, h, w, what);
  if (s.info.every((m) => m.count === 0))
    throw new Error(`${what}: no image has an anomalous pixel; AUPRO is not defined`);
  return officialPro(s.maps, s.info, opts.numTh ?? 200, opts.fprLimit ?? 0.3);
}
