import { type BenchTeacher, benchE2e, type E2eOptions, type E2eResult } from '../../../bench/e2e.js';
import { runBench } from '../../../bench/harness.js';
import { allBenchCases } from '../../../bench/index.js';
import { parseTiles, shapeCases } from '../../../bench/shapes.js';
import { flagsFromEnv, pageFlags } from '../../engine/flags.js';
import { SSOT_MODES, type SsotMode } from '../../model/rdpp.js';
import { writeFileAtomic } from '../../platform/node.js';
import type { BrowserBenchSpec } from '../../web/bench.js';
import { benchInBrowser } from '../browser-bench.js';
import { type Command, type OptionSpec, UsageError } from '../command.js';
import { PRECISION_OPTION, precisionOption, startEngine } from '../gpu.js';
import { checkOutputFile } from '../output-path.js';

/** The CPU time a step or batch took to record, as `bench` and `profile` print it. */
export function recordingSummary(r: E2eResult): string {
  const graph = r.graph_capture ? ' (replayed from a captured graph)' : '';
  return `${r.record_ms_median} ms (median; mean ${r.record_ms_per_step})${graph}`;
}

/** The options of a whole-step workload, shared by `bench train|infer` and `profile train|infer`. */
export const E2E_OPTIONS: Record<string, OptionSpec> = {
  iters: { type: 'string', default: '10', help: 'timed runs (after warm-up)' },
  teacher: {
    type: 'string',
    default: 'wrn50',
    help: 'network sizes (formula weights): wrn50, resnet18, resnet50-keras',
  },
  batch: { type: 'string', help: 'batch size (default 16 for train, 1 for infer)' },
  'image-size': { type: 'string', default: '256', help: 'image side (a multiple of 32)' },
  ssot: { type: 'string', default: 'official', help: 'train: the SSOT mode (official, pairwise, off)' },
  precision: PRECISION_OPTION,
};

export function parseE2eOptions(values: Record<string, unknown>, what: 'train' | 'infer'): E2eOptions {
  const iters = Number(values.iters);
  if (!Number.isInteger(iters) || iters < 1)
    throw new UsageError(`--iters must be a positive integer, got '${values.iters}'`);
  const teacher = String(values.teacher);
  if (!['wrn50', 'resnet18', 'resnet50-keras'].includes(teacher))
    throw new UsageError(`--teacher must be wrn50, resnet18 or resnet50-keras, got '${teacher}'`);
  const batch = Number(values.batch ?? (what === 'train' ? 16 : 1));
  const imageSize = Number(values['image-size']);
  if (!Number.isInteger(batch) || batch < 1)
    throw new UsageError(`--batch must be a positive integer, got '${values.batch}'`);
  if (!Number.isInteger(imageSize) || imageSize < 32 || imageSize % 32 !== 0)
    throw new UsageError(`--image-size must be a positive multiple of 32, got '${values['image-size']}'`);
  const ssot = String(values.ssot) as SsotMode;
  if (!SSOT_MODES.includes(ssot))
    throw new UsageError(`--ssot must be one of ${SSOT_MODES.join(', ')}; got '${ssot}'`);
  return { ssot, teacher: teacher as BenchTeacher, batch, imageSize, iters, warmup: 2 };
}

