import { type ProfileResult, profileE2e } from '../../../bench/e2e.js';
import { writeFileAtomic } from '../../platform/node.js';
import { type Command, UsageError } from '../command.js';
import { precisionOption, startEngine } from '../gpu.js';
import { E2E_OPTIONS, parseE2eOptions, recordingSummary } from './bench.js';

/** A table for people: the step's totals, then the programs by GPU time (what key_averages() prints). */
export function profileTable(r: ProfileResult, top = 25): string {
  const unit = r.kind === 'train' ? 'step' : 'batch';
  const lines = [
    `${r.kind} (${r.teacher}, batch ${r.batch}, ${r.imageSize}², ssot ${r.ssot}, ${r.precision} GEMMs) on ${r.adapter}`,
    `  wall ${r.wall_ms_per_step} ms per ${unit} (median of ${r.iters}); GPU ${r.gpu_ms_per_step === null ? 'n/a (no timestamp-query on this adapter)' : `${r.gpu_ms_per_step} ms (sum of per-dispatch times)`}`,
    `  CPU recording ${recordingSummary(r)}; ${r.dispatches_per_step} dispatches, ${r.submits_per_step} submits, ` +
      `${r.buffers_created_per_step} buffers and ${r.bind_groups_created_per_step} bind groups created per ${unit}`,
    `  peak memory ${r.peak_gpu_mib} MiB live, ${r.peak_reserved_mib} MiB reserved; between steps ${r.resident_mib} MiB (weights, optimizer state${r.graph_mib !== null ? `, ${r.graph_mib} MiB of it the graph's working set` : ''}${r.packed_weights_mib > 0 ? `, ${r.packed_weights_mib} MiB of it weights kept in GEMM layout (RDPP_KEEP_PACKED_WEIGHTS=${r.packed_weights})` : ''})`,
  ];
  if (r.programs.length) {
    lines.push(
      '',
      `  ${'program'.padEnd(34)} ${'calls'.padStart(7)} ${'GPU ms'.padStart(9)} ${'share'.padStart(6)}  achieved`,
    );
    for (const p of r.programs.slice(0, top)) {
      const achieved =
        p.tflops !== null
          ? p.tflops >= 0.1
            ? `${p.tflops} TFLOP/s`
            : `${+(p.tflops * 1000).toPrecision(3)} GFLOP/s`
          : p.gbps !== null
            ? `${p.gbps} GB/s`
            : '';
      lines.push(
        `  ${p.name.padEnd(34)} ${p.calls_per_step.toString().padStart(7)} ${p.gpu_ms_per_step.toFixed(3).padStart(9)} ${(100 * p.share).toFixed(1).padStart(5)}%  ${achieved}`,
      );
    }
    if (r.programs.length > top) lines.push(`  … ${r.programs.length - top} more programs (see --json)`);
  }
  return lines.join('\n');
}

export const profile: Command = {
  name: 'profile',
  summary: 'where a training step or inference batch spends its time: GPU time per program, counters, memory',
  usage:
    'train|infer [--teacher wrn50|resnet18|resnet50-keras] [--batch N] [--image-size N] [--ssot …] [--iters N] [--json] [--out file.json] [--precision f32|f16]',
  positionals: true,
  options: {
    ...E2E_OPTIONS,
    iters: { type: 'string', default: '5', help: 'timed runs, and as many profiled runs (after warm-up)' },
    json: { type: 'boolean', help: 'print JSON instead of the table' },
    top: { type: 'string', default: '25', help: 'programs listed in the table' },
    out: { type: 'string', help: 'also write the JSON to this file' },
  },
  async run({ values, positionals }) {
    const what = positionals[0];
    if (what !== 'train' && what !== 'infer')
      throw new UsageError(
        `say what to profile: 'rdpp profile train' or 'rdpp profile infer' (got '${what ?? ''}')`,
      );
    const o = parseE2eOptions(values, what);
    const top = Number(values.top);
    if (!Number.isInteger(top) || top < 1)
      throw new UsageError(`--top must be a positive integer, got '${values.top}'`);
    await startEngine({ precision: precisionOption(values) });
    const r = await profileE2e(what, o);
    const json = `${JSON.stringify(r, null, 2)}\n`;
    if (values.out) writeFileAtomic(String(values.out), json);
    if (values.json) process.stdout.write(json);
    else console.log(profileTable(r, top));
    return 0;
  },
};
