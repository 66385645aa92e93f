/**
 * The training curve as SVG charts: the loss parts per optimisation step (total, L_KD and L_proj, on a
 * log axis by default because L_proj is orders of magnitude below L_KD), the per-epoch model-selection
 * score with the best epoch marked, and with `train --eval-every` the test-set metrics at the epochs
 * where they were measured (never used for selection unless --select-on test). `trainingCurveSvg` stacks
 * them into one standalone SVG document (training-curve.svg); `trainingCharts` gives them one by one for
 * the HTML report. `parseTrainLog` reads what they need back from train.jsonl. Platform-neutral.
 */
import type { TestEvalRecord } from '../eval/evaluate.js';
import type { EpochInfo } from '../train/trainer.js';
import { type LineSeries, lineChart } from './chart.js';
import { escapeXml, FONT_STACK, formatValue } from './svg.js';

/** One optimisation step's losses (the 'step' events of train.jsonl). */
export interface StepPoint {
  step: number;
  epoch: number;
  loss: number;
  kd: number;
  proj: number;
}

export interface TrainingData {
  steps: StepPoint[];
  history: EpochInfo[];
  testEvals: TestEvalRecord[];
}

/** What train.jsonl holds: the charts' data, and the 'start' records (configuration, precision) in order. */
export interface TrainLog extends TrainingData {
  /** one per part of the run (a resumed run has several) */
  starts: Record<string, unknown>[];
}

export interface Chart {
  id: string;
  title: string;
  svg: string;
}

/** A per-epoch series of one test metric: NaN at epochs without an evaluation (or without a value). */
export function testMetricSeries(
  epochs: number,
  evals: TestEvalRecord[],
  metric: 'imageAuroc' | 'pixelAuroc' | 'auproStandard' | 'auproOfficial',
): number[] {
  const values = new Array<number>(epochs).fill(Number.NaN);
  for (const e of evals) if (e.epoch >= 1 && e.epoch <= epochs) values[e.epoch - 1] = e[metric] ?? Number.NaN;
  return values;
}

/**
 * At most `max` points: consecutive steps averaged in equal buckets (keeps a long run's SVG small and
 * smooths the per-batch noise the same way for every part).
 */
export function decimateSteps(steps: StepPoint[], max: number): StepPoint[] {
  if (steps.length <= max) return steps;
  const out: StepPoint[] = [];
  for (let b = 0; b < max; b++) {
    const from = Math.floor((b * steps.length) / max);
    const to = Math.floor(((b + 1) * steps.length) / max);
    const part = steps.slice(from, to);
    const mean = (f: (s: StepPoint) => number) => part.reduce((a, s) => a + f(s), 0) / part.length;
    out.push({
      step: mean((s) => s.step),
      epoch: part.at(-1)!.epoch,
      loss: mean((s) => s.loss),
      kd: mean((s) => s.kd),
      proj: mean((s) => s.proj),
    });
  }
  return out;
}

/**
 * Steps, epochs, test evaluations and start records from train.jsonl text (a resumed run's log holds the
 * earlier parts: the last record per step / epoch wins; torn or foreign lines are skipped).
 */
export function parseTrainLog(text: string): TrainLog {
  const steps = new Map<number, StepPoint>();
  const epochs = new Map<number, EpochInfo>();
  const evals = new Map<number, TestEvalRecord>();
  const starts: Record<string, unknown>[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    let r: Record<string, unknown>;
    try {
      r = JSON.parse(line) as Record<string, unknown>;
    } catch {
      continue; // a torn last line of an interrupted run
    }
    const n = (k: string) => (typeof r[k] === 'number' ? (r[k] as number) : Number.NaN);
    if (r.event === 'step' && Number.isInteger(r.globalStep))
      steps.set(n('globalStep'), {
        step: n('globalStep'),
        epoch: n('epoch'),
        loss: n('loss'),
        kd: n('kd'),
        proj: n('proj'),
      });
    else if (r.event === 'epoch' && Number.isInteger(r.epoch)) {
      const { event: _e, time: _t, ...info } = r;
      epochs.set(n('epoch'), info as unknown as EpochInfo);
    } else if (r.event === 'test-eval' && Number.isInteger(r.epoch)) {
      const { event: _e, time: _t, ...rec } = r;
      evals.set(n('epoch'), rec as unknown as TestEvalRecord);
    } else if (r.event === 'start') starts.push(r);
  }
  const sorted = <T>(m: Map<number, T>) => [...m.entries()].sort((a, b) => a[0] - b[0]).map((e) => e[1]);
  return { steps: sorted(steps), history: sorted(epochs), testEvals: sorted(evals), starts };
}

/** Log scale when every value is positive and they span more than a factor 20 (L_proj ≪ L_KD). */
function wantsLog(values: number[]): boolean {
  const v = values.filter(Number.isFinite);
  if (v.length === 0 || v.some((x) => x <= 0)) return false;
  return Math.max(...v) / Math.min(...v) > 20;
}

