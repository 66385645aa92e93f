/**
 * Scoring new images with a trained model (`rdpp predict`): per image an anomaly-map overlay at the
 * image's original resolution, and a row (path, score, pass/fail against the threshold). Images go to
 * the GPU in batches, through THE evaluation (./evaluate.ts); files that cannot be read or decoded get an
 * error row and do not stop the run. Files come in and go out through `PredictIo` (Node:
 * src/cli/predict-run.ts).
 */
import { type Decision, decide, mapRangeFor } from '../eval/threshold.js';
import { overlayHeatmap, type RgbImage } from '../report/overlay.js';
import {
  baseName,
  decodeImage8,
  resizeLinear,
  stemOf,
  unreadableImageExtension,
  unreadableReason,
} from '../train/data/index.js';
import { evaluate } from './evaluate.js';
import type { Log } from './events.js';
import type { LoadedModel } from './model.js';

export interface PredictRunOptions {
  /** the files to score, in order (formats we cannot read included: they get an error row) */
  files: string[];
  threshold?: number;
  batch: number;
  /** fixed colour range of the overlays (default: from the decision, else the first batch's maps) */
  range?: { min: number; max: number };
  alpha: number;
}

export interface PredictIo {
  loadModel(log: Log): Promise<LoadedModel>;
  readBytes(path: string): Uint8Array;
  /** creates the output folder (before the first image is scored) */
  openOutput(): void;
  /** writes `name` in the output folder */
  write(name: string, data: string | Uint8Array): void;
  encodePng(width: number, height: number, data: Uint8Array, channels: 1 | 3 | 4): Uint8Array;
  /** after every batch: images done of the total, seconds since scoring began */
  progress?(done: number, total: number, seconds: number): void;
  /** scoring is over (successfully or not) */
  progressDone?(): void;
  log: Log;
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

export async function predictImages(o: PredictRunOptions, io: PredictIo): Promise<PredictResult> {
  const { files } = o;
  const { log } = io;
  const loaded = await io.loadModel(log);
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
  io.openOutput();
  const used = new Set<string>();
  const overlayName = (path: string) => {
    const stem = stemOf(baseName(path));
    let name = `${stem}_overlay.png`;
    if (used.has(name)) name = `${baseName(path)}_overlay.png`;
    for (let k = 2; used.has(name); k++) name = `${stem}_${k}_overlay.png`;
    used.add(name);
    return name;
  };

  const predictions: Prediction[] = [];
  const small: string[] = [];
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
          const img = decodeImage8(io.readBytes(path), path);
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
        ? (
            await evaluate(
              model,
              ok.map((d) => ({ rgb: d.input })),
              { size, batch: o.batch },
            )
          ).scored
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
        io.write(name, io.encodePng(ov.width, ov.height, ov.rgb, 3));
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
      io.progress?.(Math.min(i + o.batch, files.length), files.length, (performance.now() - t0) / 1000);
    }
  } finally {
    model.dispose();
  }
  io.progressDone?.();
  if (small.length > 0)
    log(
      `warning: ${small.length} image(s) are smaller than the network input ${size}×${size} and were upscaled, which blurs small defects: ${small.slice(0, 10).join(', ')}${small.length > 10 ? ', …' : ''}`,
    );
  const csv = predictionsCsv(predictions);
  const jsonl = predictions.map((p) => JSON.stringify(p)).join('\n') + (predictions.length ? '\n' : '');
  io.write('predictions.csv', csv);
  io.write('predictions.jsonl', jsonl);
  return { predictions, csv, jsonl, thresholdSource };
}
