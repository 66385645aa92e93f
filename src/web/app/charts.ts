/**
 * The browser app's charts, drawn with the report's SVG chart functions so both look and read the same:
 * the training loss per step (redrawn after every step) and the histogram of the inspected images'
 * scores with the slider's threshold and the calibrated one (redrawn as the slider moves). The markup
 * is built from numbers and escaped text only, so setting it as innerHTML is safe.
 */
import { histogram, lineChart } from '../../report/chart.js';
import { THRESHOLD_COLOR } from '../../report/eval-charts.js';
import { formatValue } from '../../report/svg.js';

/** At most this many points are drawn (bucket means), so a long run stays cheap to redraw. */
const MAX_POINTS = 600;

export function lossChartSvg(losses: number[]): string {
  const k = Math.max(1, Math.ceil(losses.length / MAX_POINTS));
  const points: { x: number; y: number }[] = [];
  for (let i = 0; i < losses.length; i += k) {
    const part = losses.slice(i, i + k);
    points.push({ x: i + part.length, y: part.reduce((a, v) => a + v, 0) / part.length });
  }
  const last = losses.at(-1);
  return lineChart({
    id: 'app-loss',
    title: 'Training loss per step',
    desc: losses.length
      ? `${losses.length} steps: first ${formatValue(losses[0]!)}, last ${formatValue(last!)}, lowest ${formatValue(Math.min(...losses))}.`
      : 'No steps yet.',
    xLabel: 'step',
    xIntegers: true,
    yLabel: 'loss',
    series: [{ name: 'total loss', points, markers: points.length <= 30 }],
    width: 600,
    height: 240,
  });
}

export function renderLossChart(el: Element, losses: number[]): void {
  el.innerHTML = lossChartSvg(losses);
}

/** Scores of the inspected images, with the slider's threshold (solid) and the calibrated one (dashed). */
export function scoreHistogramSvg(
  scores: number[],
  threshold: number | null,
  calibrated: number | null,
): string {
  const markers = [];
  if (threshold !== null)
    markers.push({
      x: threshold,
      label: `threshold ${formatValue(threshold, 4)}`,
      color: THRESHOLD_COLOR,
      className: 'threshold',
    });
  if (calibrated !== null && calibrated !== threshold)
    markers.push({
      x: calibrated,
      label: `calibrated ${formatValue(calibrated, 4)}`,
      color: '#57606a',
      dash: true,
      className: 'calibrated',
    });
  const fails = threshold === null ? 0 : scores.filter((s) => s > threshold).length;
  return histogram({
    id: 'app-score-histogram',
    title: 'Scores of the inspected images',
    desc: scores.length
      ? `${scores.length} image(s)${threshold === null ? '' : `: ${fails} above the threshold ${formatValue(threshold)} (fail), ${scores.length - fails} at or below it (pass)`}.`
      : 'No images inspected yet.',
    xLabel: 'image anomaly score',
    groups: [{ name: 'inspected images', values: scores, color: '#1f77b4' }],
    markers,
    width: 600,
    height: 240,
  });
}

export function renderScoreHistogram(
  el: Element,
  scores: number[],
  threshold: number | null,
  calibrated: number | null,
): void {
  el.innerHTML = scoreHistogramSvg(scores, threshold, calibrated);
}
