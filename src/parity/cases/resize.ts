/**
 * Parity runners for the anomaly-map ops: bilinear_0..2 (F.interpolate bilinear align_corners=True,
 * forward and backward with the fixture's upstream gradient) and gauss_0..1 (scipy gaussian_filter with
 * the settings of the JSON entry `gauss`).
 */
import { backward, gaussianBlur, noGrad, resizeBilinear, tensor } from '../../engine/index.js';
import { against, registerOpRunner } from '../ops.js';

registerOpRunner({
  match: /^bilinear_\d+$/,
  run: async (c) => {
    const hx = c.t('x');
    const hy = c.t('y');
    const x = tensor(hx.data, hx.shape);
    x.requiresGrad = true;
    const y = resizeBilinear(x, hy.shape[hy.shape.length - 2]!, hy.shape[hy.shape.length - 1]!);
    const g = tensor(c.t('g').data, y.shape);
    try {
      backward(y, g);
      if (!x.grad) throw new Error('resizeBilinear: no gradient reached x');
      return [against(c, 'y', await y.read()), against(c, 'dx', await x.grad.read())];
    } finally {
      for (const t of [x.grad, x, y, g]) t?.dispose();
    }
  },
});

registerOpRunner({
  match: /^gauss_\d+$/,
  run: async (c) => {
    const sigma = Number(c.meta.sigma ?? 4);
    const truncate = Number(c.meta.truncate ?? 4);
    const mode = String(c.meta.mode ?? 'reflect');
    if (!mode.startsWith('reflect'))
      throw new Error(`${c.name}: mode '${mode}' is not supported (reflect only)`);
    const hx = c.t('x');
    const x = tensor(hx.data, hx.shape);
    const y = noGrad(() => gaussianBlur(x, sigma, truncate));
    try {
      return [against(c, 'y', await y.read())];
    } finally {
      x.dispose();
      y.dispose();
    }
  },
});
