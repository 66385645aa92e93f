/**
 * `rdpp predict` on Node: list the input files, check the output folder, and run the pipeline's
 * prediction (src/pipeline/predict.ts) with the files read from disk, the overlays and tables written
 * atomically, and a progress line on stderr.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { UsageError } from '../pipeline/errors.js';
import { type PredictResult, type PredictRunOptions, predictImages } from '../pipeline/predict.js';
import { makeDir } from '../platform/fs-errors.js';
import { writeFileAtomic } from '../platform/node.js';
import { encodePng } from '../platform/png.js';
import { IMAGE_EXTENSIONS, isImageName, unreadableImageExtension } from '../train/data/index.js';
import { loadModel, type ModelChoice } from './model-load.js';
import { formatDuration, Progress } from './progress.js';

export { type Prediction, type PredictResult, predictionsCsv } from '../pipeline/predict.js';

export interface PredictOptions extends ModelChoice, Omit<PredictRunOptions, 'files'> {
  checkpoint: string;
  input: string;
  out: string;
  log?: (line: string) => void;
}

/**
 * The files of a folder to score (sorted by name; not recursive), or the one file given. Files of image
 * formats we cannot read are kept: each gets an error row naming why, never a silent skip. `ignored`
 * names the other files (not images); subfolders are not listed.
 */
export function listInputs(input: string): { files: string[]; ignored: string[] } {
  if (!existsSync(input)) throw new UsageError(`--input ${input}: no such file or folder`);
  if (!statSync(input).isDirectory()) return { files: [resolve(input)], ignored: [] };
  const names = readdirSync(input)
    .filter((n) => !n.startsWith('.') && !statSync(join(input, n)).isDirectory())
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const scored = (n: string) => isImageName(n) || unreadableImageExtension(n) !== null;
  return {
    files: names.filter(scored).map((n) => resolve(input, n)),
    ignored: names.filter((n) => !scored(n)),
  };
}

export async function runPredict(o: PredictOptions): Promise<PredictResult> {
  const log = o.log ?? ((l: string) => console.error(l));
  const { files, ignored } = listInputs(o.input);
  if (resolve(o.out) === resolve(o.input))
    throw new UsageError(
      `--out ${o.out} is the --input folder: the overlays would mix with the images (and be scored by the next predict). Choose another folder, e.g. ${join(o.input, 'predictions')}.`,
    );
  if (files.length === 0 && ignored.length === 0)
    throw new UsageError(`--input ${o.input}: no files found (${IMAGE_EXTENSIONS.join(' ')})`);
  if (ignored.length > 0)
    log(
      `note: ${ignored.length} file(s) of ${o.input} are not images (${IMAGE_EXTENSIONS.join(' ')}) and are not scored: ${ignored.slice(0, 20).join(', ')}${ignored.length > 20 ? ', …' : ''}`,
    );
  const outDir = resolve(o.out);
  const progress = new Progress();
  const { checkpoint: _c, input: _i, out: _o, log: _l, teacher, imageSize, ...run } = o;
  return predictImages(
    { ...run, files },
    {
      loadModel: (l) => loadModel(o.checkpoint, { teacher, imageSize, log: l }),
      readBytes: (path) => new Uint8Array(readFileSync(path)),
      openOutput: () => makeDir(outDir),
      write: (name, data) => writeFileAtomic(join(outDir, name), data),
      encodePng,
      progress: (done, total, seconds) =>
        progress.update(
          `predict ${done}/${total} images, ${(done / seconds).toFixed(1)} img/s, ETA ${formatDuration((seconds / done) * (total - done))}`,
        ),
      progressDone: () => progress.done(),
      log,
    },
  );
}
