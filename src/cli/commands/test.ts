/**
 * `rdpp test`: evaluate a checkpoint on a dataset's test split and write a self-contained report folder
 * (metrics.json, report.html with inline SVG charts, examples/*.png). With --calibrate, also store a decision
 * threshold in a copy of the checkpoint (`<stem>.calibrated.safetensors`): from the validation/good
 * images at a target false-rejection rate (default), or the F1-optimal one on the labelled test set
 * (`--calibrate f1`: optimistic, it uses the test labels).
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { computeMetrics, type EvalMetrics, type EvalSample, scoreImages } from '../../eval/evaluate.js';
import { calibrateThreshold, type Decision, decide, f1Decision, mapRangeFor } from '../../eval/threshold.js';
import { encodeWeightsCheckpoint } from '../../model/checkpoint.js';
import { nodeFileSystem } from '../../platform/files.js';
import { makeDir } from '../../platform/fs-errors.js';
import { writeFileAtomic } from '../../platform/node.js';
import { encodePng } from '../../platform/png.js';
import { trainingChartsFor } from '../../report/curve.js';
import { byTypeChart, proChart, rocChart, scoreHistogram } from '../../report/eval-charts.js';
import { buildExamples, predictOverlays } from '../../report/examples.js';
import { type ReportData, renderReport } from '../../report/html.js';
import {
  decodeImage8,
  discoverDataset,
  LoadError,
  loadBatch,
  maskGray,
  type Sample,
} from '../../train/data/index.js';
import { type Command, UsageError } from '../command.js';
import { startEngine } from '../gpu.js';
import {
  calibratedPath,
  loadModel,
  MODEL_OPTIONS,
  type ModelChoice,
  parseModelOptions,
} from '../model-load.js';
import { isInside } from '../output-path.js';
import { Progress } from '../progress.js';

export interface TestOptions extends ModelChoice {
  data: string;
  category?: string;
  checkpoint: string;
  out: string;
  batch: number;
  /** at most this many test images, spread evenly over the (type-sorted) list so every type appears */
  maxTest?: number;
  /** at most this many normal images for --calibrate frr */
  maxCalibration?: number;
  calibrate?: 'frr' | 'f1';
  targetFrr: number;
  skipBad: boolean;
  /** examples per group in the report */
  examples: number;
  /** an `rdpp predict` output folder: examples link to the full-resolution overlays it wrote */
  predictions?: string;
  log?: (line: string) => void;
}

export interface TestResult {
  outDir: string;
  metrics: EvalMetrics;
  decision: Decision | null;
  /** the calibrated checkpoint written, when --calibrate */
  calibrated: string | null;
  report: string;
}

/** At most `k` items spread evenly over the list (keeps every defect type in a reduced test set). */
export function spread<T>(items: T[], k: number): T[] {
  if (items.length <= k) return items;
  return Array.from({ length: k }, (_, i) => items[Math.floor((i * items.length) / k)]!);
}

const f4 = (v: number | null | undefined) => (v === null || v === undefined ? 'n/a' : v.toFixed(4));

