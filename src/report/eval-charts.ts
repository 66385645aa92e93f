/**
 * The evaluation charts of the report, from the scored test set: the image-level ROC curve (AUROC in the
 * legend, chance diagonal), the PRO curve with the FPR 0.3 bound that the AUPRO integrates up to, bars
 * of image AUROC / pixel AUROC / AUPRO per defect type, and the histogram of image scores for the good
 * images and each defect type with the decision threshold as a vertical line (the one chart that shows
 * how well the threshold separates them). Platform-neutral.
 */
import { auproStandard, type DefectTypeMetrics, type ImageStack, rocCurve } from '../eval/metrics.js';
import { barChart, histogram, lineChart } from './chart.js';
import { formatValue, PALETTE } from './svg.js';

export interface ReportChart {
  /** inline SVG markup */
  svg: string;
  /** one sentence under the chart */
  caption: string;
}

const f4 = (v: number | null | undefined) =>
  v === null || v === undefined || !Number.isFinite(v) ? 'n/a' : v.toFixed(4);

/** At most `max` points of a curve (every k-th and the last): the shape survives, the markup stays small. */
export function thinCurve(
  xs: ArrayLike<number>,
  ys: ArrayLike<number>,
  max = 1500,
): { x: number; y: number }[] {
  const n = xs.length;
  const k = Math.max(1, Math.ceil(n / max));
  const out: { x: number; y: number }[] = [];
  for (let i = 0; i < n; i += k) out.push({ x: xs[i]!, y: ys[i]! });
  if (n > 0 && (n - 1) % k !== 0) out.push({ x: xs[n - 1]!, y: ys[n - 1]! });
  return out;
}

export function rocChart(labels: number[], scores: number[], auroc: number | null): ReportChart {
  const roc = rocCurve(labels, scores);
  const name = `ROC (AUROC ${f4(auroc)})`;
  return {
    svg: lineChart({
      id: 'image-roc',
      title: 'Image-level ROC curve',
      desc: `True-positive rate against false-positive rate over all thresholds of the image score; AUROC ${f4(auroc)}.`,
      xLabel: 'false-positive rate (good images flagged)',
      yLabel: 'true-positive rate',
      xExtent: [0, 1],
      yExtent: [0, 1],
      series: [
        { name, points: thinCurve(roc.fpr, roc.tpr), tip: `image ROC, AUROC ${f4(auroc)}` },
        {
          name: 'chance',
          points: [
            { x: 0, y: 0 },
            { x: 1, y: 1 },
          ],
          color: '#8c959f',
          dash: true,
        },
      ],
      width: 480,
      height: 420,
    }),
    caption: `Image-level ROC (AUROC ${f4(auroc)}), with the chance diagonal.`,
  };
}

export function proChart(masks: ImageStack, maps: ImageStack, size: number): ReportChart {
  const pro = auproStandard(masks, maps, size, size);
  return {
    svg: lineChart({
      id: 'pro-curve',
      title: 'PRO curve',
      desc: `Per-region overlap against the pixel false-positive rate; the standard AUPRO ${f4(pro.aupro)} is the area up to FPR ${pro.fprLimit}, divided by ${pro.fprLimit}.`,
      xLabel: 'pixel false-positive rate',
      yLabel: 'per-region overlap (PRO)',
      // the region up to the bound, and a little beyond it for context
      xExtent: [0, Math.min(1, (pro.fprLimit * 5) / 3)],
      yExtent: [0, 1],
      series: [
        {
          name: `PRO (AUPRO ${f4(pro.aupro)})`,
          points: thinCurve(pro.curve.fpr, pro.curve.pro),
          color: '#d62728',
          tip: `PRO curve, standard AUPRO ${f4(pro.aupro)}`,
        },
      ],
      markers: [
        {
          x: pro.fprLimit,
          label: `FPR bound ${pro.fprLimit}`,
          dash: true,
          color: '#57606a',
          className: 'fpr-bound',
        },
      ],
      width: 480,
      height: 420,
    }),
    caption: `PRO curve; the standard MVTec AUPRO (${f4(pro.aupro)}) integrates it up to the dashed FPR ${pro.fprLimit} bound.`,
  };
}

