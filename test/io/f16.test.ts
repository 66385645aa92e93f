/**
 * float32 → f16 (src/engine/io/f16.ts) against an independent reference: the nearest of all 63,488
 * finite halves found by binary search in float64 (ties to the even bit pattern), on every tie, both
 * sides of every tie, random float32 over the whole f16 range, and the edges — overflow to ±Infinity at
 * 65520 (not before), subnormals and their rounding to zero or to the smallest normal, signed zeros, NaN.
 */
import { describe, expect, it } from 'vitest';
import { floatToHalfBits, HALF_MAX, halfBitsToFloat, toHalfArray } from '../../src/engine/io/f16.js';
import { toFloat32 } from '../../src/engine/io/safetensors.js';

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
const bitsToF32 = (b: number) => {
  u32[0] = b >>> 0;
  return f32[0]!;
};
const f32Bits = (x: number) => {
  f32[0] = x;
  return u32[0]!;
};
/** The float32 next to x (toward +∞ for x > 0). */
const nextUp = (x: number) => bitsToF32(f32Bits(x) + 1);
const nextDown = (x: number) => bitsToF32(f32Bits(x) - 1);

/** Positive finite half values by bit pattern 0x0000..0x7bff, computed without the code under test. */
const POS = Array.from({ length: 0x7c00 }, (_, h) =>
  h < 0x400 ? h * 2 ** -24 : (1 + (h & 0x3ff) / 1024) * 2 ** ((h >> 10) - 15),
);

/** Reference: nearest finite half, ties to even; beyond the tie at 65520, Infinity. */
function reference(x: number): number {
  if (Number.isNaN(x)) return Number.NaN;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a >= 65520) return sign | 0x7c00;
  let lo = 0;
  let hi = POS.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (POS[mid]! <= a) lo = mid;
    else hi = mid;
  }
  if (a >= POS[hi]!) return sign | hi;
  const dLo = a - POS[lo]!;
  const dHi = POS[hi]! - a;
  return sign | (dLo < dHi ? lo : dHi < dLo ? hi : lo % 2 === 0 ? lo : hi);
}

describe('float32 → f16, round to nearest even', () => {
  it('decodes known patterns', () => {
    expect(halfBitsToFloat(0x3c00)).toBe(1);
    expect(halfBitsToFloat(0xc000)).toBe(-2);
    expect(halfBitsToFloat(0x7bff)).toBe(HALF_MAX);
    expect(halfBitsToFloat(0x0400)).toBe(2 ** -14);
    expect(halfBitsToFloat(0x0001)).toBe(2 ** -24);
    expect(halfBitsToFloat(0x7c00)).toBe(Number.POSITIVE_INFINITY);
    expect(Object.is(halfBitsToFloat(0x8000), -0)).toBe(true);
    expect(halfBitsToFloat(0x7e00)).toBeNaN();
  });

  it('keeps every half exactly (all 65,536 patterns; NaNs stay NaN)', () => {
    for (let h = 0; h < 0x10000; h++) {
      const v = halfBitsToFloat(h);
      const back = floatToHalfBits(v);
      if (Number.isNaN(v)) expect(Number.isNaN(halfBitsToFloat(back)), h.toString(16)).toBe(true);
      else if (back !== h) expect(back.toString(16), `0x${h.toString(16)}`).toBe(h.toString(16));
    }
  });

  it('rounds every tie to the even pattern, and a float32 step either side away from it', () => {
    let bad = 0;
    for (let h = 0; h < 0x7bff; h++) {
      const mid = (POS[h]! + POS[h + 1]!) / 2; // exact in float32 (12 significant bits)
      expect(Math.fround(mid)).toBe(mid);
      const even = h % 2 === 0 ? h : h + 1;
      if (floatToHalfBits(mid) !== even) bad++;
      if (floatToHalfBits(-mid) !== (0x8000 | even)) bad++;
      if (floatToHalfBits(nextDown(mid)) !== h) bad++;
      if (floatToHalfBits(nextUp(mid)) !== h + 1) bad++;
    }
    expect(bad).toBe(0);
  });

  it('matches the reference on 200,000 random float32 across the f16 range and below', () => {
    let seed = 12345;
    const rand = () => {
      seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
      return seed;
    };
    const mismatches: string[] = [];
    for (let i = 0; i < 200_000; i++) {
      // sign, an exponent from 2^-30 to 2^17 (subnormal halves, underflow, overflow), any mantissa
      const exp = 97 + (rand() % 48);
      const x = bitsToF32(((rand() & 1) << 31) | (exp << 23) | (rand() & 0x7fffff));
      const got = floatToHalfBits(x);
      const want = reference(x);
      if (got !== want && mismatches.length < 5) mismatches.push(`${x}: ${got} vs ${want}`);
    }
    expect(mismatches).toEqual([]);
  });

  it('overflows to ±Infinity exactly from the tie at 65520 on', () => {
    expect(floatToHalfBits(HALF_MAX)).toBe(0x7bff);
    expect(floatToHalfBits(nextDown(65520))).toBe(0x7bff);
    expect(floatToHalfBits(65520)).toBe(0x7c00); // tie between 65504 (odd) and 2^16 (even: ∞)
    expect(floatToHalfBits(1e6)).toBe(0x7c00);
    expect(floatToHalfBits(-1e6)).toBe(0xfc00);
    expect(floatToHalfBits(3.4028234e38)).toBe(0x7c00);
    expect(floatToHalfBits(Number.POSITIVE_INFINITY)).toBe(0x7c00);
    expect(floatToHalfBits(Number.NEGATIVE_INFINITY)).toBe(0xfc00);
    expect(halfBitsToFloat(floatToHalfBits(Number.NaN))).toBeNaN();
  });

  it('rounds into, within and out of the subnormals', () => {
    expect(floatToHalfBits(2 ** -24)).toBe(0x0001);
    expect(floatToHalfBits(2 ** -25)).toBe(0x0000); // tie between 0 and 2^-24: even
    expect(floatToHalfBits(nextUp(2 ** -25))).toBe(0x0001);
    expect(floatToHalfBits(3 * 2 ** -25)).toBe(0x0002); // tie between 1 and 2 (·2^-24): even
    expect(floatToHalfBits(1023 * 2 ** -24)).toBe(0x03ff); // the largest subnormal
    expect(floatToHalfBits(1023.5 * 2 ** -24)).toBe(0x0400); // its tie with the smallest normal
    expect(floatToHalfBits(1e-10)).toBe(0x0000);
    expect(floatToHalfBits(-1e-10)).toBe(0x8000);
    expect(floatToHalfBits(1e-45)).toBe(0x0000); // a float32 subnormal
    expect(floatToHalfBits(-0)).toBe(0x8000);
    expect(floatToHalfBits(0)).toBe(0x0000);
  });

  it('toHalfArray writes what safetensors reads back as F16', () => {
    const src = new Float32Array([0.1, -2.5, 65504, 1e-7, 70000, 0]);
    const h = toHalfArray(src);
    const back = toFloat32({ dtype: 'F16', shape: [6], bytes: new Uint8Array(h.buffer) });
    expect(Array.from(back)).toEqual(Array.from(h, halfBitsToFloat));
    expect(back[0]).toBeCloseTo(0.1, 3);
    expect(back[4]).toBe(Number.POSITIVE_INFINITY);
  });
});
