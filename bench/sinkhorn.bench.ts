/**
 * Benchmark cases for softmaxRows and sinkhornLoss. Full shapes are RD++'s at batch 16 (spec §1.1, §4.2):
 * the softmax over one sample's projected features (D = 256·64·64 = 1,048,576), the SSOT Sinkhorn on the
 * 2-D clouds [16, D_k] of the three scales (D = 1,048,576 / 524,288 / 262,144), the whole SSOT loss
 * (softmax + Sinkhorn, three scales, forward + backward: the official PyTorch code spends ~690 ms here), and
 * a batched [16, 64, 64] problem (16 clouds of 64 points in 64 dimensions: the loop kernel dominates).
 * Softmax reports GB/s (bytes read + written); Sinkhorn reports the Gram + gradient FLOPs (2·K²·D each,
 * K = N + M) when D is large, else just the time.
 */
import {
  add,
  backward,
  noGrad,
  numel,
  ones,
  scope,
  sinkhornLoss,
  softmaxRows,
  type Tensor,
  tensor,
} from '../src/engine/index.js';
import { type BenchCase, type BenchSize, benchValues } from './harness.js';

function leaf(shape: number[], seed: number, grad: boolean): Tensor {
  const t = tensor(benchValues(numel(shape), seed), shape);
  t.requiresGrad = grad;
  return t;
}

function clearGrads(ts: Tensor[]): void {
  for (const t of ts) {
    t.grad?.dispose();
    t.grad = null;
  }
}

function release(ts: Tensor[]): void {
  clearGrads(ts);
  for (const t of ts) t.dispose();
}

function softmaxCase(shape: number[], withBackward: boolean): BenchCase {
  const n = numel(shape);
  return {
    family: 'softmax',
    name: `softmaxRows [${shape.join(',')}] ${withBackward ? 'fwd+bwd' : 'fwd'}`,
    // fwd: x read twice, y written; bwd: y and g read twice, dx written
    bytes: (withBackward ? 8 : 3) * n * 4,
    setup: async () => {
      const x = leaf(shape, 3, withBackward);
      const g = tensor(benchValues(n, 4), shape);
      return {
        run: () => {
          if (!withBackward) {
            noGrad(() => softmaxRows(x)).dispose();
            return;
          }
          clearGrads([x]);
          scope(() => backward(softmaxRows(x), g));
        },
        dispose: () => release([x, g]),
      };
    },
  };
}

/** sinkhornLoss(x, y) on x: shape, y: shape (same N and M), forward or forward + backward. */
function sinkhornCase(shape: number[], withBackward: boolean): BenchCase {
  const d = shape[shape.length - 1]!;
  const k = 2 * shape[shape.length - 2]!;
  const b = shape.length === 3 ? shape[0]! : 1;
  const flops = 2 * k * k * d * b * (withBackward ? 2 : 1);
  return {
    family: 'sinkhorn',
    name: `sinkhornLoss [${shape.join(',')}] ${withBackward ? 'fwd+bwd' : 'fwd'}`,
    ...(d >= 4096 ? { flops } : {}),
    setup: async () => {
      const x = leaf(shape, 5, withBackward);
      const y = leaf(shape, 6, withBackward);
      return {
        run: () => {
          if (!withBackward) {
            noGrad(() => sinkhornLoss(x, y)).dispose();
            return;
          }
          clearGrads([x, y]);
          scope(() => {
            const v = sinkhornLoss(x, y);
            backward(v, ones(v.shape));
          });
        },
        dispose: () => release([x, y]),
      };
    },
  };
}

/** The SSOT loss of one RD++ step: Σ_k sinkhorn(softmax(P_k), softmax(Q_k)) over three scales, fwd + bwd. */
function ssotCase(batch: number, dims: number[]): BenchCase {
  return {
    family: 'sinkhorn',
    name: `SSOT loss, 3 scales, batch ${batch}, D ${dims.join('/')} fwd+bwd`,
    setup: async () => {
      const ps = dims.map((d, i) => leaf([batch, d], 10 + i, true));
      const qs = dims.map((d, i) => leaf([batch, d], 20 + i, true));
      return {
        run: () => {
          clearGrads([...ps, ...qs]);
          scope(() => {
            const terms = dims.map((_, i) => sinkhornLoss(softmaxRows(ps[i]!), softmaxRows(qs[i]!)));
            backward(terms.reduce((a, t) => add(a, t)));
          });
        },
        dispose: () => release([...ps, ...qs]),
      };
    },
  };
}

export function benchCases(size: BenchSize): BenchCase[] {
  if (size === 'small')
    return [
      softmaxCase([4, 65536], false),
      softmaxCase([4, 65536], true),
      softmaxCase([64, 1000], true),
      sinkhornCase([16, 4096], false),
      sinkhornCase([16, 4096], true),
      sinkhornCase([4, 16, 16], true),
      ssotCase(4, [16384, 8192, 4096]),
    ];
  return [
    softmaxCase([16, 1048576], false),
    softmaxCase([16, 1048576], true),
    sinkhornCase([16, 1048576], false),
    sinkhornCase([16, 1048576], true),
    sinkhornCase([16, 524288], true),
    sinkhornCase([16, 262144], true),
    sinkhornCase([16, 64, 64], true),
    ssotCase(16, [1048576, 524288, 262144]),
  ];
}