export async function runTest(o: TestOptions): Promise<TestResult> {
  const log = o.log ?? ((l: string) => console.error(l));
  const fs = nodeFileSystem();
  const ds = discoverDataset(fs, resolve(o.data), o.category ? { category: o.category } : {});
  for (const w of ds.warnings) log(`note: ${w}`);
  if (isInside(o.out, ds.root))
    throw new UsageError(
      `--out ${o.out} is inside the dataset ${ds.root}: choose a report folder outside it`,
    );
  if (ds.unsupported.length > 0 && !o.skipBad)
    throw new LoadError(ds.unsupported, ds.test.length + ds.unsupported.length);
  for (const u of ds.unsupported) log(`warning: skipped ${u.path}: ${u.reason}`);
  const test = o.maxTest ? spread(ds.test, o.maxTest) : ds.test;
  if (test.length === 0) throw new Error(`${ds.root}: no test images found`);
  const loaded = await loadModel(o.checkpoint, { teacher: o.teacher, imageSize: o.imageSize, log });
  const { model, cfg } = loaded;
  const size = cfg.imageSize;
  const onError = o.skipBad ? 'skip' : 'throw';
  const progress = new Progress();
  let decision = loaded.decision;
  let calibrated: string | null = null;
  let samples: EvalSample[];
  let scored: Awaited<ReturnType<typeof scoreImages>>;
  let items: Sample[];
  try {
    const tl = await loadBatch(fs, test, size, { onError });
    for (const f of tl.failures) log(`warning: skipped test image ${f.path}: ${f.reason}`);
    items = tl.items;
    samples = tl.samples.map((l, i) => ({
      rgb: l.rgb,
      label: items[i]!.label,
      mask: l.mask,
      defectType: items[i]!.defectType,
      path: items[i]!.path,
    }));
    scored = await scoreImages(
      model,
      samples.map((s) => s.rgb),
      size,
      o.batch,
      (d, n) => progress.update(`testing ${d}/${n}`),
    );
    progress.done();

    if (o.calibrate === 'frr') {
      let normals = ds.validation;
      let where = 'validation/good';
      if (normals.length === 0) {
        normals = ds.train;
        where = 'train/good (no validation/good folder: seen in training, so the threshold is optimistic)';
        log(`warning: calibrating on ${where}`);
      }
      if (o.maxCalibration) normals = spread(normals, o.maxCalibration);
      const nl = await loadBatch(fs, normals, size, { onError });
      for (const f of nl.failures) log(`warning: skipped calibration image ${f.path}: ${f.reason}`);
      const ns = await scoreImages(
        model,
        nl.samples.map((s) => s.rgb),
        size,
        o.batch,
        (d, n) => progress.update(`calibrating ${d}/${n}`),
      );
      progress.done();
      decision = calibrateThreshold(
        ns.map((s) => s.score),
        { targetFrr: o.targetFrr, calibratedOn: `${where} (${ns.length} images)` },
      );
    } else if (o.calibrate === 'f1') {
      log(
        'note: --calibrate f1 picks the F1-optimal threshold ON THE TEST LABELS (optimistic on this test set)',
      );
      decision = f1Decision(
        samples.map((s) => s.label),
        scored.map((s) => s.score),
        `test set labels (${samples.length} images; F1-optimal, optimistic)`,
      );
    }
    if (o.calibrate && decision) {
      calibrated = calibratedPath(resolve(o.checkpoint));
      const ck = loaded.checkpoint;
      writeFileAtomic(
        calibrated,
        encodeWeightsCheckpoint(ck.tensors, {
          ...ck.meta,
          decision: decision as unknown as Record<string, unknown>,
        }),
      );
      log(
        `calibrated checkpoint: ${calibrated} (threshold ${decision.threshold.toPrecision(6)}, ${decision.method})`,
      );
    }
  } finally {
    model.dispose();
  }

  const metrics = computeMetrics(samples, scored, size);
  const outDir = resolve(o.out);
  makeDir(join(outDir, 'examples'));
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
  const predDir = o.predictions ? resolve(o.predictions) : null;
  const predFile = predDir && join(predDir, 'predictions.jsonl');
  // predict records the paths as it was given them: compare them resolved
  const overlays = new Map(
    predFile && existsSync(predFile)
      ? [...predictOverlays(readFileSync(predFile, 'utf8'))].map(([p, ov]) => [resolve(p), ov])
      : [],
  );
  const examples = buildExamples(
    samples.map((s, i) => ({
      name: basename(items[i]!.path),
      defectType: s.defectType,
      label: s.label,
      score: scores[i]!,
      map: scored[i]!.map,
    })),
    { k: o.examples, size, range, threshold: decision?.threshold ?? null },
    {
      load: (i) => decodeImage8(new Uint8Array(readFileSync(items[i]!.path)), items[i]!.path),
      loadMask: (i, w, h) => {
        const mp = items[i]!.maskPath;
        if (!mp || !existsSync(mp)) return null;
        const m = decodeImage8(new Uint8Array(readFileSync(mp)), mp);
        return m.width === w && m.height === h ? maskGray(m).map((v) => (v > 127 ? 1 : 0)) : null;
      },
      save: (file, im) => writeFileAtomic(join(outDir, file), encodePng(im.width, im.height, im.rgb, 3)),
      links: (i) => {
        const ov = overlays.get(resolve(items[i]!.path));
        const href = ov && predDir ? relative(outDir, join(predDir, ov)).split(sep).join('/') : null;
        return href ? [{ href, label: 'full-resolution overlay (rdpp predict)' }] : [];
      },
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
    title: `RD++ test report: ${ds.category ?? basename(ds.root)}`,
    subtitle: `Checkpoint ${resolve(o.checkpoint)}; teacher ${cfg.teacher}; image size ${size}; data ${ds.root} (${ds.layout} layout)${o.maxTest ? `; reduced to at most ${o.maxTest} test images spread over the types` : ''}.`,
    summary,
    histogram: scoreHistogram(samples, scores, decision ? { value: decision.threshold } : null),
    curves,
    byType: metrics.byType,
    byTypeChart: metrics.byType?.length ? byTypeChart(metrics.byType) : null,
    training: trainingChartsFor(resolve(o.checkpoint), loaded.checkpoint.meta.training?.history),
    examples,
    notes: [
      `Overlay colours span anomaly-map values ${range.min.toPrecision(4)} (blue) to ${range.max.toPrecision(4)} (red)${decision ? ', with the decision threshold in the middle (green)' : ' (the range of this test set)'}, identical for every image.`,
      'Two AUPROs are reported: the standard MVTec one and the per-image variant of the official RD/RD++ code; they are different quantities.',
      ...(decision?.method === 'f1' ? ['The threshold is F1-optimal on these test labels: optimistic.'] : []),
    ],
  };
  const html = renderReport(report);
  const reportPath = join(outDir, 'report.html');
  writeFileAtomic(reportPath, html);
  writeFileAtomic(
    join(outDir, 'metrics.json'),
    JSON.stringify(
      {
        checkpoint: resolve(o.checkpoint),
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
  return { outDir, metrics, decision, calibrated, report: reportPath };
}

function intOpt(v: unknown, name: string, min = 1): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min)
    throw new UsageError(`--${name} must be an integer ≥ ${min}, got '${v}'`);
  return n;
}

/** Options from parsed arguments; `--calibrate` takes an optional method as the next argument (frr | f1). */
export function testOptions(values: Record<string, unknown>, positionals: string[]): TestOptions {
  if (!values.data) throw new UsageError('--data is required (the dataset root folder)');
  if (!values.checkpoint) throw new UsageError('--checkpoint is required (a .safetensors file)');
  let calibrate: TestOptions['calibrate'];
  if (values.calibrate) {
    const m = positionals[0] ?? 'frr';
    if (m !== 'frr' && m !== 'f1')
      throw new UsageError(`--calibrate takes 'frr' (default) or 'f1', got '${m}'`);
    if (positionals.length > 1) throw new UsageError(`unexpected argument '${positionals[1]}'`);
    calibrate = m;
  } else if (positionals.length) throw new UsageError(`unexpected argument '${positionals[0]}'`);
  const frr = values.frr === undefined ? 0.01 : Number(values.frr);
  if (!(frr >= 0 && frr < 1)) throw new UsageError(`--frr must be in [0, 1), got '${values.frr}'`);
  const checkpoint = String(values.checkpoint);
  const o: TestOptions = {
    data: String(values.data),
    checkpoint,
    out:
      (values.out as string | undefined) ??
      join(dirname(checkpoint), `test-${basename(checkpoint, '.safetensors')}`),
    batch: intOpt(values.batch, 'batch') ?? 8,
    targetFrr: frr,
    skipBad: Boolean(values['skip-bad']),
    examples: intOpt(values.examples, 'examples', 0) ?? 2,
  };
  if (values.category) o.category = String(values.category);
  const mt = intOpt(values['max-test'], 'max-test');
  if (mt) o.maxTest = mt;
  const mc = intOpt(values['max-calibration'], 'max-calibration');
  if (mc) o.maxCalibration = mc;
  if (values.predictions) o.predictions = String(values.predictions);
  if (calibrate) o.calibrate = calibrate;
  Object.assign(o, parseModelOptions(values));
  return o;
}

export const test: Command = {
  name: 'test',
  summary: 'evaluate a checkpoint on a test set: metrics.json + report.html; --calibrate stores a threshold',
  usage:
    '--data <root> [--category <name>] --checkpoint <file> [--out dir] [--calibrate [frr|f1]] [--frr 0.01] [--max-test N]',
  positionals: true,
  options: {
    data: { type: 'string', help: 'dataset root (MVTec / BTAD layout with a labelled test split)' },
    category: { type: 'string', help: 'category / product folder under the root' },
    checkpoint: {
      type: 'string',
      help: '.safetensors checkpoint from rdpp train, or an official RD++ .pth (with --teacher)',
    },
    out: { type: 'string', help: 'report folder (default <checkpoint dir>/test-<checkpoint stem>)' },
    calibrate: {
      type: 'boolean',
      help: "store a threshold in <stem>.calibrated.safetensors: 'frr' (validation/good, default) or 'f1' (test labels)",
    },
    frr: { type: 'string', default: '0.01', help: 'target false-rejection rate for --calibrate frr' },
    batch: { type: 'string', default: '8', help: 'images per GPU pass' },
    'max-test': {
      type: 'string',
      help: 'use at most N test images, spread over the defect types (quick runs)',
    },
    'max-calibration': { type: 'string', help: 'use at most N normal images for --calibrate frr' },
    examples: { type: 'string', default: '2', help: 'examples per group in the report' },
    predictions: {
      type: 'string',
      help: 'an rdpp predict --out folder: the report links examples to its full-resolution overlays',
    },
    'skip-bad': { type: 'boolean', help: 'skip unreadable images with a warning instead of stopping' },
    ...MODEL_OPTIONS,
  },
  async run({ values, positionals }) {
    const o = testOptions(values, positionals);
    if (!existsSync(o.checkpoint)) throw new UsageError(`--checkpoint ${o.checkpoint}: no such file`);
    await startEngine();
    const r = await runTest(o);
    const m = r.metrics;
    console.log(
      `test set (${m.images} images, ${m.anomalous} anomalous): image AUROC ${f4(m.imageAuroc)}, pixel AUROC ${f4(m.pixelAuroc)}, ` +
        `AUPRO (standard MVTec) ${f4(m.auproStandard)}, AUPRO (official RD++ per-image) ${f4(m.auproOfficial)}`,
    );
    console.log(`report: ${r.report} (metrics.json, examples/ beside it)`);
    return 0;
  },
};
