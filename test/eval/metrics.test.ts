/**
 * Evaluation metrics (spec §7): the golden fixture values, hand-computed small cases, and brute-force CPU
 * references written here (O(n²) Mann–Whitney, O(thresholds · pixels) PRO curves) on random data with ties.
 */
import { describe, expect, it } from 'vitest';
import { computeMetrics, type EvalSample } from '../../src/eval/evaluate.js';
import {
  arangeThresholds,
  auproOfficial,
  auproOfficialWholeSet,
  auproStandard,
  connectedComponents8,
  f1Max,
  metricsByDefectType,
  rocAuc,
  rocAucAndF1Max,
  rocCurve,
} from '../../src/eval/metrics.js';
import '../../src/parity/cases/metrics.js';
import { runOpCase } from '../../src/parity/ops.js';
import { opsFixture } from '../helpers/fixtures.js';

/** Deterministic pseudo-random numbers in [0, 1). */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

/** Mann–Whitney AUC by brute force over all (positive, negative) pairs: ties count ½. */
function bruteAuc(labels: ArrayLike<number>, scores: ArrayLike<number>): number {
  let s = 0;
  let pairs = 0;
  for (let i = 0; i < labels.length; i++) {
    if (labels[i] !== 1) continue;
    for (let j = 0; j < labels.length; j++) {
      if (labels[j] !== 0) continue;
      pairs++;
      if (scores[i]! > scores[j]!) s += 1;
      else if (scores[i] === scores[j]) s += 0.5;
    }
  }
  return s / pairs;
}

describe('golden fixture (ops.json)', () => {
  const fx = opsFixture();
  const auroc = fx.cases.find((c) => c.name === 'auroc')!;
  const aupro = fx.cases.find((c) => c.name === 'aupro')!;

  it('auroc: sklearn roc_auc_score with ties, within 1e-9', () => {
    const got = rocAuc(auroc.t('labels').data, auroc.t('scores').data);
    const want = auroc.meta.value as number;
    expect(Math.abs(got - want) / want).toBeLessThanOrEqual(1e-9);
  });

  it('aupro: official per image, mean and whole set, within 1e-6', () => {
    const m = aupro.t('masks').data;
    const a = aupro.t('amaps').data;
    const per = auproOfficial(m, a, 64, 64);
    const want = aupro.meta.official_per_image as number[];
    expect(Array.from(per.images)).toEqual([0, 1, 2]);
    per.perImage.forEach((v, i) => {
      expect(Math.abs(v - want[i]!)).toBeLessThanOrEqual(1e-6 * want[i]!);
    });
    const mean = aupro.meta.official_mean as number;
    expect(Math.abs(per.mean - mean)).toBeLessThanOrEqual(1e-6 * mean);
    const whole = auproOfficialWholeSet(m, a, 64, 64);
    const wantWhole = aupro.meta.official_whole_set as number;
    expect(Math.abs(whole.aupro - wantWhole)).toBeLessThanOrEqual(1e-6 * wantWhole);
    expect(whole.curve.thresholds.length).toBe(aupro.meta.num_th);
  });

  it('the registered parity runners pass both cases', async () => {
    for (const c of [auroc, aupro]) {
      const r = await runOpCase(c);
      expect(r.problem).toBeUndefined();
      expect(r.errors.length).toBeGreaterThan(0);
      expect(r.pass, `${c.name}: ${JSON.stringify(r.errors)}`).toBe(true);
    }
  });
});

