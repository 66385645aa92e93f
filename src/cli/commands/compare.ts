/**
 * `rdpp compare <run folder>…`: training runs in two precisions held against each other — each run's test
 * metrics after its last epoch (train with `--eval-every`), runs paired by seed, the mean paired
 * difference per metric with its 95 % interval and a verdict against a tolerance (src/eval/compare-runs.ts).
 * Made for the question "does --precision f16 train as well as f32?", which one pair of runs cannot
 * answer on a small test set. No GPU needed.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { compareRuns, comparisonTable, type RunResult, runResult } from '../../eval/compare-runs.js';
import { writeFileAtomic } from '../../platform/node.js';
import { type Command, UsageError } from '../command.js';
import { checkOutputFile } from '../output-path.js';

export const compare: Command = {
  name: 'compare',
  summary:
    'training runs in two precisions, paired by seed: mean difference of the test metrics, 95 % interval',
  usage: '<run folder> <run folder> … [--tolerance 0.5] [--baseline f32] [--out file.json]',
  positionals: true,
  options: {
    tolerance: {
      type: 'string',
      default: '0.5',
      help: 'the largest difference, in points (0.5 = 0.005 AUROC), that counts as the same',
    },
    baseline: { type: 'string', help: 'the precision the other is held against (default: f32)' },
    out: { type: 'string', help: 'write the comparison as JSON to this file' },
  },
  async run({ values, positionals }) {
    if (positionals.length < 2)
      throw new UsageError(
        'give the run folders (rdpp train --out …, trained with --eval-every), at least one per precision',
      );
    const tolerance = Number(values.tolerance);
    if (!Number.isFinite(tolerance) || tolerance <= 0)
      throw new UsageError(`--tolerance must be a positive number of points, got '${values.tolerance}'`);
    if (values.out)
      checkOutputFile(String(values.out), { option: '--out', extensions: ['.json'], inputs: [] });
    const runs: RunResult[] = [];
    const skipped: { name: string; why: string }[] = [];
    for (const folder of positionals) {
      const log = join(folder, 'train.jsonl');
      if (!existsSync(folder) || !statSync(folder).isDirectory())
        throw new UsageError(`${folder} is not a folder (give the run folders of rdpp train)`);
      if (!existsSync(log)) {
        skipped.push({ name: folder, why: 'no train.jsonl' });
        continue;
      }
      const r = runResult(folder, readFileSync(log, 'utf8'));
      if ('skipped' in r) skipped.push({ name: folder, why: r.skipped });
      else runs.push(r);
    }
    for (const s of skipped) console.error(`left out: ${s.name}: ${s.why}`);
    const c = compareRuns(runs, {
      tolerancePoints: tolerance,
      ...(values.baseline ? { baseline: String(values.baseline) } : {}),
    });
    for (const u of c.unpaired) console.error(`left out: ${u.name}: ${u.why}`);
    console.log(comparisonTable(c));
    if (values.out) {
      const json = { ...c, skipped, runs };
      writeFileAtomic(String(values.out), `${JSON.stringify(json, null, 2)}\n`);
      console.error(`wrote ${values.out}`);
    }
    return 0;
  },
};
