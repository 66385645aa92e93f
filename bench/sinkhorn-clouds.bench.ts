/**
 * Benchmark cases for sinkhornClouds (RD++ `--ssot pairwise`): per scale, B = 16 problems of H·W pixels
 * as unit vectors in C dimensions against a permutation of the batch (spec §1.1 shapes: 64×64×256,
 * 32×32×512, 16×16×1024), 'auto' diameter with the bound 2√C that unit vectors guarantee (the ε schedule
 * is built on the GPU; surplus steps are idle), forward + backward; the largest also forward only.
 * No FLOP/s figure: the ε-steps stream the cost tiles and are memory-bound (see the op's header).
 */
import { backward, noGrad, ones, scope, sinkhornClouds, type Tensor, tensor } from '../src/engine/index.js';
import { type BenchCase, type BenchSize, benchValues } from './harness.js';

/** B clouds of n unit vectors in D dimensions (positive-leaning, like LeakyReLU features). */
function unitCloud(B: number, n: number, D: number, seed: number, grad: boolean): Tensor {
  const v = benchValues(B * n * D, seed);
  for (let i = 0; i < B * n; i++) {
    let s = 0;
    for (let k = 0; k < D; k++) {
      const a = v[i * D + k]! + 0.5;
      v[i * D + k] = a;
      s += a * a;
    }
    for (let k = 0; k < D; k++) v[i * D + k]! /= Math.sqrt(s);
  }
  const t = tensor(v, [B, n, D]);
  t.requiresGrad = grad;
  return t;
}

function cloudsCase(B: number, n: number, D: number, withBackward: boolean): BenchCase {
  const opts = { diameterBound: 2 * Math.sqrt(D) };
  return {
    family: 'sinkhorn-clouds',
    name: `sinkhornClouds [${B},${n},${D}] ${withBackward ? 'fwd+bwd' : 'fwd'}`,
    setup: async () => {
      const x = unitCloud(B, n, D, 7, withBackward);
      const y = unitCloud(B, n, D, 8, withBackward);
      return {
        run: () => {
          if (!withBackward) {
            noGrad(() => sinkhornClouds(x, y, opts)).dispose();
            return;
          }
          for (const t of [x, y]) {
            t.grad?.dispose();
            t.grad = null;
          }
          scope(() => backward(sinkhornClouds(x, y, opts), ones([B])));
        },
        dispose: () => {
          for (const t of [x, y]) {
            t.grad?.dispose();
            t.dispose();
          }
        },
      };
    },
  };
}

export function benchCases(size: BenchSize): BenchCase[] {
  if (size === 'small') return [cloudsCase(4, 256, 64, true)];
  return [
    cloudsCase(16, 4096, 256, false),
    cloudsCase(16, 4096, 256, true),
    cloudsCase(16, 1024, 512, true),
    cloudsCase(16, 256, 1024, true),
  ];
}
