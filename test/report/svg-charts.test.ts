/**
 * The SVG chart functions of the report and the browser app: nice and log ticks, tick labels, escaping of
 * text, gaps and log scales in line charts, histogram binning with the threshold marker, bars, the
 * training curve from a train.jsonl, the examples' selection, and the report page around them.
 */
import { describe, expect, it } from 'vitest';
import { barChart, binCounts, binEdges, histogram, lineChart } from '../../src/report/chart.js';
import { scoreHistogram, thinCurve } from '../../src/report/eval-charts.js';
import { displaySize, predictOverlays, selectExamples } from '../../src/report/examples.js';
import { renderReport } from '../../src/report/html.js';
import { escapeXml, formatTick, formatValue, logTicks, makeScale, niceTicks } from '../../src/report/svg.js';
import {
  decimateSteps,
  parseTrainLog,
  testMetricSeries,
  trainingCurveSvg,
} from '../../src/report/training-chart.js';

describe('ticks and scales', () => {
  it('picks 1-2-5 steps that cover the range', () => {
    expect(niceTicks(0, 1)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(niceTicks(0.13, 0.87)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(niceTicks(3, 97, 4)).toEqual([0, 50, 100]);
    expect(niceTicks(-0.3, 0.3)).toEqual([-0.4, -0.2, 0, 0.2, 0.4]);
    // float noise is rounded away
    expect(niceTicks(0.1, 0.7, 6)).toContain(0.3);
    // a flat series still gets an axis around it
    const flat = niceTicks(2, 2);
    expect(flat[0]).toBeLessThan(2);
    expect(flat.at(-1)).toBeGreaterThan(2);
  });

  it('uses decades on a log axis, and 1-2-5 inside a single decade', () => {
    expect(logTicks(0.002, 0.9)).toEqual([0.001, 0.01, 0.1, 1]);
    expect(logTicks(1e-5, 3)).toEqual([1e-5, 1e-4, 0.001, 0.01, 0.1, 1, 10]);
    expect(logTicks(0.3, 0.8)).toEqual([0.1, 0.2, 0.5, 1]);
    const s = makeScale([0.01, 1], 100, 0, { log: true });
    expect(s.log).toBe(true);
    expect(s(0.01)).toBeCloseTo(100);
    expect(s(0.1)).toBeCloseTo(50);
    expect(s(1)).toBeCloseTo(0);
    // a linear scale widens to its ticks; a fixed one keeps its extent
    expect(makeScale([0.13, 0.87], 0, 100).domain).toEqual([0, 1]);
    const fixed = makeScale([0, 0.5], 0, 100, { fixed: true });
    expect(fixed.domain).toEqual([0, 0.5]);
    expect(fixed.ticks.at(-1)).toBeLessThanOrEqual(0.5);
  });

  it('formats tick labels briefly', () => {
    expect(formatTick(0)).toBe('0');
    expect(formatTick(0.25)).toBe('0.25');
    expect(formatTick(1e-4)).toBe('1e-4');
    expect(formatTick(2.5e-5)).toBe('2.5e-5');
    expect(formatTick(200000)).toBe('2e5');
    expect(formatTick(1234.5678)).toBe('1235');
    // values keep their digits: a score just below a threshold of 0.2 does not read as 0.2
    expect(formatValue(0.199967)).toBe('0.19997');
    expect(formatValue(0.2)).toBe('0.20000');
    expect(formatValue(0.9, 4)).toBe('0.9000');
    expect(formatValue(2.5e-5)).toBe('2.5000e-5');
    expect(formatValue(Number.NaN)).toBe('n/a');
  });
});

describe('charts', () => {
  it('escapes every piece of text', () => {
    expect(escapeXml(`<a href="x">&'`)).toBe('&lt;a href=&quot;x&quot;&gt;&amp;&#39;');
    const svg = lineChart({
      title: 'A <b> & "c"',
      desc: "it's <desc>",
      xLabel: 'x <1>',
      yLabel: 'y & z',
      series: [{ name: '<script>alert(1)</script>', points: [{ x: 0, y: 1, tip: '<tip>' }], markers: true }],
    });
    expect(svg).not.toContain('<script>');
    expect(svg).not.toContain('<b>');
    expect(svg).toContain('&lt;script&gt;');
    expect(svg).toContain('<title id="a-b-c-title">A &lt;b&gt; &amp; &quot;c&quot;</title>');
    expect(svg).toContain('&lt;tip&gt;');
    // well-formed: every opened element is closed (checked by the browser test's DOM parse too)
    expect(svg.match(/<svg /g)?.length).toBe((svg.match(/<\/svg>/g) ?? []).length);
  });

  it('draws accessible line charts with axes, a legend, gaps and a log scale', () => {
    const svg = lineChart({
      id: 'c1',
      title: 'Losses',
      desc: 'two series',
      xLabel: 'step',
      yLabel: 'loss',
      logY: true,
      series: [
        { name: 'kd', points: [1, 2, 3, 4].map((x) => ({ x, y: 0.5 / x })) },
        // NaN and a non-positive value on a log axis are gaps: two pieces
        { name: 'proj', points: [5e-4, Number.NaN, 2e-3, 0, 1e-3].map((y, x) => ({ x, y })) },
      ],
    });
    expect(svg).toMatch(/^<svg [^>]*role="img"[^>]*aria-labelledby="c1-title c1-desc"/);
    expect(svg).toContain('<desc id="c1-desc">two series</desc>');
    expect(svg).toContain('>loss (log scale)</text>');
    expect(svg).toContain('>step</text>');
    expect(svg).toMatch(/<g class="legend">.*>kd<\/text>.*>proj<\/text>/);
    expect(svg).toContain('>1e-4</text>');
    const proj = /<path class="line" d="([^"]+)"[^>]*><title>proj<\/title>/.exec(svg)![1]!;
    expect(proj.match(/M/g)).toHaveLength(3);
    // the lone points between gaps get dots
    expect(svg.match(/<circle [^>]*r="2.5"/g)).toHaveLength(3);
    expect(svg).not.toContain('NaN');
  });

  it('bins histograms and draws the threshold marker', () => {
    const edges = binEdges(0, 1, 4);
    expect(edges).toEqual([0, 0.25, 0.5, 0.75, 1]);
    expect(binCounts([0, 0.1, 0.25, 0.99, 1, 2, Number.NaN], edges)).toEqual([2, 1, 0, 2]);
    expect(binEdges(3, 3, 2)[0]).toBeLessThan(3);
    const svg = histogram({
      title: 'Scores',
      desc: 'd',
      xLabel: 'score',
      groups: [
        { name: 'good', values: [0.1, 0.2, 0.2, 0.3] },
        { name: 'crack', values: [0.6, 0.9] },
      ],
      markers: [{ x: 0.5, label: 'threshold 0.5', className: 'threshold' }],
    });
    expect(svg).toContain('class="marker threshold"');
    expect(svg).toMatch(/<title>good: 2 images with score [^<]+<\/title>/);
    expect(svg).toMatch(/<title>crack: 1 image with score /);
    // counts: integer ticks only
    expect(svg).not.toMatch(/>0\.5<\/text><\/g>/);
  });

  it('scores good vs defect types with the threshold and a summary of the split', () => {
    const samples = [
      { defectType: 'good', label: 0 as const },
      { defectType: 'good', label: 0 as const },
      { defectType: 'crack', label: 1 as const },
      { defectType: 'cut', label: 1 as const },
    ];
    const h = scoreHistogram(samples, [0.1, 0.6, 0.9, 0.4], { value: 0.5 });
    expect(h.svg).toContain('>good (2)</text>');
    expect(h.svg).toContain('>crack (1)</text>');
    expect(h.svg).toContain('class="marker threshold"');
    expect(h.caption).toContain('1 of 2 good image(s) above it');
    expect(h.caption).toContain('1 of 2 anomalous image(s) at or below it');
    expect(scoreHistogram(samples, [1, 2, 3, 4], null).svg).not.toContain('threshold');
  });

  it('draws grouped bars with n/a for missing values', () => {
    const svg = barChart({
      title: 'Per type',
      desc: 'd',
      yLabel: 'metric',
      yExtent: [0, 1],
      categories: ['crack', 'a-very-long-defect-type-name', 'c', 'd', 'e', 'f'],
      series: [
        { name: 'image AUROC', values: [0.9, Number.NaN] },
        { name: 'AUPRO', values: [0.7, 0.5] },
      ],
    });
    expect(svg.match(/<rect x=[^>]*><title>/g)).toHaveLength(3);
    expect(svg).toContain('<title>crack, image AUROC: 0.9000</title>');
    expect(svg).toContain('>n/a</text>');
    expect(svg).toContain('rotate(-35');
  });

  it('thins long curves keeping the last point', () => {
    const xs = Array.from({ length: 10 }, (_, i) => i);
    const t = thinCurve(xs, xs, 4);
    expect(t[0]).toEqual({ x: 0, y: 0 });
    expect(t.at(-1)).toEqual({ x: 9, y: 9 });
    expect(t.length).toBeLessThanOrEqual(5);
  });
});

