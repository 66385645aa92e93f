/**
 * The evaluation report (report.html) of a small synthetic run, rendered in headless Chromium: no
 * training, ReportData built here from synthetic images, anomaly maps and a train.jsonl with the
 * report's own functions (charts, example selection and panels), written to test-results/report/ and
 * served from there. Checks that every chart is an inline, well-formed, accessible <svg> with <text>
 * axis labels and a legend, that the score histogram has the threshold line, that the examples are
 * shown at a readable size with HTML captions, and that no raster-font code is left in src/report.
 * Screenshot for review: test-results/report/report.png (the folder is ignored by git).
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metricsByDefectType, rocAuc } from '../../src/eval/metrics.js';
import { calibrateThreshold, mapRangeFor } from '../../src/eval/threshold.js';
import { encodePng } from '../../src/platform/png.js';
import { byTypeChart, proChart, rocChart, scoreHistogram } from '../../src/report/eval-charts.js';
import { buildExamples } from '../../src/report/examples.js';
import { renderReport } from '../../src/report/html.js';
import type { RgbImage } from '../../src/report/overlay.js';
import { parseTrainLog, trainingCharts, trainingCurveSvg } from '../../src/report/training-chart.js';
import { type Harness, openBrowser } from './harness.js';

const OUT = 'test-results/report';
const SIZE = 32;
const IMG = 64;

/** A deterministic PRNG (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Synthetic {
  type: string;
  label: 0 | 1;
  image: RgbImage;
  mask: Uint8Array | null;
  /** SIZE×SIZE anomaly map */
  map: Float32Array;
  score: number;
}

/** Textured grey images; defects are a bright square (crack) or a dark stripe (cut) with a matching map. */
function makeSet(): Synthetic[] {
  const r = rng(7);
  const out: Synthetic[] = [];
  const types = [...Array(10).fill('good'), ...Array(6).fill('crack'), ...Array(6).fill('cut')] as string[];
  for (const [n, type] of types.entries()) {
    const rgb = new Uint8Array(IMG * IMG * 3);
    for (let p = 0; p < IMG * IMG; p++) {
      const v = 110 + 30 * Math.sin((p % IMG) / 3 + n) + 20 * r();
      rgb.set([v, v * 0.95, v * 0.9], p * 3);
    }
    let mask: Uint8Array | null = null;
    const inDefect = (x: number, y: number) =>
      type === 'crack'
        ? Math.abs(x - 20 - n) < 8 && Math.abs(y - 30) < 8
        : type === 'cut'
          ? Math.abs(x - 40) < 3 && y > 10 && y < 50
          : false;
    if (type !== 'good') {
      mask = new Uint8Array(IMG * IMG);
      for (let y = 0; y < IMG; y++)
        for (let x = 0; x < IMG; x++)
          if (inDefect(x, y)) {
            mask[y * IMG + x] = 1;
            rgb.set(type === 'crack' ? [230, 220, 90] : [30, 30, 30], (y * IMG + x) * 3);
          }
    }
    // the map: noise everywhere, high on the defect (weaker for some images: misses)
    const strength = type === 'good' ? 0 : 0.3 + 0.7 * r();
    const map = new Float32Array(SIZE * SIZE);
    for (let y = 0; y < SIZE; y++)
      for (let x = 0; x < SIZE; x++)
        map[y * SIZE + x] =
          0.2 * r() +
          (inDefect(x * 2, y * 2) ? strength : 0) +
          (type === 'good' && n === 3 ? 0.5 * Number(x > 24 && y > 24) : 0);
    out.push({
      type,
      label: type === 'good' ? 0 : 1,
      image: { width: IMG, height: IMG, rgb },
      mask,
      map,
      score: Math.max(...map),
    });
  }
  return out;
}

/** A train.jsonl of 3 epochs × 8 steps with test evaluations at epochs 2 and 3. */
function makeLog(): string {
  const lines: string[] = [];
  let step = 0;
  for (let e = 1; e <= 3; e++) {
    for (let b = 0; b < 8; b++) {
      step++;
      const kd = 0.6 * Math.exp(-step / 10) + 0.05;
      const proj = 2e-3 * Math.exp(-step / 15) + 1e-4;
      lines.push(
        JSON.stringify({ event: 'step', epoch: e, globalStep: step, loss: kd + 0.2 * proj, kd, proj }),
      );
    }
    lines.push(
      JSON.stringify({
        event: 'epoch',
        epoch: e,
        loss: 0.3 / e,
        kd: 0.29 / e,
        proj: 1e-3 / e,
        score: -0.5 + 0.1 * e,
        best: true,
        seconds: 2,
      }),
    );
    if (e >= 2)
      lines.push(
        JSON.stringify({
          event: 'test-eval',
          epoch: e,
          imageAuroc: 0.8 + 0.05 * e,
          pixelAuroc: 0.9 + 0.02 * e,
          auproStandard: 0.6 + 0.1 * e,
          auproOfficial: 0.65 + 0.1 * e,
          seconds: 1,
        }),
      );
  }
  return `${lines.join('\n')}\n`;
}

