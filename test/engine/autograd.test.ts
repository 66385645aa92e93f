import { beforeAll, describe, expect, it } from 'vitest';
import { backward, mul, noGrad, param, sum, tensor } from '../../src/engine/index.js';
import { gpu } from '../helpers/gpu.js';
import { randn } from '../helpers/gradcheck.js';

beforeAll(async () => {
  await gpu();
});

describe('autograd through views', () => {
  // Regression: Tensor.view used to return an unrecorded tensor, so losses on flattened feature maps
  // (L_Con's per-sample vectors, the official SSOT's softmax rows) silently sent no gradient upstream.
  it('a loss on a view of a parameter reaches the parameter', async () => {
    const x = param(tensor(randn(24, 1), [2, 3, 4]));
    const w = tensor(randn(24, 2), [2, 12]);
    backward(sum(mul(x.view([2, -1]), w)));
    expect(x.grad).not.toBeNull();
    expect(Array.from(await x.grad!.read())).toEqual(Array.from(await w.read()));
  });

  it('views of a view chain back, and views under noGrad record nothing', async () => {
    const x = param(tensor(randn(12, 3), [12]));
    const y = x.view([3, 4]).view([2, 6]);
    expect(y.requiresGrad).toBe(true);
    backward(sum(y));
    expect(Array.from(await x.grad!.read())).toEqual(new Array(12).fill(1));
    const z = noGrad(() => x.view([4, 3]));
    expect(z.node).toBeNull();
  });
});
