/** Open the GPU and initialise the engine for a command; prints the adapter line unless quiet. */
import {
  adapterLine,
  flag,
  type GpuContext,
  gemmPrecision,
  initEngine,
  type Precision,
  parsePrecision,
  prepareMma,
  setFlags,
  useTileTable,
} from '../engine/index.js';
import { openNodeGpu } from '../platform/node.js';
import { loadTileTable } from '../platform/tile-cache.js';
import { type OptionSpec, UsageError } from './command.js';

/** `--precision`, shared by the commands that run the network (train, test, predict, bench, profile, parity). */
export const PRECISION_OPTION: OptionSpec = {
  type: 'string',
  help: 'GEMM operand precision: f32, or f16 (f16 operands with f32 accumulation in matmul and convolutions, like PyTorch AMP, and f16 storage for the activations: the teacher, the student in training, the whole model in inference; gradients, statistics, losses and weights stay f32; needs shader-f16, else f32 with a warning). Default: RDPP_PRECISION or f32',
};

/** The value of --precision, checked (undefined when not given: the flag, from RDPP_PRECISION, stays). */
export function precisionOption(values: Record<string, unknown>): Precision | undefined {
  const v = values.precision;
  if (v === undefined) return undefined;
  try {
    return parsePrecision(String(v), '--precision');
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

export async function startEngine(
  opts: {
    quiet?: boolean;
    allowUnsafeApis?: boolean;
    precision?: Precision | undefined;
    /** false: leave the GEMM tiles to GEMM_TILE (`rdpp tune` measures without a table) */
    tileTable?: boolean;
  } = {},
): Promise<GpuContext> {
  const gpu = await openNodeGpu({ allowUnsafeApis: opts.allowUnsafeApis ?? false });
  // after openNodeGpu, which applies RDPP_* from the environment: the command line wins
  if (opts.precision) setFlags({ PRECISION: opts.precision });
  initEngine(gpu);
  if (!opts.quiet) console.error(`GPU ${adapterLine(gpu.report)}`);
  // the fallback warning (f16 asked for, no shader-f16) once, up front, instead of at the first GEMM;
  // then tensor cores where the device has them and they pass their check on it (engine/mma.ts)
  if (flag('PRECISION') === 'f16') {
    gemmPrecision();
    const mma = await prepareMma();
    if (!opts.quiet) console.error(mma);
  }
  // the GEMM tiles measured on this adapter by `rdpp tune`, if any (platform/tile-cache.ts)
  if (opts.tileTable === false) useTileTable(null);
  else {
    const line = loadTileTable(gpu.report, gemmPrecision());
    if (line && !opts.quiet) console.error(line);
  }
  return gpu;
}
