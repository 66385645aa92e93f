/**
 * Benchmark cases for the cosine and reduction kernels, reported in GB/s (these kernels are bound by
 * memory traffic: bytes = inputs read + gradients written; the small per-row/per-pixel records are not
 * counted). Full shapes are RD++'s at batch 16, 256×256, WRN50-2 (spec §1.1): the per-sample cosine over
 * T1/S1 (D = 256·64·64 = 1,048,576), the per-pixel cosine over T1/S1 channels, the whole kd loss over the
 * three scales, and a 16M-element sum.
 */
import {
  backward,
  cosineMap,
  cosineRows,
  kdLoss,
  noGrad,
  numel,
  scope,
  sum,
  type Tensor,
  tensor,
} from '../src/engine/index.js';
import { type BenchCase, type BenchSize, benchValues } from './harness.js';

function inputs(shapes: number[][], grad: boolean): Tensor[] {
  return shapes.map((s, i) => {
    const t = tensor(benchValues(numel(s), 17 + i), s);
    t.requiresGrad = grad;
    return t;
  });
}

function release(ts: Tensor[]): void {
  for (const t of ts) {
    t.grad?.dispose();
    t.dispose();
  }
}

/** forward only, or forward + backward of both inputs with an upstream gradient of the output's shape */
function pairCase(
  name: string,
  shape: number[],
  outShape: number[],
  f: (a: Tensor, b: Tensor) => Tensor,
  withBackward: boolean,
): BenchCase {
  const n = numel(shape);
  return {
    family: 'cosine',
    name: `${name} [${shape.join(',')}] ${withBackward ? 'fwd+bwd' : 'fwd'}`,
    bytes: (withBackward ? 6 : 2) * n * 4,
    setup: async () => {
      const [a, b] = inputs([shape, shape], withBackward) as [Tensor, Tensor];
      const g = tensor(benchValues(numel(outShape), 5), outShape);
      return {
        run: () => {
          if (!withBackward) {
            noGrad(() => f(a, b)).dispose();
            return;
          }
          for (const t of [a, b]) {
            t.grad?.dispose();
            t.grad = null;
          }
          scope(() => backward(f(a, b), g));
        },
        dispose: () => release([a, b, g]),
      };
    },
  };
}

function sumCase(n: number): BenchCase {
  return {
    family: 'cosine',
    name: `sum [${n}]`,
    bytes: n * 4,
    setup: async () => {
      const [x] = inputs([[n]], false) as [Tensor];
      return { run: () => noGrad(() => sum(x)).dispose(), dispose: () => release([x]) };
    },
  };
}

function kdCase(shapes: number[][]): BenchCase {
  const n = shapes.reduce((s, sh) => s + numel(sh), 0);
  return {
    family: 'cosine',
    name: `kdLoss ${shapes.map((s) => `[${s.join(',')}]`).join(' ')} fwd+bwd (student grad)`,
    bytes: 5 * n * 4,
    setup: async () => {
      const ts = inputs(shapes, false);
      const ss = inputs(shapes, true);
      return {
        run: () => {
          for (const t of ss) {
            t.grad?.dispose();
            t.grad = null;
          }
          scope(() => backward(kdLoss(ts, ss)));
        },
        dispose: () => release([...ts, ...ss]),
      };
    },
  };
}

export function benchCases(size: BenchSize): BenchCase[] {
  const B = size === 'full' ? 16 : 2;
  const s = size === 'full' ? 1 : 4; // spatial downscale for small
  const t1 = [B, 256, 64 / s, 64 / s];
  const t2 = [B, 512, 32 / s, 32 / s];
  const t3 = [B, 1024, 16 / s, 16 / s];
  const rows = [B, numel(t1) / B];
  const pix = [B, t1[2]!, t1[3]!];
  return [
    pairCase('cosineRows', rows, [B], cosineRows, false),
    pairCase('cosineRows', rows, [B], cosineRows, true),
    pairCase('cosineMap', t1, pix, cosineMap, false),
    pairCase('cosineMap', t1, pix, cosineMap, true),
    pairCase('cosineMap', t3, [B, t3[2]!, t3[3]!], cosineMap, false),
    kdCase([t1, t2, t3]),
    sumCase(size === 'full' ? 16 * 1024 * 1024 : 1024 * 1024),
  ];
}
