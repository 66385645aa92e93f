/**
 * The Node side of training (`rdpp train`, the built-in demo of `npm start`): find the data, lock the run
 * folder, and run the pipeline's training (src/pipeline/train.ts) with its events turned into progress
 * lines, a JSON-lines log (train.jsonl), atomic checkpoints (last + best) and the training curve; then
 * the final evaluation, the same code as `rdpp test` (./test-run.ts). With `evalEvery` N the test split is
 * also scored every N epochs ('test-eval' events), never for model selection.
 */
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { frozenActivationDtype, gemmPrecision, trainingActivationDtype } from '../engine/precision.js';
import type { EvalMetrics, TestEvalRecord } from '../eval/evaluate.js';
import { decodeCheckpoint } from '../model/checkpoint.js';
import { runSpaceNeed } from '../model/checkpoint-size.js';
import { type TrainOptions, train } from '../pipeline/train.js';
import { nodeFileSystem } from '../platform/files.js';
import { outputError } from '../platform/fs-errors.js';
import { writeFileAtomicAsync } from '../platform/node.js';
import { openRunFolder, type RunFolder, RunFolderError } from '../platform/run-folder.js';
import { writeCurveSvg } from '../report/curve.js';
import { parseTrainLog } from '../report/training-chart.js';
import { type Dataset, discoverDataset } from '../train/data/index.js';
import type { EpochInfo } from '../train/trainer.js';
import { isInside } from './output-path.js';
import { formatDuration, Progress } from './progress.js';
import { loadTeacher } from './teacher.js';
import { runTest, type TestResult } from './test-run.js';

