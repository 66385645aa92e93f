/**
 * Training, platform-neutral: choose the selection set (validation/good, a seeded hold-out of train/good,
 * or the test set with --select-on test), check and decode every file the run will use before the first
 * step (training, selection, and the evaluation's test and calibration images: one list of bad files),
 * get the teacher, and run the Trainer. What happens is reported as events — step, epoch, checkpoint
 * (with its bytes), test-eval, curve — and the caller decides what to do with them (Node: progress
 * lines, train.jsonl, atomic files, training-curve.svg: src/cli/train-run.ts).
 *
 * With `evalEvery` N, the test split (decoded once, before training) is also scored every N epochs and at
 * the last one with the weights of that moment — THE evaluation (./evaluate.ts), as the final one — and
 * reported as 'test-eval' events; it never feeds model selection (selection has its own set) — unless
 * --select-on test makes the test set the selection set, where an epoch's selection evaluation is also
 * its test-eval record (one pass, not two).
 */
import type { EvalSample, TestEvalRecord } from '../eval/evaluate.js';
import type { DecodedCheckpoint } from '../model/checkpoint.js';
import { Rng } from '../model/init.js';
import { Rdpp } from '../model/rdpp.js';
import type { Teacher } from '../model/teacher/torchvision.js';
import type { TrainConfig } from '../train/config.js';
import {
  checkData,
  type Dataset,
  type FileSystem,
  listBadFiles,
  smallImagesWarning,
} from '../train/data/index.js';
import { type EpochInfo, type SelectionSample, type StepInfo, Trainer } from '../train/trainer.js';
import { evaluate, testEvalRecord } from './evaluate.js';
import type { Log } from './events.js';
import { spread } from './test-run.js';

export interface TrainOptions {
  dataset: Dataset;
  cfg: TrainConfig;
  /** continue from the caller's last checkpoint (TrainIo.resumeFrom) */
  resume: boolean;
  skipBad: boolean;
  /**
   * use at most this many training / selection / test images (quick runs): the first ones in name order,
   * except that test images (and selection images taken from them, --select-on test) are spread over the
   * defect types; under --select-on test the selection set is the test set after maxTest
   */
  maxTrain?: number;
  maxSelection?: number;
  maxTest?: number;
  /** the final evaluation will run (its test and calibration images are checked now) */
  evaluate: boolean;
  /** also evaluate on the test set every this many epochs and at the last epoch (never for selection) */
  evalEvery?: number;
  /**
   * the least minutes between two checkpoint writes (`last`, and `best` when it changed); 0 or absent:
   * after every epoch. The last epoch and a stop always write (Trainer's saveEveryMs)
   */
  saveEveryMinutes?: number;
}

/** What training needs from the platform. */
export interface TrainIo {
  fs: FileSystem;
  log: Log;
  loadTeacher(cfg: TrainConfig, log: Log): Promise<Teacher>;
  /** called once the data is checked, before anything is written (e.g. move an earlier run aside) */
  dataChecked?(): void;
  /** opens the GPU once the data is checked (when the caller has not yet) */
  startEngine?(): Promise<unknown>;
  /** the checkpoint to resume from, and where it came from (for messages) */
  resumeFrom?(): { checkpoint: DecodedCheckpoint; source: string };
  /** the test evaluations of a resumed run's earlier part, up to `epoch` (for the curve) */
  previousTestEvals?(epoch: number): TestEvalRecord[];
  /** asked after each epoch: true ends training there, after writing the checkpoints (e.g. on Ctrl-C) */
  shouldStop?(): boolean;
}

/** What training reports while it runs. */
export interface TrainEvents {
  /** the run starts (after the data check and any resume) */
  start?(info: { config: TrainConfig; train: number; selection: number; resume: boolean }): void;
  step?(s: StepInfo): void;
  epoch?(e: EpochInfo): void;
  /** checkpoint bytes to keep: 'last' and, when the selection score improved, 'best' (first); see saveEveryMinutes */
  checkpoint(kind: 'last' | 'best', bytes: Uint8Array): Promise<void>;
  /** a test-set evaluation of `evalEvery` (the test images count is `images`) */
  testEval?(r: TestEvalRecord, images: number): void;
  /** the end of an epoch's reports: the history so far and every test evaluation (resumed ones included) */
  curve?(history: EpochInfo[], testEvals: TestEvalRecord[]): void;
}

export interface TrainResult {
  epochs: EpochInfo[];
  bestEpoch: number | null;
  /** the test split the final evaluation uses (after maxTest) */
  test: Dataset['test'];
  /** the per-epoch test-set evaluations of `evalEvery` (those of a resumed run's earlier part included) */
  testEvals: TestEvalRecord[];
  /** training ended before cfg.epochs because shouldStop() said so (its checkpoints are written) */
  stopped: boolean;
}

/** Whether two checked splits hold the same files in the same order (then they score the same). */
function samePaths(a: readonly { path: string }[], b: readonly { path: string }[]): boolean {
  return a.length === b.length && a.every((s, i) => s.path === b[i]!.path);
}

