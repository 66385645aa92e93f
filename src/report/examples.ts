/**
 * The report's example images: which test images to show (the best detections, the worst false
 * negatives: anomalous images with the lowest scores, and the worst false positives: good images with
 * the highest scores) and their four panels (image | ground truth | heatmap | overlay) at the image's own
 * resolution. The panels are separate PNG files shown side by side in HTML with HTML captions, so text
 * stays text and the browser scales small images up (pixelated) to a readable size. File access is the
 * caller's (load/save callbacks), which keeps this module platform-neutral.
 */
import { decide } from '../eval/threshold.js';
import { maskImage, overlayHeatmap, type RgbImage } from './overlay.js';
import { formatValue } from './svg.js';

/** Panels narrower than this are shown enlarged (integer factor, pixelated) in the report. */
export const MIN_PANEL_PX = 256;

export interface ExamplePanel {
  /** PNG file relative to the report */
  file: string;
  label: string;
  alt: string;
  width: number;
  height: number;
}

export interface ReportExample {
  title: string;
  panels: ExamplePanel[];
  /** 'pass' / 'fail' at the decision threshold, when there is one */
  verdict?: 'pass' | 'fail';
  /** relative links shown under the panels (e.g. full-resolution overlays written by `rdpp predict`) */
  links?: { href: string; label: string }[];
}

export interface ExampleGroup {
  id: string;
  heading: string;
  note: string;
  items: ReportExample[];
}

/** Indices of the examples to show per group, `k` each (an image may appear in two groups of a tiny set). */
export function selectExamples(
  labels: (0 | 1)[],
  scores: number[],
  k: number,
): { id: string; heading: string; note: string; ids: number[] }[] {
  const idx = labels.map((_, i) => i);
  const byScore = (l: 0 | 1, dir: 1 | -1) =>
    idx.filter((i) => labels[i] === l).sort((a, b) => dir * (scores[a]! - scores[b]!));
  return [
    {
      id: 'best-detections',
      heading: 'Best detections',
      note: 'Anomalous test images with the highest scores: the defects the model finds most clearly.',
      ids: byScore(1, -1).slice(0, k),
    },
    {
      id: 'false-negatives',
      heading: 'Worst false negatives',
      note: 'Anomalous test images with the lowest scores: the first to be missed as the threshold rises.',
      ids: byScore(1, 1).slice(0, k),
    },
    {
      id: 'false-positives',
      heading: 'Worst false positives',
      note: 'Good test images with the highest scores: the first false alarms as the threshold falls.',
      ids: byScore(0, -1).slice(0, k),
    },
  ];
}

/** Display size of a panel: small images enlarged by an integer factor to at least MIN_PANEL_PX wide. */
export function displaySize(
  width: number,
  height: number,
): { width: number; height: number; scaled: boolean } {
  const f = width < MIN_PANEL_PX ? Math.ceil(MIN_PANEL_PX / width) : 1;
  return { width: width * f, height: height * f, scaled: f > 1 };
}

export interface ExampleSource {
  /** file name shown in captions */
  name: string;
  defectType: string;
  label: 0 | 1;
  score: number;
  /** the anomaly map at the model's size×size */
  map: Float32Array;
}

export interface ExampleIo {
  /** the test image at its original resolution */
  load(index: number): RgbImage;
  /** its ground-truth mask (0/1, the image's size) or null when there is none */
  loadMask(index: number, width: number, height: number): Uint8Array | null;
  /** write an RGB image as PNG under the report folder */
  save(file: string, image: RgbImage): void;
  /** extra links for an example (e.g. its full-resolution overlay from `rdpp predict`) */
  links?(index: number): { href: string; label: string }[];
}

/**
 * The example groups with their panel files written through `io` (each image once, even when it appears
 * in two groups). `range` is the fixed heatmap colour range; `threshold` the decision threshold, if any.
 */
export function buildExamples(
  sources: ExampleSource[],
  opts: { k: number; size: number; range: { min: number; max: number }; threshold: number | null },
  io: ExampleIo,
): ExampleGroup[] {
  const groups = selectExamples(
    sources.map((s) => s.label),
    sources.map((s) => s.score),
    opts.k,
  );
  const done = new Map<number, ReportExample>();
  const example = (i: number): ReportExample => {
    const seen = done.get(i);
    if (seen) return seen;
    const s = sources[i]!;
    const image = io.load(i);
    const { width, height } = image;
    const mask = io.loadMask(i, width, height);
    const gt = maskImage(mask ?? new Uint8Array(width * height), width, height);
    const blank: RgbImage = { width, height, rgb: new Uint8Array(width * height * 3) };
    const heat = overlayHeatmap(blank, s.map, opts.size, opts.size, { ...opts.range, alpha: 1 });
    const overlay = overlayHeatmap(image, s.map, opts.size, opts.size, opts.range);
    const stem =
      `examples/${String(done.size).padStart(2, '0')}-${s.defectType}-${s.name.replace(/\.[^.]+$/, '')}`.replace(
        /[^A-Za-z0-9._/-]+/g,
        '_',
      );
    const what = `${s.defectType} test image ${s.name}`;
    const panels: [string, string, RgbImage, string][] = [
      ['image', 'image', image, what],
      ['gt', 'ground truth', gt, `ground-truth defect mask of ${what}${mask ? '' : ' (none: a good image)'}`],
      ['heatmap', 'anomaly heatmap', heat, `anomaly heatmap of ${what} (blue low, red high)`],
      [
        'overlay',
        `overlay, score ${formatValue(s.score)}`,
        overlay,
        `heatmap over ${what}, score ${formatValue(s.score)}`,
      ],
    ];
    const ex: ReportExample = {
      title: `${s.defectType} / ${s.name}: score ${formatValue(s.score)}`,
      panels: panels.map(([suffix, label, img, alt]) => {
        const file = `${stem}-${suffix}.png`;
        io.save(file, img);
        return { file, label, alt, width, height };
      }),
    };
    if (opts.threshold !== null) ex.verdict = decide(s.score, opts.threshold);
    const links = io.links?.(i) ?? [];
    if (links.length) ex.links = links;
    done.set(i, ex);
    return ex;
  };
  return groups.map((g) => ({ id: g.id, heading: g.heading, note: g.note, items: g.ids.map(example) }));
}

/**
 * Image path → overlay file (relative to the predict folder) from `rdpp predict`'s predictions.jsonl, so
 * the report can link each example to the full-resolution overlay predict wrote for it.
 */
export function predictOverlays(jsonl: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of jsonl.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const r = JSON.parse(line) as { path?: unknown; overlay?: unknown };
      if (typeof r.path === 'string' && typeof r.overlay === 'string') out.set(r.path, r.overlay);
    } catch {
      // not a prediction record
    }
  }
  return out;
}
