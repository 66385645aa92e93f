/**
 * A report folder on disk for the pipeline's ReportFolder (src/pipeline/test-report.ts): the folder and
 * its examples/ subfolder are created, every file is written atomically, PNGs are encoded by pngjs.
 */
import { join, resolve } from 'node:path';
import type { ReportFolder } from '../pipeline/test-report.js';
import { makeDir } from './fs-errors.js';
import { writeFileAtomic } from './node.js';
import { encodePng } from './png.js';

export function nodeReportFolder(dir: string): ReportFolder & { dir: string } {
  const outDir = resolve(dir);
  makeDir(join(outDir, 'examples'));
  return {
    dir: outDir,
    write: (name, data) => writeFileAtomic(join(outDir, name), data),
    encodePng: (width, height, data, channels) => encodePng(width, height, data, channels),
  };
}
