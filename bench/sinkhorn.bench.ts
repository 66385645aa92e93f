/** Benchmark cases for the sinkhorn kernel family (in progress: none yet). */
import type { BenchCase, BenchSize } from './harness.js';

export function benchCases(_size: BenchSize): BenchCase[] {
  return [];
}
