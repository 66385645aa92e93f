/**
 * The evaluation report: one self-contained HTML page (inline CSS and inline SVG charts, no scripts; the
 * example images are PNG files next to it) with the summary metrics (both AUPROs labelled), the score
 * histogram with the decision threshold, ROC and PRO curves, the per-defect-type chart and table, the
 * training curves when the run's log is found, and example images. Accessible: one h1, h2 per section,
 * captions and th scope on tables, alt text on every image, every chart an <svg role="img"> with its own
 * <title> and <desc>. Platform-neutral.
 */
import type { ReportChart } from './eval-charts.js';
import { displaySize, type ExampleGroup } from './examples.js';
import { escapeXml } from './svg.js';

export type { ReportChart } from './eval-charts.js';
export type { ExampleGroup, ExamplePanel, ReportExample } from './examples.js';

export const escapeHtml = escapeXml;

export interface ReportData {
  title: string;
  subtitle: string;
  /** label, value (formatted by the caller), optional note */
  summary: [string, string, string?][];
  /** image scores of good vs each defect type with the threshold (see scoreHistogram) */
  histogram?: ReportChart | null;
  /** ROC and PRO curves, inline SVG */
  curves: ReportChart[];
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
  byTypeChart?: ReportChart | null;
  /** the training curves (losses, selection score, --eval-every test metrics), when known */
  training?: ReportChart[];
  examples: ExampleGroup[];
  notes: string[];
}

const f4 = (v: number) => (Number.isFinite(v) ? v.toFixed(4) : 'n/a');
const e = escapeHtml;

const STYLE = `
body { font-family: system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif; margin: 2rem auto; max-width: 1160px; padding: 0 1rem; color: #1b1f24; line-height: 1.45; }
nav ul { display: flex; flex-wrap: wrap; gap: 0.4rem 1.2rem; padding: 0; list-style: none; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; }
th, td { border: 1px solid #bbb; padding: 0.3rem 0.7rem; text-align: left; }
th { background: #eef; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
caption { text-align: left; font-weight: 600; padding-bottom: 0.3rem; }
figure { margin: 0.5rem 0 1.5rem; }
figcaption { font-size: 0.9rem; color: #333; }
.charts { display: flex; flex-wrap: wrap; gap: 1rem; }
svg.chart { max-width: 100%; height: auto; border: 1px solid #ddd; }
.example { border-top: 1px solid #ddd; padding-top: 0.6rem; }
.example > figcaption { font-size: 1rem; font-weight: 600; color: #1b1f24; margin-bottom: 0.4rem; }
.panels { display: grid; grid-template-columns: repeat(auto-fill, minmax(256px, 1fr)); gap: 0.6rem; }
.panel { margin: 0; }
.panel img { width: 100%; height: auto; border: 1px solid #ddd; background: #000; }
img.pixelated { image-rendering: pixelated; }
.verdict { font-weight: 600; padding: 0 0.4rem; border-radius: 3px; }
.verdict.fail { background: #fde2e1; color: #8a1c17; }
.verdict.pass { background: #dff5e3; color: #1a5e2a; }
.note { color: #444; font-size: 0.95rem; }
`;

function chartFigure(c: ReportChart): string {
  return `<figure class="chart-figure">${c.svg}<figcaption>${e(c.caption)}</figcaption></figure>`;
}

function examplesHtml(groups: ExampleGroup[]): string[] {
  const parts: string[] = [];
  for (const g of groups) {
    parts.push(`<h3 id="${e(g.id)}">${e(g.heading)}</h3>\n<p class="note">${e(g.note)}</p>`);
    if (g.items.length === 0) parts.push('<p class="note">None in this test set.</p>');
    for (const it of g.items) {
      const verdict = it.verdict
        ? ` <span class="verdict ${it.verdict}">${it.verdict === 'fail' ? 'FAIL' : 'pass'}</span>`
        : '';
      parts.push(
        `<figure class="example"><figcaption>${e(it.title)}${verdict}</figcaption><div class="panels">`,
      );
      for (const p of it.panels) {
        const d = displaySize(p.width, p.height);
        parts.push(
          `<figure class="panel"><a href="${e(p.file)}"><img src="${e(p.file)}" alt="${e(p.alt)}" width="${d.width}" height="${d.height}"${d.scaled ? ' class="pixelated"' : ''}></a><figcaption>${e(p.label)} (${p.width}×${p.height})</figcaption></figure>`,
        );
      }
      parts.push('</div>');
      if (it.links?.length)
        parts.push(
          `<p class="note">${it.links.map((l) => `<a href="${e(l.href)}">${e(l.label)}</a>`).join(' · ')}</p>`,
        );
      parts.push('</figure>');
    }
  }
  return parts;
}

export function renderReport(d: ReportData): string {
  const sections: [string, string][] = [['summary', 'Summary']];
  if (d.histogram) sections.push(['scores', 'Score distribution']);
  sections.push(['curves', 'Curves'], ['by-type', 'Per defect type']);
  if (d.training?.length) sections.push(['training', 'Training']);
  sections.push(['examples', 'Examples']);
  if (d.notes.length) sections.push(['notes', 'Notes']);
  const parts: string[] = [];
  parts.push(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>${e(d.title)}</title>
<style>${STYLE}</style>
</head>
<body>
<main>
<h1>${e(d.title)}</h1>
<p>${e(d.subtitle)}</p>
<nav aria-label="Sections"><ul>${sections.map(([id, name]) => `<li><a href="#${id}">${e(name)}</a></li>`).join('')}</ul></nav>
<h2 id="summary">Summary</h2>
<table>
<caption>Test-set metrics</caption>
<thead><tr><th scope="col">Metric</th><th scope="col">Value</th><th scope="col">Notes</th></tr></thead>
<tbody>`);
  for (const [k, v, note] of d.summary)
    parts.push(`<tr><th scope="row">${e(k)}</th><td class="num">${e(v)}</td><td>${e(note ?? '')}</td></tr>`);
  parts.push('</tbody>\n</table>');
  if (d.histogram) parts.push('<h2 id="scores">Score distribution</h2>', chartFigure(d.histogram));
  parts.push('<h2 id="curves">Curves</h2>\n<div class="charts">');
  if (d.curves.length === 0)
    parts.push('<p class="note">Not available (needs good and anomalous test images).</p>');
  for (const c of d.curves) parts.push(chartFigure(c));
  parts.push('</div>');
  parts.push('<h2 id="by-type">Per defect type</h2>');
  if (d.byType?.length) {
    if (d.byTypeChart) parts.push(chartFigure(d.byTypeChart));
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
  if (d.training?.length) {
    parts.push('<h2 id="training">Training</h2>');
    for (const c of d.training) parts.push(chartFigure(c));
  }
  parts.push('<h2 id="examples">Examples</h2>');
  parts.push(
    '<p class="note">Each example: the test image, its ground-truth mask, the anomaly heatmap and the heatmap over the image, at the image\'s resolution (small images enlarged without smoothing); select a panel to open it full size.</p>',
  );
  parts.push(...examplesHtml(d.examples));
  if (d.notes.length) {
    parts.push('<h2 id="notes">Notes</h2>\n<ul>');
    for (const n of d.notes) parts.push(`<li>${e(n)}</li>`);
    parts.push('</ul>');
  }
  parts.push('</main>\n</body>\n</html>\n');
  return parts.join('\n');
}
