import { beforeAll, describe, expect, it } from 'vitest';
import {
  backward,
  param,
  permuteRows,
  type RowPermutation,
  rowPermutation,
  tensor,
  transposeLast2,
} from '../../src/engine/index.js';
import { gpu } from '../helpers/gpu.js';
import { gradcheck, randn } from '../helpers/gradcheck.js';

beforeAll(async () => {
  await gpu();
});

describe('transposeLast2', () => {
  // odd sizes: partial tiles on both axes, more than one tile per axis, several batches
  for (const [b, r, c] of [
    [1, 1, 1],
    [2, 33, 70],
    [3, 64, 5],
    [1, 100, 37],
  ] as const) {
    it(`[${b}, ${r}, ${c}] → [${b}, ${c}, ${r}] moves every element`, async () => {
      const x = randn(b * r * c, 3);
      const y = await transposeLast2(tensor(x, [b, r, c])).read();
      expect(y.length).toBe(x.length);
      let bad = 0;
      for (let k = 0; k < b; k++)
        for (let i = 0; i < r; i++)
          for (let j = 0; j < c; j++) if (y[(k * c + j) * r + i] !== x[(k * r + i) * c + j]) bad++;
      expect(bad).toBe(0);
    });
  }

  it('gradient is the transposed upstream gradient', async () => {
    const { errors } = await gradcheck(
      (a) => transposeLast2(a),
      [{ data: randn(2 * 5 * 3, 4), shape: [2, 5, 3] }],
      {
        h: 1e-3,
      },
    );
    for (const e of errors) expect(e).toBeLessThan(1e-3);
    const x = param(tensor(randn(24, 5), [2, 3, 4]));
    const g = randn(24, 6);
    backward(transposeLast2(x), tensor(g, [2, 4, 3]));
    const dx = await x.grad!.read();
    for (let k = 0; k < 2; k++)
      for (let i = 0; i < 3; i++)
        for (let j = 0; j < 4; j++) expect(dx[(k * 3 + i) * 4 + j]).toBe(g[(k * 4 + j) * 3 + i]);
  });

  it('rejects a tensor that is not 3-D', () => {
    expect(() => transposeLast2(tensor(randn(6), [2, 3]))).toThrow(/expected a 3-D tensor \[B, R, C\]/);
  });
});

describe('permuteRows', () => {
  it('gathers rows of a 3-D tensor and scatters the gradient back', async () => {
    const x = param(tensor(randn(3 * 2 * 2, 8), [3, 2, 2]));
    const y = permuteRows(x, [2, 0, 1]);
    const yv = await y.read();
    const xv = await x.read();
    expect(Array.from(yv.slice(0, 4))).toEqual(Array.from(xv.slice(8, 12)));
    const g = randn(12, 9);
    backward(y, tensor(g, [3, 2, 2]));
    const dx = await x.grad!.read();
    expect(Array.from(dx.slice(8, 12))).toEqual(Array.from(g.slice(0, 4)));
  });

  it('gives the same rows and gradient with the permutation on the GPU (a graph input)', async () => {
    const perm = [3, 0, 2, 1];
    const g = tensor(randn(4 * 5, 12), [4, 5]);
    const run = async (p: readonly number[] | RowPermutation) => {
      const x = param(tensor(randn(4 * 5, 11), [4, 5]));
      const y = permuteRows(x, p);
      backward(y, g);
      const out = [await y.read(), await x.grad!.read()];
      x.dispose();
      return out;
    };
    const gpuPerm = rowPermutation(perm);
    const [y1, dx1] = await run(perm);
    const [y2, dx2] = await run(gpuPerm);
    expect(Array.from(y2!)).toEqual(Array.from(y1!));
    expect(Array.from(dx2!)).toEqual(Array.from(dx1!));
    expect(Array.from(await gpuPerm.inverse.read())).toEqual([1, 3, 2, 0]);
    expect(() => permuteRows(tensor(randn(6), [3, 2]), gpuPerm)).toThrow(/a permutation of 4 rows/);
    expect(() => rowPermutation([1, 1])).toThrow(/not a permutation of 0..1/);
    for (const t of [g, gpuPerm.perm, gpuPerm.inverse]) t.dispose();
  });

  it('rejects a list that is not a permutation', () => {
    expect(() => permuteRows(tensor(randn(6), [3, 2]), [0, 0, 1])).toThrow(/not a permutation of 0..2/);
  });
});
