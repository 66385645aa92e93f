/**
 * The Node side of training: find and load the data, get the teacher, run the Trainer with progress, a
 * JSON-lines log, atomic checkpoints (last + best), a training curve, and the evaluation at the end.
 * With `evalEvery` N, the test split (loaded once, after the training data) is also scored every N epochs
 * and at the last one with the current weights — the same evaluation as the final one — logged as
 * 'test-eval' events and drawn on the curve; it never feeds model selection (selection has its own set).
 * Shared by `rdpp train` and the built-in demo (`npm start`).
 */
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  computeMetrics,
  type EvalMetrics,
  type EvalSample,
  scoreImages,
  type TestEvalRecord,
} from '../eval/evaluate.js';
import { decodeCheckpoint } from '../model/checkpoint.js';
import { runSpaceNeed } from '../model/checkpoint-size.js';
import { Rng } from '../model/init.js';
import { Rdpp } from '../model/rdpp.js';
import { nodeFileSystem } from '../platform/files.js';
import { outputError } from '../platform/fs-errors.js';
import { writeFileAtomicAsync } from '../platform/node.js';
import { openRunFolder, type RunFolder, RunFolderError } from '../platform/run-folder.js';
import { writeCurveSvg } from '../report/curve.js';
import type { TrainConfig } from '../train/config.js';
import {
  checkData,
  type Dataset,
  discoverDataset,
  listBadFiles,
  smallImagesWarning,
} from '../train/data/index.js';
import { type EpochInfo, type SelectionSample, Trainer } from '../train/trainer.js';
import { runTest, spread, type TestResult } from './commands/test.js';
import { isInside } from './output-path.js';
import { formatDuration, Progress } from './progress.js';
import { loadTeacher } from './teacher.js';

export interface TrainRunOptions {
  data: string;
  category?: string;
  out: string;
  cfg: TrainConfig;
  resume: boolean;
  /** start anew in a folder that holds a run, moving the earlier run into previous-<time>/ */
  overwrite?: boolean;
  skipBad: boolean;
  /** use at most this many training / selection / test images (quick runs; the first ones in name order) */
  maxTrain?: number;
  maxSelection?: number;
  maxTest?: number;
  /** evaluate on the test set at the end (default true) */
  evaluate: boolean;
  /** also evaluate on the test set every this many epochs and at the last epoch (never for selection) */
  evalEvery?: number;
  /** opens the GPU once the run folder and the data are checked (when the caller has not yet) */
  startEngine?: () => Promise<unknown>;
  log?: (line: string) => void;
}

export interface TrainRunResult {
  outDir: string;
  epochs: EpochInfo[];
  metrics: EvalMetrics | null;
  checkpoint: string;
  /** the HTML report (evaluation on the test set), when evaluated */
  report: string | null;
  /** the per-epoch test-set evaluations of `evalEvery` (those of a resumed run's earlier part included) */
  testEvals: TestEvalRecord[];
}

/** A run folder inside the dataset would mix outputs with images (a plain folder's loose images ARE data). */
function refuseOutInsideData(outDir: string, ds: Dataset): void {
  if (isInside(outDir, ds.root))
    throw new RunFolderError(
      `--out ${outDir} is inside the dataset ${ds.root}: its outputs would mix with the images. Choose a folder outside it, e.g. runs/${ds.category ?? 'model'}.`,
    );
}

/**
 * Train in a run folder that is locked for the whole run and refused when it would clobber an earlier
 * run (src/platform/run-folder.ts); the data of every split is checked before the first step.
 */
export async function runTraining(o: TrainRunOptions): Promise<TrainRunResult> {
  const log = o.log ?? ((l: string) => console.error(l));
  const ds = discoverDataset(nodeFileSystem(), resolve(o.data), {
    ...(o.category ? { category: o.category } : {}),
    requireMasks: o.evaluate,
  });
  refuseOutInsideData(resolve(o.out), ds);
  const folder = openRunFolder(o.out, {
    resume: o.resume,
    overwrite: o.overwrite ?? false,
    space: runSpaceNeed(o.cfg.teacher, o.cfg.epochs),
    log,
  });
  try {
    return await trainInFolder(o, ds, folder, log);
  } finally {
    folder.release();
  }
}

