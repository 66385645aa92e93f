/**
 * The RD++ losses built on cosines (spec §4.1, 4.3, 4.4), each a fused op returning shape [1]:
 *   kdLoss(t, s)                   Σ_k mean_b (1 − cos(vec t_k[b], vec s_k[b]))     (official loss_fucntion)
 *   cosineEmbeddingLoss(a, b, m)   mean_b max(0, cos_b − m), target −1, PyTorch's eps form
 *   cosineReconLoss(a, b)          mean over (B, H, W) of 1 − per-pixel cosine over channels
 *
 * Fused because it is free: the cosine kernels write every cosine and squared norm into the loss tensor's
 * own buffer (rec[1...]), one small kernel reduces the per-cosine terms into rec[0], and the backward
 * folds the loss's derivative (−w, or w·[cos > m]) into the per-cosine gradient coefficients, so there is
 * no intermediate tensor, no extra elementwise pass and exactly one gradient kernel per input pair.
 * Gradients are produced only for inputs that require them (the teacher's features need none).
 */
import { record } from '../autograd.js';
import type { Tensor } from '../tensor.js';
import { cosineInternals as K } from './cosine.js';

/** L_KD = Σ_k (1/B) Σ_b [1 − cos(vec t_k[b], vec s_k[b])] over the pairs (t_k, s_k). */
export function kdLoss(t: Tensor[], s: Tensor[]): Tensor {
  if (!Array.isArray(t) || !Array.isArray(s) || t.length !== s.length || t.length === 0)
    throw new Error(
      `kdLoss: expected two equally long, non-empty lists of feature maps, got ${t?.length} teacher and ${s?.length} student tensors`,
    );
  const B = t[0]!.shape[0];
  t.forEach((tk, k) => {
    const sk = s[k]!;
    K.checkPair(`kdLoss (pair ${k})`, tk, sk, 2, '[B, C, H, W]');
    if (tk.shape[0] !== B)
      throw new Error(
        `kdLoss: pair ${k} has batch ${tk.shape[0]} (${tk.describe()}) but pair 0 has ${B}; expected one batch size`,
      );
  });
  const rows = B!;
  const n = t.length * rows;
  const loss = K.recordTensor(1, n, [1]);
  const dims = t.map((tk) => tk.size / rows);
  t.forEach((tk, k) => {
    K.rowsForward('torch', tk, s[k]!, rows, dims[k]!, { buffer: loss.buffer, off: 1, n, slot0: k * rows });
  });
  K.lossFinal('oneMinus', loss.buffer, n, 1 / rows);
  return record('kd_loss', loss, [...t, ...s], (g) => {
    const dt: (Tensor | null)[] = [];
    const ds: (Tensor | null)[] = [];
    t.forEach((tk, k) => {
      const sk = s[k]!;
      const [da, db] = K.rowsBackward(
        'torch',
        tk,
        sk,
        rows,
        dims[k]!,
        { off: 1, n, slot0: k * rows },
        {
          mode: 'oneMinus',
          rec: loss.buffer,
          g,
          w: 1 / rows,
          wantA: tk.requiresGrad,
          wantB: sk.requiresGrad,
        },
      );
      dt.push(da);
      ds.push(db);
    });
    return [...dt, ...ds];
  });
}

/**
 * CosineEmbeddingLoss(margin) with target −1 for every row: mean_b max(0, cos_b − margin), a and b viewed
 * as [B, D]; cos = a·b / √((‖a‖² + 1e-12)(‖b‖² + 1e-12)).
 */
export function cosineEmbeddingLoss(a: Tensor, b: Tensor, margin = 0.5): Tensor {
  K.checkPair('cosineEmbeddingLoss', a, b, 2, '[B, D] or [B, C, H, W]');
  if (!Number.isFinite(margin))
    throw new Error(`cosineEmbeddingLoss: margin ${margin} is not a finite number`);
  const B = a.shape[0]!;
  const D = a.size / B;
  const loss = K.recordTensor(1, B, [1]);
  const t = { off: 1, n: B, slot0: 0 };
  K.rowsForward('embed', a, b, B, D, { ...t, buffer: loss.buffer });
  K.lossFinal('hinge', loss.buffer, B, 1 / B, margin);
  return record('cosine_embedding_loss', loss, [a, b], (g) =>
    K.rowsBackward('embed', a, b, B, D, t, {
      mode: 'hinge',
      rec: loss.buffer,
      g,
      w: 1 / B,
      margin,
      wantA: a.requiresGrad,
      wantB: b.requiresGrad,
    }),
  );
}

/** L_Recon term: mean over (B, H, W) of 1 − cosineMap(a, b) (cosine over channels per pixel). */
export function cosineReconLoss(a: Tensor, b: Tensor): Tensor {
  K.checkPair('cosineReconLoss', a, b, 2, '[B, C, H, W]');
  const { P } = K.mapDims(a);
  const loss = K.recordTensor(1, P, [1]);
  K.mapForward(a, b, loss.buffer, 1);
  K.lossFinal('oneMinus', loss.buffer, P, 1 / P);
  return record('cosine_recon_loss', loss, [a, b], (g) =>
    K.mapBackward(a, b, 1, {
      mode: 'oneMinus',
      rec: loss.buffer,
      g,
      w: 1 / P,
      wantA: a.requiresGrad,
      wantB: b.requiresGrad,
    }),
  );
}
