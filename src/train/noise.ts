/**
 * RD++ pseudo-anomalies (spec §5): a box of fractal OpenSimplex noise added to every training image.
 *
 * - `fractalNoise3`: N[c, i, j] = Σ_{o=0..5} 0.6^o · noise3(j / f_o, i / f_o, c / f_o) with the
 *   "frequency" f_o = 32 / 2^o (so octave o samples the lattice with spacing 2^o / 32), x ↔ column j,
 *   y ↔ row i, z ↔ channel c; CHW layout. Sum in float64 (amplitude by repeated ×0.6, octaves in order
 *   0..5, like the reference), cast to float32 at the end.
 * - `NoiseField`: the reference evaluates every patch from lattice coordinate 0 with one generator per
 *   dataset, so all patches of a training run are crops of ONE fixed field at its top-left corner. The
 *   field is computed once (3 × 31 × 31, the largest box the spec draws) and cropped; values are
 *   identical to `fractalNoise3` at any h, w (the field grows on demand if a larger crop is asked for).
 * - `PseudoAnomaly.apply`: draws the box from the caller's RNG, in the reference's order,
 *   h = int(10, 32), w = int(10, 32), r0 = int(1, size − h), c0 = int(1, size − w) (`int(lo, hi)` is
 *   uniform in [lo, hi)), and adds 0.2 · N[c, i, j] to img[c, r0 + i, c0 + j] in place (CHW RGB in
 *   [0, 1], before mean/std normalisation, no clipping).
 *
 * Image sizes. For 256 × 256 this is exactly the spec: boxes are 10..31 px and never touch row/column 0
 * or 255. Nothing is rescaled for other sizes: the box keeps the same side distribution and the same
 * one-pixel margin. A side can only be as large as size − 2 (so that int(1, size − side) is non-empty
 * and the box keeps its margin); sides drawn larger are clamped to size − 2 AFTER the draw, so the
 * number and order of RNG draws never depend on the size. With the default sides (≤ 31) clamping
 * happens only for images smaller than 33 px; images smaller than 3 px cannot hold a box (error).
 *
 * Platform-neutral: no Node or browser APIs.
 */

import { OpenSimplex3 } from './opensimplex.js';

export { OpenSimplex3, toSeed64 } from './opensimplex.js';

/** Octave count, persistence and base frequency of the reference's fractal noise (spec §5). */
export const NOISE_OCTAVES = 6;
export const NOISE_PERSISTENCE = 0.6;
export const NOISE_BASE_FREQUENCY = 32;

/** Largest box side the spec draws (randint(10, 32) → at most 31). */
const DEFAULT_FIELD_SIDE = 31;
const CHANNELS = 3;

/** N[c, i, j] in float64 (see the header). */
export function fractalNoiseAt(gen: OpenSimplex3, c: number, i: number, j: number): number {
  let sum = 0;
  let amp = 1;
  let freq = NOISE_BASE_FREQUENCY;
  for (let o = 0; o < NOISE_OCTAVES; o++) {
    sum += amp * gen.noise3(j / freq, i / freq, c / freq);
    amp *= NOISE_PERSISTENCE;
    freq /= 2;
  }
  return sum;
}

function checkDims(op: string, dims: Record<string, number>, min: number): void {
  for (const [name, v] of Object.entries(dims)) {
    if (!Number.isInteger(v) || v < min) {
      throw new Error(`${op}: ${name} must be an integer ≥ ${min}, got ${v}`);
    }
  }
}

/** Fractal noise of shape (c, h, w), CHW float32, evaluated from lattice coordinate 0. */
export function fractalNoise3(gen: OpenSimplex3, c: number, h: number, w: number): Float32Array {
  checkDims('fractalNoise3', { c, h, w }, 0);
  const out = new Float32Array(c * h * w);
  let k = 0;
  for (let ch = 0; ch < c; ch++) {
    for (let i = 0; i < h; i++) {
      for (let j = 0; j < w; j++) out[k++] = fractalNoiseAt(gen, ch, i, j);
    }
  }
  return out;
}

/**
 * The fixed 3-channel noise field of one generator, computed once and cropped at its top-left corner.
 * `crop(h, w)` equals `fractalNoise3(gen, 3, h, w)` exactly.
 */
export class NoiseField {
  readonly gen: OpenSimplex3;
  private field: Float64Array;
  private h: number;
  private w: number;

  constructor(seed: bigint | number | OpenSimplex3, maxH = DEFAULT_FIELD_SIDE, maxW = DEFAULT_FIELD_SIDE) {
    checkDims('NoiseField', { maxH, maxW }, 0);
    this.gen = seed instanceof OpenSimplex3 ? seed : new OpenSimplex3(seed);
    this.h = 0;
    this.w = 0;
    this.field = new Float64Array(0);
    this.ensure(maxH, maxW);
  }

