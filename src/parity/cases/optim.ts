/**
 * Parity runner for Adam: the `adam` case (three steps from p0 with gradients g0, g1, g2; lr, betas and
 * eps from the JSON entry), compared after each step with p1, p2, p3.
 */
import { Adam, keep, param, tensor } from '../../engine/index.js';
import { against, type Comparison, registerOpRunner } from '../ops.js';

registerOpRunner({
  match: /^adam$/,
  run: async (c) => {
    const lr = Number(c.meta.lr);
    const betas = c.meta.betas as [number, number];
    const eps = Number(c.meta.eps ?? 1e-8);
    if (Number(c.meta.weight_decay ?? 0) !== 0) throw new Error('adam: weight decay is not supported');
    const p0 = c.t('p0');
    const p = param(tensor(p0.data, p0.shape), 'p');
    const opt = new Adam([p], { lr, betas, eps });
    const out: Comparison[] = [];
    try {
      for (let k = 0; c.has(`g${k}`); k++) {
        const g = c.t(`g${k}`);
        p.grad = keep(tensor(g.data, g.shape));
        opt.step();
        opt.zeroGrad();
        out.push(against(c, `p${k + 1}`, await p.read()));
      }
      if (out.length === 0) throw new Error('adam: the case has no gradients g0, g1, ...');
      return out;
    } finally {
      opt.zeroGrad();
      opt.dispose();
      p.dispose();
    }
  },
});
