import { SSOT_MODES, type SsotMode } from '../../model/rdpp.js';
import { signalExitCode } from '../../platform/run-folder.js';
import { defaultConfig, type TrainConfig } from '../../train/config.js';
import { type Command, UsageError } from '../command.js';
import { PRECISION_OPTION, precisionOption, startEngine } from '../gpu.js';
import { parseTeacher, TEACHER_USAGE } from '../teacher.js';
import { runTraining } from '../train-run.js';

function int(v: unknown, name: string, min = 1): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min)
    throw new UsageError(`--${name} must be an integer ≥ ${min}, got '${v}'`);
  return n;
}

export const train: Command = {
  name: 'train',
  summary: 'train RD++ on a folder of normal images (MVTec AD, BTAD or plain layout), then evaluate',
  usage:
    '--data <root> [--category <name>] [--teacher …] [--epochs N] [--batch 16] [--image-size 256] [--seed 111] [--out runs/<name>] [--resume | --overwrite] [--eval-every N] [--save-every 10] [--precision f32|f16]',
  options: {
    data: {
      type: 'string',
      help: 'dataset root (MVTec: <root>/<category>/train/good; BTAD; or a folder of images)',
    },
    category: { type: 'string', help: 'category / product folder under the root' },
    teacher: {
      type: 'string',
      default: 'resnet50-keras',
      help: TEACHER_USAGE,
    },
    epochs: { type: 'string', help: 'epochs (default: the official count for MVTec categories, else 100)' },
    batch: { type: 'string', default: '16', help: 'batch size' },
    'image-size': { type: 'string', default: '256', help: 'image side in pixels (a multiple of 32)' },
    seed: { type: 'string', default: '111', help: 'random seed (weights, shuffling, noise)' },
    out: { type: 'string', help: 'output folder (default runs/<category>)' },
    resume: { type: 'boolean', help: 'continue the run in --out from its last checkpoint' },
    overwrite: {
      type: 'boolean',
      help: 'start anew in an --out that holds a run: the earlier run is moved to <out>/previous-<time>/, not deleted',
    },
    ssot: {
      type: 'string',
      default: 'official',
      help: "'official' (as the official code: ~0 in practice), 'pairwise' (one OT problem per sample pair over per-pixel features, as the paper's figure) or 'off'",
    },
    'select-on': {
      type: 'string',
      default: 'validation',
      help: "'validation' (held-out normal images) or 'test' (official protocol)",
    },
    'skip-bad': { type: 'boolean', help: 'skip unreadable images with a warning instead of stopping' },
    'max-train': { type: 'string', help: 'use at most this many training images (quick runs)' },
    'no-eval': { type: 'boolean', help: 'do not evaluate on the test set after training' },
    'eval-every': {
      type: 'string',
      help: 'also score the test set every N epochs and at the last one (train.jsonl "test-eval" events, the curve); never used for model selection',
    },
    'save-every': {
      type: 'string',
      default: '10',
      help: 'write the checkpoints (last, and best when it changed) at most every this many minutes, and after the last epoch or a stop; 0: after every epoch',
    },
    precision: PRECISION_OPTION,
  },
  async run({ values }) {
    if (!values.data) throw new UsageError('--data is required (the dataset root folder)');
    if (values.resume && values.overwrite)
      throw new UsageError('--resume and --overwrite contradict each other: choose one');
    const category = values.category as string | undefined;
    const cfg: TrainConfig = {
      ...defaultConfig(category),
      ...parseTeacher(values.teacher as string | undefined),
    };
    cfg.epochs = int(values.epochs, 'epochs') ?? cfg.epochs;
    cfg.batch = int(values.batch, 'batch') ?? cfg.batch;
    cfg.imageSize = int(values['image-size'], 'image-size', 32) ?? cfg.imageSize;
    if (cfg.imageSize % 32 !== 0)
      throw new UsageError(
        `--image-size must be a multiple of 32 (the network downsamples 32×), got ${cfg.imageSize}`,
      );
    cfg.seed = int(values.seed, 'seed', 0) ?? cfg.seed;
    const ssot = String(values.ssot) as SsotMode;
    if (!SSOT_MODES.includes(ssot))
      throw new UsageError(`--ssot must be one of ${SSOT_MODES.join(', ')}; got '${ssot}'`);
    cfg.ssot = ssot;
    const sel = String(values['select-on']);
    if (sel !== 'validation' && sel !== 'test')
      throw new UsageError(`--select-on must be 'validation' or 'test', got '${sel}'`);
    cfg.selectOn = sel;
    const evalEvery = int(values['eval-every'], 'eval-every');
    const saveEvery = Number(values['save-every']);
    if (!Number.isFinite(saveEvery) || saveEvery < 0)
      throw new UsageError(`--save-every must be a number of minutes ≥ 0, got '${values['save-every']}'`);
    const precision = precisionOption(values);
    const res = await runTraining({
      startEngine: () => startEngine({ precision }), // after the run folder and every data file are checked
      data: String(values.data),
      ...(category ? { category } : {}),
      out: (values.out as string | undefined) ?? `runs/${category ?? 'model'}`,
      cfg,
      resume: Boolean(values.resume),
      overwrite: Boolean(values.overwrite),
      skipBad: Boolean(values['skip-bad']),
      evaluate: !values['no-eval'],
      ...(values['max-train'] ? { maxTrain: int(values['max-train'], 'max-train')! } : {}),
      ...(evalEvery ? { evalEvery } : {}),
      saveEveryMinutes: saveEvery,
    });
    if (res.stopped) return signalExitCode(res.stopped);
    printSummary(res.outDir, res.metrics, cfg.selectOn, res.report);
    return 0;
  },
};

export function printSummary(
  outDir: string,
  m: import('../../eval/evaluate.js').EvalMetrics | null,
  selectOn: string,
  report: string | null = null,
): void {
  console.log(`run folder: ${outDir} (best.safetensors, last.safetensors, train.jsonl, training-curve.svg)`);
  if (report)
    console.log(
      `report: ${report} (metrics.json beside it; calibrated checkpoint best.calibrated.safetensors)`,
    );
  if (!m) return;
  const f = (v: number | null) => (v === null ? 'n/a' : v.toFixed(4));
  console.log(
    `test set (${m.images} images, ${m.anomalous} anomalous; model selected on ${selectOn}): image AUROC ${f(m.imageAuroc)}, ` +
      `pixel AUROC ${f(m.pixelAuroc)}, AUPRO (standard MVTec) ${f(m.auproStandard)}, AUPRO (official RD++ per-image) ${f(m.auproOfficial)}`,
  );
}
