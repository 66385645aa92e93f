/**
 * Windowed pooling (max pool 2-D) and the strided block copy that concat/slice are made of.
 *
 * Max pool forward: one invocation per output pixel scans its k×k window row by row and keeps the first
 * maximum (strict `>`; a NaN wins, as in PyTorch's CPU kernel), so ties pick the first in scan order.
 * Padded positions are never read (they count as −∞). When a gradient will be needed it also stores the
 * argmax (the offset inside the input plane, as u32) — 4 bytes per output.
 *
 * Max pool backward, without atomics: a *gather*. One invocation per input pixel visits the (at most
 * ⌈k/s⌉²) windows that cover it and sums the upstream gradients of those whose argmax it is. Windows are
 * visited in increasing output order, which is exactly the order in which PyTorch's scatter adds them,
 * so the result is bit-identical. Every write is owned by one invocation.
 *
 * Block copy: dst[o·dstStride + dstOff + j] = src[o·srcStride + srcOff + j] for o < outer, j < inner —
 * concatenation along any axis is one such copy per input (outer = product of the dims before the axis,
 * inner = the input's slab after it), its backward and `slice` are the same copy the other way round.
 * Vectorised as vec4 when every extent and offset is a multiple of 4.
 */

import { indexer } from './common.js';

/** Max pool forward over y [planes, oh, ow]; optional argmax output `arg` (u32). */
export function maxPoolForwardWgsl(header: string, main: string, withArg: boolean): string {
  return `${header}
${indexer('y', ['u.planes', 'u.oh', 'u.ow'])}
${main}
  if (i >= u.n) { return; }
  let yi = y_idx(i);
  let base = yi[0] * u.h * u.w;
  let y0 = i32(yi[1] * u.stride) - i32(u.pad);
  let x0 = i32(yi[2] * u.stride) - i32(u.pad);
  let ys = max(y0, 0);
  let xs = max(x0, 0);
  let ye = min(y0 + i32(u.k), i32(u.h));
  let xe = min(x0 + i32(u.k), i32(u.w));
  var bi = u32(ys) * u.w + u32(xs);
  var best = x[base + bi];
  for (var yy = ys; yy < ye; yy++) {
    for (var xx = xs; xx < xe; xx++) {
      let q = u32(yy) * u.w + u32(xx);
      let v = x[base + q];
      if (v > best || v != v) {
        best = v;
        bi = q;
      }
    }
  }
  y[i] = best;${withArg ? '\n  arg[i] = bi;' : ''}
}`;
}

/** Max pool backward (gather): dx [planes, h, w] from gy and arg [planes, oh, ow]. */
export function maxPoolBackwardWgsl(header: string, main: string): string {
  return `${header}
${indexer('x', ['u.planes', 'u.h', 'u.w'])}
${indexer('y', ['u.planes', 'u.oh', 'u.ow'])}
/** First and last window index (inclusive) along one axis that covers input position p. */
fn cover(p: u32, n_out: u32) -> vec2<i32> {
  let a = i32(p + u.pad) - i32(u.k) + 1;
  var lo = 0;
  if (a > 0) { lo = (a + i32(u.stride) - 1) / i32(u.stride); }
  let hi = min(i32((p + u.pad) / u.stride), i32(n_out) - 1);
  return vec2<i32>(lo, hi);
}
${main}
  if (i >= u.n) { return; }
  let xi = x_idx(i);
  let me = xi[1] * u.w + xi[2];
  let ry = cover(xi[1], u.oh);
  let rx = cover(xi[2], u.ow);
  var acc = 0.0;
  for (var oy = ry.x; oy <= ry.y; oy++) {
    for (var ox = rx.x; ox <= rx.y; ox++) {
      let o = y_at(xi[0], u32(oy), u32(ox));
      if (arg[o] == me) { acc += gy[o]; }
    }
  }
  dx[i] = acc;
}`;
}

/** Strided block copy (see the header), over n = outer·inner vectors. */
export function blockCopyWgsl(header: string, main: string): string {
  return `${header}
${main}
  if (i >= u.n) { return; }
  let o = i / u.inner;
  let j = i % u.inner;
  dst[o * u.dst_stride + u.dst_off + j] = src[o * u.src_stride + u.src_off + j];
}`;
}
