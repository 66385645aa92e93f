/**
 * Benchmark harness: each kernel family exports `benchCases(size)` returning BenchCase[]; the harness
 * warms up, times N runs (wall clock from recording to GPU completion, i.e. including submit overhead),
 * and reports median/min/max with GFLOP/s or GB/s and the adapter line. `--small` shapes fit a CPU
 * adapter (lavapipe); full shapes are RD++'s real ones (batch 16, 256×256 WRN50-2).
 */
import {
  adapterLine,
  gemmPrecision,
  gemmTileSource,
  mmaStatus,
  mmaTileInUse,
  type Precision,
  runtime,
} from '../src/engine/index.js';

export type BenchSize = 'small' | 'full';

/** Deterministic input values in [−scale, scale) (an LCG: benchmarks need data, not randomness). */
export function benchValues(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 2147483648 - 1) * scale;
  }
  return out;
}

export interface BenchCase {
  family: string;
  name: string;
  /** floating-point operations per run (2 per multiply-add), for GFLOP/s */
  flops?: number;
  /** bytes read + written per run, for GB/s */
  bytes?: number;
  /** how often one step of the workload in `group` runs this case (bench shapes) */
  callsPerStep?: number;
  /** the workload a case belongs to, e.g. "train b16" (bench shapes sums each group's time per step) */
  group?: string;
  /** the GEMM tile the case was forced to (bench shapes --tiles) */
  tile?: string;
  /** allocate inputs; returns the timed body (records dispatches) and a cleanup */
  setup: () => Promise<{ run: () => void; dispose: () => void }>;
}

export interface BenchResult {
  family: string;
  name: string;
  iters: number;
  median_ms: number;
  min_ms: number;
  max_ms: number;
  gflops?: number;
  gbps?: number;
  /** gflops over the adapter's float32 peak, where the peak is known */
  peak_share?: number;
  calls_per_step?: number;
  group?: string;
  tile?: string;
}

export interface BenchReport {
  adapter: string;
  date: string;
  /** the GEMMs' operand precision the run used (the flag PRECISION after the shader-f16 check) */
  precision: Precision;
  size: BenchSize | 'shapes';
  /** whether the f16 GEMMs ran on subgroup matrices (tensor cores), and which (engine/mma.ts) */
  mma: string;
  /** where the GEMM tiles came from (a table `rdpp tune` made, or the flag GEMM_TILE); --tiles overrides both */
  gemm_tiles: string;
  /**
   * the adapter's peak for the arithmetic that ran, where known (knownPeakGflops): float32 FMAs, or the
   * dense f16 tensor-core rate with f32 accumulation when the GEMMs ran on subgroup matrices
   */
  peak_gflops: number | null;
  results: BenchResult[];
  /** per group (bench shapes): Σ calls_per_step × median_ms — the step's conv time if run alone */
  groups?: { group: string; conv_ms_per_step: number; gflop_per_step: number; gflops: number }[];
  /** per shape timed with several tiles (bench shapes --tiles): the fastest, and its time against the slowest */
  best_tiles?: { group: string; name: string; tile: string; median_ms: number; speedup_over_worst: number }[];
}

/**
 * Float32 peaks of adapters we measure on, from the vendors' data sheets (FP32, no tensor cores). Only
 * for the "share of peak" column; unknown adapters get null.
 */
const PEAK_GFLOPS: [RegExp, number][] = [
  [/H200/i, 67_000], // NVIDIA H200 SXM data sheet: 67 TFLOPS FP32
  [/H100/i, 67_000], // H100 SXM: 67 TFLOPS FP32 (PCIe: 51)
];

/** Dense f16 tensor-core peaks with f32 accumulation (data sheets; the sparse figures are twice these). */
const PEAK_F16_TENSOR_GFLOPS: [RegExp, number][] = [
  [/H200/i, 989_000], // H200 SXM: 989 TFLOPS FP16 Tensor Core, dense
  [/H100/i, 989_000], // H100 SXM: 989 TFLOPS (PCIe: 756)
];

export function knownPeakGflops(adapter: string, tensorCores = false): number | null {
  const table = tensorCores ? PEAK_F16_TENSOR_GFLOPS : PEAK_GFLOPS;
  return table.find(([re]) => re.test(adapter))?.[1] ?? null;
}

