/**
 * Parity tolerances under PRECISION=f16 (f16 GEMM operands, f32 accumulation; engine/precision.ts).
 *
 * The golden fixtures' tolerances are for float32 (8 × what PyTorch's own float32 misses the float64
 * reference by). f16 rounds every GEMM operand to an 11-bit significand: unit roundoff u = 2⁻¹¹ ≈ 4.9e-4,
 * 8192 × float32's, so a product carries up to ~2u relative error; over K terms of mixed sign the error of
 * a sum relative to its largest magnitude stays a few u, and it grows with depth (each layer's input is
 * already off). Only the GEMMs change: every other op must still meet the fixture's float32 tolerance, so
 * the f16 tables below name GEMM cases (ops) and whole-network categories (models) only.
 *
 * Numbers: measured on Mesa lavapipe (round-to-nearest, subnormals kept) with the ops and rd18 fixtures,
 * tolerance ≈ 3–4 × the measurement, because WGSL lets a GPU round f32 → f16 to either neighbour and sum
 * in another order (docs: README, section Precision). rd18 (max over the category; measured → tolerance):
 *   features 7.0e-3 → 2e-2 (student0; the decoder's last layers), scalars 3.8e-3 → 1e-2 (4e-2 since f16 storage, below; recon, a mean of
 *   1 − cos with cos ≈ 0.999: the features' error on the 1 − cos scale), grads_val 0.25 → 0.75 per element
 *   (float32 itself misses by 2.5%: this step is ill-conditioned), grads_l2 3.8e-2 → 0.1, running 1.1e-3 →
 *   4e-3, eval 3.5e-4 → 1.5e-3. grads_abs (exact zeros) keeps the fixture's bound. ops: conv2d/deconv
 *   ≤ 5.8e-4 (y, dx, dw) → 2e-3.
 *
 * Since the teacher's activations are stored in f16 under PRECISION=f16 (flag F16_STORAGE, as AMP stores
 * them), rd18 measures (2026-12-07, lavapipe; F16_STORAGE off → on): scalars recon 1.20e-3 → 1.17e-2 and
 * L_proj 1.28e-3 → 1.16e-2 (tolerance 1e-2 → 4e-2), L_distill and loss 3.4e-5 → 3.9e-5, features 5.6e-3
 * → 6.6e-3, grads_val 0.30 → 0.24, grads_l2 3.2e-2 → 3.4e-2, running 1.1e-3 → 1.2e-3, eval 3.2e-4 →
 * 4.7e-4 (with the evaluation's projection, OCBE and decoder activations in f16 as well; all within the
 * tolerances above). Why recon moves most: it is 1 − cos(proj(T_noisy), proj(T))
 * = 8.1e-4, so the 9.5e-6 that the rounded residual stream moves the cosine by is 1.2 % of it. It is the
 * rounding itself, not the kernels: f32 storage with every teacher conv's output rounded to f16 and back
 * (cast) gives the same figures to three digits (1.17e-2 / 1.16e-2 / 3.90e-5), and with f32 GEMMs 7.8e-3;
 * rounding only the three taps changes nothing (the projection's f16 operands round them anyway).
 *
 * Since the student's training activations are f16 too (flag F16_TRAIN_STORAGE, 2026-12-07, lavapipe; off
 * → on), rd18: features 6.6e-3 → 9.2e-3, scalars 1.17e-2 → 1.30e-2 (recon), grads_val 0.24 → 0.26,
 * grads_l2 3.4e-2 → 4.2e-2, running 1.2e-3 → 1.1e-3, eval unchanged (4.7e-4; evaluation stored f16
 * already): within the tolerances above, which stay.
 *
 * wrn50 (WideResNet-50-2, batch 2, 128²) has its own table: its step is worse conditioned — in float32 this
 * engine misses the float64 reference by 1.2e-4 in features (rd18: ~8e-6), 0.15 per gradient element and
 * 8.5e-3 in gradient l2 (2026-12-07, lavapipe) — and f16 amplifies that by the same factors as in rd18: ≈
 * 1,000× in features and running statistics, 10–20× in gradients. Measured, f16 operands with f32 / f16
 * training storage: features 0.131 / 0.139 (student0, the decoder's last layer), scalars 1.44e-2 / 1.63e-2,
 * grads_val 1.59 / 1.34, grads_l2 0.169 / 0.105, running 1.41e-2 / 1.28e-2, eval 3.9e-4 / 3.9e-4. Its
 * tolerances are ≈ 3 × the larger of each pair (grads_val, per element, says little at this conditioning:
 * grads_l2 is the gradient check that bites).
 */
import type { Precision } from '../engine/flags.js';

/** Op-case families that are GEMMs (the only ones f16 changes), and their f16 tolerance. */
export const F16_OP_TOLERANCE: Readonly<Record<string, number>> = { conv2d: 2e-3, deconv: 2e-3 };

/** The model fixtures with f16 tolerances (a fixture is known by its projection base: 16 or 64). */
export type ModelFixture = 'rd18' | 'wrn50';

export function modelFixture(projBase: number): ModelFixture {
  return projBase === 64 ? 'wrn50' : 'rd18';
}

/** Whole-network categories (model fixtures) under f16; a category not named keeps the fixture's. */
export const F16_MODEL_TOLERANCE: Readonly<Record<ModelFixture, Readonly<Record<string, number>>>> = {
  rd18: {
    features: 2e-2,
    scalars: 4e-2,
    grads_val: 0.75,
    grads_l2: 0.1,
    running: 4e-3,
    eval: 1.5e-3,
  },
  wrn50: {
    features: 0.4,
    scalars: 4e-2,
    grads_val: 5,
    grads_l2: 0.5,
    running: 4e-2,
    eval: 1.5e-3,
  },
};

/** The tolerance of an op case at a precision: f16 widens GEMM cases only, never tightens. */
export function opTolerance(caseName: string, fixtureTolerance: number, precision: Precision): number {
  const f16 = precision === 'f16' ? F16_OP_TOLERANCE[caseName.replace(/_\d+$/, '')] : undefined;
  return f16 === undefined ? fixtureTolerance : Math.max(fixtureTolerance, f16);
}

/** The tolerance of a model-fixture category at a precision (f16 widens, never tightens). */
export function modelTolerance(
  fixture: ModelFixture,
  category: string,
  fixtureTolerance: number,
  precision: Precision,
): number {
  const f16 = precision === 'f16' ? F16_MODEL_TOLERANCE[fixture][category] : undefined;
  return f16 === undefined ? fixtureTolerance : Math.max(fixtureTolerance, f16);
}