/** `--eval-every N`: the test set is scored after every N-th epoch and after the last. */
export function isTestEvalEpoch(epoch: number, every: number, epochs: number): boolean {
  return epoch % every === 0 || epoch === epochs;
}

export async function train(o: TrainOptions, io: TrainIo, events: TrainEvents): Promise<TrainResult> {
  const { cfg, dataset: ds } = o;
  const { fs, log } = io;
  for (const w of ds.warnings) log(`note: ${w}`);

  // selection set: validation/good when present, else a seeded hold-out of train/good
  let train = ds.train;
  const test = o.maxTest ? spread(ds.test, o.maxTest) : ds.test;
  let selection = ds.validation;
  // --select-on test selects on the test set this run uses (after maxTest), so both are one set by default
  if (cfg.selectOn === 'test') selection = test;
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
  // the test set is ordered by defect type: a subset of it is spread over the types, as maxTest's
  if (o.maxSelection && selection.length > o.maxSelection)
    selection =
      cfg.selectOn === 'test' ? spread(selection, o.maxSelection) : selection.slice(0, o.maxSelection);
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
  io.dataChecked?.();
  const testEvals: TestEvalRecord[] = [];

  await io.startEngine?.();
  const teacher = await io.loadTeacher(cfg, log);
  const model = new Rdpp(teacher);
  // the teacher never trains: its conv weights held once, as its GEMMs read them
  model.packTeacher();
  const selectionSamples: SelectionSample[] = selLoaded.samples.map((l, i) => ({
    rgb: l.rgb,
    label: selLoaded.items[i]!.label,
    mask: l.mask,
  }));
  // --select-on test scores the test set after every epoch; where --eval-every asks for the same
  // evaluation of the same images at that epoch, the selection's record is reported instead of a second pass
  const selectionIsTest =
    cfg.selectOn === 'test' && testChecked !== undefined && samePaths(selLoaded.items, testChecked.items);
  let selectionEval: TestEvalRecord | null = null;
  const select = async (m: Rdpp, samples: SelectionSample[]): Promise<number> => {
    if (cfg.selectOn === 'test') {
      const r = await testEvalRecord(
        m,
        samples.map((s, i) => ({
          rgb: s.rgb,
          label: s.label,
          mask: s.mask,
          defectType: selLoaded.items[i]!.defectType,
        })),
        trainer.state.epoch,
        { size: cfg.imageSize, batch: cfg.batch },
      );
      selectionEval = r;
      const parts = [r.imageAuroc, r.pixelAuroc, r.auproOfficial].filter((v): v is number => v !== null);
      return parts.reduce((a, b) => a + b, 0) / Math.max(parts.length, 1);
    }
    // held-out normal images: lower anomaly scores on normal data = a better model of normality
    const { scored } = await evaluate(
      m,
      samples.map((s) => ({ rgb: s.rgb })),
      { size: cfg.imageSize, batch: cfg.batch },
    );
    return -scored.reduce((a, s) => a + s.score, 0) / Math.max(scored.length, 1);
  };
  const trainer = new Trainer(
    model,
    cfg,
    { train: trainLoaded.samples.map((s) => s.rgb), selection: selectionSamples },
    {
      onStep: (s) => events.step?.(s),
      onEpoch: async (e) => {
        events.epoch?.(e);
        if (o.evalEvery && isTestEvalEpoch(e.epoch, o.evalEvery, cfg.epochs)) {
          const r =
            selectionIsTest && selectionEval?.epoch === e.epoch
              ? selectionEval
              : await testEvalRecord(model, testSet, e.epoch, { size: cfg.imageSize, batch: cfg.batch });
          testEvals.push(r);
          events.testEval?.(r, testSet.length);
        }
        events.curve?.(trainer.state.history, testEvals);
      },
      save: (kind, bytes) => events.checkpoint(kind, bytes),
      note: (line) => log(`note: ${line}`),
      ...(o.saveEveryMinutes ? { saveEveryMs: o.saveEveryMinutes * 60_000 } : {}),
      ...(io.shouldStop ? { shouldStop: () => io.shouldStop!() } : {}),
      select,
    },
  );
  if (o.resume) {
    if (!io.resumeFrom) throw new Error('resume: the caller gave no checkpoint to resume from');
    const { checkpoint, source } = io.resumeFrom();
    trainer.resume(checkpoint, source);
    log(`resuming from ${source} after epoch ${trainer.state.epoch}`);
    // the earlier part's test evaluations, for the curve
    testEvals.push(...(io.previousTestEvals?.(trainer.state.epoch) ?? []));
  }
  events.start?.({ config: cfg, train: train.length, selection: selection.length, resume: o.resume });
  await trainer.run();
  const result = {
    epochs: trainer.state.history,
    bestEpoch: trainer.state.bestEpoch,
    test,
    testEvals,
    stopped: trainer.state.epoch < cfg.epochs,
  };
  trainer.dispose();
  model.dispose();
  return result;
}
