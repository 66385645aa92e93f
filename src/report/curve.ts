/**
 * The training-curve image (Node: PNG through pngjs), rewritten atomically after every epoch: loss and
 * L_KD per epoch, and with `train --eval-every` a second panel with the test-set metrics at the epochs
 * where they were measured (never used for model selection unless --select-on test).
 */
import type { TestEvalRecord } from '../eval/evaluate.js';
import { writeFileAtomic } from '../platform/node.js';
import { encodePng } from '../platform/png.js';
import type { EpochInfo } from '../train/trainer.js';
import { lineChart, type Raster, stackRasters } from './raster.js';

export function rasterPng(r: Raster): Uint8Array {
  return encodePng(r.width, r.height, r.data, 4);
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

export function writeCurvePng(path: string, history: EpochInfo[], testEvals: TestEvalRecord[] = []): void {
  const chart = lineChart('rd++ training', [
    { name: 'loss', values: history.map((h) => h.loss), color: [31, 119, 180] },
    { name: 'kd', values: history.map((h) => h.kd), color: [255, 127, 14] },
  ]);
  if (testEvals.length === 0) {
    writeFileAtomic(path, rasterPng(chart));
    return;
  }
  const n = history.length;
  const test = lineChart('test set', [
    { name: 'image auroc', values: testMetricSeries(n, testEvals, 'imageAuroc'), color: [44, 160, 44] },
    { name: 'pixel auroc', values: testMetricSeries(n, testEvals, 'pixelAuroc'), color: [214, 39, 40] },
    { name: 'aupro off.', values: testMetricSeries(n, testEvals, 'auproOfficial'), color: [148, 103, 189] },
  ]);
  writeFileAtomic(path, rasterPng(stackRasters([chart, test])));
}
