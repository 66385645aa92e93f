/** The training-curve image (Node: PNG through pngjs), rewritten atomically after every epoch. */
import { PNG } from 'pngjs';
import { writeFileAtomic } from '../platform/node.js';
import type { EpochInfo } from '../train/trainer.js';
import { lineChart, type Raster } from './raster.js';

export function encodePng(r: Raster): Uint8Array {
  const png = new PNG({ width: r.width, height: r.height });
  png.data.set(r.data);
  return PNG.sync.write(png);
}

export function writeCurvePng(path: string, history: EpochInfo[]): void {
  const chart = lineChart('rd++ training', [
    { name: 'loss', values: history.map((h) => h.loss), color: [31, 119, 180] },
    { name: 'kd', values: history.map((h) => h.kd), color: [255, 127, 14] },
  ]);
  writeFileAtomic(path, encodePng(chart));
}
