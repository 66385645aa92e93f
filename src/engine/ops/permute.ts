/**
 * Row permutation: y[b] = x[perm[b]] for x viewed as [B, D] (the SSOT loss pairs each sample with
 * another one of the batch, spec §4.2). The gradient is the inverse permutation: dx[perm[b]] = g[b].
 */
import { grid1d, main1d } from '../../shaders/common.js';
import { record } from '../autograd.js';
import { runtime } from '../runtime.js';
import { empty, type Tensor, tensor } from '../tensor.js';

function gatherRows(x: Tensor, perm: readonly number[]): Tensor {
  const b = x.shape[0]!;
  const d = x.size / b;
  const idx = tensor(Float32Array.from(perm), [b]);
  const y = empty(x.shape);
  runtime().run({
    name: 'gather_rows',
    inputs: [
      { name: 'x', buffer: x.buffer },
      { name: 'perm', buffer: idx.buffer },
    ],
    outputs: [{ name: 'y', buffer: y.buffer }],
    uniforms: { n: ['u32', x.size], d: ['u32', d] },
    workgroups: grid1d(x.size),
    wgsl: (h) => `${h}
${main1d()}
  if (i >= u.n) { return; }
  let row = i / u.d;
  let col = i % u.d;
  y[i] = x[u32(perm[row]) * u.d + col];
}`,
  });
  idx.dispose();
  return y;
}

/** y[b] = x[perm[b]] along the first axis. */
export function permuteRows(x: Tensor, perm: readonly number[]): Tensor {
  const b = x.shape[0] ?? 0;
  const sorted = [...perm].sort((p, q) => p - q);
  if (perm.length !== b || sorted.some((v, i) => v !== i))
    throw new Error(
      `permuteRows: [${perm.join(', ')}] is not a permutation of 0..${b - 1} for ${x.describe()}`,
    );
  const inv = new Array<number>(b);
  perm.forEach((p, i) => {
    inv[p] = i;
  });
  return record('permute_rows', gatherRows(x, perm), [x], (g) => [gatherRows(g, inv)]);
}