describe('rocAuc', () => {
  // positives score 0.4, 0.8, 0.9; negatives 0.1, 0.4, 0.8. Pairs: 0.4 beats 0.1, ties 0.4 → 1.5;
  // 0.8 beats 0.1, 0.4, ties 0.8 → 2.5; 0.9 beats all → 3. AUC = 7/9. (Trapezoid over the points
  // (0,0) (0,⅓) (⅓,⅔) (⅔,1) (1,1): 1/6 + 5/18 + 1/3 = 7/9.)
  const labels = [0, 0, 1, 1, 0, 1];
  const scores = [0.1, 0.4, 0.4, 0.8, 0.8, 0.9];

  it('is tie-aware (hand-computed 7/9), for float64 and float32 scores', () => {
    expect(rocAuc(labels, scores)).toBeCloseTo(7 / 9, 15);
    expect(rocAuc(labels, Float32Array.from(scores))).toBeCloseTo(7 / 9, 15);
    expect(rocAuc(Uint8Array.from(labels), Float64Array.from(scores))).toBeCloseTo(7 / 9, 15);
  });

  it('gives 1, 0 and ½ for perfect, inverted and constant scores', () => {
    expect(rocAuc([0, 0, 1, 1], [1, 2, 3, 4])).toBe(1);
    expect(rocAuc([0, 0, 1, 1], [4, 3, 2, 1])).toBe(0);
    expect(rocAuc([0, 1, 0, 1], [5, 5, 5, 5])).toBe(0.5);
    expect(rocAuc([1, 0], [-0, 0])).toBe(0.5); // −0 and +0 are the same score (a tie)
    expect(rocAuc([1, 0], Float32Array.from([0, -0]))).toBe(0.5);
    expect(rocAuc([1, 0], [-0, 1e-300])).toBe(0);
  });

  it('matches brute-force Mann–Whitney on random data with ties, negatives, ±0 and float64 values', () => {
    const r = rng(3);
    for (const kind of ['f32', 'f64', 'signed'] as const) {
      const n = 701;
      const lab = new Float64Array(n);
      const sc = kind === 'f32' ? new Float32Array(n) : new Float64Array(n);
      for (let i = 0; i < n; i++) {
        lab[i] = r() < 0.3 ? 1 : 0;
        const base = Math.round((r() + 0.4 * lab[i]!) * 20) / 20; // ties
        sc[i] = kind === 'signed' ? (base - 0.6) * 1e-3 + (i % 7 === 0 ? Math.PI * 1e-17 : 0) : base;
      }
      if (kind === 'signed') {
        sc[0] = -0;
        sc[1] = 0;
      }
      expect(rocAuc(lab, sc)).toBeCloseTo(bruteAuc(lab, sc), 14);
    }
  });

  it('rejects one-class labels, non-binary labels, non-finite scores and length mismatch', () => {
    expect(() => rocAuc([1, 1, 1], [0.1, 0.2, 0.3])).toThrow(/only one class/);
    expect(() => rocAuc([0, 0], [0.1, 0.2])).toThrow(/only one class/);
    expect(() => rocAuc([0, 255], [0.1, 0.2])).toThrow(/0 \(normal\) or 1.*255 at index 1/);
    expect(() => rocAuc([0, 1], [0.1, Number.NaN])).toThrow(/finite.*NaN at index 1/);
    expect(() => rocAuc([0, 1], [Number.POSITIVE_INFINITY, 0])).toThrow(/finite/);
    expect(() => rocAuc([0, 1, 1], [0.1, 0.2])).toThrow(/differ in length/);
  });
});

