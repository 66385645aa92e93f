/**
 * `rdpp test`: evaluate a checkpoint on a dataset's test split and write a self-contained report folder
 * (metrics.json, report.html with inline SVG charts, examples/*.png). With --calibrate, also store a decision
 * threshold in a copy of the checkpoint (`<stem>.calibrated.safetensors`): from the validation/good
 * images at a target false-rejection rate (default), or the F1-optimal one on the labelled test set
 * (`--calibrate f1`: optimistic, it uses the test labels). Argument parsing and output only: the run is
 * src/cli/test-run.ts on src/pipeline/test-run.ts.
 */
import { existsSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { type Command, UsageError } from '../command.js';
import { PRECISION_OPTION, precisionOption, startEngine } from '../gpu.js';
import { MODEL_OPTIONS, parseModelOptions } from '../model-load.js';
import { runTest, type TestOptions } from '../test-run.js';

const f4 = (v: number | null | undefined) => (v === null || v === undefined ? 'n/a' : v.toFixed(4));

function intOpt(v: unknown, name: string, min = 1): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min)
    throw new UsageError(`--${name} must be an integer ≥ ${min}, got '${v}'`);
  return n;
}

/** Options from parsed arguments; `--calibrate` takes an optional method as the next argument (frr | f1). */
export function testOptions(values: Record<string, unknown>, positionals: string[]): TestOptions {
  if (!values.data) throw new UsageError('--data is required (the dataset root folder)');
  if (!values.checkpoint) throw new UsageError('--checkpoint is required (a .safetensors file)');
  let calibrate: TestOptions['calibrate'];
  if (values.calibrate) {
    const m = positionals[0] ?? 'frr';
    if (m !== 'frr' && m !== 'f1')
      throw new UsageError(`--calibrate takes 'frr' (default) or 'f1', got '${m}'`);
    if (positionals.length > 1) throw new UsageError(`unexpected argument '${positionals[1]}'`);
    calibrate = m;
  } else if (positionals.length) throw new UsageError(`unexpected argument '${positionals[0]}'`);
  const frr = values.frr === undefined ? 0.01 : Number(values.frr);
  if (!(frr >= 0 && frr < 1)) throw new UsageError(`--frr must be in [0, 1), got '${values.frr}'`);
  const checkpoint = String(values.checkpoint);
  const o: TestOptions = {
    data: String(values.data),
    checkpoint,
    out:
      (values.out as string | undefined) ??
      join(dirname(checkpoint), `test-${basename(checkpoint, '.safetensors')}`),
    batch: intOpt(values.batch, 'batch') ?? 8,
    targetFrr: frr,
    skipBad: Boolean(values['skip-bad']),
    examples: intOpt(values.examples, 'examples', 0) ?? 2,
  };
  if (values.category) o.category = String(values.category);
  const mt = intOpt(values['max-test'], 'max-test');
  if (mt) o.maxTest = mt;
  const mc = intOpt(values['max-calibration'], 'max-calibration');
  if (mc) o.maxCalibration = mc;
  if (values.predictions) o.predictions = String(values.predictions);
  if (calibrate) o.calibrate = calibrate;
  Object.assign(o, parseModelOptions(values));
  return o;
}

export const test: Command = {
  name: 'test',
  summary: 'evaluate a checkpoint on a test set: metrics.json + report.html; --calibrate stores a threshold',
  usage:
    '--data <root> [--category <name>] --checkpoint <file> [--out dir] [--calibrate [frr|f1]] [--frr 0.01] [--max-test N] [--predictions <predict --out dir>] [--precision f32|f16]',
  positionals: true,
  options: {
    data: { type: 'string', help: 'dataset root (MVTec / BTAD layout with a labelled test split)' },
    category: { type: 'string', help: 'category / product folder under the root' },
    checkpoint: {
      type: 'string',
      help: '.safetensors checkpoint from rdpp train, or an official RD++ .pth (with --teacher)',
    },
    out: { type: 'string', help: 'report folder (default <checkpoint dir>/test-<checkpoint stem>)' },
    calibrate: {
      type: 'boolean',
      help: "store a threshold in <stem>.calibrated.safetensors: 'frr' (validation/good, default) or 'f1' (test labels)",
    },
    frr: { type: 'string', default: '0.01', help: 'target false-rejection rate for --calibrate frr' },
    batch: { type: 'string', default: '8', help: 'images per GPU pass' },
    'max-test': {
      type: 'string',
      help: 'use at most N test images, spread over the defect types (quick runs)',
    },
    'max-calibration': { type: 'string', help: 'use at most N normal images for --calibrate frr' },
    examples: { type: 'string', default: '2', help: 'examples per group in the report' },
    predictions: {
      type: 'string',
      help: 'an rdpp predict --out folder: the report links examples to its full-resolution overlays',
    },
    'skip-bad': { type: 'boolean', help: 'skip unreadable images with a warning instead of stopping' },
    ...MODEL_OPTIONS,
    precision: PRECISION_OPTION,
  },
  async run({ values, positionals }) {
    const o = testOptions(values, positionals);
    const precision = precisionOption(values);
    if (!existsSync(o.checkpoint)) throw new UsageError(`--checkpoint ${o.checkpoint}: no such file`);
    await startEngine({ precision });
    const r = await runTest(o);
    const m = r.metrics;
    console.log(
      `test set (${m.images} images, ${m.anomalous} anomalous): image AUROC ${f4(m.imageAuroc)}, pixel AUROC ${f4(m.pixelAuroc)}, ` +
        `AUPRO (standard MVTec) ${f4(m.auproStandard)}, AUPRO (official RD++ per-image) ${f4(m.auproOfficial)}`,
    );
    console.log(`report: ${r.report} (metrics.json, examples/ beside it)`);
    return 0;
  },
};
