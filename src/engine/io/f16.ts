/**
 * IEEE 754 binary16 ("f16", safetensors `F16`) ⇄ float32, bit-exact, without Float16Array (Node 20
 * lacks it). float32 → f16 rounds to nearest, ties to even, like a hardware conversion and numpy's
 * `astype(float16)`: values beyond the largest finite half (65504) that round up become ±Infinity,
 * values below half the smallest subnormal (2^-25) become ±0, everything between becomes the nearest
 * subnormal; NaN stays NaN (quiet, payload truncated), the sign of zero is kept.
 */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The f16 bit pattern nearest to `x` (first rounded to float32, as a Float32Array store does). */
export function floatToHalfBits(x: number): number {
  f32[0] = x;
  const b = u32[0]!;
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  const mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 127 + 15; // the biased f16 exponent
  if (e >= 0x1f) return sign | 0x7c00; // ≥ 2^16: beyond every rounding of 65504
  if (e <= 0) {
    // a subnormal half m · 2^-24: m = value · 2^24 = full · 2^(e − 14), full = 1.mant as a 24-bit integer
    const shift = 14 - e;
    if (shift > 24) return sign; // below 2^-25 (half the smallest subnormal): rounds to zero
    const full = mant | 0x800000;
    let m = full >>> shift;
    const rem = full & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && m & 1)) m++; // m may reach 0x400: the smallest normal, correctly
    return sign | m;
  }
  let h = sign | (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  // a carry out of the mantissa increments the exponent, and past 65504 gives exactly Infinity (0x7c00)
  if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++;
  return h;
}

/** The value of an f16 bit pattern (exact in float32 and float64). */
export function halfBitsToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? Number.NaN : s * Number.POSITIVE_INFINITY;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

/** float32 values as f16 bit patterns (round to nearest even). */
export function toHalfArray(src: Float32Array): Uint16Array {
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = floatToHalfBits(src[i]!);
  return out;
}

/** The largest finite f16 value; anything that rounds beyond it is stored as Infinity. */
export const HALF_MAX = 65504;