function writeReport(): void {
  rmSync(OUT, { recursive: true, force: true });
  mkdirSync(join(OUT, 'examples'), { recursive: true });
  const set = makeSet();
  const labels = set.map((s) => s.label);
  const scores = set.map((s) => s.score);
  const decision = calibrateThreshold(
    scores.filter((_, i) => labels[i] === 0),
    { targetFrr: 0.1 },
  );
  const masks = set.map((s) => {
    // the mask at the map's size (every other pixel)
    const m = new Uint8Array(SIZE * SIZE);
    if (s.mask)
      for (let y = 0; y < SIZE; y++)
        for (let x = 0; x < SIZE; x++) m[y * SIZE + x] = s.mask[y * 2 * IMG + x * 2]!;
    return m;
  });
  const maps = set.map((s) => s.map);
  const byType = metricsByDefectType({
    types: set.map((s) => s.type),
    imageScores: scores,
    masks,
    maps,
    h: SIZE,
    w: SIZE,
  });
  const auroc = rocAuc(labels, scores);
  const log = makeLog();
  writeFileSync(join(OUT, 'training-curve.svg'), trainingCurveSvg(parseTrainLog(log)));
  const examples = buildExamples(
    set.map((s, i) => ({
      name: `${String(i).padStart(3, '0')}.png`,
      defectType: s.type,
      label: s.label,
      score: s.score,
      map: s.map,
    })),
    { k: 2, size: SIZE, range: mapRangeFor(decision) ?? { min: 0, max: 1 }, threshold: decision.threshold },
    {
      load: (i) => set[i]!.image,
      loadMask: (i) => set[i]!.mask,
      save: (file, im) => writeFileSync(join(OUT, file), encodePng(im.width, im.height, im.rgb, 3)),
      links: (i) => [
        {
          href: `../predictions/${String(i).padStart(3, '0')}_overlay.png`,
          label: 'full-resolution overlay (rdpp predict)',
        },
      ],
    },
  );
  const html = renderReport({
    title: 'RD++ test report: synthetic <run>',
    subtitle: 'A synthetic run for the report test: 10 good, 6 crack and 6 cut images of 64×64.',
    summary: [
      ['Test images', `${set.length}`, '12 anomalous'],
      ['Image AUROC', auroc.toFixed(4), ''],
      ['Decision threshold', decision.threshold.toPrecision(6), 'target FRR 0.1'],
    ],
    histogram: scoreHistogram(
      set.map((s) => ({ defectType: s.type, label: s.label })),
      scores,
      { value: decision.threshold },
    ),
    curves: [rocChart(labels, scores, auroc), proChart(masks, maps, SIZE)],
    byType,
    byTypeChart: byTypeChart(byType),
    training: trainingCharts(parseTrainLog(log)).map((c) => ({ svg: c.svg, caption: c.title })),
    examples,
    notes: ['Synthetic data.'],
  });
  writeFileSync(join(OUT, 'report.html'), html);
}

let h: Harness;
beforeAll(async () => {
  writeReport();
  h = await openBrowser(OUT);
}, 60_000);
afterAll(async () => {
  await h?.close();
});

