/**
 * Benchmark cases for the conv family: forward, input gradient (dgrad) and weight gradient (wgrad) of the
 * convolutions at RD++'s real shapes (WRN50-2 at 256×256, batch 16, spec §1.1 and §2.3), the decoder's
 * 2×2 s2 transposed convolutions, a 1×1 conv, the teacher stem, and a plain 2048³ matmul. FLOPs count 2
 * per multiply-accumulate of the mathematical operation (dgrad and wgrad do as many as the forward).
 * `small` shapes run in about a second each on lavapipe.
 */
import {
  conv2d,
  conv2dBackwardInput,
  conv2dBackwardWeight,
  convTranspose2d,
  convTranspose2dBackwardInput,
  convTranspose2dBackwardWeight,
  full,
  matmul,
  noGrad,
  type Tensor,
} from '../src/engine/index.js';
import type { BenchCase, BenchSize } from './harness.js';

type Pass = 'fwd' | 'dgrad' | 'wgrad';

interface ConvShape {
  /** where RD++ uses it */
  what: string;
  n: number;
  ci: number;
  co: number;
  h: number;
  k: number;
  s: number;
  p: number;
}

/**
 * `body` on the tensors `make` gives; the weight (index `weightAt`) is trainable, as in a training step: the
 * conv copies it into its GEMM's layout at every call (only a frozen weight's copy is kept, packedWeight).
 */
function timed(make: () => Tensor[], body: (ts: Tensor[]) => Tensor, weightAt: number | null = null) {
  return async () => {
    const ts = make();
    if (weightAt !== null) ts[weightAt]!.requiresGrad = true;
    return {
      run: () => noGrad(() => body(ts)).dispose(),
      dispose: () => {
        for (const t of ts) t.dispose();
      },
    };
  };
}

function convCases(c: ConvShape, passes: Pass[]): BenchCase[] {
  const ho = Math.floor((c.h + 2 * c.p - c.k) / c.s) + 1;
  const flops = 2 * c.n * ho * ho * c.co * c.ci * c.k * c.k;
  const opts = { stride: c.s, padding: c.p };
  const label = `conv${c.k}x${c.k}${c.s > 1 ? ` s${c.s}` : ''} ${c.h}x${c.h} ${c.ci}→${c.co} N${c.n} (${c.what})`;
  const xs = [c.n, c.ci, c.h, c.h];
  const ws = [c.co, c.ci, c.k, c.k];
  const gs = [c.n, c.co, ho, ho];
  const body: Record<Pass, (t: Tensor[]) => Tensor> = {
    fwd: ([x, w]) => conv2d(x!, w!, null, opts),
    dgrad: ([g, w]) => conv2dBackwardInput(g!, w!, xs, opts),
    wgrad: ([x, g]) => conv2dBackwardWeight(x!, g!, ws, opts),
  };
  const inputs: Record<Pass, number[][]> = { fwd: [xs, ws], dgrad: [gs, ws], wgrad: [xs, gs] };
  return passes.map((pass) => ({
    family: 'conv',
    name: `${pass.padEnd(5)} ${label}`,
    flops,
    setup: timed(() => inputs[pass].map((s) => full(s, 0.01)), body[pass], pass === 'wgrad' ? null : 1),
  }));
}

function deconvCases(n: number, ci: number, co: number, h: number, what: string): BenchCase[] {
  const flops = 2 * n * h * h * ci * co * 4;
  const label = `deconv2x2 ${h}x${h} ${ci}→${co} N${n} (${what})`;
  const xs = [n, ci, h, h];
  const ws = [ci, co, 2, 2];
  const gs = [n, co, 2 * h, 2 * h];
  const mk = (shapes: number[][]) => () => shapes.map((s) => full(s, 0.01));
  return [
    { name: `fwd   ${label}`, setup: timed(mk([xs, ws]), ([x, w]) => convTranspose2d(x!, w!), 1) },
    {
      name: `dgrad ${label}`,
      setup: timed(mk([gs, ws]), ([g, w]) => convTranspose2dBackwardInput(g!, w!, xs), 1),
    },
    {
      name: `wgrad ${label}`,
      setup: timed(mk([xs, gs]), ([x, g]) => convTranspose2dBackwardWeight(x!, g!, co)),
    },
  ].map((c) => ({ family: 'conv', flops, ...c }));
}