describe('rocCurve and f1Max', () => {
  it('has one point per distinct threshold after (0, 0, +inf)', () => {
    const c = rocCurve([0, 0, 1, 1, 0, 1], [0.1, 0.4, 0.4, 0.8, 0.8, 0.9]);
    expect(Array.from(c.thresholds)).toEqual([Number.POSITIVE_INFINITY, 0.9, 0.8, 0.4, 0.1]);
    expect(Array.from(c.fpr)).toEqual([0, 0, 1 / 3, 2 / 3, 1]);
    expect(Array.from(c.tpr)).toEqual([0, 1 / 3, 2 / 3, 1, 1]);
    // float32 scores come back as their exact float32 values
    const c32 = rocCurve([0, 1], Float32Array.from([0.1, 0.7]));
    expect(Array.from(c32.thresholds)).toEqual([
      Number.POSITIVE_INFINITY,
      Math.fround(0.7),
      Math.fround(0.1),
    ]);
  });

  it('drops collinear points like sklearn drop_intermediate', () => {
    // tps 1,2,3,3 and fps 0,0,0,1: the point at score 3 lies on the vertical segment → dropped
    const c = rocCurve([1, 1, 1, 0], [4, 3, 2, 1], { dropIntermediate: true });
    expect(Array.from(c.thresholds)).toEqual([Number.POSITIVE_INFINITY, 4, 2, 1]);
    expect(Array.from(c.tpr)).toEqual([0, 1 / 3, 1, 1]);
    expect(Array.from(c.fpr)).toEqual([0, 0, 0, 1]);
  });

  it('f1Max finds the best threshold (hand-computed)', () => {
    // thresholds 0.9: tp1 fp0 → F1 2/4; 0.8: tp2 fp1 → 4/6; 0.4: tp3 fp2 → 6/8; 0.1: tp3 fp3 → 6/9
    const f = f1Max([0, 0, 1, 1, 0, 1], [0.1, 0.4, 0.4, 0.8, 0.8, 0.9]);
    expect(f.f1).toBe(0.75);
    expect(f.threshold).toBe(0.4);
    expect(f.precision).toBe(0.6);
    expect(f.recall).toBe(1);
    expect(() => f1Max([0, 0], [1, 2])).toThrow(/no positive/);
  });

  it('rocAucAndF1Max gives both from one sort: the same values and errors as rocAuc and f1Max', () => {
    const r = rng(77);
    for (const n of [6, 1000, 50_000]) {
      // coarse scores: many ties, across labels too
      const labels = Array.from({ length: n }, () => (r() < 0.3 ? 1 : 0));
      const scores = Float32Array.from({ length: n }, () => Math.round(r() * 50) / 7);
      const both = rocAucAndF1Max(labels, scores);
      expect(both.auc).toBe(rocAuc(labels, scores));
      expect(both.f1).toEqual(f1Max(labels, scores));
    }
    expect(() => rocAucAndF1Max([1, 1], [1, 2])).toThrow(/only one class present/);
    expect(() => rocAucAndF1Max([1, 2], [1, 2])).toThrow(/labels must be 0 \(normal\) or 1/);
  });
});

describe('connectedComponents8', () => {
  it('joins diagonal neighbours and numbers components in raster order', () => {
    // biome-ignore format: a 4×4 image
    const mask = Uint8Array.from([
      1, 0, 1, 0,
      0, 1, 0, 0,
      0, 0, 0, 1,
      1, 0, 0, 1,
    ]);
    const { labels, count, sizes } = connectedComponents8(mask, 4, 4);
    expect(count).toBe(3);
    // biome-ignore format: a 4×4 image
    expect(Array.from(labels)).toEqual([
      1, 0, 1, 0,
      0, 1, 0, 0,
      0, 0, 0, 2,
      3, 0, 0, 2,
    ]);
    expect(Array.from(sizes)).toEqual([10, 3, 2, 1]);
  });

  it('follows a spiral back and forth into one component', () => {
    // biome-ignore format: a 5×5 image
    const mask = [
      1, 1, 1, 1, 1,
      0, 0, 0, 0, 1,
      1, 1, 1, 0, 1,
      1, 0, 0, 0, 1,
      1, 1, 1, 1, 1,
    ];
    const c = connectedComponents8(mask, 5, 5);
    expect(c.count).toBe(1);
    expect(c.sizes[1]).toBe(17);
    expect(() => connectedComponents8(mask, 4, 5)).toThrow(/25 pixels, expected 4×5/);
  });
});

