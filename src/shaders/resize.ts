/**
 * Bilinear resize with align_corners = True (PyTorch `F.interpolate(mode='bilinear', align_corners=True)`),
 * forward and adjoint, on planes of [planes, H, W].
 *
 * Source coordinates. Along an axis of n_in → n_out samples, output index o reads the source position
 * s = o·(n_in − 1)/(n_out − 1) (s = 0 when n_out = 1), i0 = ⌊s⌋, i1 = min(i0 + 1, n_in − 1), λ1 = s − i0.
 * The kernels compute this exactly in integers — q = o·(n_in − 1), i0 = q div (n_out − 1),
 * λ1 = (q mod (n_out − 1))/(n_out − 1) — so the index choice never depends on float rounding (PyTorch
 * rounds o·scale in floating point; the results agree because interpolation is continuous in s).
 *
 * Forward: one invocation per output element; the four taps of a 256×256 output from a 64×64 or
 * 16×16 input sit in a few cache lines shared by neighbouring invocations, and the output writes are
 * coalesced, so the kernel runs at write bandwidth without shared-memory staging.
 *
 * Adjoint (backward): dx = Wyᵀ · g · Wx with sparse, banded interpolation matrices. Instead of scattering
 * with atomics (WGSL has no f32 atomics) the adjoint is a *gather*: for input index t, the outputs that
 * touch it are exactly those with i0 ∈ {t − 1, t}, a contiguous range o ∈ [⌈(t−1)·b/a⌉, ⌈(t+1)·b/a⌉ − 1]
 * (a = n_in − 1, b = n_out − 1); each candidate recomputes the forward's (i0, i1, λ1) and adds
 * (1 − λ1)·[i0 = t] + λ1·[i1 = t], so the weights are bit-for-bit those of the forward. Because the
 * weights factor per axis, the adjoint runs as two 1-D passes of the same kernel (along W, then along
 * H) over a [outer, L, inner] view: each invocation sums ~2·(n_out/n_in) + 2 terms instead of the
 * ~4·(n_out/n_in)² a one-pass 2-D gather would need, and there are many more invocations in flight.
 */
import { indexer, main1d } from './common.js';

/** WGSL: the exact integer source-coordinate rule shared by the forward and adjoint kernels. */
const LIN_SRC = `struct Lin { i0: u32, i1: u32, l1: f32 }
// align_corners=True source of output index o along an axis n_in -> n_out (exact integer arithmetic)
fn lin_src(o: u32, n_in: u32, n_out: u32) -> Lin {
  if (n_out <= 1u) { return Lin(0u, 0u, 0.0); }
  let a = n_in - 1u;
  let b = n_out - 1u;
  let q = o * a;
  let i0 = q / b;
  return Lin(i0, min(i0 + 1u, a), f32(q % b) / f32(b));
}`;

/**
 * Forward: inputs `x` [planes, ih, iw], output `y` [planes, oh, ow]; uniforms n (= planes·oh·ow),
 * planes, ih, iw, oh, ow. Launched with grid1d(n).
 */
export function bilinearForwardWgsl(header: string): string {
  return `${header}
${indexer('y', ['u.planes', 'u.oh', 'u.ow'])}
${indexer('x', ['u.planes', 'u.ih', 'u.iw'])}
${LIN_SRC}
${main1d()}
  if (i >= u.n) { return; }
  let id = y_idx(i);
  let sy = lin_src(id[1], u.ih, u.oh);
  let sx = lin_src(id[2], u.iw, u.ow);
  let h1 = sy.l1;
  let h0 = 1.0 - h1;
  let w1 = sx.l1;
  let w0 = 1.0 - w1;
  let a = x[x_at(id[0], sy.i0, sx.i0)];
  let b = x[x_at(id[0], sy.i0, sx.i1)];
  let c = x[x_at(id[0], sy.i1, sx.i0)];
  let d = x[x_at(id[0], sy.i1, sx.i1)];
  y[i] = h0 * (w0 * a + w1 * b) + h1 * (w0 * c + w1 * d);
}`;
}

/**
 * Adjoint along one axis: input `go` viewed as [outer, lout, inner], output `gi` [outer, lin, inner],
 * gi[o, t, k] = Σ_s w(s → t) · go[o, s, k]. Uniforms n (= outer·lin·inner), outer, lin, lout, inner.
 */
export function bilinearAdjointWgsl(header: string): string {
  return `${header}
${indexer('gi', ['u.outer', 'u.lin', 'u.inner'])}
${indexer('go', ['u.outer', 'u.lout', 'u.inner'])}
${LIN_SRC}
${main1d()}
  if (i >= u.n) { return; }
  let id = gi_idx(i);
  let t = id[1];
  // the outputs s whose i0 is t - 1 or t (all of them when lin = 1; only s = 0 when lout = 1)
  var lo = 0u;
  var hi = u.lout - 1u;
  if (u.lout > 1u && u.lin > 1u) {
    let a = u.lin - 1u;
    let b = u.lout - 1u;
    if (t >= 1u) { lo = ((t - 1u) * b + a - 1u) / a; }
    hi = min(hi, ((t + 1u) * b + a - 1u) / a - 1u);
  }
  var acc = 0.0;
  for (var s = lo; s <= hi; s++) {
    let l = lin_src(s, u.lin, u.lout);
    var w = 0.0;
    if (l.i0 == t) { w += 1.0 - l.l1; }
    if (l.i1 == t) { w += l.l1; }
    acc += w * go[go_at(id[0], s, id[2])];
  }
  gi[i] = acc;
}`;
}
