/**
 * `rdpp test` on Node (also the end of `rdpp train`): the evaluation itself is the pipeline's
 * (src/pipeline/test-run.ts); this gives it the files (dataset, checkpoint, teacher, report folder, the
 * calibrated checkpoint beside the original) and a progress line on stderr.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import type { EvalMetrics } from '../eval/evaluate.js';
import type { Decision } from '../eval/threshold.js';
import { UsageError } from '../pipeline/errors.js';
import { calibratedPath } from '../pipeline/model.js';
import { runTestOn, type TestRunOptions } from '../pipeline/test-run.js';
import { nodeFileSystem } from '../platform/files.js';
import { writeFileAtomic } from '../platform/node.js';
import { nodeReportFolder } from '../platform/report-folder.js';
import { trainingChartsFor } from '../report/curve.js';
import { predictOverlays } from '../report/examples.js';
import { loadModel, type ModelChoice } from './model-load.js';
import { isInside } from './output-path.js';
import { Progress } from './progress.js';

export { spread } from '../pipeline/test-run.js';

export interface TestOptions extends ModelChoice, Omit<TestRunOptions, 'checkpoint'> {
  /** the checkpoint file */
  checkpoint: string;
  /** the report folder */
  out: string;
  /** an `rdpp predict` output folder: examples link to the full-resolution overlays it wrote */
  predictions?: string;
  log?: (line: string) => void;
}

/** Image path (resolved) → link to predict's overlay of it, relative to the report folder. */
function overlayLinks(predictions: string | undefined, reportDir: () => string) {
  const predDir = predictions ? resolve(predictions) : null;
  const file = predDir && join(predDir, 'predictions.jsonl');
  // predict records the paths as it was given them: compare them resolved
  const overlays = new Map(
    file && existsSync(file)
      ? [...predictOverlays(readFileSync(file, 'utf8'))].map(([p, ov]) => [resolve(p), ov])
      : [],
  );
  return (imagePath: string): { href: string; label: string }[] => {
    const ov = overlays.get(resolve(imagePath));
    if (!ov || !predDir) return [];
    const href = relative(reportDir(), join(predDir, ov)).split(sep).join('/');
    return [{ href, label: 'full-resolution overlay (rdpp predict)' }];
  };
}

export interface TestResult {
  outDir: string;
  metrics: EvalMetrics;
  decision: Decision | null;
  /** the calibrated checkpoint written, when --calibrate */
  calibrated: string | null;
  report: string;
}

export async function runTest(o: TestOptions): Promise<TestResult> {
  const log = o.log ?? ((l: string) => console.error(l));
  const checkpoint = resolve(o.checkpoint);
  let outDir = resolve(o.out);
  const { teacher, imageSize, out: _out, log: _log, predictions, ...run } = o;
  const links = overlayLinks(predictions, () => outDir);
  const r = await runTestOn(
    { ...run, data: resolve(o.data), checkpoint },
    {
      fs: nodeFileSystem(),
      loadModel: (l) => loadModel(o.checkpoint, { teacher, imageSize, log: l }),
      checkOutput: (root) => {
        if (isInside(o.out, root))
          throw new UsageError(
            `--out ${o.out} is inside the dataset ${root}: choose a report folder outside it`,
          );
      },
      openReport: () => {
        const folder = nodeReportFolder(o.out);
        outDir = folder.dir;
        return folder;
      },
      saveCalibrated: (bytes) => {
        const path = calibratedPath(checkpoint);
        writeFileAtomic(path, bytes);
        return path;
      },
      trainingCharts: (storedHistory) => trainingChartsFor(checkpoint, storedHistory),
      exampleLinks: (item) => links(item.path),
      progress: new Progress(),
      log,
    },
  );
  return { outDir, ...r, report: resolve(outDir, 'report.html') };
}