async function trainInFolder(
  o: TrainRunOptions,
  ds: Dataset,
  folder: RunFolder,
  log: (line: string) => void,
): Promise<TrainRunResult> {
  const { cfg } = o;
  const fs = nodeFileSystem();
  for (const w of ds.warnings) log(`note: ${w}`);
  const outDir = folder.dir;
  const logPath = join(outDir, 'train.jsonl');
  const jsonl = (rec: Record<string, unknown>) => {
    const line = `${JSON.stringify({ time: new Date().toISOString(), ...rec })}\n`;
    try {
      appendFileSync(logPath, line);
    } catch (e) {
      throw outputError(e, 'cannot append to the training log', logPath, line.length);
    }
  };

  // selection set: validation/good when present, else a seeded hold-out of train/good
  let train = ds.train;
  let selection = ds.validation;
  if (cfg.selectOn === 'test') selection = ds.test;
  else if (selection.length === 0) {
    const order = new Rng(cfg.seed + 7).permutation(train.length);
    const k = Math.max(1, Math.round(train.length * cfg.holdout));
    selection = order.slice(0, k).map((i) => train[i]!);
    const held = new Set(order.slice(0, k));
    train = train.filter((_, i) => !held.has(i));
    log(
      `no validation/good folder: holding out ${k} of ${ds.train.length} training images for model selection`,
    );
  }
  if (o.maxTrain && train.length > o.maxTrain) train = train.slice(0, o.maxTrain);
  if (o.maxSelection && selection.length > o.maxSelection) selection = selection.slice(0, o.maxSelection);
  const test = o.maxTest ? spread(ds.test, o.maxTest) : ds.test;
  log(
    `data: ${ds.layout} layout at ${ds.root}${ds.category ? ` (${ds.category})` : ''}: ${train.length} train, ` +
      `${selection.length} selection (${cfg.selectOn === 'test' ? 'the TEST set: official protocol, optimistic' : 'held-out normal images'}), ${test.length} test`,
  );
  // every file the run will use, checked now: training, selection, and the evaluation's test images,
  // masks and calibration images (one list of bad files; nothing written before it passes)
  if (o.evalEvery && test.length === 0)
    throw new Error(
      `--eval-every ${o.evalEvery}: ${ds.root}${ds.category ? ` (${ds.category})` : ''} has no test images to evaluate`,
    );
  // --eval-every keeps the decoded test images (scored every N epochs)
  const testSplit =
    (o.evaluate || o.evalEvery) && test.length > 0
      ? [{ name: 'test', samples: test, keep: !!o.evalEvery }]
      : [];
  const evalSplits =
    o.evaluate && test.length > 0
      ? [
          {
            name: 'calibration',
            samples: o.maxSelection
              ? spread(ds.validation.length ? ds.validation : ds.train, o.maxSelection)
              : ds.validation.length
                ? ds.validation
                : ds.train,
            keep: false,
          },
        ]
      : [];
  const checked = await checkData(
    fs,
    [
      { name: 'training', samples: train, keep: true },
      { name: 'selection', samples: selection, keep: true },
      ...testSplit,
      ...evalSplits,
    ],
    cfg.imageSize,
    { skipBad: o.skipBad, unsupported: ds.unsupported },
  );
  if (checked.bad.length > 0)
    log(`--skip-bad: leaving out ${checked.bad.length} file(s):\n${listBadFiles(checked.bad)}`);
  const small = smallImagesWarning(checked.small, cfg.imageSize);
  if (small) log(small);
  const [trainLoaded, selLoaded] = checked.splits as [(typeof checked.splits)[0], (typeof checked.splits)[0]];
  if (trainLoaded.samples.length === 0)
    throw new Error('no usable training images are left (all were bad files): nothing to train on');
  const testChecked = checked.splits.find((sp) => sp.name === 'test');
  const testSet: EvalSample[] =
    o.evalEvery && testChecked
      ? testChecked.samples.map((l, i) => ({
          rgb: l.rgb,
          label: testChecked.items[i]!.label,
          mask: l.mask,
          defectType: testChecked.items[i]!.defectType,
        }))
      : [];
  if (o.overwrite) folder.moveAside();
  const testEvals: TestEvalRecord[] = [];
  const evalOnTest = async (m: Rdpp, epoch: number): Promise<TestEvalRecord> => {
    const t1 = performance.now();
    const scored = await scoreImages(
      m,
      testSet.map((s) => s.rgb),
      cfg.imageSize,
      cfg.batch,
    );
    const met = computeMetrics(testSet, scored, cfg.imageSize);
    return {
      epoch,
      imageAuroc: met.imageAuroc,
      pixelAuroc: met.pixelAuroc,
      auproStandard: met.auproStandard,
      auproOfficial: met.auproOfficial,
      seconds: (performance.now() - t1) / 1000,
    };
  };

  await o.startEngine?.();
  const teacher = await loadTeacher(cfg, log);
  const model = new Rdpp(teacher);
  const selectionSamples: SelectionSample[] = selLoaded.samples.map((l, i) => ({
    rgb: l.rgb,
    label: selLoaded.items[i]!.label,
    mask: l.mask,
  }));
  const progress = new Progress();
  const t0 = performance.now();
  let stepsDone = 0;
  const select = async (m: Rdpp, samples: SelectionSample[]): Promise<number> => {
    const scored = await scoreImages(
      m,
      samples.map((s) => s.rgb),
      cfg.imageSize,
      cfg.batch,
    );
    if (cfg.selectOn === 'test') {
      const met = computeMetrics(
        samples.map((s, i) => ({
          rgb: s.rgb,
          label: s.label,
          mask: s.mask,
          defectType: selLoaded.items[i]!.defectType,
        })),
        scored,
        cfg.imageSize,
      );
      const parts = [met.imageAuroc, met.pixelAuroc, met.auproOfficial].filter(
        (v): v is number => v !== null,
      );
      return parts.reduce((a, b) => a + b, 0) / Math.max(parts.length, 1);
    }
    // held-out normal images: lower anomaly scores on normal data = a better model of normality
    return -scored.reduce((a, s) => a + s.score, 0) / Math.max(scored.length, 1);
  };
  const trainer = new Trainer(
    model,
    cfg,
    { train: trainLoaded.samples.map((s) => s.rgb), selection: selectionSamples },
    {
      onStep: (s) => {
        stepsDone++;
        const total = s.epochs * s.batches;
        const elapsed = (performance.now() - t0) / 1000;
        const eta = (elapsed / stepsDone) * (total - s.globalStep);
        progress.update(
          `epoch ${s.epoch}/${s.epochs} step ${s.batch}/${s.batches} loss ${s.loss.toFixed(4)} (kd ${s.kd.toFixed(4)}, proj ${s.proj.toExponential(2)}: recon ${s.recon.toExponential(2)}, con ${s.contrast.toExponential(2)}${s.ssot === null ? '' : `, ssot ${s.ssot.toExponential(2)}`}) ${s.imagesPerSecond.toFixed(1)} img/s ETA ${formatDuration(eta)}`,
        );
        jsonl({ event: 'step', ...s });
      },
      onEpoch: async (e) => {
        progress.update(
          `epoch ${e.epoch}/${cfg.epochs}: loss ${e.loss.toFixed(4)} kd ${e.kd.toFixed(4)} selection score ${e.score.toFixed(4)}${e.best ? ' (best)' : ''} in ${formatDuration(e.seconds)}`,
          true,
        );
        jsonl({ event: 'epoch', ...e });
        if (o.evalEvery && isTestEvalEpoch(e.epoch, o.evalEvery, cfg.epochs)) {
          const r = await evalOnTest(model, e.epoch);
          testEvals.push(r);
          jsonl({ event: 'test-eval', ...r });
          const f = (v: number | null) => (v === null ? 'n/a' : v.toFixed(3));
          progress.update(
            `epoch ${e.epoch}/${cfg.epochs} test set (${testSet.length} images, not used for selection): image AUROC ${f(r.imageAuroc)}, pixel AUROC ${f(r.pixelAuroc)}, AUPRO standard ${f(r.auproStandard)}, official ${f(r.auproOfficial)} in ${formatDuration(r.seconds)}`,
            true,
          );
        }
        writeCurveSvg(join(outDir, 'training-curve.svg'), logPath, trainer.state.history, testEvals);
      },
      save: (kind, bytes) => writeFileAtomicAsync(join(outDir, `${kind}.safetensors`), bytes),
      select,
    },
  );
  if (o.resume) {
    const path = join(outDir, 'last.safetensors');
    trainer.resume(decodeCheckpoint(new Uint8Array(readFileSync(path)), path), path);
    log(`resuming from ${path} after epoch ${trainer.state.epoch}`);
    // the earlier part's test evaluations, for the curve
    testEvals.push(...previousTestEvals(logPath, trainer.state.epoch));
  }
  jsonl({
    event: 'start',
    config: { ...cfg },
    train: train.length,
    selection: selection.length,
    resume: o.resume,
  });
  await trainer.run();
  progress.done(
    `training done in ${formatDuration((performance.now() - t0) / 1000)}; best epoch ${trainer.state.bestEpoch}`,
  );

  const best = join(outDir, 'best.safetensors');
  trainer.dispose();
  model.dispose();
  // evaluation, threshold calibration and the HTML report: the same code as `rdpp test`
  let report: TestResult | null = null;
  if (o.evaluate && test.length > 0 && existsSync(best)) {
    report = await runTest({
      data: o.data,
      ...(o.category ? { category: o.category } : {}),
      checkpoint: best,
      out: join(outDir, 'report'),
      batch: cfg.batch,
      ...(o.maxTest ? { maxTest: o.maxTest } : {}),
      ...(o.maxSelection ? { maxCalibration: o.maxSelection } : {}),
      calibrate: 'frr',
      targetFrr: 0.01,
      skipBad: o.skipBad,
      examples: 2,
      teacher: { teacher: cfg.teacher, ...(cfg.teacherPath ? { teacherPath: cfg.teacherPath } : {}) },
      log,
    });
    jsonl({ event: 'eval', report: report.report, ...report.metrics, byType: undefined });
  }
  return {
    outDir,
    epochs: trainer.state.history,
    metrics: report?.metrics ?? null,
    checkpoint: best,
    report: report?.report ?? null,
    testEvals,
  };
}

/** `--eval-every N`: the test set is scored after every N-th epoch and after the last. */
export function isTestEvalEpoch(epoch: number, every: number, epochs: number): boolean {
  return epoch % every === 0 || epoch === epochs;
}

/** The 'test-eval' events of train.jsonl up to `epoch` (the last one per epoch), to resume a curve. */
function previousTestEvals(logPath: string, epoch: number): TestEvalRecord[] {
  if (!existsSync(logPath)) return [];
  const byEpoch = new Map<number, TestEvalRecord>();
  for (const line of readFileSync(logPath, 'utf8').split('\n')) {
    if (!line.includes('"test-eval"')) continue;
    try {
      const {
        event,
        time: _time,
        ...r
      } = JSON.parse(line) as TestEvalRecord & { event: string; time: string };
      if (event === 'test-eval' && r.epoch <= epoch) byEpoch.set(r.epoch, r);
    } catch {
      // a torn last line of an interrupted run: skip it
    }
  }
  return [...byEpoch.values()].sort((a, b) => a.epoch - b.epoch);
}
