/**
 * The Node side of training: find and load the data, get the teacher, run the Trainer with progress, a
 * JSON-lines log, atomic checkpoints (last + best), a training curve, and the evaluation at the end.
 * Shared by `rdpp train` and the built-in demo (`npm start`).
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { computeMetrics, type EvalMetrics, type EvalSample, scoreImages } from '../eval/evaluate.js';
import { decodeCheckpoint, loadStudent, loadTorchvisionTeacher } from '../model/checkpoint.js';
import { readWeights } from '../model/import.js';
import { Rng } from '../model/init.js';
import { Rdpp } from '../model/rdpp.js';
import { loadKerasTeacher } from '../model/teacher/load.js';
import { type Teacher, TorchvisionTeacher } from '../model/teacher/torchvision.js';
import { nodeFileSystem } from '../platform/files.js';
import { writeFileAtomic } from '../platform/node.js';
import { writeCurvePng } from '../report/curve.js';
import type { TrainConfig } from '../train/config.js';
import { discoverDataset, loadBatch, type Sample } from '../train/data/index.js';
import { type EpochInfo, type SelectionSample, Trainer } from '../train/trainer.js';
import { formatDuration, Progress } from './progress.js';

export interface TrainRunOptions {
  data: string;
  category?: string;
  out: string;
  cfg: TrainConfig;
  resume: boolean;
  skipBad: boolean;
  /** use at most this many training / selection / test images (quick runs; the first ones in name order) */
  maxTrain?: number;
  maxSelection?: number;
  maxTest?: number;
  /** evaluate on the test set at the end (default true) */
  evaluate: boolean;
  log?: (line: string) => void;
}

export interface TrainRunResult {
  outDir: string;
  epochs: EpochInfo[];
  metrics: EvalMetrics | null;
  checkpoint: string;
}

export async function loadTeacher(cfg: TrainConfig, log: (l: string) => void): Promise<Teacher> {
  if (cfg.teacher === 'resnet50-keras') return loadKerasTeacher(log);
  if (!cfg.teacherPath)
    throw new Error(
      `--teacher ${cfg.teacher} needs a weights file: --teacher ${cfg.teacher === 'wide_resnet50_2' ? 'wrn50' : 'resnet18'}=<file.pth|file.safetensors>`,
    );
  const t = new TorchvisionTeacher(cfg.teacher);
  const path = cfg.teacherPath;
  if (!existsSync(path)) throw new Error(`teacher weights not found: ${path}`);
  loadTorchvisionTeacher(t.state, readWeights(new Uint8Array(readFileSync(path)), path), path);
  return t;
}

function toEval(s: Sample, loaded: { rgb: Float32Array; mask: Uint8Array | null }): EvalSample {
  return { rgb: loaded.rgb, label: s.label, mask: loaded.mask, defectType: s.defectType, path: s.path };
}

export async function runTraining(o: TrainRunOptions): Promise<TrainRunResult> {
  const log = o.log ?? ((l: string) => console.error(l));
  const { cfg } = o;
  const fs = nodeFileSystem();
  const ds = discoverDataset(fs, resolve(o.data), o.category ? { category: o.category } : {});
  const outDir = resolve(o.out);
  mkdirSync(outDir, { recursive: true });
  const logPath = join(outDir, 'train.jsonl');
  const jsonl = (rec: Record<string, unknown>) =>
    appendFileSync(logPath, `${JSON.stringify({ time: new Date().toISOString(), ...rec })}\n`);

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
  const onError = o.skipBad ? 'skip' : 'throw';
  const loadAll = async (samples: Sample[], what: string) => {
    const r = await loadBatch(fs, samples, cfg.imageSize, { onError });
    for (const f of r.failures) log(`warning: skipped ${what} image ${f.path}: ${f.reason}`);
    return r;
  };
  const trainLoaded = await loadAll(train, 'training');
  const selLoaded = await loadAll(selection, 'selection');

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
          `epoch ${s.epoch}/${s.epochs} step ${s.batch}/${s.batches} loss ${s.loss.toFixed(4)} (kd ${s.kd.toFixed(4)}, proj ${s.proj.toExponential(2)}) ${s.imagesPerSecond.toFixed(1)} img/s ETA ${formatDuration(eta)}`,
        );
        jsonl({ event: 'step', ...s });
      },
      onEpoch: (e) => {
        progress.update(
          `epoch ${e.epoch}/${cfg.epochs}: loss ${e.loss.toFixed(4)} kd ${e.kd.toFixed(4)} selection score ${e.score.toFixed(4)}${e.best ? ' (best)' : ''} in ${formatDuration(e.seconds)}`,
          true,
        );
        jsonl({ event: 'epoch', ...e });
        writeCurvePng(join(outDir, 'training-curve.png'), trainer.state.history);
      },
      save: async (kind, bytes) => writeFileAtomic(join(outDir, `${kind}.safetensors`), bytes),
      select,
    },
  );
  if (o.resume) {
    const path = join(outDir, 'last.safetensors');
    if (!existsSync(path)) throw new Error(`--resume: no checkpoint at ${path} (start without --resume)`);
    trainer.resume(decodeCheckpoint(new Uint8Array(readFileSync(path)), path), path);
    log(`resuming from ${path} after epoch ${trainer.state.epoch}`);
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

  let metrics: EvalMetrics | null = null;
  const best = join(outDir, 'best.safetensors');
  if (o.evaluate && test.length > 0) {
    if (existsSync(best))
      loadStudent(model, decodeCheckpoint(new Uint8Array(readFileSync(best)), best).tensors, best);
    const testLoaded = await loadAll(test, 'test');
    const samples = testLoaded.samples.map((l, i) => toEval(testLoaded.items[i]!, l));
    const scored = await scoreImages(
      model,
      samples.map((s) => s.rgb),
      cfg.imageSize,
      cfg.batch,
      (d, n) => progress.update(`evaluating ${d}/${n}`),
    );
    progress.done();
    metrics = computeMetrics(samples, scored, cfg.imageSize);
    writeFileAtomic(
      join(outDir, 'metrics.json'),
      JSON.stringify({ checkpoint: best, selection: cfg.selectOn, ...metrics }, null, 1),
    );
    jsonl({ event: 'eval', ...metrics, byType: undefined });
  }
  trainer.dispose();
  model.dispose();
  return { outDir, epochs: trainer.state.history, metrics, checkpoint: best };
}

/** At most `k` items spread evenly over the list (keeps every defect type in a reduced test set). */
function spread<T>(items: T[], k: number): T[] {
  if (items.length <= k) return items;
  return Array.from({ length: k }, (_, i) => items[Math.floor((i * items.length) / k)]!);
}
