/**
 * Adam, fused: one pass over a parameter reads p, g, m, v once and writes p, m, v once (28 bytes per
 * element), instead of the ~6 elementwise kernels (and their temporaries) of an unfused update. The
 * update is memory-bound, so the only thing that matters is touching each byte once with coalesced
 * accesses: one invocation per element, launched with grid1d.
 *
 * PyTorch's single-tensor Adam (torch 1.13, no weight decay, no amsgrad), in the same operation order:
 *   m ← β1·m + (1 − β1)·g
 *   v ← β2·v + (1 − β2)·g·g
 *   p ← p − step_size · m / (√v / √(1 − β2^t) + eps),   step_size = lr / (1 − β1^t)
 * The per-step scalars (step_size, √(1 − β2^t)) are computed in float64 on the CPU, like PyTorch's
 * Python floats, and arrive as uniforms, so one pipeline serves every parameter and step.
 */
import { main1d } from './common.js';

/** Bindings: input `g`; outputs `p`, `m`, `v`; uniforms n, b1, c1, b2, c2, step_size, bc2_sqrt, eps. */
export function adamWgsl(header: string): string {
  return `${header}
${main1d()}
  if (i >= u.n) { return; }
  let gi = g[i];
  let mi = u.b1 * m[i] + u.c1 * gi;
  let vi = u.b2 * v[i] + u.c2 * gi * gi;
  m[i] = mi;
  v[i] = vi;
  p[i] = p[i] - u.step_size * (mi / (sqrt(vi) / u.bc2_sqrt + u.eps));
}`;
}
