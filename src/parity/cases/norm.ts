/**
 * Parity runners for the norm family: bn_train (forward, backward and the running-stat update),
 * bn_eval, instnorm, leaky_relu and maxpool.
 *
 * bn_eval stores no weight and bias: they are the bn_train module's, which make_golden.py set with the
 * fixtures' closed-form formula under the names `ops_bn.weight` / `ops_bn.bias` (README "Weights are not
 * stored"); `formulaTensor` (src/model/init.ts) recomputes them (and the tests check it against bn_train's stored copies).
 */

import { backward } from '../../engine/autograd.js';
import { leakyRelu } from '../../engine/ops/elementwise.js';
import { batchNorm, instanceNorm } from '../../engine/ops/norm.js';
import { maxPool2d } from '../../engine/ops/pool.js';
import { scope, type Tensor, tensor } from '../../engine/tensor.js';
import { formulaTensor } from '../../model/init.js';
import type { HostTensor, OpCase } from '../fixture.js';
import { against, type Comparison, registerOpRunner } from '../ops.js';

const up = (h: HostTensor, grad = false): Tensor => {
  const t = tensor(h.data, h.shape);
  t.requiresGrad = grad;
  return t;
};

/** Run f forward and backward with the case's `g`; read y and the gradients of `inputs`. */
async function forwardBackward(
  c: OpCase,
  inputs: Tensor[],
  f: () => Tensor,
): Promise<{ y: Float32Array; grads: Float32Array[] }> {
  const y = scope(() => {
    const out = f();
    backward(out, up(c.t('g')));
    return out;
  });
  try {
    const grads: Float32Array[] = [];
    for (const t of inputs) {
      if (!t.grad) throw new Error(`${c.name}: no gradient reached ${t.describe()}`);
      grads.push(await t.grad.read());
    }
    return { y: await y.read(), grads };
  } finally {
    y.dispose();
    for (const t of inputs) t.grad?.dispose();
  }
}

function num(meta: Record<string, unknown>, key: string, fallback: number): number {
  const v = meta[key];
  return typeof v === 'number' ? v : fallback;
}

registerOpRunner({
  match: /^bn_train$/,
  run: async (c) => {
    const x = up(c.t('x'), true);
    const w = up(c.t('weight'), true);
    const b = up(c.t('bias'), true);
    const rm = up(c.t('running_mean_before'));
    const rv = up(c.t('running_var_before'));
    try {
      const opts = { training: true, momentum: num(c.meta, 'momentum', 0.1), eps: num(c.meta, 'eps', 1e-5) };
      const r = await forwardBackward(c, [x, w, b], () => batchNorm(x, w, b, rm, rv, opts));
      return [
        against(c, 'y', r.y),
        against(c, 'dx', r.grads[0]!),
        against(c, 'dweight', r.grads[1]!),
        against(c, 'dbias', r.grads[2]!),
        against(c, 'running_mean_after', await rm.read()),
        against(c, 'running_var_after', await rv.read()),
      ];
    } finally {
      for (const t of [x, w, b, rm, rv]) t.dispose();
    }
  },
});

registerOpRunner({
  match: /^bn_eval$/,
  run: async (c) => {
    const ch = c.t('x').shape[1]!;
    const x = up(c.t('x'), true);
    const w = tensor(formulaTensor('ops_bn.weight', [ch]), [ch]);
    const b = tensor(formulaTensor('ops_bn.bias', [ch]), [ch]);
    w.requiresGrad = true;
    b.requiresGrad = true;
    const rm = up(c.t('running_mean'));
    const rv = up(c.t('running_var'));
    try {
      const r = await forwardBackward(c, [x, w, b], () => batchNorm(x, w, b, rm, rv, { training: false }));
      const out: Comparison[] = [
        against(c, 'y', r.y),
        against(c, 'dx', r.grads[0]!),
        against(c, 'dweight', r.grads[1]!),
        against(c, 'dbias', r.grads[2]!),
        // eval mode must leave the running statistics untouched
        against(c, 'running_mean', await rm.read()),
        against(c, 'running_var', await rv.read()),
      ];
      return out;
    } finally {
      for (const t of [x, w, b, rm, rv]) t.dispose();
    }
  },
});

/** A one-input op with y, g, dx in the fixture. */
function unaryCase(match: RegExp, f: (x: Tensor) => Tensor): void {
  registerOpRunner({
    match,
    run: async (c) => {
      const x = up(c.t('x'), true);
      try {
        const r = await forwardBackward(c, [x], () => f(x));
        return [against(c, 'y', r.y), against(c, 'dx', r.grads[0]!)];
      } finally {
        x.dispose();
      }
    },
  });
}

unaryCase(/^instnorm$/, (x) => instanceNorm(x, 1e-5));
unaryCase(/^leaky_relu$/, (x) => leakyRelu(x, 0.01));
unaryCase(/^maxpool$/, (x) => maxPool2d(x, { kernel: 3, stride: 2, padding: 1 }));
