/**
 * Benchmark cases for the anomaly-map ops and the optimizer: bilinear upsampling of the 64² and 16²
 * cosine maps to 256² (forward, and forward + adjoint), the σ = 4 gaussian on 256² maps, and one Adam
 * step over RD++'s OCBE + decoder parameter count (≈ 25M, spec §1.1) — as one tensor (bandwidth) and as
 * 160 tensors (dispatch overhead included, as in training). Full = batch 16; small runs in about a second
 * on lavapipe.
 */
import {
  Adam,
  backward,
  gaussianBlur,
  keep,
  numel,
  param,
  resizeBilinear,
  type Tensor,
  tensor,
} from '../src/engine/index.js';
import { type BenchCase, type BenchSize, benchValues } from './harness.js';

function resizeCase(shape: number[], out: number, withBackward: boolean): BenchCase {
  const inN = numel(shape);
  const outN = (inN / (shape[2]! * shape[3]!)) * out * out;
  return {
    family: 'resize',
    name: `bilinear ${shape.join('×')} → ${out}²${withBackward ? ' fwd+bwd' : ''}`,
    // forward: read the input once (cached taps), write the output; adjoint: read g, write a temporary, read it, write dx
    bytes: 4 * (inN + outN) + (withBackward ? 4 * (outN + 2 * (outN / out) * shape[3]! + inN) : 0),
    setup: async () => {
      const x = tensor(benchValues(inN, 1), shape);
      const g = tensor(benchValues(outN, 2), [shape[0]!, shape[1]!, out, out]);
      if (withBackward) x.requiresGrad = true;
      return {
        run: () => {
          const y = resizeBilinear(x, out, out);
          if (withBackward) {
            backward(y, g);
            x.grad?.dispose();
            x.grad = null;
          }
          y.dispose();
        },
        dispose: () => {
          x.dispose();
          g.dispose();
        },
      };
    },
  };
}

function blurCase(shape: number[]): BenchCase {
  const n = numel(shape);
  return {
    family: 'blur',
    name: `gaussian σ4 ${shape.join('×')}`,
    bytes: 4 * 4 * n, // two passes, each reads and writes every sample once
    flops: 2 * 2 * 33 * n,
    setup: async () => {
      const x = tensor(benchValues(n, 3), shape);
      return { run: () => gaussianBlur(x).dispose(), dispose: () => x.dispose() };
    },
  };
}

function adamCase(total: number, tensors: number): BenchCase {
  const each = Math.ceil(total / tensors);
  return {
    family: 'adam',
    name: `step ${(total / 1e6).toFixed(total < 1e6 ? 2 : 0)}M params in ${tensors} tensor${tensors > 1 ? 's' : ''}`,
    bytes: 28 * each * tensors, // reads p, g, m, v; writes p, m, v
    setup: async () => {
      const ps: Tensor[] = [];
      for (let k = 0; k < tensors; k++) {
        const p = param(tensor(benchValues(each, 10 + k), [each]));
        p.grad = keep(tensor(benchValues(each, 1000 + k), [each]));
        ps.push(p);
      }
      const opt = new Adam(ps, { lr: 5e-3, betas: [0.5, 0.999] });
      return {
        run: () => opt.step(),
        dispose: () => {
          opt.zeroGrad();
          opt.dispose();
          for (const p of ps) p.dispose();
        },
      };
    },
  };
}

export function benchCases(size: BenchSize): BenchCase[] {
  if (size === 'small')
    return [
      resizeCase([2, 1, 16, 16], 64, false),
      resizeCase([2, 1, 16, 16], 64, true),
      blurCase([2, 64, 64]),
      adamCase(100_000, 8),
    ];
  return [
    resizeCase([16, 1, 64, 64], 256, false),
    resizeCase([16, 1, 32, 32], 256, false),
    resizeCase([16, 1, 16, 16], 256, false),
    resizeCase([16, 1, 64, 64], 256, true),
    resizeCase([16, 1, 16, 16], 256, true),
    blurCase([16, 256, 256]),
    adamCase(25_000_000, 1),
    adamCase(25_000_000, 160),
  ];
}
