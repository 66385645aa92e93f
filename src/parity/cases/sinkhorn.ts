/**
 * Parity runners for the sinkhorn family (geomloss SamplesLoss('sinkhorn', p=2, blur=0.05,
 * diameter=1e7, scaling=0.95, debias=True)):
 *   sinkhorn_<i>: 2-D clouds x1 [N, D], x2 [M, D]; when the JSON's softmax_first is true the reference
 *     applied softmax over the last axis first and differentiated w.r.t. the pre-softmax inputs, so the
 *     runner does softmaxRows then sinkhornLoss; compares value, dx1, dx2;
 *   sinkhorn_batched: 3-D x1 [B, N, D], x2 [B, M, D] → y [B]; gradients of y.sum();
 *   sinkhorn_self_permuted: no tensors stored; a cloud of 6 softmaxed 40-dim points against its rows
 *     rolled by −1 (our own random input) must give a value and a gradient that vanish like the
 *     reference's (~1e-19, ~1e-20), compared absolutely.
 */
import { backward, ones, scope, sinkhornLoss, softmaxRows, type Tensor, tensor } from '../../engine/index.js';
import type { HostTensor, OpCase } from '../fixture.js';
import { against, type Comparison, registerOpRunner } from '../ops.js';

function upload(h: HostTensor): Tensor {
  const t = tensor(h.data, h.shape);
  t.requiresGrad = true;
  return t;
}

async function readGrad(c: OpCase, t: Tensor, key: string): Promise<Float32Array> {
  if (!t.grad) throw new Error(`${c.name}: no gradient reached ${key}`);
  return t.grad.read();
}

function release(ts: Tensor[]): void {
  for (const t of ts) {
    t.grad?.dispose();
    t.dispose();
  }
}

/** Forward + backward of Σ sinkhorn(f(a), f(b)); returns the loss tensor (values per problem). */
function lossAndBackward(a: Tensor, b: Tensor, soft: boolean): Tensor {
  return scope(() => {
    const pa = soft ? softmaxRows(a) : a;
    const pb = soft ? softmaxRows(b) : b;
    const y = sinkhornLoss(pa, pb);
    backward(y, ones(y.shape));
    return y;
  });
}

registerOpRunner({
  match: /^sinkhorn_\d+$/,
  run: async (c) => {
    const soft = c.meta.softmax_first === true;
    const want = c.meta.value;
    if (typeof want !== 'number') throw new Error(`${c.name}: the fixture JSON has no number 'value'`);
    const a = upload(c.t('x1'));
    const b = upload(c.t('x2'));
    try {
      const y = lossAndBackward(a, b, soft);
      const value = await y.item();
      y.dispose();
      return [
        { name: 'value', got: value, want },
        against(c, 'dx1', await readGrad(c, a, 'x1')),
        against(c, 'dx2', await readGrad(c, b, 'x2')),
      ];
    } finally {
      release([a, b]);
    }
  },
});

registerOpRunner({
  match: /^sinkhorn_batched$/,
  run: async (c) => {
    const a = upload(c.t('x1'));
    const b = upload(c.t('x2'));
    try {
      const y = lossAndBackward(a, b, false);
      const values = await y.read();
      y.dispose();
      return [
        against(c, 'y', values),
        against(c, 'dx1', await readGrad(c, a, 'x1')),
        against(c, 'dx2', await readGrad(c, b, 'x2')),
      ];
    } finally {
      release([a, b]);
    }
  },
});

/** Deterministic standard-normal-ish values (Box–Muller on a small LCG) for the permuted cloud. */
function gaussian(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const u = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s + 0.5) / 4294967296;
  };
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
  return out;
}

registerOpRunner({
  match: /^sinkhorn_self_permuted$/,
  run: async (c) => {
    const wantValue = c.meta.value;
    const wantGrad = c.meta.grad_absmax;
    if (typeof wantValue !== 'number' || typeof wantGrad !== 'number')
      throw new Error(`${c.name}: the fixture JSON needs numbers 'value' and 'grad_absmax'`);
    const n = 6;
    const d = 40;
    const data = gaussian(n * d, 12345);
    const rolled = new Float32Array(n * d);
    for (let i = 0; i < n; i++) rolled.set(data.subarray(((i + 1) % n) * d, (((i + 1) % n) + 1) * d), i * d);
    // one leaf: x and its permutation both come from it (torch: xs and xs[perm])
    const xs = tensor(data, [n, d]);
    xs.requiresGrad = true;
    const perm = tensor(rolled, [n, d]);
    perm.requiresGrad = true;
    try {
      const y = lossAndBackward(xs, perm, true);
      const value = await y.item();
      y.dispose();
      const gx = await readGrad(c, xs, 'xs');
      const gp = await readGrad(c, perm, 'xs[perm]');
      // d/dxs of S(softmax(xs), softmax(xs[perm])) = gx + (gp un-permuted)
      let absmax = 0;
      for (let i = 0; i < n; i++)
        for (let k = 0; k < d; k++) {
          const g = gx[i * d + k]! + gp[((i - 1 + n) % n) * d + k]!;
          absmax = Math.max(absmax, Math.abs(g));
        }
      // absolute comparisons (the reference is zero up to rounding): error = |got − want|
      const out: Comparison[] = [
        { name: 'value (absolute)', got: value - wantValue, want: 0 },
        { name: 'grad_absmax (absolute)', got: absmax - wantGrad, want: 0 },
      ];
      return out;
    } finally {
      release([xs, perm]);
    }
  },
});
