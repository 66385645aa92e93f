/**
 * `rdpp predict`: score new images with a trained checkpoint. Per image: an anomaly-map overlay PNG at
 * the image's original resolution, and one line in predictions.csv and predictions.jsonl (path, score,
 * pass/fail against the threshold). Images are batched on the GPU; files that cannot be read or decoded
 * are listed (error column) and do not stop the run. Argument parsing and output only: the run is
 * src/cli/predict-run.ts on src/pipeline/predict.ts.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { IMAGE_EXTENSIONS } from '../../train/data/index.js';
import { type Command, UsageError } from '../command.js';
import { PRECISION_OPTION, precisionOption, startEngine } from '../gpu.js';
import { MODEL_OPTIONS, parseModelOptions } from '../model-load.js';
import { type PredictOptions, runPredict } from '../predict-run.js';

function num(v: unknown, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new UsageError(`--${name} must be a number, got '${v}'`);
  return n;
}

/** Options from parsed arguments (validated). */
export function predictOptions(values: Record<string, unknown>): PredictOptions {
  if (!values.checkpoint)
    throw new UsageError('--checkpoint is required (a .safetensors file from rdpp train)');
  if (!values.input) throw new UsageError('--input is required (an image file or a folder of images)');
  const batch = num(values.batch, 'batch') ?? 8;
  if (!Number.isInteger(batch) || batch < 1)
    throw new UsageError(`--batch must be an integer ≥ 1, got ${batch}`);
  const alpha = num(values.alpha, 'alpha') ?? 0.5;
  if (alpha < 0 || alpha > 1) throw new UsageError(`--alpha must be in [0, 1], got ${alpha}`);
  const o: PredictOptions = {
    checkpoint: String(values.checkpoint),
    input: String(values.input),
    out: (values.out as string | undefined) ?? 'predictions',
    batch,
    alpha,
  };
  const t = num(values.threshold, 'threshold');
  if (t !== undefined) o.threshold = t;
  if (values.range !== undefined) {
    const m = /^\s*(-?[\d.eE+-]+)\s*,\s*(-?[\d.eE+-]+)\s*$/.exec(String(values.range));
    const lo = m ? Number(m[1]) : Number.NaN;
    const hi = m ? Number(m[2]) : Number.NaN;
    if (!(Number.isFinite(lo) && Number.isFinite(hi) && hi > lo))
      throw new UsageError(`--range must be 'min,max' with max > min, got '${values.range}'`);
    o.range = { min: lo, max: hi };
  }
  Object.assign(o, parseModelOptions(values));
  return o;
}

export const predict: Command = {
  name: 'predict',
  summary: 'score images with a trained checkpoint: overlay PNGs + predictions.csv/.jsonl',
  usage:
    '--checkpoint <file> --input <image or folder> [--out predictions] [--threshold t] [--batch 8] [--precision f32|f16]',
  options: {
    checkpoint: {
      type: 'string',
      help: 'trained (ideally calibrated) .safetensors checkpoint, or an official RD++ .pth (with --teacher)',
    },
    input: {
      type: 'string',
      help: `an image (${IMAGE_EXTENSIONS.join(' ')}) or a folder of them (not recursive)`,
    },
    out: { type: 'string', default: 'predictions', help: 'output folder' },
    threshold: {
      type: 'string',
      help: "fail when score > threshold (default: the checkpoint's calibrated one, else scores only)",
    },
    batch: { type: 'string', default: '8', help: 'images per GPU pass' },
    range: {
      type: 'string',
      help: "overlay colour range 'min,max' of map values (default: from calibration)",
    },
    alpha: { type: 'string', default: '0.5', help: 'heatmap opacity in [0, 1]' },
    ...MODEL_OPTIONS,
    precision: PRECISION_OPTION,
  },
  async run({ values }) {
    const o = predictOptions(values);
    const precision = precisionOption(values);
    if (!existsSync(o.checkpoint)) throw new UsageError(`--checkpoint ${o.checkpoint}: no such file`);
    await startEngine({ precision });
    const r = await runPredict(o);
    const errors = r.predictions.filter((p) => p.decision === 'error');
    const fails = r.predictions.filter((p) => p.decision === 'fail').length;
    const scored = r.predictions.length - errors.length;
    console.log(
      `${scored} image(s) scored${r.thresholdSource === 'none' ? ' (uncalibrated: scores only)' : `, ${fails} fail (threshold ${r.predictions[0]?.threshold} from ${r.thresholdSource})`}; ` +
        `results in ${resolve(o.out)} (predictions.csv, predictions.jsonl, *_overlay.png)`,
    );
    if (errors.length) {
      console.log(`${errors.length} file(s) could not be read:`);
      for (const e of errors) console.log(`  ${e.path}: ${e.error}`);
    }
    return scored > 0 ? 0 : 1;
  },
};
