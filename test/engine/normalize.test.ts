import { beforeAll, describe, expect, it } from 'vitest';
import { normalizeChannels, tensor } from '../../src/engine/index.js';
import { gpu } from '../helpers/gpu.js';
import { gradcheck, randn } from '../helpers/gradcheck.js';

beforeAll(async () => {
  await gpu();
});

describe('normalizeChannels', () => {
  it('scales every pixel’s channel vector to unit length (CPU reference, odd sizes)', async () => {
    const [B, C, H, W] = [3, 7, 5, 3];
    const x = randn(B * C * H * W, 11, 3);
    // one all-zero pixel: the 1e-8 clamp keeps it zero instead of NaN
    for (let c = 0; c < C; c++) x[((1 * C + c) * H + 2) * W + 1] = 0;
    const y = await normalizeChannels(tensor(x, [B, C, H, W])).read();
    let worst = 0;
    for (let b = 0; b < B; b++)
      for (let p = 0; p < H * W; p++) {
        let ss = 0;
        for (let c = 0; c < C; c++) ss += x[(b * C + c) * H * W + p]! ** 2;
        const n = Math.max(Math.sqrt(ss), 1e-8);
        for (let c = 0; c < C; c++) {
          const k = (b * C + c) * H * W + p;
          worst = Math.max(worst, Math.abs(y[k]! - x[k]! / n));
        }
      }
    expect(worst).toBeLessThan(1e-6);
    expect(Number.isNaN(y[((1 * C + 0) * H + 2) * W + 1])).toBe(false);
  });

  it('gradient check', async () => {
    const { errors } = await gradcheck(
      (a) => normalizeChannels(a),
      [{ data: randn(2 * 4 * 6, 5), shape: [2, 4, 6] }],
      {
        h: 1e-3,
      },
    );
    for (const e of errors) expect(e).toBeLessThan(1e-2);
  });

  it('rejects a 1-D tensor', () => {
    expect(() => normalizeChannels(tensor(randn(4), [4]))).toThrow(
      /expected a non-empty tensor \[B, C, \.\.\.\]/,
    );
  });
});
