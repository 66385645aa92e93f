/**
 * `rdpp predict`: score new images with a trained checkpoint. Per image: an anomaly-map overlay PNG at
 * the image's original resolution, and one line in predictions.csv and predictions.jsonl (path, score,
 * pass/fail against the threshold). Images are batched on the GPU; files that cannot be read or decoded
 * are listed (error column) and do not stop the run.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, extname, join, resolve } from 'node:path';
import { scoreImages } from '../../eval/evaluate.js';
import { type Decision, decide, mapRangeFor } from '../../eval/threshold.js';
import { makeDir } from '../../platform/fs-errors.js';
import { writeFileAtomic } from '../../platform/node.js';
import { encodePng } from '../../platform/png.js';
import { overlayHeatmap, type RgbImage } from '../../report/overlay.js';
import {
  decodeImage8,
  IMAGE_EXTENSIONS,
  isImageName,
  resizeLinear,
  unreadableImageExtension,
  unreadableReason,
} from '../../train/data/index.js';
import { type Command, UsageError } from '../command.js';
import { startEngine } from '../gpu.js';
import { loadModel, MODEL_OPTIONS, type ModelChoice, parseModelOptions } from '../model-load.js';
import { formatDuration, Progress } from '../progress.js';

export interface PredictOptions extends ModelChoice {
  checkpoint: string;
  input: string;
  out: string;
  threshold?: number;
  batch: number;
  /** fixed colour range of the overlays (default: from the decision, else the first batch's maps) */
  range?: { min: number; max: number };
  alpha: number;
  log?: (line: string) => void;
}

export interface Prediction {
  path: string;
  score: number | null;
  decision: 'pass' | 'fail' | 'uncalibrated' | 'error';
  threshold: number | null;
  width?: number;
  height?: number;
  overlay?: string;
  error?: string;
}

export interface PredictResult {
  predictions: Prediction[];
  csv: string;
  jsonl: string;
  thresholdSource: 'option' | 'checkpoint' | 'none';
}

/**
 * The files of a folder to score (sorted by name; not recursive), or the one file given. Files of image
 * formats we cannot read are kept: each gets an error row naming why, never a silent skip. `ignored`
 * names the other files (not images); subfolders are not listed.
 */
export function listInputs(input: string): { files: string[]; ignored: string[] } {
  if (!existsSync(input)) throw new UsageError(`--input ${input}: no such file or folder`);
  if (!statSync(input).isDirectory()) return { files: [resolve(input)], ignored: [] };
  const names = readdirSync(input)
    .filter((n) => !n.startsWith('.') && !statSync(join(input, n)).isDirectory())
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const scored = (n: string) => isImageName(n) || unreadableImageExtension(n) !== null;
  return {
    files: names.filter(scored).map((n) => resolve(input, n)),
    ignored: names.filter((n) => !scored(n)),
  };
}

