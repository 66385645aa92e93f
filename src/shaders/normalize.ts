/**
 * Unit-length normalisation over the channel axis of [B, C, P] (P = all trailing axes flattened):
 *   y[b, :, p] = x[b, :, p] / max(‖x[b, :, p]‖, 1e-8)      (the cosine's norm clamp, spec §4.0)
 * and its gradient  dx = (g − y·(y·g)) / ‖x‖  (or g / 1e-8 where the clamp is active).
 *
 * One invocation per (b, p) column walks the C channels. Adjacent invocations own adjacent p, so every
 * load and store of a channel step is contiguous across the warp (the channel stride is P). C is at most
 * a few thousand here, so a serial walk per column keeps the registers small and needs no reduction tree;
 * the sums are in f32 over ≤ 2048 terms of similar magnitude.
 */
import { main1d } from './common.js';

export const NORM_EPS = 1e-8;

/** Forward: y and the clamped norm per column (kept for the backward). */
export function normalizeForwardWGSL(h: string): string {
  return `${h}
${main1d()}
  if (i >= u.cols) { return; }
  let b = i / u.P;
  let p = i % u.P;
  let base = b * u.C * u.P + p;
  var ss = 0.0;
  for (var c = 0u; c < u.C; c = c + 1u) { let v = x[base + c * u.P]; ss = ss + v * v; }
  let n = max(sqrt(ss), ${NORM_EPS});
  norm[i] = n;
  let inv = 1.0 / n;
  for (var c = 0u; c < u.C; c = c + 1u) { y[base + c * u.P] = x[base + c * u.P] * inv; }
}`;
}

/** Backward from y, the stored norms and the upstream gradient g. */
export function normalizeBackwardWGSL(h: string): string {
  return `${h}
${main1d()}
  if (i >= u.cols) { return; }
  let b = i / u.P;
  let p = i % u.P;
  let base = b * u.C * u.P + p;
  let n = norm[i];
  var yg = 0.0;
  if (n > ${NORM_EPS}) {
    for (var c = 0u; c < u.C; c = c + 1u) { yg = yg + y[base + c * u.P] * g[base + c * u.P]; }
  }
  let inv = 1.0 / n;
  for (var c = 0u; c < u.C; c = c + 1u) {
    let k = base + c * u.P;
    dx[k] = (g[k] - y[k] * yg) * inv;
  }
}`;
}