export async function runCase(c: BenchCase, warmup = 2, iters = 10): Promise<BenchResult> {
  const rt = runtime();
  const { run, dispose } = await c.setup();
  try {
    for (let i = 0; i < warmup; i++) {
      run();
      await rt.sync();
    }
    const times: number[] = [];
    for (let i = 0; i < iters; i++) {
      const t0 = performance.now();
      run();
      await rt.sync();
      times.push(performance.now() - t0);
    }
    times.sort((a, b) => a - b);
    const median = times[Math.floor(times.length / 2)]!;
    const r: BenchResult = {
      family: c.family,
      name: c.name,
      iters,
      median_ms: +median.toFixed(4),
      min_ms: +times[0]!.toFixed(4),
      max_ms: +times[times.length - 1]!.toFixed(4),
    };
    // four significant digits: tiny shapes on a CPU adapter must not round to 0
    if (c.flops) r.gflops = +(c.flops / (median * 1e6)).toPrecision(4);
    if (c.bytes) r.gbps = +(c.bytes / (median * 1e6)).toPrecision(4);
    if (c.callsPerStep !== undefined) r.calls_per_step = c.callsPerStep;
    if (c.group !== undefined) r.group = c.group;
    if (c.tile !== undefined) r.tile = c.tile;
    return r;
  } finally {
    dispose();
    await rt.sync();
  }
}

export async function runBench(
  cases: BenchCase[],
  size: BenchReport['size'],
  opts: {
    iters?: number;
    warmup?: number;
    log?: (line: string) => void;
    /** asked before each case: true, and no further case starts (those not run have no result) */
    stop?: () => boolean;
  } = {},
): Promise<BenchReport> {
  const results: BenchResult[] = [];
  for (const c of cases) {
    if (opts.stop?.()) break;
    const r = await runCase(c, opts.warmup ?? 2, opts.iters ?? 10);
    results.push(r);
    const rate =
      r.gflops !== undefined ? `${r.gflops} GFLOP/s` : r.gbps !== undefined ? `${r.gbps} GB/s` : '';
    opts.log?.(
      `${c.family.padEnd(10)} ${c.name.padEnd(48)} ${r.median_ms.toFixed(3).padStart(10)} ms  ${rate}`,
    );
  }
  const adapter = adapterLine(runtime().gpu.report);
  // GEMMs (the conv family, on the engine's own tile) ran on tensor cores when a subgroup-matrix tile is
  // active; everything else, and a tile named by --tiles, on float32 FMAs
  const tensorCores = mmaTileInUse() !== null;
  const peak = knownPeakGflops(adapter, tensorCores);
  for (const r of results) {
    const gemm = r.family === 'conv' || r.family.startsWith('shapes-');
    const p = tensorCores && gemm && r.tile === undefined ? peak : knownPeakGflops(adapter);
    if (p !== null && r.gflops !== undefined) r.peak_share = +(r.gflops / p).toFixed(4);
  }
  const report: BenchReport = {
    adapter,
    date: new Date().toISOString(),
    precision: gemmPrecision(),
    mma: mmaStatus(),
    gemm_tiles: gemmTileSource(),
    size,
    peak_gflops: peak,
    results,
  };
  const groups = groupTotals(cases, results);
  if (groups.length > 0) report.groups = groups;
  const best = bestTiles(results);
  if (best.length > 0) report.best_tiles = best;
  return report;
}

/** The workload of a case or result timed with a forced tile: its group without the tile ("infer b1 t64x64" → "infer b1"). */
export function workloadOf(c: { group?: string | undefined; tile?: string | undefined }): string {
  return (c.group ?? '').replace(` ${c.tile}`, '');
}

/** For every (workload, shape) timed with more than one tile: the fastest tile. */
export function bestTiles(results: BenchResult[]): NonNullable<BenchReport['best_tiles']> {
  const byShape = new Map<string, BenchResult[]>();
  for (const r of results) {
    if (r.tile === undefined) continue;
    const k = `${workloadOf(r)}|${r.name}`;
    byShape.set(k, [...(byShape.get(k) ?? []), r]);
  }
  const out: NonNullable<BenchReport['best_tiles']> = [];
  for (const [k, rs] of byShape) {
    if (rs.length < 2) continue;
    const sorted = [...rs].sort((a, b) => a.median_ms - b.median_ms);
    const best = sorted[0]!;
    out.push({
      group: k.slice(0, k.indexOf('|')),
      name: best.name,
      tile: best.tile!,
      median_ms: best.median_ms,
      speedup_over_worst: +(sorted[sorted.length - 1]!.median_ms / Math.max(best.median_ms, 1e-9)).toFixed(3),
    });
  }
  return out;
}

function groupTotals(cases: BenchCase[], results: BenchResult[]): NonNullable<BenchReport['groups']> {
  const acc = new Map<string, { ms: number; flop: number }>();
  results.forEach((r, i) => {
    const c = cases[i]!;
    if (r.group === undefined || r.calls_per_step === undefined) return;
    const a = acc.get(r.group) ?? { ms: 0, flop: 0 };
    a.ms += r.calls_per_step * r.median_ms;
    a.flop += r.calls_per_step * (c.flops ?? 0);
    acc.set(r.group, a);
  });
  return [...acc].map(([group, a]) => ({
    group,
    conv_ms_per_step: +a.ms.toFixed(3),
    gflop_per_step: +(a.flop / 1e9).toFixed(2),
    gflops: +(a.flop / (a.ms * 1e6)).toFixed(2),
  }));
}