describe('training curve', () => {
  const log = [
    '{"event":"start"}',
    ...[1, 2, 3, 4].map(
      (s) =>
        `{"event":"step","epoch":${s <= 2 ? 1 : 2},"globalStep":${s},"loss":${1 / s},"kd":${0.9 / s},"proj":${0.001 / s}}`,
    ),
    '{"event":"epoch","epoch":1,"loss":0.7,"kd":0.6,"proj":0.001,"score":-0.5,"best":true,"seconds":1}',
    '{"event":"test-eval","epoch":1,"imageAuroc":0.8,"pixelAuroc":0.9,"auproStandard":0.7,"auproOfficial":0.75,"seconds":1}',
    // a resumed part repeats step 4: the last record wins
    '{"event":"step","epoch":2,"globalStep":4,"loss":0.2,"kd":0.19,"proj":0.0002}',
    '{"event":"epoch","epoch":2,"loss":0.3,"kd":0.25,"proj":0.0003,"score":-0.4,"best":true,"seconds":1}',
    '{"event":"step","epoch":2,"glob', // a torn last line
  ].join('\n');

  it('reads steps, epochs and test evaluations from train.jsonl', () => {
    const d = parseTrainLog(log);
    expect(d.steps.map((s) => s.step)).toEqual([1, 2, 3, 4]);
    expect(d.steps[3]!.loss).toBe(0.2);
    expect(d.history.map((h) => h.epoch)).toEqual([1, 2]);
    expect(d.testEvals).toHaveLength(1);
    expect(testMetricSeries(2, d.testEvals, 'imageAuroc')).toEqual([0.8, Number.NaN]);
  });

  it('draws losses (log scale), the selection score and the test metrics in one SVG', () => {
    const svg = trainingCurveSvg(parseTrainLog(log));
    expect(svg.startsWith('<?xml')).toBe(true);
    for (const id of ['training-loss', 'selection-score', 'test-metrics'])
      expect(svg).toContain(`id="${id}"`);
    expect(svg).toContain('loss (log scale)');
    expect(svg).toContain('>L_KD</text>');
    expect(svg).toContain('>L_proj</text>');
    expect(svg).toContain('best epoch 2');
    // the nested charts are stacked at their offsets
    expect(svg).toMatch(/<svg x="0" y="360" /);
    expect(trainingCurveSvg(parseTrainLog(log), { logY: false })).not.toContain('log scale');
  });

  it('averages long runs into a bounded number of points', () => {
    const steps = Array.from({ length: 1000 }, (_, i) => ({
      step: i + 1,
      epoch: 1,
      loss: i,
      kd: 1,
      proj: 1,
    }));
    const d = decimateSteps(steps, 100);
    expect(d).toHaveLength(100);
    expect(d[0]!.loss).toBeCloseTo(4.5);
  });
});

