/**
 * Parity runners for the cosine family: cos_map (per-pixel cosine with an upstream gradient), kd_loss
 * (the official distillation loss over three pairs), cos_embed (CosineEmbeddingLoss, margin from the
 * fixture, target −1) and cos_recon (mean of 1 − per-pixel cosine). Each compares the forward value(s)
 * and every input gradient the fixture holds.
 */
import {
  backward,
  cosineEmbeddingLoss,
  cosineMap,
  cosineReconLoss,
  kdLoss,
  scope,
  type Tensor,
  tensor,
} from '../../engine/index.js';
import type { HostTensor, OpCase } from '../fixture.js';
import { against, type Comparison, registerOpRunner } from '../ops.js';

function upload(h: HostTensor, grad: boolean): Tensor {
  const t = tensor(h.data, h.shape);
  t.requiresGrad = grad;
  return t;
}

/** Read and dispose the gradients of `xs` (throws when one is missing). */
async function grads(c: OpCase, xs: Tensor[], names: string[]): Promise<Comparison[]> {
  const out: Comparison[] = [];
  for (let i = 0; i < xs.length; i++) {
    const g = xs[i]!.grad;
    if (!g) throw new Error(`${c.name}: no gradient reached ${names[i]}`);
    out.push(against(c, names[i]!, await g.read()));
  }
  return out;
}

function dispose(xs: Tensor[]): void {
  for (const x of xs) {
    x.grad?.dispose();
    x.dispose();
  }
}

function scalar(c: OpCase, key: string): number {
  const v = c.meta[key];
  if (typeof v !== 'number') throw new Error(`${c.name}: the fixture JSON has no number '${key}'`);
  return v;
}

/** Run a scalar loss on (a, b) with gradients for both and compare value, da, db. */
async function pairLoss(c: OpCase, f: (a: Tensor, b: Tensor) => Tensor): Promise<Comparison[]> {
  const a = upload(c.t('a'), true);
  const b = upload(c.t('b'), true);
  try {
    const loss = scope(() => {
      const l = f(a, b);
      backward(l);
      return l;
    });
    const value = await loss.item();
    loss.dispose();
    return [
      { name: 'value', got: value, want: scalar(c, 'value') },
      ...(await grads(c, [a, b], ['da', 'db'])),
    ];
  } finally {
    dispose([a, b]);
  }
}

registerOpRunner({
  match: /^cos_map$/,
  run: async (c) => {
    const a = upload(c.t('a'), true);
    const b = upload(c.t('b'), true);
    try {
      const y = scope(() => {
        const out = cosineMap(a, b);
        backward(out, tensor(c.t('g').data, c.t('g').shape));
        return out;
      });
      const got = await y.read();
      y.dispose();
      return [against(c, 'y', got), ...(await grads(c, [a, b], ['da', 'db']))];
    } finally {
      dispose([a, b]);
    }
  },
});

registerOpRunner({
  match: /^kd_loss$/,
  run: async (c) => {
    const ks = [...c.tensors.keys()].filter((k) => /^a\d+$/.test(k)).map((k) => Number(k.slice(1)));
    ks.sort((x, y) => x - y);
    if (ks.length === 0) throw new Error('kd_loss: the fixture has no teacher tensors a0, a1, ...');
    const ts = ks.map((k) => upload(c.t(`a${k}`), false));
    const ss = ks.map((k) => upload(c.t(`b${k}`), true));
    try {
      const loss = scope(() => {
        const l = kdLoss(ts, ss);
        backward(l);
        return l;
      });
      const value = await loss.item();
      loss.dispose();
      if (ts.some((t) => t.grad)) throw new Error('kd_loss: a gradient reached a teacher tensor');
      return [
        { name: 'value', got: value, want: scalar(c, 'value') },
        ...(await grads(
          c,
          ss,
          ks.map((k) => `db${k}`),
        )),
      ];
    } finally {
      dispose([...ts, ...ss]);
    }
  },
});

registerOpRunner({
  match: /^cos_embed$/,
  run: async (c) => {
    if (c.meta.target !== undefined && c.meta.target !== -1)
      throw new Error(`cos_embed: only target −1 is implemented, the fixture has ${String(c.meta.target)}`);
    const margin = scalar(c, 'margin');
    return pairLoss(c, (a, b) => cosineEmbeddingLoss(a, b, margin));
  },
});

registerOpRunner({
  match: /^cos_recon$/,
  run: (c) => pairLoss(c, cosineReconLoss),
});