function csvField(v: string | number | null | undefined): string {
  const s = v === null || v === undefined ? '' : String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function predictionsCsv(rows: Prediction[]): string {
  const head = 'path,score,decision,threshold,width,height,overlay,error';
  const lines = rows.map((r) =>
    [r.path, r.score, r.decision, r.threshold, r.width, r.height, r.overlay, r.error].map(csvField).join(','),
  );
  return `${[head, ...lines].join('\n')}\n`;
}

interface Decoded {
  path: string;
  image: RgbImage;
  input: Float32Array;
}

export async function runPredict(o: PredictOptions): Promise<PredictResult> {
  const log = o.log ?? ((l: string) => console.error(l));
  const { files, ignored } = listInputs(o.input);
  if (resolve(o.out) === resolve(o.input))
    throw new UsageError(
      `--out ${o.out} is the --input folder: the overlays would mix with the images (and be scored by the next predict). Choose another folder, e.g. ${join(o.input, 'predictions')}.`,
    );
  if (files.length === 0 && ignored.length === 0)
    throw new UsageError(`--input ${o.input}: no files found (${IMAGE_EXTENSIONS.join(' ')})`);
  if (ignored.length > 0)
    log(
      `note: ${ignored.length} file(s) of ${o.input} are not images (${IMAGE_EXTENSIONS.join(' ')}) and are not scored: ${ignored.slice(0, 20).join(', ')}${ignored.length > 20 ? ', …' : ''}`,
    );
  const loaded = await loadModel(o.checkpoint, { teacher: o.teacher, imageSize: o.imageSize, log });
  const { model, cfg } = loaded;
  const size = cfg.imageSize;
  let decision: Decision | null = loaded.decision;
  let threshold: number | null = null;
  let thresholdSource: PredictResult['thresholdSource'] = 'none';
  if (o.threshold !== undefined) {
    threshold = o.threshold;
    thresholdSource = 'option';
    if (decision) decision = { ...decision, threshold };
  } else if (decision) {
    threshold = decision.threshold;
    thresholdSource = 'checkpoint';
  } else {
    log(
      'note: the checkpoint has no calibrated threshold and no --threshold was given: reporting scores only ' +
        "(decision 'uncalibrated'). Calibrate with `rdpp test --calibrate …` or pass --threshold <t>.",
    );
  }
  let range = o.range ?? (decision ? mapRangeFor(decision) : null);
  const outDir = resolve(o.out);
  makeDir(outDir);
  const used = new Set<string>();
  const overlayName = (path: string) => {
    const stem = basename(path, extname(path));
    let name = `${stem}_overlay.png`;
    if (used.has(name)) name = `${basename(path)}_overlay.png`;
    for (let k = 2; used.has(name); k++) name = `${stem}_${k}_overlay.png`;
    used.add(name);
    return name;
  };

  const predictions: Prediction[] = [];
  const small: string[] = [];
  const progress = new Progress();
  const t0 = performance.now();
  try {
    for (let i = 0; i < files.length; i += o.batch) {
      const chunk = files.slice(i, i + o.batch);
      const ok: Decoded[] = [];
      const rows = new Map<string, Prediction>();
      for (const path of chunk) {
        try {
          const ext = unreadableImageExtension(path);
          if (ext) throw new Error(unreadableReason(ext));
          const img = decodeImage8(new Uint8Array(readFileSync(path)), path);
          if (img.width < size || img.height < size) small.push(`${path} (${img.width}×${img.height})`);
          const f = new Float64Array(img.rgb.length);
          for (let k = 0; k < f.length; k++) f[k] = img.rgb[k]! / 255;
          ok.push({
            path,
            image: { width: img.width, height: img.height, rgb: img.rgb },
            input: resizeLinear(f, img.width, img.height, size, size),
          });
        } catch (e) {
          const msg = e instanceof Error ? e.message : String(e);
          const reason = msg.startsWith(`${path}: `) ? msg.slice(path.length + 2) : msg;
          rows.set(path, { path, score: null, decision: 'error', threshold, error: reason });
          log(`warning: ${path}: ${reason}`);
        }
      }
      const scored = ok.length
        ? await scoreImages(
            model,
            ok.map((d) => d.input),
            size,
            o.batch,
          )
        : [];
      if (!range && scored.length) {
        let lo = Infinity;
        let hi = -Infinity;
        for (const s of scored) for (const v of s.map) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
        range = { min: lo, max: hi > lo ? hi : lo + 1e-6 };
        log(
          `note: overlay colours span map values [${lo.toPrecision(4)}, ${hi.toPrecision(4)}] (the first batch); ` +
            'a calibrated checkpoint or --range min,max fixes them',
        );
      }
      ok.forEach((d, k) => {
        const s = scored[k]!;
        const name = overlayName(d.path);
        const ov = overlayHeatmap(d.image, s.map, size, size, { ...range!, alpha: o.alpha });
        writeFileAtomic(join(outDir, name), encodePng(ov.width, ov.height, ov.rgb, 3));
        rows.set(d.path, {
          path: d.path,
          score: s.score,
          decision: threshold === null ? 'uncalibrated' : decide(s.score, threshold),
          threshold,
          width: d.image.width,
          height: d.image.height,
          overlay: name,
        });
      });
      for (const p of chunk) predictions.push(rows.get(p)!);
      const done = Math.min(i + o.batch, files.length);
      const el = (performance.now() - t0) / 1000;
      progress.update(
        `predict ${done}/${files.length} images, ${(done / el).toFixed(1)} img/s, ETA ${formatDuration((el / done) * (files.length - done))}`,
      );
    }
  } finally {
    model.dispose();
  }
  progress.done();
  if (small.length > 0)
    log(
      `warning: ${small.length} image(s) are smaller than the network input ${size}×${size} and were upscaled, which blurs small defects: ${small.slice(0, 10).join(', ')}${small.length > 10 ? ', …' : ''}`,
    );
  const csv = predictionsCsv(predictions);
  const jsonl = predictions.map((p) => JSON.stringify(p)).join('\n') + (predictions.length ? '\n' : '');
  writeFileAtomic(join(outDir, 'predictions.csv'), csv);
  writeFileAtomic(join(outDir, 'predictions.jsonl'), jsonl);
  return { predictions, csv, jsonl, thresholdSource };
}

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
  usage: '--checkpoint <file> --input <image or folder> [--out predictions] [--threshold t] [--batch 8]',
  options: {
    checkpoint: {
      type: 'string',
      help: 'trained (ideally calibrated) .safetensors checkpoint, or an official RD++ .pth (with --teacher)',
    },
    input: { type: 'string', help: 'an image (.png .jpg .jpeg .bmp) or a folder of them (not recursive)' },
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
  },
  async run({ values }) {
    const o = predictOptions(values);
    if (!existsSync(o.checkpoint)) throw new UsageError(`--checkpoint ${o.checkpoint}: no such file`);
    await startEngine();
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