describe('examples and report', () => {
  it('selects the best detections, worst false negatives and worst false positives', () => {
    const labels: (0 | 1)[] = [0, 0, 0, 1, 1, 1];
    const scores = [0.1, 0.5, 0.3, 0.9, 0.2, 0.7];
    const g = selectExamples(labels, scores, 2);
    expect(g.map((x) => x.id)).toEqual(['best-detections', 'false-negatives', 'false-positives']);
    expect(g[0]!.ids).toEqual([3, 5]);
    expect(g[1]!.ids).toEqual([4, 5]);
    expect(g[2]!.ids).toEqual([1, 2]);
    expect(displaySize(64, 48)).toEqual({ width: 256, height: 192, scaled: true });
    expect(displaySize(100, 100)).toEqual({ width: 300, height: 300, scaled: true });
    expect(displaySize(400, 300)).toEqual({ width: 400, height: 300, scaled: false });
    const links = predictOverlays(
      '{"path":"/d/a.png","overlay":"a_overlay.png"}\nbad\n{"path":"/d/b.png"}\n',
    );
    expect([...links]).toEqual([['/d/a.png', 'a_overlay.png']]);
  });

  it('puts charts inline and examples as HTML with captions', () => {
    const html = renderReport({
      title: 'T <1>',
      subtitle: 's',
      summary: [['Image AUROC', '0.9000']],
      histogram: { svg: '<svg id="h"></svg>', caption: 'hist' },
      curves: [{ svg: '<svg id="r"></svg>', caption: 'roc' }],
      byType: null,
      training: [{ svg: '<svg id="t"></svg>', caption: 'train' }],
      examples: [
        {
          id: 'best-detections',
          heading: 'Best detections',
          note: 'n',
          items: [
            {
              title: 'crack / 000.png: score 1.2',
              verdict: 'fail',
              panels: [
                { file: 'examples/00-a.png', label: 'image', alt: 'alt & "x"', width: 64, height: 64 },
              ],
              links: [{ href: '../pred/000_overlay.png', label: 'full-resolution overlay' }],
            },
          ],
        },
      ],
      notes: [],
    });
    expect(html).toContain('<title>T &lt;1&gt;</title>');
    expect(html).toContain('<svg id="h"></svg><figcaption>hist</figcaption>');
    expect(html).toContain('<h2 id="training">Training</h2>');
    expect(html).toContain(
      '<img src="examples/00-a.png" alt="alt &amp; &quot;x&quot;" width="256" height="256" class="pixelated"',
    );
    expect(html).toContain('<span class="verdict fail">FAIL</span>');
    expect(html).toContain('<a href="../pred/000_overlay.png">full-resolution overlay</a>');
  });
});
