/** The training-curve image (Node: PNG through pngjs), rewritten atomically after every epoch. */
import { writeFileAtomic } from '../platform/node.js';
import { encodePng } from '../platform/png.js';
import type { EpochInfo } from '../train/trainer.js';
import { lineChart, type Raster } from './raster.js';

export function rasterPng(r: Raster): Uint8Array {
  return encodePng(r.width, r.height, r.data, 4);
}

export function writeCurvePng(path: string, history: EpochInfo[]): void {
  const chart = lineChart('rd++ training', [
    { name: 'loss', values: history.map((h) => h.loss), color: [31, 119, 180] },
    { name: 'kd', values: history.map((h) => h.kd), color: [255, 127, 14] },
  ]);
  writeFileAtomic(path, rasterPng(chart));
}
