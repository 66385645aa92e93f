/**
 * The evaluation report: a self-contained HTML page (inline CSS, no scripts, images as PNG files next to
 * it) with the summary metrics (both AUPROs labelled), ROC and PRO curves, the per-defect-type table and
 * example strips. Accessible: one h1, h2 per section, captions and th scope on tables, alt text on every
 * image. Also the curve charts (drawn with lineChart on a uniform FPR grid). Platform-neutral.
 */
import { lineChart, type Raster } from './raster.js';

export function escapeHtml(s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

/**
 * y(x) of a piecewise-linear curve (points sorted by x, ties allowed: the last y at an x wins) at `n`
 * evenly spaced x in [0, xMax].
 */
export function resampleCurve(
  xs: ArrayLike<number>,
  ys: ArrayLike<number>,
  xMax: number,
  n: number,
): number[] {
  const out: number[] = [];
  let j = 0;
  for (let i = 0; i < n; i++) {
    const x = (xMax * i) / (n - 1);
    while (j + 1 < xs.length && xs[j + 1]! <= x) j++;
    if (j + 1 >= xs.length || xs[j]! >= x) out.push(ys[j]!);
    else {
      const x0 = xs[j]!;
      const x1 = xs[j + 1]!;
      const t = x1 > x0 ? (x - x0) / (x1 - x0) : 1;
      out.push(ys[j]! + t * (ys[j + 1]! - ys[j]!));
    }
  }
  return out;
}

/**
 * A curve chart over FPR ∈ [0, xMax] with lineChart (resampled to 201 evenly spaced points); the x-axis
 * labels are rewritten to show FPR instead of lineChart's epoch labels.
 */
export function curveChart(
  title: string,
  series: { name: string; x: ArrayLike<number>; y: ArrayLike<number>; color: [number, number, number] }[],
  xMax: number,
  xLabel = 'fpr',
): Raster {
  const n = 201;
  const r = lineChart(
    title,
    series.map((s) => ({ name: s.name, values: resampleCurve(s.x, s.y, xMax, n), color: s.color })),
  );
  // replace lineChart's "epoch 1 … epoch n" axis labels (same geometry as lineChart: 640×360, bottom margin 40)
  r.rect(0, r.height - 30, r.width, 30, [255, 255, 255]);
  r.text(70, r.height - 24, `${xLabel} 0`, [40, 40, 40]);
  const right = `${xLabel} ${xMax}`;
  r.text(r.width - 20 - right.length * 8, r.height - 24, right, [40, 40, 40]);
  return r;
}

export interface ReportExample {
  /** PNG file name relative to the report */
  file: string;
  title: string;
  alt: string;
}

export interface ReportData {
  title: string;
  subtitle: string;
  /** label, value (formatted by the caller), optional note */
  summary: [string, string, string?][];
  curves: { file: string; alt: string; caption: string }[];
  byType:
    | {
        type: string;
        images: number;
        imageAuroc: number;
        pixelAuroc: number;
        auproStandard: number;
        auproOfficial: number;
      }[]
    | null;
  examples: { heading: string; note: string; items: ReportExample[] }[];
  notes: string[];
}

const f4 = (v: number) => (Number.isFinite(v) ? v.toFixed(4) : 'n/a');

export function renderReport(d: ReportData): string {
  const e = escapeHtml;
  const parts: string[] = [];
  parts.push(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${e(d.title)}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; padding: 0 1rem; color: #1a1a1a; line-height: 1.45; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; }
th, td { border: 1px solid #bbb; padding: 0.3rem 0.7rem; text-align: left; }
th { background: #eef; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
caption { text-align: left; font-weight: 600; padding-bottom: 0.3rem; }
figure { margin: 0.5rem 0 1.5rem; }
figcaption { font-size: 0.9rem; color: #333; }
img { max-width: 100%; height: auto; border: 1px solid #ddd; }
.curves { display: flex; flex-wrap: wrap; gap: 1rem; }
.note { color: #444; font-size: 0.95rem; }
</style>
</head>
<body>
<main>
<h1>${e(d.title)}</h1>
<p>${e(d.subtitle)}</p>
<h2 id="summary">Summary</h2>
<table>
<caption>Test-set metrics</caption>
<thead><tr><th scope="col">Metric</th><th scope="col">Value</th><th scope="col">Notes</th></tr></thead>
<tbody>`);
  for (const [k, v, note] of d.summary)
    parts.push(`<tr><th scope="row">${e(k)}</th><td class="num">${e(v)}</td><td>${e(note ?? '')}</td></tr>`);
  parts.push('</tbody>\n</table>\n<h2 id="curves">Curves</h2>\n<div class="curves">');
  for (const c of d.curves)
    parts.push(
      `<figure><img src="${e(c.file)}" alt="${e(c.alt)}" width="640" height="360"><figcaption>${e(c.caption)}</figcaption></figure>`,
    );
  parts.push('</div>');
  parts.push('<h2 id="by-type">Per defect type</h2>');
  if (d.byType?.length) {
    parts.push(`<table>
<caption>Metrics per defect type (each type with the good test images)</caption>
<thead><tr><th scope="col">Type</th><th scope="col">Images</th><th scope="col">Image AUROC</th><th scope="col">Pixel AUROC</th><th scope="col">AUPRO (standard MVTec)</th><th scope="col">AUPRO (official RD++ per-image)</th></tr></thead>
<tbody>`);
    for (const t of d.byType)
      parts.push(
        `<tr><th scope="row">${e(t.type)}</th><td class="num">${t.images}</td><td class="num">${f4(t.imageAuroc)}</td><td class="num">${f4(t.pixelAuroc)}</td><td class="num">${f4(t.auproStandard)}</td><td class="num">${f4(t.auproOfficial)}</td></tr>`,
      );
    parts.push('</tbody>\n</table>');
  } else parts.push('<p class="note">Not available (needs good and anomalous test images with masks).</p>');
  parts.push('<h2 id="examples">Examples</h2>');
  for (const g of d.examples) {
    parts.push(`<h3>${e(g.heading)}</h3>\n<p class="note">${e(g.note)}</p>`);
    if (g.items.length === 0) parts.push('<p class="note">None in this test set.</p>');
    for (const it of g.items)
      parts.push(
        `<figure><img src="${e(it.file)}" alt="${e(it.alt)}"><figcaption>${e(it.title)}</figcaption></figure>`,
      );
  }
  if (d.notes.length) {
    parts.push('<h2 id="notes">Notes</h2>\n<ul>');
    for (const n of d.notes) parts.push(`<li>${e(n)}</li>`);
    parts.push('</ul>');
  }
  parts.push('</main>\n</body>\n</html>\n');
  return parts.join('\n');
}