function matmulCase(m: number, k: number, n: number): BenchCase {
  return {
    family: 'conv',
    name: `matmul ${m}x${k}x${n}`,
    flops: 2 * m * k * n,
    setup: timed(
      () => [full([m, k], 0.01), full([k, n], 0.01)],
      ([a, b]) => matmul(a!, b!),
    ),
  };
}

const ALL: Pass[] = ['fwd', 'dgrad', 'wgrad'];

export function benchCases(size: BenchSize): BenchCase[] {
  if (size === 'small') {
    return [
      ...convCases({ what: 'proj-like', n: 2, ci: 64, co: 64, h: 32, k: 3, s: 1, p: 1 }, ALL),
      ...convCases({ what: 'OCBE-like', n: 2, ci: 64, co: 128, h: 32, k: 3, s: 2, p: 1 }, ALL),
      ...convCases({ what: 'bottleneck-like', n: 2, ci: 256, co: 128, h: 16, k: 1, s: 1, p: 0 }, ALL),
      ...deconvCases(2, 256, 256, 8, 'decoder-like'),
      ...convCases({ what: 'stem-like', n: 2, ci: 3, co: 64, h: 64, k: 7, s: 2, p: 3 }, ['fwd']),
      matmulCase(256, 256, 256),
    ];
  }
  const N = 16;
  return [
    // projection layers (spec §2.3), 3×3 s1 p1 at each scale
    ...convCases({ what: 'Proj1', n: N, ci: 256, co: 128, h: 64, k: 3, s: 1, p: 1 }, ALL),
    ...convCases({ what: 'Proj1', n: N, ci: 128, co: 64, h: 64, k: 3, s: 1, p: 1 }, ALL),
    ...convCases({ what: 'Proj2', n: N, ci: 512, co: 256, h: 32, k: 3, s: 1, p: 1 }, ALL),
    ...convCases({ what: 'Proj3', n: N, ci: 1024, co: 512, h: 16, k: 3, s: 1, p: 1 }, ALL),
    // OCBE 3×3 s2 (spec §2.4) and the bottleneck's 3×3 s2
    ...convCases({ what: 'OCBE branch 1', n: N, ci: 256, co: 512, h: 64, k: 3, s: 2, p: 1 }, ALL),
    ...convCases({ what: 'OCBE block 0', n: N, ci: 1024, co: 1024, h: 16, k: 3, s: 2, p: 1 }, ALL),
    // decoder 3×3 s1 at 64×64 (layer3 blocks 1-5)
    ...convCases({ what: 'decoder layer3', n: N, ci: 128, co: 128, h: 64, k: 3, s: 1, p: 1 }, ALL),
    // a 1×1: the OCBE bottleneck's 3072→1024
    ...convCases({ what: 'OCBE block 0 1×1', n: N, ci: 3072, co: 1024, h: 16, k: 1, s: 1, p: 0 }, ALL),
    // the teacher stem (forward only: the teacher is frozen)
    ...convCases({ what: 'teacher stem', n: 2 * N, ci: 3, co: 64, h: 256, k: 7, s: 2, p: 3 }, ['fwd']),
    // decoder transposed convs
    ...deconvCases(N, 2048, 1024, 8, 'decoder layer1 shortcut'),
    ...deconvCases(N, 512, 512, 8, 'decoder layer1.0 conv2'),
    ...deconvCases(N, 512, 256, 32, 'decoder layer3 shortcut'),
    matmulCase(2048, 2048, 2048),
  ];
}