/** The training charts, in order: losses, selection score, test metrics (those with data). */
export function trainingCharts(d: TrainingData, opts: { logY?: boolean; width?: number } = {}): Chart[] {
  const width = opts.width ?? 720;
  const charts: Chart[] = [];
  // per-step losses; a log without step events (an old run) falls back to the epoch means
  const perStep = d.steps.length > 0;
  const pts: StepPoint[] = perStep
    ? decimateSteps(d.steps, 800)
    : d.history.map((h) => ({ step: h.epoch, epoch: h.epoch, loss: h.loss, kd: h.kd, proj: h.proj }));
  if (pts.length > 0) {
    const parts: [string, keyof StepPoint][] = [
      ['total loss', 'loss'],
      ['L_KD', 'kd'],
      ['L_proj', 'proj'],
    ];
    const series: LineSeries[] = parts.map(([name, k]) => ({
      name,
      points: pts.map((p) => ({ x: p.step, y: p[k] })),
      tip: `${name}: first ${formatValue(pts[0]![k])}, last ${formatValue(pts.at(-1)![k])}`,
      markers: pts.length <= 30,
    }));
    const logY = opts.logY ?? wantsLog(pts.flatMap((p) => [p.loss, p.kd, p.proj]));
    const last = pts.at(-1)!;
    charts.push({
      id: 'training-loss',
      title: perStep ? 'Training loss per step' : 'Training loss per epoch',
      svg: lineChart({
        id: 'training-loss',
        title: perStep ? 'Training loss per step' : 'Training loss per epoch (mean)',
        desc:
          `Total loss (L_KD + 0.2·L_proj), L_KD and L_proj over ${perStep ? `${d.steps.length} steps${d.steps.length > pts.length ? ` (averaged into ${pts.length} points)` : ''}` : `${pts.length} epochs`}; ` +
          `last: total ${formatValue(last.loss)}, L_KD ${formatValue(last.kd)}, L_proj ${formatValue(last.proj)}.`,
        xLabel: perStep ? 'step' : 'epoch',
        xIntegers: true,
        yLabel: 'loss',
        series,
        logY,
        width,
      }),
    });
  }
  if (d.history.length > 0) {
    const best = d.history.filter((h) => h.best).at(-1);
    charts.push({
      id: 'selection-score',
      title: 'Model-selection score per epoch',
      svg: lineChart({
        id: 'selection-score',
        title: 'Model-selection score per epoch',
        desc: `Selection score (higher is better) for ${d.history.length} epochs${best ? `; best epoch ${best.epoch} with ${formatValue(best.score)} (saved as best.safetensors)` : ''}.`,
        xLabel: 'epoch',
        xIntegers: true,
        yLabel: 'selection score (higher is better)',
        series: [
          {
            name: 'selection score',
            points: d.history.map((h) => ({
              x: h.epoch,
              y: h.score,
              tip: `epoch ${h.epoch}: selection score ${formatValue(h.score)}${h.best ? ' (best so far)' : ''}`,
            })),
            markers: d.history.length <= 60,
            color: '#2ca02c',
          },
        ],
        markers: best
          ? [{ x: best.epoch, label: `best epoch ${best.epoch}`, dash: true, color: '#57606a' }]
          : [],
        width,
        height: 300,
      }),
    });
  }
  if (d.testEvals.length > 0) {
    const metrics: [string, 'imageAuroc' | 'pixelAuroc' | 'auproStandard' | 'auproOfficial', string][] = [
      ['image AUROC', 'imageAuroc', '#1f77b4'],
      ['pixel AUROC', 'pixelAuroc', '#d62728'],
      ['AUPRO (standard)', 'auproStandard', '#9467bd'],
      ['AUPRO (official)', 'auproOfficial', '#8c564b'],
    ];
    charts.push({
      id: 'test-metrics',
      title: 'Test-set metrics during training',
      svg: lineChart({
        id: 'test-metrics',
        title: 'Test-set metrics during training',
        desc: `Test-set metrics measured at ${d.testEvals.length} epoch(s) with --eval-every (not used for model selection).`,
        xLabel: 'epoch',
        xIntegers: true,
        yLabel: 'metric',
        series: metrics
          .map(([name, k, color]) => ({
            name,
            color,
            markers: true,
            points: d.testEvals
              .filter((e) => e[k] !== null)
              .map((e) => ({
                x: e.epoch,
                y: e[k]!,
                tip: `epoch ${e.epoch}: ${name} ${formatValue(e[k]!, 4)}`,
              })),
          }))
          .filter((s) => s.points.length > 0),
        width,
        height: 300,
      }),
    });
  }
  return charts;
}

/**
 * One standalone SVG document with the training charts one below the other (nested <svg> elements at
 * their offsets), for training-curve.svg.
 */
export function trainingCurveSvg(d: TrainingData, opts: { logY?: boolean } = {}): string {
  const charts = trainingCharts(d, opts);
  const width = 720;
  let y = 0;
  const inner: string[] = [];
  for (const c of charts) {
    const h = Number(/viewBox="0 0 [\d.]+ ([\d.]+)"/.exec(c.svg)?.[1] ?? 360);
    inner.push(c.svg.replace('<svg ', `<svg x="0" y="${y}" `));
    y += h;
  }
  const title = 'RD++ training curve';
  const desc = charts.length ? charts.map((c) => c.title).join('; ') : 'No training data yet.';
  return (
    `<?xml version="1.0" encoding="UTF-8"?>\n` +
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${Math.max(y, 40)}" width="${width}" height="${Math.max(y, 40)}" role="img" aria-labelledby="training-curve-title training-curve-desc" font-family="${escapeXml(FONT_STACK)}">` +
    `<title id="training-curve-title">${title}</title><desc id="training-curve-desc">${escapeXml(desc)}</desc>` +
    `${inner.join('\n')}</svg>\n`
  );
}
