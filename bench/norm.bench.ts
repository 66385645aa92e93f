/**
 * Benchmark cases for the norm family (BatchNorm, InstanceNorm, max pool, concat), at RD++'s shapes
 * (full: batch 16, 256×256 WRN50-2, spec §1.1) or small ones for a CPU adapter.
 *
 * Bytes are the ideal traffic of the two-pass design (4 bytes per element touched):
 *   BN/IN forward = read x for the statistics + read x, write y                 = 3 passes
 *   backward      = read x, g for the sums + read x, g, write dx                 = 5 passes
 *   BN eval forward = read x, write y = 2; max pool = read x + write y (+ argmax, g, dx for backward).
 */
import {
  backward,
  batchNorm,
  concat,
  instanceNorm,
  instanceNormLeakyRelu,
  keep,
  maxPool2d,
  noGrad,
  numel,
  scope,
  type Tensor,
  tensor,
} from '../src/engine/index.js';
import { type BenchCase, type BenchSize, benchValues } from './harness.js';

const leaf = (shape: number[], seed: number, grad: boolean, fill?: number): Tensor => {
  const t = tensor(
    fill === undefined ? benchValues(numel(shape), seed, 2) : new Float32Array(numel(shape)).fill(fill),
    shape,
  );
  t.requiresGrad = grad;
  return t;
};

const tag = (s: readonly number[]) => `[${s.join(',')}]`;

/** Forward + backward of f through autograd; leaf gradients are dropped after every run. */
function trainCase(
  name: string,
  shape: number[],
  bytes: number,
  make: (x: Tensor) => { f: () => Tensor; leaves: Tensor[] },
): BenchCase {
  return {
    family: 'norm',
    name,
    bytes,
    setup: async () => {
      const x = leaf(shape, 1, true);
      const { f, leaves } = make(x);
      let g: Tensor | null = null;
      const all = [x, ...leaves];
      return {
        run: () => {
          scope(() => {
            const y = f();
            g ??= keep(leaf([...y.shape], 2, false));
            backward(y, g);
          });
          for (const t of all) {
            t.grad?.dispose();
            t.grad = null;
          }
        },
        dispose: () => {
          for (const t of all) t.dispose();
          g?.dispose();
        },
      };
    },
  };
}

function forwardCase(
  name: string,
  shape: number[],
  bytes: number,
  make: (x: Tensor) => { f: () => Tensor; leaves: Tensor[] },
): BenchCase {
  return {
    family: 'norm',
    name,
    bytes,
    setup: async () => {
      const x = leaf(shape, 1, false);
      const { f, leaves } = make(x);
      return {
        run: () => noGrad(() => scope(() => void f())),
        dispose: () => {
          for (const t of [x, ...leaves]) t.dispose();
        },
      };
    },
  };
}

function bn(training: boolean) {
  return (x: Tensor) => {
    const c = x.shape[1]!;
    const w = leaf([c], 3, training, 1);
    const b = leaf([c], 4, training, 0);
    const rm = leaf([c], 5, false, 0);
    const rv = leaf([c], 6, false, 1);
    return { f: () => batchNorm(x, w, b, rm, rv, { training }), leaves: [w, b, rm, rv] };
  };
}

export function benchCases(size: BenchSize): BenchCase[] {
  const full = size === 'full';
  const B = full ? 16 : 2;
  const r = full ? 1 : 4; // channel divisor for small
  const q = full ? 1 : 4; // spatial divisor for small
  const s = (c: number, hw: number) => [B, c / r, hw / q, hw / q];
  const cases: BenchCase[] = [];

  // BN train: decoder layer3 / OCBE branch / OCBE Z; BN eval: the teacher stem
  for (const shape of [s(256, 64), s(1024, 16), s(2048, 8)])
    cases.push(trainCase(`batchNorm train fwd+bwd ${tag(shape)}`, shape, 32 * numel(shape), bn(true)));
  const stem = s(64, 128);
  cases.push(forwardCase(`batchNorm eval fwd ${tag(stem)}`, stem, 8 * numel(stem), bn(false)));

  // IN: projection layers (Proj1 at 64×64, Proj3 at 16×16), plain and fused with LeakyReLU
  for (const shape of [s(256, 64), s(1024, 16)]) {
    const inorm = (x: Tensor) => ({ f: () => instanceNorm(x), leaves: [] });
    cases.push(trainCase(`instanceNorm fwd+bwd ${tag(shape)}`, shape, 32 * numel(shape), inorm));
  }
  const p1 = s(256, 64);
  const inLrelu = (x: Tensor) => ({ f: () => instanceNormLeakyRelu(x, 0.01), leaves: [] });
  cases.push(trainCase(`instanceNormLeakyRelu fwd+bwd ${tag(p1)}`, p1, 32 * numel(p1), inLrelu));

  // max pool 3/2/1 after the teacher stem (forward only in RD++: the teacher is frozen)
  const out = numel(stem) / 4;
  const pool = (x: Tensor) => ({ f: () => maxPool2d(x, { kernel: 3, stride: 2, padding: 1 }), leaves: [] });
  cases.push(forwardCase(`maxPool2d 3/2/1 fwd ${tag(stem)}`, stem, 4 * (numel(stem) + out), pool));
  // fwd (x, y, argmax) + bwd (g, argmax, dx)
  const poolBytes = 4 * (numel(stem) + 2 * out) + 4 * (2 * out + numel(stem));
  cases.push(trainCase(`maxPool2d 3/2/1 fwd+bwd ${tag(stem)}`, stem, poolBytes, pool));

  // OCBE concat [l1, l2, P3]
  const l = s(1024, 16);
  const cat = (x: Tensor) => ({ f: () => concat([x, x, x], 1), leaves: [] });
  cases.push(forwardCase(`concat axis 1, 3×${tag(l)}`, l, 2 * 4 * 3 * numel(l), cat));
  return cases;
}
