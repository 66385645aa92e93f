/**
 * No leaks across training steps: a small conv net (conv 3×3 → leakyRelu → conv 3×3 s2 →
 * convTranspose2d) runs 100 forward/backward steps, each in its own scope, with the parameter gradients
 * disposed between steps. Live bytes must return to the same value after every step and the pool must
 * stop creating buffers once it has seen one step (everything afterwards is reuse).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import {
  backward,
  conv2d,
  convTranspose2d,
  leakyRelu,
  param,
  runtime,
  scope,
  type Tensor,
  tensor,
} from '../../src/engine/index.js';
import { gpu } from '../helpers/gpu.js';
import { randn } from '../helpers/gradcheck.js';

beforeAll(async () => {
  await gpu();
});

describe('memory: repeated conv-net training steps', () => {
  it('keeps live bytes constant and reuses pooled buffers over 100 steps', async () => {
    const rt = runtime();
    const w1 = param(tensor(randn(6 * 3 * 9, 1, 0.3), [6, 3, 3, 3]), 'w1');
    const b1 = param(tensor(randn(6, 2, 0.1), [6]), 'b1');
    const w2 = param(tensor(randn(8 * 6 * 9, 3, 0.3), [8, 6, 3, 3]), 'w2');
    const w3 = param(tensor(randn(8 * 5 * 4, 4, 0.3), [8, 5, 2, 2]), 'w3');
    const params: Tensor[] = [w1, b1, w2, w3];
    const xData = randn(2 * 3 * 10 * 10, 5);
    const seed = randn(2 * 5 * 10 * 10, 6);
    await rt.sync();
    const baseline = rt.pool.snapshot().liveBytes;

    const live: number[] = [];
    const created: number[] = [];
    for (let step = 0; step < 100; step++) {
      scope(() => {
        const x = tensor(xData, [2, 3, 10, 10]);
        const h = leakyRelu(conv2d(x, w1, b1, { padding: 1 }), 0.01);
        const h2 = conv2d(h, w2, null, { stride: 2, padding: 1 });
        const y = convTranspose2d(h2, w3);
        expect(y.shape).toEqual([2, 5, 10, 10]);
        backward(y, tensor(seed, y.shape));
      });
      for (const p of params) {
        expect(p.grad, `${p.name} has a gradient after step ${step}`).not.toBeNull();
        p.grad?.dispose();
        p.grad = null;
      }
      // a real loop reads the loss here: the submit makes this step's released buffers reusable
      await rt.sync();
      const s = rt.pool.snapshot();
      live.push(s.liveBytes);
      created.push(s.createdBytes);
    }
    expect(live[99]).toBe(live[0]);
    expect(live[99]).toBe(baseline);
    expect(new Set(live).size).toBe(1);
    // the pool may still be warming up during the second step; after it nothing new is created
    expect(created[99]).toBe(created[1]);
    for (const p of params) p.dispose();
  });

  it('ops dispose their own temporaries (no scope to catch them)', async () => {
    const rt = runtime();
    await rt.sync();
    const before = rt.pool.snapshot().liveBytes;
    const x = tensor(randn(2 * 3 * 9 * 9, 7), [2, 3, 9, 9]);
    const w = tensor(randn(4 * 3 * 9, 8), [4, 3, 3, 3]);
    const b = tensor(randn(4, 9), [4]);
    const w3 = tensor(randn(4 * 2 * 4, 10), [4, 2, 2, 2]);
    for (const t of [x, w, b, w3]) t.requiresGrad = true;
    const y = conv2d(x, w, b, { stride: 2, padding: 1 });
    const z = convTranspose2d(y, w3);
    const seed = tensor(randn(z.size, 11), z.shape);
    backward(z, seed);
    const owned = [x, w, b, w3, y, z, seed];
    for (const t of owned) {
      expect(t.grad === null || !t.grad.isDisposed).toBe(true);
      t.grad?.dispose();
      t.dispose();
    }
    await rt.sync();
    expect(rt.pool.snapshot().liveBytes).toBe(before);
  });
});