describe('report.html in Chromium', () => {
  it('shows inline SVG charts with real text, legends, tooltips and the threshold line', async () => {
    const { page, url } = h;
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.goto(`${url}report.html`);
    const charts = await page.evaluate(() =>
      Array.from(document.querySelectorAll('main svg.chart')).map((svg) => {
        const box = (sel: string) =>
          Array.from(svg.querySelectorAll(sel)).map((t) => (t as SVGGraphicsElement).getBBox().width);
        const parsed = new DOMParser().parseFromString(svg.outerHTML, 'image/svg+xml');
        return {
          id: svg.id,
          role: svg.getAttribute('role'),
          title: svg.querySelector(':scope > title')?.textContent ?? '',
          desc: svg.querySelector(':scope > desc')?.textContent ?? '',
          labelledBy: svg.getAttribute('aria-labelledby'),
          axisLabels: box('text.axis-label'),
          legend: box('g.legend text'),
          tooltips: svg.querySelectorAll('rect > title, circle > title, path > title, g > title').length,
          wellFormed: parsed.querySelector('parsererror') === null,
          threshold: svg.querySelectorAll('g.marker.threshold > line').length,
          width: svg.getBoundingClientRect().width,
        };
      }),
    );
    expect(charts.map((c) => c.id).sort()).toEqual(
      [
        'by-type',
        'image-roc',
        'pro-curve',
        'score-histogram',
        'selection-score',
        'test-metrics',
        'training-loss',
      ].sort(),
    );
    for (const c of charts) {
      expect(c.role, c.id).toBe('img');
      expect(c.title.length, c.id).toBeGreaterThan(5);
      expect(c.desc.length, c.id).toBeGreaterThan(5);
      expect(c.labelledBy, c.id).toBe(`${c.id}-title ${c.id}-desc`);
      expect(c.wellFormed, c.id).toBe(true);
      expect(c.tooltips, c.id).toBeGreaterThan(0);
      // real text, laid out by the browser with a font (a raster font would be <image>/<rect>s)
      expect(c.legend.length, c.id).toBeGreaterThan(0);
      for (const w of c.legend) expect(w, c.id).toBeGreaterThan(5);
      expect(c.width, c.id).toBeGreaterThan(300);
    }
    // y (and x for all but the bars) axis labels
    for (const c of charts)
      expect(c.axisLabels.length, c.id).toBeGreaterThanOrEqual(c.id === 'by-type' ? 1 : 2);
    expect(charts.find((c) => c.id === 'score-histogram')!.threshold).toBe(1);
    // the ROC legend carries the AUROC; the PRO chart the 0.3 bound
    const roc = await page.locator('#image-roc g.legend').textContent();
    expect(roc).toMatch(/AUROC 0\.\d{4}/);
    expect(await page.locator('#pro-curve g.marker.fpr-bound').count()).toBe(1);
    expect(await page.locator('#training-loss .axis-label').allTextContents()).toContain('loss (log scale)');
    expect(h.errors).toEqual([]);
  });

  it('shows the examples large enough to see, with HTML captions and links', async () => {
    const { page } = h;
    const groups = await page.locator('main h3').allTextContents();
    expect(groups).toEqual(['Best detections', 'Worst false negatives', 'Worst false positives']);
    await page.evaluate(() => Promise.all(Array.from(document.images).map((i) => i.decode())));
    const imgs = await page.evaluate(() =>
      Array.from(document.querySelectorAll('.panel img')).map((i) => {
        const img = i as HTMLImageElement;
        return {
          natural: img.naturalWidth,
          shown: img.getBoundingClientRect().width,
          rendering: getComputedStyle(img).imageRendering,
          alt: img.alt,
        };
      }),
    );
    expect(imgs.length).toBe(3 * 2 * 4);
    for (const i of imgs) {
      expect(i.natural).toBe(64);
      expect(i.shown).toBeGreaterThanOrEqual(250);
      expect(i.rendering).toBe('pixelated');
      expect(i.alt.length).toBeGreaterThan(10);
    }
    const captions = await page.locator('.panel figcaption').allTextContents();
    expect(captions.slice(0, 4).map((c) => c.split(' (')[0])).toEqual([
      'image',
      'ground truth',
      'anomaly heatmap',
      expect.stringMatching(/^overlay, score /),
    ]);
    expect(await page.locator('.example a[href^="../predictions/"]').count()).toBe(6);
    mkdirSync(OUT, { recursive: true });
    await page.screenshot({ path: join(OUT, 'report.png'), fullPage: true });
    expect(h.errors).toEqual([]);
  });

  it('writes training-curve.svg as a standalone, well-formed SVG document', async () => {
    const { page } = h;
    const ok = await page.evaluate(async () => {
      const text = await (await fetch('training-curve.svg')).text();
      const doc = new DOMParser().parseFromString(text, 'image/svg+xml');
      return {
        wellFormed: !doc.querySelector('parsererror'),
        charts: doc.querySelectorAll('svg svg').length,
      };
    });
    expect(ok).toEqual({ wellFormed: true, charts: 3 });
  });

  it('has no raster-font chart code left', () => {
    expect(existsSync('src/report/raster.ts')).toBe(false);
    for (const f of readdirSync('src/report')) {
      const src = readFileSync(join('src/report', f), 'utf8');
      expect(src, f).not.toMatch(/GLYPHS|3×5|lineChart\(title|stackRasters|class Raster/);
    }
    expect(existsSync(join(OUT, 'report.png'))).toBe(true);
  });
});
