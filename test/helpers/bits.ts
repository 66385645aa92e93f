/**
 * Bit-for-bit comparison of float32 results, as a byte compare: vitest's toEqual walks typed arrays element
 * by element through its generic equality, tens of seconds for a network's tensors on a small CPU.
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
