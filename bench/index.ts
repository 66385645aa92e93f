/** Every kernel family's benchmark cases. Each family keeps its cases in its own file beside this one. */
import { benchCases as conv } from './conv.bench.js';
import { benchCases as cosine } from './cosine.bench.js';
import type { BenchCase, BenchSize } from './harness.js';
import { benchCases as norm } from './norm.bench.js';
import { benchCases as resize } from './resize.bench.js';
import { benchCases as sinkhorn } from './sinkhorn.bench.js';
import { benchCases as sinkhornClouds } from './sinkhorn-clouds.bench.js';

const families = [conv, norm, cosine, sinkhorn, sinkhornClouds, resize];

export function allBenchCases(size: BenchSize): BenchCase[] {
  return families.flatMap((f) => f(size));
}