describe('auproStandard (MVTec, Bergmann et al.)', () => {
  // 4×4 image, one region (the top-left 2×2 block), 12 normal pixels. Scores, highest first:
  // 0.9 R → (FPR 0, PRO ¼); 0.85 N → (1/12, ¼); 0.8 R → (1/12, ½); 0.7 R → (1/12, ¾); 0.6 N → (2/12, ¾);
  // 0.5 N → (3/12, ¾); then `last` decides the segment that crosses FPR 0.3; the rest is normal, 0.1.
  function example(tie: boolean): { mask: Uint8Array; map: Float64Array } {
    const mask = new Uint8Array(16);
    const map = new Float64Array(16).fill(0.1);
    for (const p of [0, 1, 4, 5]) mask[p] = 1;
    [map[0], map[1], map[4], map[5]] = [0.9, 0.8, 0.7, tie ? 0.4 : 0.2];
    [map[2], map[3], map[6], map[7]] = [0.85, 0.6, 0.5, 0.4];
    return { mask, map };
  }

  it('integrates a hand-computed curve, end point interpolated at 0.3 (flat crossing)', () => {
    // 0.4 N → (4/12, ¾) crosses 0.3 flat. Area = ¼·1/12 + ¾·2/12 + ¾·(0.3 − 3/12) = 1/48 + 1/8 + 3/80
    // = 11/60; AUPRO = (11/60)/0.3 = 11/18.
    const { mask, map } = example(false);
    const r = auproStandard([mask], [map], 4, 4);
    expect(r.aupro).toBeCloseTo(11 / 18, 14);
    expect(r.regions).toBe(1);
    expect(r.normalPixels).toBe(12);
    expect(Array.from(r.curve.fpr.subarray(0, 8))).toEqual([0, 0, 1, 1, 1, 2, 3, 4].map((k) => k / 12));
    expect(Array.from(r.curve.pro.subarray(0, 8))).toEqual([0, 0.25, 0.25, 0.5, 0.75, 0.75, 0.75, 0.75]);
  });

  it('interpolates PRO where the FPR limit cuts a sloped segment', () => {
    // a normal and a region pixel tie at 0.4 → the next point is (4/12, 1). At 0.3 (60 % of the way
    // from 3/12) PRO = ¾ + 0.6·¼ = 0.9; last piece ½(0.9 + ¾)·0.05 = 33/800. Area = 1/48 + 1/8 + 33/800
    // = 449/2400, AUPRO = 449/720 (without interpolation it would differ: taking the point at 4/12 or
    // stopping at 3/12 gives other values).
    const { mask, map } = example(true);
    expect(auproStandard([mask], [map], 4, 4).aupro).toBeCloseTo(449 / 720, 14);
    // a limit that falls exactly on a point needs no interpolation: 7/48 / 0.25 = 7/12
    expect(auproStandard([mask], [map], 4, 4, 0.25).aupro).toBeCloseTo(7 / 12, 14);
  });

  it('counts FPR over all images (good ones too) and averages PRO over regions, not pixels', () => {
    const { mask, map } = example(false);
    const good = new Float64Array(16).fill(0.05);
    good[3] = 0.95; // one very high normal pixel in the good image: FPR 1/28 before any region pixel
    const r = auproStandard([mask, new Uint8Array(16)], [map, good], 4, 4);
    expect(r.normalPixels).toBe(28);
    expect(r.curve.fpr[1]).toBeCloseTo(1 / 28, 15);
    expect(r.curve.pro[1]).toBe(0);
    expect(r.aupro).toBeCloseTo(bruteStandard([mask, new Uint8Array(16)], [map, good], 4, 4, 0.3), 12);
  });

  it('matches a brute-force definition on random stacks with ties and several regions', () => {
    const r = rng(11);
    const h = 9;
    const w = 7;
    for (let t = 0; t < 4; t++) {
      const masks: Uint8Array[] = [];
      const maps: Float32Array[] = [];
      for (let i = 0; i < 3; i++) {
        const m = new Uint8Array(h * w);
        if (i > 0) for (let p = 0; p < m.length; p++) m[p] = r() < 0.25 ? 1 : 0;
        const a = new Float32Array(h * w);
        for (let p = 0; p < a.length; p++) a[p] = Math.round((r() + 0.5 * m[p]!) * 16) / 16;
        masks.push(m);
        maps.push(a);
      }
      for (const lim of [0.3, 0.05, 1]) {
        const got = auproStandard(masks, maps, h, w, lim).aupro;
        expect(got).toBeCloseTo(bruteStandard(masks, maps, h, w, lim), 12);
      }
    }
  });

  it('decimates only the plotted curve, never the integral', () => {
    const r = rng(21);
    const mask = Uint8Array.from({ length: 400 }, (_, p) => (p % 20 < 6 && p < 200 ? 1 : 0));
    const map = Float32Array.from(mask, (v) => r() + 0.5 * v);
    const full = auproStandard([mask], [map], 20, 20, 0.3, { maxCurvePoints: Number.POSITIVE_INFINITY });
    expect(full.curve.fpr.length).toBe(new Set(map).size + 2); // (0,0), every distinct score, (1,1)
    const few = auproStandard([mask], [map], 20, 20, 0.3, { maxCurvePoints: 10 });
    expect(few.curve.fpr.length).toBeLessThanOrEqual(22);
    expect(few.curve.fpr.length).toBeGreaterThan(3);
    expect(few.aupro).toBe(full.aupro);
  });

  it('accepts a flat stack and rejects bad input', () => {
    const { mask, map } = example(false);
    expect(auproStandard(mask, map, 4, 4).aupro).toBeCloseTo(11 / 18, 14);
    expect(() => auproStandard([new Uint8Array(16)], [map], 4, 4)).toThrow(/no anomalous pixel/);
    expect(() => auproStandard([Uint8Array.from(mask, (v) => v * 255)], [map], 4, 4)).toThrow(/0 or 1.*255/);
    expect(() => auproStandard([mask], [map, map], 4, 4)).toThrow(/1 masks but 2 maps/);
    expect(() => auproStandard([mask], [map.subarray(1)], 4, 4)).toThrow(/maps\[0\] has 15 values/);
    expect(() => auproStandard([mask], [map], 4, 4, 0)).toThrow(/fprLimit/);
  });
});