  /** Grow the cached field so that it covers h × w. */
  private ensure(h: number, w: number): void {
    if (h <= this.h && w <= this.w) return;
    const nh = Math.max(h, this.h);
    const nw = Math.max(w, this.w);
    const f = new Float64Array(CHANNELS * nh * nw);
    for (let c = 0; c < CHANNELS; c++) {
      for (let i = 0; i < nh; i++) {
        for (let j = 0; j < nw; j++) {
          f[(c * nh + i) * nw + j] =
            i < this.h && j < this.w
              ? this.field[(c * this.h + i) * this.w + j]!
              : fractalNoiseAt(this.gen, c, i, j);
        }
      }
    }
    this.field = f;
    this.h = nh;
    this.w = nw;
  }

  /** N[:, :h, :w] in float64 (what `PseudoAnomaly` adds, before the image's float32 rounding). */
  crop64(h: number, w: number): Float64Array {
    checkDims('NoiseField.crop', { h, w }, 0);
    this.ensure(h, w);
    const out = new Float64Array(CHANNELS * h * w);
    for (let c = 0; c < CHANNELS; c++) {
      for (let i = 0; i < h; i++) {
        const src = (c * this.h + i) * this.w;
        out.set(this.field.subarray(src, src + w), (c * h + i) * w);
      }
    }
    return out;
  }

  /** N[:, :h, :w] as CHW float32. */
  crop(h: number, w: number): Float32Array {
    return Float32Array.from(this.crop64(h, w));
  }
}

export interface PseudoAnomalyOptions {
  /** noise seed (any integer; taken as signed 64-bit) — the reference draws one per dataset */
  seed: number | bigint;
  /** the training image side (used to size the cached field; `apply` takes the actual size) */
  imageSize: number;
  /** noise amplitude (reference 0.2) */
  scale?: number;
  /** box side is drawn as int(minSide, maxSide), i.e. in [minSide, maxSide − 1] (reference 10, 32) */
  minSide?: number;
  maxSide?: number;
}

/** The integer draws `PseudoAnomaly` needs: uniform in [lo, hi). */
export interface IntRng {
  int(lo: number, hi: number): number;
}

/** Adds the RD++ simplex-noise box to training images (see the header for the exact draws). */
export class PseudoAnomaly {
  readonly field: NoiseField;
  readonly scale: number;
  readonly minSide: number;
  readonly maxSide: number;
  readonly imageSize: number;

  constructor(opts: PseudoAnomalyOptions) {
    this.scale = opts.scale ?? 0.2;
    this.minSide = opts.minSide ?? 10;
    this.maxSide = opts.maxSide ?? 32;
    this.imageSize = opts.imageSize;
    checkDims('PseudoAnomaly', { imageSize: this.imageSize }, 3);
    checkDims('PseudoAnomaly', { minSide: this.minSide }, 1);
    if (!Number.isInteger(this.maxSide) || this.maxSide <= this.minSide) {
      throw new Error(
        `PseudoAnomaly: maxSide must be an integer > minSide (${this.minSide}), got ${this.maxSide}`,
      );
    }
    if (!Number.isFinite(this.scale))
      throw new Error(`PseudoAnomaly: scale must be finite, got ${this.scale}`);
    const side = Math.min(this.maxSide - 1, this.imageSize - 2);
    this.field = new NoiseField(opts.seed, side, side);
  }

  /**
   * Draw a box and add scale · N to `rgbChw` (3 × size × size, CHW) in place. Returns the box as
   * [r0, c0, h, w] (rows r0..r0+h−1, columns c0..c0+w−1).
   */
  apply(rgbChw: Float32Array, size: number, rng: IntRng): { box: [number, number, number, number] } {
    checkDims('PseudoAnomaly.apply', { size }, 3);
    if (rgbChw.length !== CHANNELS * size * size) {
      throw new Error(
        `PseudoAnomaly.apply: image has ${rgbChw.length} values, expected 3×${size}×${size} = ${
          CHANNELS * size * size
        } (CHW RGB)`,
      );
    }
    let h = rng.int(this.minSide, this.maxSide);
    let w = rng.int(this.minSide, this.maxSide);
    h = Math.min(h, size - 2);
    w = Math.min(w, size - 2);
    const r0 = rng.int(1, size - h);
    const c0 = rng.int(1, size - w);
    const n = this.field.crop64(h, w);
    const plane = size * size;
    const s = this.scale;
    for (let c = 0; c < CHANNELS; c++) {
      for (let i = 0; i < h; i++) {
        const dst = c * plane + (r0 + i) * size + c0;
        const src = (c * h + i) * w;
        for (let j = 0; j < w; j++) rgbChw[dst + j] = rgbChw[dst + j]! + s * n[src + j]!;
      }
    }
    return { box: [r0, c0, h, w] };
  }
}
