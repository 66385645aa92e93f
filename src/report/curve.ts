/**
 * The training curve on disk (Node): training-curve.svg, rewritten atomically after every epoch from the
 * run's train.jsonl (the per-step losses of every part of a resumed run) and the trainer's history and
 * test evaluations; and the same charts for a report, found from a checkpoint's folder. The drawing is
 * platform-neutral (training-chart.ts).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { TestEvalRecord } from '../eval/evaluate.js';
import { writeFileAtomic } from '../platform/node.js';
import type { EpochInfo } from '../train/trainer.js';
import type { ReportChart } from './eval-charts.js';
import { parseTrainLog, type TrainingData, trainingCharts, trainingCurveSvg } from './training-chart.js';

export { testMetricSeries } from './training-chart.js';

/** train.jsonl's steps, epochs and test evaluations, or null when there is no such file. */
export function readTrainLog(logPath: string): TrainingData | null {
  if (!existsSync(logPath)) return null;
  return parseTrainLog(readFileSync(logPath, 'utf8'));
}

/**
 * Write the training curve (SVG) from the log's steps; `history` and `testEvals` are the trainer's own
 * (authoritative for the current run; the log may hold epochs of an abandoned later part).
 */
export function writeCurveSvg(
  path: string,
  logPath: string,
  history: EpochInfo[],
  testEvals: TestEvalRecord[] = [],
): void {
  const last = history.at(-1)?.epoch ?? 0;
  const steps = (readTrainLog(logPath)?.steps ?? []).filter((s) => s.epoch <= last);
  writeFileAtomic(path, trainingCurveSvg({ steps, history, testEvals }));
}

/**
 * The training charts for the report of `checkpoint`: from the train.jsonl beside it (a run folder), else
 * from the epoch history stored in the checkpoint; [] when neither is there.
 */
export function trainingChartsFor(checkpoint: string, storedHistory: unknown): ReportChart[] {
  const log = readTrainLog(join(dirname(checkpoint), 'train.jsonl'));
  const history = log?.history.length
    ? log.history
    : Array.isArray(storedHistory)
      ? (storedHistory as EpochInfo[])
      : [];
  const data: TrainingData = { steps: log?.steps ?? [], history, testEvals: log?.testEvals ?? [] };
  const source = log ? 'train.jsonl beside the checkpoint' : 'the history stored in the checkpoint';
  return trainingCharts(data).map((c) => ({ svg: c.svg, caption: `${c.title} (from ${source}).` }));
}