/**
 * The standard AUPRO straight from its definition: for every distinct score t (descending), binary =
 * map ≥ t; PRO = mean overlap over all components; FPR over all normal pixels; trapezoid from (0,0) up to
 * the limit with linear interpolation of the end point.
 */
function bruteStandard(masks: Uint8Array[], maps: ArrayLike<number>[], h: number, w: number, lim: number) {
  const comps = masks.map((m) => connectedComponents8(m, h, w));
  const ths = [...new Set(maps.flatMap((m) => Array.from(m)))].sort((a, b) => b - a);
  const pts: [number, number][] = [[0, 0]];
  let normal = 0;
  for (const c of comps) normal += c.sizes[0]!;
  for (const t of ths) {
    let fp = 0;
    const overlaps: number[] = [];
    comps.forEach((c, i) => {
      const tp = new Array(c.count + 1).fill(0);
      for (let p = 0; p < h * w; p++) if (maps[i]![p]! >= t) tp[c.labels[p]!]++;
      fp += tp[0];
      for (let k = 1; k <= c.count; k++) overlaps.push(tp[k] / c.sizes[k]!);
    });
    pts.push([fp / normal, overlaps.reduce((a, b) => a + b, 0) / overlaps.length]);
  }
  pts.push([1, 1]);
  let area = 0;
  for (let k = 1; k < pts.length; k++) {
    const [x0, y0] = pts[k - 1]!;
    const [x1, y1] = pts[k]!;
    if (x0 >= lim) break;
    if (x1 <= lim) area += ((y0 + y1) / 2) * (x1 - x0);
    else {
      const yi = y0 + ((y1 - y0) * (lim - x0)) / (x1 - x0);
      area += ((y0 + yi) / 2) * (lim - x0);
    }
  }
  return area / lim;
}

