/**
 * Benchmark harness: each kernel family exports `benchCases(size)` returning BenchCase[]; the harness
 * warms up, times N runs (wall clock from recording to GPU completion, i.e. including submit overhead),
 * and reports median/min/max with GFLOP/s or GB/s and the adapter line. `--small` shapes fit a CPU
 * adapter (lavapipe); full shapes are RD++'s real ones (batch 16, 256×256 WRN50-2).
 */
import { adapterLine, runtime } from '../src/engine/index.js';

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
}

export interface BenchReport {
  adapter: string;
  date: string;
  size: BenchSize;
  results: BenchResult[];
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
    if (c.flops) r.gflops = +(c.flops / (median * 1e6)).toFixed(2);
    if (c.bytes) r.gbps = +(c.bytes / (median * 1e6)).toFixed(2);
    return r;
  } finally {
    dispose();
    await rt.sync();
  }
}

export async function runBench(
  cases: BenchCase[],
  size: BenchSize,
  opts: { iters?: number; warmup?: number; log?: (line: string) => void } = {},
): Promise<BenchReport> {
  const results: BenchResult[] = [];
  for (const c of cases) {
    const r = await runCase(c, opts.warmup ?? 2, opts.iters ?? 10);
    results.push(r);
    const rate =
      r.gflops !== undefined ? `${r.gflops} GFLOP/s` : r.gbps !== undefined ? `${r.gbps} GB/s` : '';
    opts.log?.(
      `${c.family.padEnd(10)} ${c.name.padEnd(48)} ${r.median_ms.toFixed(3).padStart(10)} ms  ${rate}`,
    );
  }
  return { adapter: adapterLine(runtime().gpu.report), date: new Date().toISOString(), size, results };
}
