/**
 * Parity runners for the conv family: conv2d_<i> (stride/padding/bias in the case's JSON; tensors x, w,
 * optional b, y, g, dx, dw, optional db) and deconv_<i> (ConvTranspose2d k2 s2, weight [in, out, 2, 2];
 * tensors x, w, y, g, dx, dw). Forward and backward against the float64 PyTorch reference.
 */
import { backward } from '../../engine/autograd.js';
import { conv2d, convTranspose2d } from '../../engine/ops/conv.js';
import { scope, type Tensor, tensor } from '../../engine/tensor.js';
import type { OpCase } from '../fixture.js';
import { against, type Comparison, registerOpRunner } from '../ops.js';

function upload(c: OpCase, key: string): Tensor {
  const h = c.t(key);
  const t = tensor(h.data, h.shape);
  t.requiresGrad = true;
  return t;
}

/** Run forward + backward with the fixture's upstream gradient; compare y and each input's gradient. */
async function runCase(
  c: OpCase,
  inputs: [string, Tensor][],
  forward: (...xs: Tensor[]) => Tensor,
): Promise<Comparison[]> {
  const ts = inputs.map(([, t]) => t);
  try {
    const y = scope(() => {
      const out = forward(...ts);
      const g = c.t('g');
      backward(out, tensor(g.data, g.shape));
      return out;
    });
    const comps: Comparison[] = [against(c, 'y', await y.read())];
    y.dispose();
    for (const [name, t] of inputs) {
      if (!t.grad) throw new Error(`${c.name}: no gradient reached ${name}`);
      comps.push(against(c, `d${name}`, await t.grad.read()));
    }
    return comps;
  } finally {
    for (const t of ts) {
      t.grad?.dispose();
      t.dispose();
    }
  }
}

registerOpRunner({
  match: /^conv2d_\d+$/,
  run: async (c) => {
    const stride = Number(c.meta.stride ?? 1);
    const padding = Number(c.meta.padding ?? 0);
    const inputs: [string, Tensor][] = [
      ['x', upload(c, 'x')],
      ['w', upload(c, 'w')],
    ];
    if (c.has('b')) inputs.push(['b', upload(c, 'b')]);
    return runCase(c, inputs, (x, w, b) => conv2d(x!, w!, b ?? null, { stride, padding }));
  },
});

registerOpRunner({
  match: /^deconv_\d+$/,
  run: async (c) => {
    if (c.meta.kernel !== undefined && (c.meta.kernel !== 2 || c.meta.stride !== 2))
      throw new Error(`${c.name}: only kernel 2, stride 2 transposed convolutions exist here`);
    const inputs: [string, Tensor][] = [
      ['x', upload(c, 'x')],
      ['w', upload(c, 'w')],
    ];
    return runCase(c, inputs, (x, w) => convTranspose2d(x!, w!));
  },
});