/** The pipeline's training options (cfg, resume, skipBad, the max* limits, evaluate, evalEvery), plus files. */
export interface TrainRunOptions extends Omit<TrainOptions, 'dataset'> {
  data: string;
  category?: string;
  out: string;
  /** start anew in a folder that holds a run, moving the earlier run into previous-<time>/ */
  overwrite?: boolean;
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
  /**
   * the signal that stopped training early (after its checkpoints were written; no final evaluation), or
   * null when it ran every epoch
   */
  stopped: NodeJS.Signals | null;
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
  const progress = new Progress();
  let t0 = 0;
  let stepsDone = 0;
  // Ctrl-C (or SIGTERM, SIGHUP) during training: finish the epoch, write its checkpoints, then stop; a
  // second signal ends the process at once (the run folder's own handler), losing the epochs since the
  // last checkpoint written
  let stopSignal: NodeJS.Signals | null = null;
  const withdraw = folder.onceOnSignal((sig) => {
    stopSignal = sig;
    progress.done(
      `${sig}: stopping after this epoch, once its checkpoints are written (${sig === 'SIGINT' ? 'Ctrl-C' : sig} again stops at once; --resume continues from the last checkpoint written)`,
    );
  });
  const run = await train(
    {
      dataset: ds,
      cfg,
      resume: o.resume,
      skipBad: o.skipBad,
      evaluate: o.evaluate,
      ...(o.maxTrain ? { maxTrain: o.maxTrain } : {}),
      ...(o.maxSelection ? { maxSelection: o.maxSelection } : {}),
      ...(o.maxTest ? { maxTest: o.maxTest } : {}),
      ...(o.evalEvery ? { evalEvery: o.evalEvery } : {}),
    },
    {
      fs: nodeFileSystem(),
      log,
      loadTeacher,
      dataChecked: () => {
        if (o.overwrite) folder.moveAside();
      },
      ...(o.startEngine ? { startEngine: o.startEngine } : {}),
      resumeFrom: () => {
        const path = join(outDir, 'last.safetensors');
        return { checkpoint: decodeCheckpoint(new Uint8Array(readFileSync(path)), path), source: path };
      },
      previousTestEvals: (epoch) => previousTestEvals(logPath, epoch),
      shouldStop: () => stopSignal !== null,
    },
    {
      start: (info) => {
        t0 = performance.now();
        jsonl({
          event: 'start',
          config: { ...info.config },
          // the GEMMs' operand precision (--precision, after the shader-f16 check): not part of the
          // checkpoint's config, since a model trained in either precision is the same f32 model
          precision: gemmPrecision(),
          // where activations are stored (f16 under --precision f16 unless RDPP_F16_STORAGE /
          // RDPP_F16_TRAIN_STORAGE say otherwise): the teacher's, and the student's in training
          activations: { frozen: frozenActivationDtype(), training: trainingActivationDtype() },
          train: info.train,
          selection: info.selection,
          resume: info.resume,
        });
      },
      step: (s) => {
        stepsDone++;
        const total = s.epochs * s.batches;
        const elapsed = (performance.now() - t0) / 1000;
        const eta = (elapsed / stepsDone) * (total - s.globalStep);
        progress.update(
          `epoch ${s.epoch}/${s.epochs} step ${s.batch}/${s.batches} loss ${s.loss.toFixed(4)} (kd ${s.kd.toFixed(4)}, proj ${s.proj.toExponential(2)}: recon ${s.recon.toExponential(2)}, con ${s.contrast.toExponential(2)}${s.ssot === null ? '' : `, ssot ${s.ssot.toExponential(2)}`}) ${s.imagesPerSecond.toFixed(1)} img/s ETA ${formatDuration(eta)}`,
        );
        jsonl({ event: 'step', ...s });
      },
      epoch: (e) => {
        progress.update(
          `epoch ${e.epoch}/${cfg.epochs}: loss ${e.loss.toFixed(4)} kd ${e.kd.toFixed(4)} selection score ${e.score.toFixed(4)}${e.best ? ' (best)' : ''} in ${formatDuration(e.seconds)}`,
          true,
        );
        jsonl({ event: 'epoch', ...e });
      },
      testEval: (r, images) => {
        jsonl({ event: 'test-eval', ...r });
        const f = (v: number | null) => (v === null ? 'n/a' : v.toFixed(3));
        progress.update(
          `epoch ${r.epoch}/${cfg.epochs} test set (${images} images, ${cfg.selectOn === 'test' ? 'the selection set: --select-on test' : 'not used for selection'}): image AUROC ${f(r.imageAuroc)}, pixel AUROC ${f(r.pixelAuroc)}, AUPRO standard ${f(r.auproStandard)}, official ${f(r.auproOfficial)} in ${formatDuration(r.seconds)}`,
          true,
        );
      },
      curve: (history, testEvals) =>
        writeCurveSvg(join(outDir, 'training-curve.svg'), logPath, history, testEvals),
      checkpoint: (kind, bytes) => writeFileAtomicAsync(join(outDir, `${kind}.safetensors`), bytes),
    },
  );
  withdraw();
  const best = join(outDir, 'best.safetensors');
  const stopped = run.stopped ? stopSignal : null;
  const elapsed = formatDuration((performance.now() - t0) / 1000);
  let report: TestResult | null = null;
  if (stopped) {
    const last = run.epochs.at(-1)?.epoch ?? 0;
    jsonl({ event: 'stopped', epoch: last, signal: stopped });
    progress.done(
      `stopped after epoch ${last} of ${cfg.epochs} (${stopped}) in ${elapsed}; ` +
        `checkpoints written (best epoch ${run.bestEpoch}). Continue with the same command and --resume.`,
    );
  } else {
    progress.done(`training done in ${elapsed}; best epoch ${run.bestEpoch}`);
    // evaluation, threshold calibration and the HTML report: the same code as `rdpp test`
    if (o.evaluate && run.test.length > 0 && existsSync(best)) {
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
  }
  return {
    outDir,
    epochs: run.epochs,
    metrics: report?.metrics ?? null,
    checkpoint: best,
    report: report?.report ?? null,
    testEvals: run.testEvals,
    stopped,
  };
}

/** The 'test-eval' events of train.jsonl up to `epoch` (the last one per epoch), to resume a curve. */
function previousTestEvals(logPath: string, epoch: number): TestEvalRecord[] {
  if (!existsSync(logPath)) return [];
  return parseTrainLog(readFileSync(logPath, 'utf8')).testEvals.filter((r) => r.epoch <= epoch);
}
