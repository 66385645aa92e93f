/**
 * Comparisons of float32 results: bit for bit as a byte compare (vitest's toEqual walks typed arrays element
 * by element through its generic equality, tens of seconds for a network's tensors on a small CPU), and
 * value for value.
 */
import { expect } from 'vitest';

const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/** Whether a and b hold the same bits. */
export function sameBits(a: Float32Array, b: Float32Array): boolean {
  return bytes(a).equals(bytes(b));
}

/** a and b hold the same bits; otherwise the first element that differs is named. */
export function expectSameBits(a: Float32Array, b: Float32Array, what: string): void {
  expect(a.length, what).toBe(b.length);
  if (sameBits(a, b)) return;
  const i = a.findIndex((v, k) => !Object.is(v, b[k]));
  expect(a[i], `${what}, element ${i}`).toBe(b[i]);
}

/**
 * got and want hold the same values (`!==` per element: −0 equals 0; NaN never occurs where it is used);
 * otherwise how many differ.
 */
export function expectSameValues(got: Float32Array, want: Float32Array, what: string): void {
  expect(got.length, what).toBe(want.length);
  let diff = 0;
  for (let i = 0; i < got.length; i++) if (got[i] !== want[i]) diff++;
  expect(diff, `${what}: values that differ`).toBe(0);
}
