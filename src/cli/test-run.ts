/**
 * `rdpp test` on Node (also the end of `rdpp train`): the evaluation itself is the pipeline's
 * (src/pipeline/test-run.ts); this gives it the files (dataset, checkpoint, teacher, report folder, the
 * calibrated checkpoint beside the original) and a progress line on stderr.
 */
import { resolve } from 'node:path';
import type { EvalMetrics } from '../eval/evaluate.js';
import type { Decision } from '../eval/threshold.js';
import { UsageError } from '../pipeline/errors.js';
import { calibratedPath } from '../pipeline/model.js';
import { runTestOn, type TestRunOptions } from '../pipeline/test-run.js';
import { nodeFileSystem } from '../platform/files.js';
import { writeFileAtomic } from '../platform/node.js';
import { nodeReportFolder } from '../platform/report-folder.js';
import { loadModel, type ModelChoice } from './model-load.js';
import { isInside } from './output-path.js';
import { Progress } from './progress.js';

export { spread } from '../pipeline/test-run.js';

export interface TestOptions extends ModelChoice, Omit<TestRunOptions, 'checkpoint'> {
  /** the checkpoint file */
  checkpoint: string;
  /** the report folder */
  out: string;
  log?: (line: string) => void;
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
  const { teacher, imageSize, out: _out, log: _log, ...run } = o;
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
      progress: new Progress(),
      log,
    },
  );
  return { outDir, ...r, report: resolve(outDir, 'report.html') };
}
