/**
 * The report folder of a test run (`rdpp test`, the end of `rdpp train`): report.html with the summary,
 * the ROC and PRO curves (roc.png, pro.png), the per-type table and example strips (image | ground truth
 * | heatmap overlay at the original resolution, examples/*.png), and metrics.json. Written through a
 * `ReportFolder` (Node: src/platform/test-run.ts), the source images read through a FileSystem.
 */
import type { EvalMetrics, EvalSample, ScoredSample } from '../eval/evaluate.js';
import { auproStandard, rocCurve } from '../eval/metrics.js';
import { type Decision, decide, mapRangeFor } from '../eval/threshold.js';
import { curveChart, type ReportData, renderReport } from '../report/html.js';
import { maskImage, overlayHeatmap, type RgbImage, strip } from '../report/overlay.js';
import type { Raster } from '../report/raster.js';
import {
  baseName,
  type Dataset,
  decodeImage8,
  type FileSystem,
  maskGray,
  type Sample,
  stemOf,
} from '../train/data/index.js';

/** Where the report goes: files by name relative to the folder ('examples/…' included). */
export interface ReportFolder {
  write(name: string, data: string | Uint8Array): void;
  /** PNG bytes of 8-bit pixels, `channels` per pixel */
  encodePng(width: number, height: number, data: Uint8Array, channels: 1 | 3 | 4): Uint8Array;
}

/** What the report shows: the evaluation of one checkpoint on one test set. */
export interface TestReportInput {
  samples: EvalSample[];
  /** the dataset entries of `samples` (same order) */
  items: Sample[];
  scored: ScoredSample[];
  metrics: EvalMetrics;
  decision: Decision | null;
  calibrated: string | null;
  size: number;
  teacher: string;
  /** how the checkpoint is named */
  checkpoint: string;
  dataset: Dataset;
  maxTest?: number | undefined;
  /** strips per example group */
  examples: number;
}

const f4 = (v: number | null | undefined) => (v === null || v === undefined ? 'n/a' : v.toFixed(4));

/** The file's bytes, or null when it cannot be read (a mask that is not there). */
function readIfThere(fs: FileSystem, path: string): Uint8Array | null {
  try {
    return fs.readBytes(path);
  } catch {
    return null;
  }
}