function tilesOption(spec: string): string[] {
  try {
    return parseTiles(spec);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

export const bench: Command = {
  name: 'bench',
  summary:
    'benchmarks: kernels (GFLOP/s, GB/s), every conv shape of a network, a whole training step, inference; JSON with the adapter',
  usage:
    '[kernels|shapes|train|infer] [--small] [--filter <regex>] [--tiles all|<names>] [--iters N] [--teacher wrn50|resnet18|resnet50-keras] [--batch N] [--image-size N] [--ssot official|pairwise|off] [--out file.json] [--precision f32|f16]',
  positionals: true,
  options: {
    small: { type: 'boolean', help: 'kernels: small shapes (for CPU adapters such as lavapipe)' },
    filter: {
      type: 'string',
      help: 'kernels: only cases whose "family name" matches this regular expression',
    },
    tiles: {
      type: 'string',
      help: 'shapes: time every shape with these GEMM tiles ("all" or a list such as t64x64,t128x128)',
    },
    out: { type: 'string', help: 'write the JSON report to this file (default: print it)' },
    browser: {
      type: 'boolean',
      help: 'kernels, train, infer: run in headless Chromium on its own WebGPU (a GPU, or SwiftShader without one), from the browser bundle; needs `bash scripts/setup.sh --browser`',
    },
    ...E2E_OPTIONS,
  },
  async run({ values, positionals }) {
    const what = positionals[0] ?? 'kernels';
    const precision = precisionOption(values);
    if (!['kernels', 'shapes', 'train', 'infer'].includes(what))
      throw new UsageError(`unknown benchmark '${what}' (available: kernels, shapes, train, infer)`);
    if (values.out)
      checkOutputFile(String(values.out), { option: '--out', extensions: ['.json'], inputs: [] });
    if (values.browser) {
      if (what === 'shapes') throw new UsageError('--browser applies to bench kernels, train and infer');
      const iters = Number(values.iters);
      if (!Number.isInteger(iters) || iters < 1)
        throw new UsageError(`--iters must be a positive integer, got '${values.iters}'`);
      // the engine flags set in this environment (RDPP_GEMM_TILE, RDPP_GEMM_VEC4, …) apply in the page too,
      // except those that choose how Node creates Dawn
      const flags = pageFlags(flagsFromEnv(process.env));
      const spec: BrowserBenchSpec =
        what === 'kernels'
          ? {
              what,
              small: !!values.small,
              iters,
              ...(values.filter ? { filter: String(values.filter) } : {}),
              ...(precision ? { precision } : {}),
              flags,
            }
          : {
              what: what as 'train' | 'infer',
              e2e: parseE2eOptions(values, what as 'train' | 'infer'),
              ...(precision ? { precision } : {}),
              flags,
            };
      const r = await benchInBrowser(spec, (l) => console.error(l));
      const json = `${JSON.stringify(r, null, 2)}\n`;
      if (values.out) {
        writeFileAtomic(String(values.out), json);
        console.error(`wrote ${values.out} (${r.adapter}, ${r.runtime})`);
      } else process.stdout.write(json);
      return 0;
    }
    if (what === 'train' || what === 'infer') {
      const o = parseE2eOptions(values, what);
      await startEngine({ precision });
      const r = await benchE2e(what, o);
      console.error(
        `${what}: ${r.median_ms} ms median per ${what === 'train' ? 'step' : 'batch'}, ${r.images_per_s} img/s ` +
          `(back to back: ${r.pipelined_ms_per_step} ms, ${r.pipelined_images_per_s} img/s), ` +
          `peak GPU ${r.peak_gpu_mib} MiB live / ${r.peak_reserved_mib} MiB reserved, ` +
          (r.saved_for_backward_mib === null
            ? ''
            : `${r.saved_for_backward_mib} MiB saved for the backward (${r.training_activations} activations), `) +
          `${r.dispatches_per_step} dispatches, ${r.buffers_created_per_step} buffers created per ${what === 'train' ? 'step' : 'batch'}, ` +
          `CPU recording ${recordingSummary(r)}`,
      );
      const json = `${JSON.stringify(r, null, 2)}\n`;
      if (values.out) writeFileAtomic(String(values.out), json);
      else process.stdout.write(json);
      return 0;
    }
    const iters = Number(values.iters);
    if (!Number.isInteger(iters) || iters < 1)
      throw new UsageError(`--iters must be a positive integer, got '${values.iters}'`);
    // shapes: the network's own conv GEMMs, traced (training step at --batch or 16, inference at 1 and 32)
    const e2e = what === 'shapes' ? parseE2eOptions(values, 'train') : null;
    if (values.tiles !== undefined && what !== 'shapes')
      throw new UsageError('--tiles applies to bench shapes only');
    await startEngine({ precision });
    const size = what === 'shapes' ? 'shapes' : values.small ? 'small' : 'full';
    const filter = values.filter ? new RegExp(String(values.filter)) : null;
    const all = e2e
      ? await shapeCases({
          teacher: e2e.teacher,
          imageSize: e2e.imageSize,
          trainBatch: e2e.batch,
          inferBatches: values.batch === undefined ? [1, 32] : [e2e.batch],
          tiles: values.tiles === undefined ? undefined : tilesOption(String(values.tiles)),
        })
      : allBenchCases(values.small ? 'small' : 'full');
    const cases = all.filter((c) => !filter || filter.test(`${c.family} ${c.name}`));
    if (cases.length === 0) throw new UsageError('no benchmark case matches');
    const report = await runBench(cases, size, { iters, log: (l) => console.error(l) });
    for (const g of report.groups ?? [])
      console.error(`${g.group}: ${g.conv_ms_per_step} ms of convs per step, ${g.gflops} GFLOP/s`);
    // 2-space JSON with a final newline: what the formatter expects of results committed under bench/results
    const json = `${JSON.stringify(report, null, 2)}\n`;
    if (values.out) {
      writeFileAtomic(String(values.out), json);
      console.error(`wrote ${values.out}`);
    } else process.stdout.write(json);
    return 0;
  },
};
