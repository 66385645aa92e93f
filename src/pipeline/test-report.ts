/**
 * The report folder of a test run (`rdpp test`, the end of `rdpp train`): report.html with the summary,
 * inline SVG charts (score histogram with the threshold, image ROC, PRO curve with its 0.3 bound,
 * per-type bars, the training curves when the caller has them), the per-type table and the examples
 * (image | ground truth | heatmap | overlay at the original resolution, examples/*.png), and metrics.json.
 * Written through a `ReportFolder` (Node: src/platform/report-folder.ts), the source images read through
 * a FileSystem.
 */
import type { EvalMetrics, EvalSample, ScoredSample } from '../eval/evaluate.js';
import { type Decision, decide, mapRangeFor } from '../eval/threshold.js';
import { byTypeChart, proChart, type ReportChart, rocChart, scoreHistogram } from '../report/eval-charts.js';
import { buildExamples } from '../report/examples.js';
import { type ReportData, renderReport } from '../report/html.js';
import {
  baseName,
  type Dataset,
  decodeImage8,
  type FileSystem,
  maskGray,
  type Sample,
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
  /** examples per group */
  examples: number;
  /** the training charts (loss parts, selection score, test metrics), when the caller has the run's log */
  training?: ReportChart[];
  /** extra links for the example of items[i] (e.g. the full-resolution overlay `rdpp predict` wrote) */
  exampleLinks?: (item: Sample) => { href: string; label: string }[];
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

  // charts (inline SVG)
  const curves: ReportData['curves'] = [];
  if (hasBoth) curves.push(rocChart(labels, scores, metrics.imageAuroc));
  if (hasPixels)
    curves.push(
      proChart(
        samples.map((s) => s.mask ?? new Uint8Array(hw)),
        scored.map((s) => s.map),
        size,
      ),
    );

  // examples: image | ground truth | heatmap | overlay at the original resolution
  let range = decision ? mapRangeFor(decision) : null;
  if (!range) {
    let lo = Infinity;
    let hi = -Infinity;
    for (const s of scored) for (const v of s.map) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
    range = { min: lo, max: hi > lo ? hi : lo + 1e-6 };
  }
  const examples = buildExamples(
    samples.map((s, i) => ({
      name: baseName(items[i]!.path),
      defectType: s.defectType,
      label: s.label,
      score: scores[i]!,
      map: scored[i]!.map,
    })),
    { k: d.examples, size, range, threshold: decision?.threshold ?? null },
    {
      load: (i) => {
        const img = decodeImage8(fs.readBytes(items[i]!.path), items[i]!.path);
        return { width: img.width, height: img.height, rgb: img.rgb };
      },
      loadMask: (i, w, h) => {
        const mp = items[i]!.maskPath;
        const bytes = mp ? readIfThere(fs, mp) : null;
        if (!mp || !bytes) return null;
        const m = decodeImage8(bytes, mp);
        return m.width === w && m.height === h ? maskGray(m).map((v) => (v > 127 ? 1 : 0)) : null;
      },
      save: (file, im) => out.write(file, out.encodePng(im.width, im.height, im.rgb, 3)),
      links: (i) => d.exampleLinks?.(items[i]!) ?? [],
    },
  );

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
    histogram: scoreHistogram(samples, scores, decision ? { value: decision.threshold } : null),
    curves,
    byType: metrics.byType,
    byTypeChart: metrics.byType?.length ? byTypeChart(metrics.byType) : null,
    training: d.training ?? [],
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