export function writeTestReport(out: ReportFolder, fs: FileSystem, d: TestReportInput): void {
  const { samples, items, scored, metrics, decision, size } = d;
  // the names of the code this was moved from (the `rdpp test` command), so that it reads the same
  const ds = d.dataset;
  const cfg = { teacher: d.teacher };
  const calibrated = d.calibrated;
  const rasterPng = (r: Raster) => out.encodePng(r.width, r.height, r.data, 4);
  const labels = samples.map((s) => s.label);
  const scores = scored.map((s) => s.score);
  const anomalous = metrics.anomalous;
  const hasBoth = anomalous > 0 && anomalous < samples.length;
  const hw = size * size;
  const hasPixels = samples.some((s) => s.mask?.some((v) => v === 1));

  // decision quality on the test set
  let decisionStats: Record<string, number> | null = null;
  if (decision) {
    let fr = 0;
    let good = 0;
    let det = 0;
    for (let i = 0; i < samples.length; i++) {
      const fail = decide(scores[i]!, decision.threshold) === 'fail';
      if (labels[i] === 0) {
        good++;
        if (fail) fr++;
      } else if (fail) det++;
    }
    decisionStats = {
      falseRejectionRate: good ? fr / good : Number.NaN,
      detectionRate: anomalous ? det / anomalous : Number.NaN,
    };
  }

  // curves
  const curves: ReportData['curves'] = [];
  if (hasBoth) {
    const roc = rocCurve(labels, scores);
    out.write(
      'roc.png',
      rasterPng(
        curveChart(
          'image roc',
          [
            { name: 'roc', x: roc.fpr, y: roc.tpr, color: [31, 119, 180] },
            { name: 'chance', x: [0, 1], y: [0, 1], color: [180, 180, 180] },
          ],
          1,
        ),
      ),
    );
    curves.push({
      file: 'roc.png',
      alt: `Image-level ROC curve: true-positive rate against false-positive rate; AUROC ${f4(metrics.imageAuroc)}`,
      caption: `Image-level ROC (AUROC ${f4(metrics.imageAuroc)}), with the chance diagonal.`,
    });
  }
  if (hasPixels) {
    const pro = auproStandard(
      samples.map((s) => s.mask ?? new Uint8Array(hw)),
      scored.map((s) => s.map),
      size,
      size,
    );
    out.write(
      'pro.png',
      rasterPng(
        curveChart(
          'pro curve',
          [
            { name: 'pro', x: pro.curve.fpr, y: pro.curve.pro, color: [214, 39, 40] },
            { name: 'perfect', x: [0, 0.3], y: [1, 1], color: [180, 180, 180] },
          ],
          0.3,
        ),
      ),
    );
    curves.push({
      file: 'pro.png',
      alt: `Per-region overlap (PRO) against pixel false-positive rate up to 0.3; standard AUPRO ${f4(pro.aupro)}`,
      caption: `PRO curve over FPR 0–0.3 (standard MVTec AUPRO ${f4(pro.aupro)}).`,
    });
  }

  // example strips: image | ground truth | overlay at the original resolution
  let range = decision ? mapRangeFor(decision) : null;
  if (!range) {
    let lo = Infinity;
    let hi = -Infinity;
    for (const s of scored) for (const v of s.map) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
    range = { min: lo, max: hi > lo ? hi : lo + 1e-6 };
  }
  const idx = samples.map((_, i) => i);
  const byScore = (l: 0 | 1, dir: 1 | -1) =>
    idx.filter((i) => labels[i] === l).sort((a, b) => dir * (scores[a]! - scores[b]!));
  const k = d.examples;
  const groups = [
    {
      heading: 'Best: most confidently detected anomalies',
      note: 'Anomalous test images with the highest scores.',
      ids: byScore(1, -1).slice(0, k),
    },
    {
      heading: 'Best: clearest normal images',
      note: 'Good test images with the lowest scores.',
      ids: byScore(0, 1).slice(0, k),
    },
    {
      heading: 'Worst: least detected anomalies',
      note: 'Anomalous test images with the lowest scores (missed first as the threshold rises).',
      ids: byScore(1, 1).slice(0, k),
    },
    {
      heading: 'Worst: most suspicious normal images',
      note: 'Good test images with the highest scores (first false alarms).',
      ids: byScore(0, -1).slice(0, k),
    },
  ];
  const written = new Map<number, string>();
  const examples: ReportData['examples'] = groups.map((g) => ({
    heading: g.heading,
    note: g.note,
    items: g.ids.map((i) => {
      const s = items[i]!;
      const name = `${s.defectType}-${stemOf(baseName(s.path))}`;
      let file = written.get(i);
      if (!file) {
        file = `examples/${String(written.size).padStart(2, '0')}-${name}.png`;
        const img = decodeImage8(fs.readBytes(s.path), s.path);
        const image: RgbImage = { width: img.width, height: img.height, rgb: img.rgb };
        let gt = maskImage(new Uint8Array(img.width * img.height), img.width, img.height);
        const maskBytes = s.maskPath ? readIfThere(fs, s.maskPath) : null;
        if (s.maskPath && maskBytes) {
          const m = decodeImage8(maskBytes, s.maskPath);
          if (m.width === img.width && m.height === img.height)
            gt = maskImage(
              maskGray(m).map((v) => (v > 127 ? 1 : 0)),
              img.width,
              img.height,
            );
        }
        const ov = overlayHeatmap(image, scored[i]!.map, size, size, range!);
        const st = strip([image, gt, ov], {
          captions: ['image', 'ground truth', `score ${scores[i]!.toPrecision(4)}`],
        });
        out.write(file, out.encodePng(st.width, st.height, st.rgb, 3));
        written.set(i, file);
      }
      const verdict = decision ? ` (${decide(scores[i]!, decision.threshold)})` : '';
      return {
        file,
        title: `${s.defectType} / ${baseName(s.path)}: score ${scores[i]!.toPrecision(4)}${verdict}`,
        alt: `${s.defectType} test image ${baseName(s.path)}, its ground-truth mask, and the anomaly heatmap overlay (score ${scores[i]!.toPrecision(4)})`,
      };
    }),
  }));

  const summary: ReportData['summary'] = [
    ['Test images', `${metrics.images}`, `${metrics.anomalous} anomalous`],
    ['Image AUROC', f4(metrics.imageAuroc), 'image score = max of the smoothed anomaly map'],
    ['Pixel AUROC', f4(metrics.pixelAuroc), `all pixels at ${size}×${size}`],
    ['AUPRO (standard MVTec)', f4(metrics.auproStandard), 'per region over the whole set, FPR ≤ 0.3, ÷ 0.3'],
    [
      'AUPRO (official RD++ per-image)',
      f4(metrics.auproOfficial),
      "the official code's per-image variant (the paper's number)",
    ],
    [
      'Image F1-max',
      f4(metrics.imageF1Max?.f1),
      metrics.imageF1Max ? `at score ≥ ${metrics.imageF1Max.threshold.toPrecision(4)}` : '',
    ],
    ['Pixel F1-max', f4(metrics.pixelF1Max?.f1), ''],
  ];
  if (decision) {
    summary.push([
      'Decision threshold',
      decision.threshold.toPrecision(6),
      `${decision.method === 'frr' ? `target FRR ${decision.targetFrr}` : decision.method}; ${decision.calibratedOn ?? ''}; fail when score > threshold`,
    ]);
    summary.push(['False-rejection rate (test good)', f4(decisionStats?.falseRejectionRate ?? null), '']);
    summary.push(['Detection rate (test anomalous)', f4(decisionStats?.detectionRate ?? null), '']);
  } else summary.push(['Decision threshold', 'uncalibrated', 'run rdpp test --calibrate to store one']);

  const report: ReportData = {
    title: `RD++ test report: ${ds.category ?? baseName(ds.root)}`,
    subtitle: `Checkpoint ${d.checkpoint}; teacher ${cfg.teacher}; image size ${size}; data ${ds.root} (${ds.layout} layout)${d.maxTest ? `; reduced to at most ${d.maxTest} test images spread over the types` : ''}.`,
    summary,
    curves,
    byType: metrics.byType,
    examples,
    notes: [
      `Overlay colours span anomaly-map values ${range.min.toPrecision(4)} (blue) to ${range.max.toPrecision(4)} (red)${decision ? ', with the decision threshold in the middle (green)' : ' (the range of this test set)'}, identical for every image.`,
      'Two AUPROs are reported: the standard MVTec one and the per-image variant of the official RD/RD++ code; they are different quantities.',
      ...(decision?.method === 'f1' ? ['The threshold is F1-optimal on these test labels: optimistic.'] : []),
    ],
  };
  const html = renderReport(report);
  out.write('report.html', html);
  out.write(
    'metrics.json',
    JSON.stringify(
      {
        checkpoint: d.checkpoint,
        data: ds.root,
        category: ds.category ?? null,
        imageSize: size,
        teacher: cfg.teacher,
        ...metrics,
        decision,
        decisionStats,
        calibratedCheckpoint: calibrated,
      },
      null,
      1,
    ),
  );
}