/** The official compute_pro literally: every threshold, binary = map > th, per-region overlaps, etc. */
function bruteOfficial(masks: Uint8Array[], maps: ArrayLike<number>[], h: number, w: number): number {
  const all = maps.flatMap((m) => Array.from(m));
  const th = arangeThresholds(Math.min(...all), Math.max(...all), 200);
  const comps = masks.map((m) => connectedComponents8(m, h, w));
  const fprs: number[] = [];
  const pros: number[] = [];
  for (const t of th) {
    let fp = 0;
    let normal = 0;
    const ov: number[] = [];
    comps.forEach((c, i) => {
      normal += c.sizes[0]!;
      const tp = new Array(c.count + 1).fill(0);
      for (let p = 0; p < h * w; p++) if (maps[i]![p]! > t) tp[c.labels[p]!]++;
      fp += tp[0];
      for (let k = 1; k <= c.count; k++) ov.push(tp[k] / c.sizes[k]!);
    });
    const f = fp / normal;
    if (f < 0.3) {
      fprs.push(f);
      pros.push(ov.reduce((a, b) => a + b, 0) / ov.length);
    }
  }
  const mx = Math.max(...fprs);
  let area = 0;
  for (let k = 1; k < fprs.length; k++)
    area += ((fprs[k]! - fprs[k - 1]!) / mx) * ((pros[k]! + pros[k - 1]!) / 2);
  return Math.abs(area);
}