export function byTypeChart(byType: DefectTypeMetrics[]): ReportChart {
  const nn = (v: number | null | undefined) => (v === null || v === undefined ? Number.NaN : v);
  return {
    svg: barChart({
      id: 'by-type',
      title: 'Metrics per defect type',
      desc: byType
        .map(
          (t) =>
            `${t.type}: image AUROC ${f4(t.imageAuroc)}, pixel AUROC ${f4(t.pixelAuroc)}, AUPRO ${f4(t.auproStandard)}`,
        )
        .join('; '),
      yLabel: 'metric',
      yExtent: [0, 1],
      categories: byType.map((t) => t.type),
      series: [
        { name: 'image AUROC', values: byType.map((t) => nn(t.imageAuroc)), color: '#1f77b4' },
        { name: 'pixel AUROC', values: byType.map((t) => nn(t.pixelAuroc)), color: '#d62728' },
        { name: 'AUPRO (standard)', values: byType.map((t) => nn(t.auproStandard)), color: '#9467bd' },
      ],
      width: 720,
    }),
    caption: 'Each defect type evaluated with the good test images; AUPRO is the standard MVTec one.',
  };
}

export const GOOD_COLOR = '#2ca02c';
export const THRESHOLD_COLOR = '#d62728';

/** Colours for the defect types: the palette without good's green and the threshold's red. */
export function defectColors(n: number): string[] {
  const p = PALETTE.filter((c) => c !== GOOD_COLOR && c !== THRESHOLD_COLOR);
  return Array.from({ length: n }, (_, i) => p[i % p.length]!);
}

/**
 * Image scores of the good images and of each defect type (in order of first appearance), with the
 * decision threshold drawn when there is one.
 */
export function scoreHistogram(
  samples: { defectType: string; label: 0 | 1 }[],
  scores: number[],
  threshold: { value: number; label?: string } | null,
  opts: { id?: string; width?: number } = {},
): ReportChart {
  const types = [...new Set(samples.filter((s) => s.label === 1).map((s) => s.defectType))];
  const good = scores.filter((_, i) => samples[i]!.label === 0);
  const colors = defectColors(types.length);
  const groups = [
    ...(good.length ? [{ name: `good (${good.length})`, values: good, color: GOOD_COLOR }] : []),
    ...types.map((t, j) => {
      const values = scores.filter((_, i) => samples[i]!.label === 1 && samples[i]!.defectType === t);
      return { name: `${t} (${values.length})`, values, color: colors[j]! };
    }),
  ];
  let detail = '';
  if (threshold) {
    const fr = good.filter((s) => s > threshold.value).length;
    const anomalous = scores.filter((_, i) => samples[i]!.label === 1);
    const missed = anomalous.filter((s) => s <= threshold.value).length;
    detail = ` At the threshold ${formatValue(threshold.value)}: ${fr} of ${good.length} good image(s) above it (false alarms), ${missed} of ${anomalous.length} anomalous image(s) at or below it (missed).`;
  }
  return {
    svg: histogram({
      id: opts.id ?? 'score-histogram',
      title: 'Image scores: good vs defect types',
      desc: `Histogram of the image anomaly scores of ${scores.length} test images, stacked by group.${detail}`,
      xLabel: 'image anomaly score',
      groups,
      markers: threshold
        ? [
            {
              x: threshold.value,
              label: threshold.label ?? `threshold ${formatValue(threshold.value)}`,
              color: THRESHOLD_COLOR,
              dash: true,
              className: 'threshold',
            },
          ]
        : [],
      width: opts.width ?? 720,
    }),
    caption: `Scores of the good images and of each defect type; an image fails when its score is above the threshold.${detail}`,
  };
}
