/**
 * Evaluate a checkpoint on a dataset's test split (`rdpp test`, and the end of `rdpp train`): discover and
 * load the test images, score them with THE evaluation (./evaluate.ts), optionally calibrate a decision
 * threshold — from the validation/good images at a target false-rejection rate, or the F1-optimal one on
 * the labelled test set (optimistic) — and store it in a copy of the checkpoint, then write the report
 * folder (./test-report.ts). Files come and go through `TestIo`: Node's is src/platform/test-run.ts.
 */
import type { EvalMetrics, EvalSample } from '../eval/evaluate.js';
import { type Decision, f1Decision } from '../eval/threshold.js';
import { encodeWeightsCheckpoint } from '../model/checkpoint.js';
import type { ReportChart } from '../report/eval-charts.js';
import { discoverDataset, type FileSystem, LoadError, loadBatch, type Sample } from '../train/data/index.js';
import { calibrateModel } from './calibrate.js';
import { evaluate } from './evaluate.js';
import type { Log, ProgressSink } from './events.js';
import type { LoadedModel } from './model.js';
import { type ReportFolder, writeTestReport } from './test-report.js';

export interface TestRunOptions {
  /** the dataset root, as the caller wants it named (Node: an absolute path) */
  data: string;
  category?: string;
  /** how the checkpoint is named in the report and metrics.json (Node: its absolute path) */
  checkpoint: string;
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
}

export interface TestIo {
  /** the dataset's files */
  fs: FileSystem;
  loadModel(log: Log): Promise<LoadedModel>;
  /** throws when the report would go inside the dataset at `root` */
  checkOutput(root: string): void;
  /** creates the report folder (and its examples/ folder) */
  openReport(): ReportFolder;
  /** writes the calibrated copy of the checkpoint; returns where it went */
  saveCalibrated(bytes: Uint8Array): string;
  /** the training charts for the report (Node: from the train.jsonl beside the checkpoint) */
  trainingCharts?(storedHistory: unknown): ReportChart[];
  /** extra links under an example (Node: predict's full-resolution overlay, with --predictions) */
  exampleLinks?(item: Sample): { href: string; label: string }[];
  progress: ProgressSink;
  log: Log;
}

export interface TestRunResult {
  metrics: EvalMetrics;
  decision: Decision | null;
  /** the calibrated checkpoint written, when calibrating */
  calibrated: string | null;
}

/** At most `k` items spread evenly over the list (keeps every defect type in a reduced test set). */
export function spread<T>(items: T[], k: number): T[] {
  if (items.length <= k) return items;
  return Array.from({ length: k }, (_, i) => items[Math.floor((i * items.length) / k)]!);
}

export async function runTestOn(o: TestRunOptions, io: TestIo): Promise<TestRunResult> {
  const { fs, log, progress } = io;
  const ds = discoverDataset(fs, o.data, o.category ? { category: o.category } : {});
  for (const w of ds.warnings) log(`note: ${w}`);
  io.checkOutput(ds.root);
  if (ds.unsupported.length > 0 && !o.skipBad)
    throw new LoadError(ds.unsupported, ds.test.length + ds.unsupported.length);
  for (const u of ds.unsupported) log(`warning: skipped ${u.path}: ${u.reason}`);
  const test = o.maxTest ? spread(ds.test, o.maxTest) : ds.test;
  if (test.length === 0) throw new Error(`${ds.root}: no test images found`);
  const loaded = await io.loadModel(log);
  const { model, cfg } = loaded;
  const size = cfg.imageSize;
  const onError = o.skipBad ? 'skip' : 'throw';
  let decision = loaded.decision;
  let calibrated: string | null = null;
  let samples: EvalSample[];
  let evaluation: Awaited<ReturnType<typeof evaluate>>;
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
    evaluation = await evaluate(model, samples, {
      size,
      batch: o.batch,
      onProgress: (d, n) => progress.update(`testing ${d}/${n}`),
    });
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
      decision = await calibrateModel(
        model,
        nl.samples.map((s) => s.rgb),
        size,
        o.batch,
        where,
        o.targetFrr,
        (d, n) => progress.update(`calibrating ${d}/${n}`),
      );
      progress.done();
    } else if (o.calibrate === 'f1') {
      log(
        'note: --calibrate f1 picks the F1-optimal threshold ON THE TEST LABELS (optimistic on this test set)',
      );
      decision = f1Decision(
        samples.map((s) => s.label),
        evaluation.scored.map((s) => s.score),
        `test set labels (${samples.length} images; F1-optimal, optimistic)`,
      );
    }
    if (o.calibrate && decision) {
      const ck = loaded.checkpoint;
      calibrated = io.saveCalibrated(
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

  const metrics = evaluation.metrics!;
  writeTestReport(io.openReport(), io.fs, {
    samples,
    items,
    scored: evaluation.scored,
    metrics,
    decision,
    calibrated,
    size,
    teacher: cfg.teacher,
    checkpoint: o.checkpoint,
    dataset: ds,
    maxTest: o.maxTest,
    examples: o.examples,
    training: io.trainingCharts?.(loaded.checkpoint.meta.training?.history) ?? [],
    ...(io.exampleLinks ? { exampleLinks: io.exampleLinks } : {}),
  });
  return { metrics, decision, calibrated };
}