describe('auproOfficial (RD/RD++ compute_pro)', () => {
  it('reproduces numpy arange exactly, including 201 thresholds from rounding', () => {
    // numpy 2.4: np.arange(0.1, 0.7, 0.6/200) → 200 values; [7] = 0.12100000000000002 and
    // [199] = 0.6970000000000005 (numpy fills start + k·((start + δ) − start); start + k·δ would give
    // 0.12100000000000001 and 0.697)
    const a = arangeThresholds(0.1, 0.7);
    expect(a.length).toBe(200);
    expect(a[0]).toBe(0.1);
    expect(a[7]).toBe(0.12100000000000002);
    expect(a[199]).toBe(0.6970000000000005);
    // np.arange(0, f32(0.475), f32(0.475)/200) has 201 values (0.475/δ rounds to 200.00000000000003);
    // [199] = 0.47262499406933783, [200] = 0.47499999403953547 < max = 0.4749999940395355
    const b = arangeThresholds(0, Math.fround(0.475));
    expect(b.length).toBe(201);
    expect(b[199]).toBe(0.47262499406933783);
    expect(b[200]).toBe(0.47499999403953547);
    expect(arangeThresholds(0, 0.5).length).toBe(200);
    expect(arangeThresholds(0.3, 0.3).length).toBe(0);
  });

  it('the 201st threshold changes the value (1 with it, 0 without)', () => {
    // 2×3: region = two pixels at max = f32(0.475); 4 normal pixels: one at f32(0.474), which lies in
    // (th_199, th_200], and three at 0 (= min). FPR = ¼ for k ≤ 199 and 0 at k = 200; PRO = 1 throughout.
    // All kept; x = FPR/¼ = 1,…,1,0 → area 1. With only 200 thresholds every x would be 1 and the area 0.
    const mask = Uint8Array.from([1, 1, 0, 0, 0, 0]);
    const map = Float32Array.from([0.475, 0.475, 0.474, 0, 0, 0]);
    const r = auproOfficialWholeSet([mask], [map], 2, 3);
    expect(r.curve.thresholds.length).toBe(201);
    expect(r.curve.fpr[199]).toBe(0.25);
    expect(r.curve.fpr[200]).toBe(0);
    expect(r.aupro).toBe(1);
  });

  it('keeps FPR < 0.3 strictly and rescales by the largest kept FPR (hand-computed)', () => {
    // 3×4, region = pixels 0,1 with values 1.0 and 0.5475; 10 normal pixels: 2 at 0.4975, 1 at 0.7475,
    // 7 at 0. min 0, max 1 → th_k = k·0.005, k = 0..199. FPR: k ≤ 99 → 3/10 = 0.3 (dropped: not < 0.3);
    // 100 ≤ k ≤ 149 → 0.1; k ≥ 150 → 0. PRO: k ≤ 109 → 1; k ≥ 110 → ½. Kept k ≥ 100, x = FPR/0.1:
    // (1,1)…(1,1)(1,½)…(1,½)(0,½)…(0,½): the only x step has mean PRO ½ → AUPRO = 0.5.
    // (Keeping FPR ≤ 0.3 would rescale by 0.3 and give ⅔·1 + ⅓·½ = 5/6.)
    const mask = Uint8Array.from([1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    const map = Float64Array.from([1, 0.5475, 0.4975, 0.4975, 0.7475, 0, 0, 0, 0, 0, 0, 0]);
    expect(3 / 10).toBe(0.3);
    const r = auproOfficial([mask], [map], 3, 4);
    expect(r.perImage[0]).toBe(0.5);
    expect(auproOfficialWholeSet([mask], [map], 3, 4).aupro).toBe(0.5);
  });

  it('binarises with map > th (strict): a value equal to a threshold is not anomalous there', () => {
    // 2×3: region = pixels 0,1 at 1 and 0.5; normal: 0.4975 and three 0. th_k = k·0.005, th_100 = 0.5.
    // FPR = ¼ for k ≤ 99, 0 after. PRO: the 0.5 pixel counts for k ≤ 99 only (0.5 > 0.5 is false), so
    // PRO = 1 for k ≤ 99 and ½ from k = 100: the step 99 → 100 (x 1 → 0) has mean PRO ¾ → 0.75.
    // (With map ≥ th, PRO would stay 1 at k = 100 and the area would be 1.)
    const mask = Uint8Array.from([1, 1, 0, 0, 0, 0]);
    const map = Float64Array.from([1, 0.5, 0.4975, 0, 0, 0]);
    const r = auproOfficialWholeSet([mask], [map], 2, 3);
    expect(r.curve.thresholds[100]).toBe(0.5);
    expect(r.curve.pro[100]).toBe(0.5);
    expect(r.aupro).toBe(0.75);
  });

  it('PRO drop at x = 1 does not count (hand-computed 0.75)', () => {
    // 4×4, region = 4 pixels at 1, 1, 0.8975, 0.5975; normal: 4 at 0.4975, 1 at 0.7475, 7 at 0.
    // FPR: k ≤ 99 → 5/12 (dropped); 100..149 → 1/12; ≥ 150 → 0. PRO: k < 120 → 1 (0.5975 > th_k);
    // 120..179 → ¾; ≥ 180 → ½. x: 1 for k ≤ 149, 0 after; the step 149 → 150 has PRO ¾ → 0.75.
    const mask = new Uint8Array(16);
    const map = new Float64Array(16);
    for (const [p, v] of [
      [0, 1],
      [1, 1],
      [4, 0.8975],
      [5, 0.5975],
    ] as const) {
      mask[p] = 1;
      map[p] = v;
    }
    [map[2], map[3], map[6], map[7], map[8]] = [0.4975, 0.4975, 0.4975, 0.4975, 0.7475];
    expect(auproOfficial([mask], [map], 4, 4).perImage[0]).toBeCloseTo(0.75, 15);
  });

  it('per image skips good images; whole set counts their normal pixels; both match a brute force', () => {
    const r = rng(5);
    const h = 12;
    const w = 10;
    const masks: Uint8Array[] = [];
    const maps: Float32Array[] = [];
    for (let i = 0; i < 4; i++) {
      const m = new Uint8Array(h * w);
      if (i !== 1)
        for (let y = 0; y < h; y++)
          for (let x = 0; x < w; x++)
            m[y * w + x] = (x - 3 * i) ** 2 + (y - 5) ** 2 < 6 || (x === 9 && y < 3) ? 1 : 0;
      const a = new Float32Array(h * w);
      for (let p = 0; p < a.length; p++) a[p] = r() + 0.7 * m[p]!;
      masks.push(m);
      maps.push(a);
    }
    const per = auproOfficial(masks, maps, h, w);
    expect(Array.from(per.images)).toEqual([0, 2, 3]);
    per.images.forEach((img, k) => {
      expect(per.perImage[k]).toBeCloseTo(bruteOfficial([masks[img]!], [maps[img]!], h, w), 12);
    });
    expect(per.mean).toBeCloseTo((per.perImage[0]! + per.perImage[1]! + per.perImage[2]!) / 3, 15);
    expect(auproOfficialWholeSet(masks, maps, h, w).aupro).toBeCloseTo(bruteOfficial(masks, maps, h, w), 12);
  });

  it('returns NaN for degenerate images as the reference does, and rejects sets without anomalies', () => {
    // perfect separation: every kept FPR is 0 → 0/0 in the rescale → NaN
    const mask = Uint8Array.from([1, 0, 0, 0]);
    expect(auproOfficial([mask], [Float32Array.from([1, 0, 0, 0])], 2, 2).mean).toBeNaN();
    expect(() => auproOfficial([new Uint8Array(4)], [new Float32Array(4)], 2, 2)).toThrow(/no image/);
  });
});

describe('metricsByDefectType', () => {
  it('computes each type against the good images', () => {
    const r = rng(9);
    const h = 6;
    const w = 6;
    const types = ['good', 'crack', 'good', 'hole', 'crack', 'good'];
    const masks = types.map((t, i) => {
      const m = new Uint8Array(h * w);
      if (t !== 'good') for (let p = i; p < i + 5; p++) m[p] = 1;
      return m;
    });
    const maps = masks.map((m) => Float32Array.from(m, (v) => r() + 0.6 * v));
    const scores = maps.map((m) => Math.max(...m));
    const out = metricsByDefectType({ types, imageScores: scores, masks, maps, h, w });
    expect(out.map((o) => o.type)).toEqual(['crack', 'hole']);
    const crack = out[0]!;
    const sub = [1, 4, 0, 2, 5];
    expect(crack.images).toBe(2);
    expect(crack.goodImages).toBe(3);
    expect(crack.imageAuroc).toBe(
      rocAuc(
        [1, 1, 0, 0, 0],
        sub.map((i) => scores[i]!),
      ),
    );
    const px = sub.flatMap((i) => Array.from(masks[i]!));
    const pv = sub.flatMap((i) => Array.from(maps[i]!));
    expect(crack.pixelAuroc).toBe(rocAuc(px, pv));
    const subMasks = sub.map((i) => masks[i]!);
    const subMaps = sub.map((i) => maps[i]!);
    expect(crack.auproStandard).toBe(auproStandard(subMasks, subMaps, h, w).aupro);
    expect(crack.auproOfficial).toBe(auproOfficial([masks[1]!, masks[4]!], [maps[1]!, maps[4]!], h, w).mean);
    expect(() => metricsByDefectType({ types: ['good'], imageScores: scores, masks, maps, h, w })).toThrow(
      /one per image/,
    );
  });

  it("computeMetrics 'headline' gives the same AUROCs and AUPROs as 'all', without F1-max and the breakdown", () => {
    const r = rng(11);
    const size = 7;
    const types = ['good', 'crack', 'good', 'hole', 'crack', 'good'];
    const samples: EvalSample[] = types.map((t, i) => {
      const mask = new Uint8Array(size * size);
      if (t !== 'good') for (let p = i; p < i + 6; p++) mask[p] = 1;
      return { rgb: new Float32Array(0), label: t === 'good' ? 0 : 1, mask, defectType: t };
    });
    const scored = samples.map((s) => {
      const map = Float32Array.from(s.mask!, (v) => r() + 0.5 * v);
      return { score: Math.max(...map), map };
    });
    const all = computeMetrics(samples, scored, size, 'all');
    const headline = computeMetrics(samples, scored, size, 'headline');
    expect(all.byType).not.toBeNull();
    expect(all.pixelF1Max).not.toBeNull();
    expect(headline).toEqual({ ...all, imageF1Max: null, pixelF1Max: null, byType: null });
  });
});
