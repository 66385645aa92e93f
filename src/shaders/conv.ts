/**
 * Convolutions as implicit GEMMs on the tiled core of matmul.ts: no im2col buffer is ever written; each
 * GEMM reads its operands straight from the NCHW tensors through an index map (a "loader").
 *
 * Notation: x [N, Ci, H, W], weight [Co, Ci, KH, KW], y [N, Co, Ho, Wo], stride S, zero padding P,
 * taps T = KH·KW. K is walked tap-major (outer: tap, inner: channel tiles), so a loader computes the
 * spatial part of an address once per tap — except a forward with few input channels (the stem), which
 * walks k = tap·Ci + channel flat (FWD_FLAT_CTX) rather than stage mostly zeros.
 *
 *  forward  y = conv(x, w):   M = N·Ho·Wo (output pixels), N = Co, K = T·Ci.
 *           A = im2col(x) (loaded 'row': adjacent invocations read adjacent pixels); B = the weight as a
 *           [T, Ci, Co] strided view (a transposed copy, or w itself when T = 1). Bias fused in the store.
 *           When M·N gives too few workgroups (batch 1, deep layers) K is split over workgroup_id.z and
 *           the slices summed afterwards, as in wgrad.
 *  dgrad    dx = conv_transpose(g, w). For stride S an input pixel (iy, ix) only receives taps with
 *           ky ≡ (iy + P) mod S, so the input pixels split into S² phases (z = phase); phase (py, px) is a
 *           dense GEMM over its pixels with K = (taps of that phase)·Co — no wasted zero taps, no
 *           scattering and no atomics: every dx element is written exactly once, by its phase.
 *           Within a phase, pixel (a, b) ↦ iy = iy₀ + S·a and tap j ↦ ky = py + S·j give
 *           oy = oy₀ + a − j (oy₀ = (iy₀ + P − py)/S exactly), so indices need no division per element.
 *  wgrad    dw = g ⋆ x:  M = Co, N = Ci·T (the dw layout), K = N·Ho·Wo, walked image by image (outer: n,
 *           inner: pixel tiles). K is large (65,536 at 64×64, batch 16) while M·N is small, so K is split
 *           over workgroup_id.z (split-K); every slice accumulates ≤ 4,096 products per output in f32 and
 *           the slices are summed by a second kernel.
 *  conv_transpose2d (k2 s2, weight [Ci, Co, 2, 2]): its forward is one GEMM, M = N·H·W (input pixels),
 *           N = Co·4 (output channel and phase), K = Ci, B = the weight as the [Ci, Co·4] matrix it already
 *           is, each value stored to its phase's pixel (deconvStore) — the input gradient of the 2×2 s2
 *           conv whose weight is that tensor, computed without transposing it; its dx is the same kind
 *           of GEMM with g read space-to-depth (SPACE_TO_DEPTH: K = Co·4, N = Ci), its dw a wgrad.
 *
 * Storage types: the forward's input x and a fused residual may be f16 tensors (the frozen teacher's
 * activations under PRECISION=f16), and so may its weight (a model packed for inference under
 * PRECISION=f16: PackedConvWeight); every read of them goes through f32(…) / vec4<f32>(…), an identity for
 * f32 bindings, so one loader serves both. A fused forward may store f16 (common.ts convert: the f32 result of the
 * whole epilogue rounded once); split-K partials are always f32.
 *
 * Also here: the weight transpose (a 3-D permutation), and the bias gradient (a per-channel tree
 * reduction). Shapes are uniforms (see convUniforms); only the tile, the load modes and the bias flag are
 * in the pipeline keys.
 */
import type { DType } from '../engine/tensor.js';
import { convert, indexer } from './common.js';
import { type GemmOperand, type LoadMode, splitSumShader } from './matmul.js';

/** Shape of one convolution in its forward orientation. */
export interface ConvGeom {
  n: number;
  ci: number;
  h: number;
  w: number;
  co: number;
  kh: number;
  kw: number;
  s: number;
  p: number;
  ho: number;
  wo: number;
}

export function convUniforms(g: ConvGeom): Record<string, ['u32', number]> {
  return {
    nb: ['u32', g.n],
    ci: ['u32', g.ci],
    h: ['u32', g.h],
    w: ['u32', g.w],
    co: ['u32', g.co],
    kh: ['u32', g.kh],
    kw: ['u32', g.kw],
    s: ['u32', g.s],
    p: ['u32', g.p],
    ho: ['u32', g.ho],
    wo: ['u32', g.wo],
  };
}

// ---- forward ----

/**
 * The forward's context; `kin` and `total` are WGSL expressions for the K tiles per outer index and in all
 * (tap-major: channel tiles per tap, taps × those; flat: one outer index holding every K tile). Slice z
 * (split-K) walks K tiles [z·tps, (z+1)·tps); without a split there is one slice.
 */
function fwdCtx(kin: string, total: string, realTap: string): string {
  return `struct Ctx { m: u32, n: u32, k_inner: u32, t0: u32, t1: u32, z: u32 }
fn make_ctx(z: u32) -> Ctx {
  let kin = ${kin};
  let total = ${total};
  let t0 = min(z * u.tps, total);
  return Ctx(u.nb * u.ho * u.wo, u.co, kin, t0, min(t0 + u.tps, total), z);
}
fn real_tap(c: Ctx, ko: u32) -> u32 { return ${realTap}; }`;
}

export const FWD_CTX = fwdCtx('(u.ci + BK - 1u) / BK', 'u.kh * u.kw * kin', 'ko');

/** Row m = (n, oy, ox) of im2col(x): the image's offset and the window's top-left corner. */
function im2colRow(p: string): string {
  return `struct ${p}_row { base: u32, iy0: i32, ix0: i32, ok: bool }
fn ${p}_row_of(c: Ctx, m: u32) -> ${p}_row {
  let hw = u.ho * u.wo;
  let pix = m % hw;
  return ${p}_row((m / hw) * u.ci * u.h * u.w, i32((pix / u.wo) * u.s) - i32(u.p),
    i32((pix % u.wo) * u.s) - i32(u.p), m < c.m);
}`;
}

/** A = im2col(x): row m = (n, oy, ox), k = (tap, channel). */
export const IM2COL: GemmOperand = {
  mode: 'row',
  wgsl: (p) => `${im2colRow(p)}
struct ${p}_out { off: u32, ok: bool }
fn ${p}_outer(c: Ctx, r: ${p}_row, ko: u32) -> ${p}_out {
  let iy = r.iy0 + i32(ko / u.kw);
  let ix = r.ix0 + i32(ko % u.kw);
  let ok = r.ok && iy >= 0 && iy < i32(u.h) && ix >= 0 && ix < i32(u.w);
  return ${p}_out(select(0u, r.base + u32(iy) * u.w + u32(ix), ok), ok);
}
struct ${p}_k { ch: u32, ok: bool }
fn ${p}_k_of(c: Ctx, ko: u32, ki: u32, kk: u32) -> ${p}_k {
  let ch = ki * BK + kk;
  return ${p}_k(ch, ch < u.ci);
}
fn ${p}_load(c: Ctx, r: ${p}_row, o: ${p}_out, k: ${p}_k) -> f32 {
  var v = 0.0;
  if (o.ok && k.ok) { v = f32(x[o.off + k.ch * u.h * u.w]); }
  return v;
}`,
};

/**
 * GemmOperand.load4 for an operand whose group of 4 rows starts at element `offset` (a multiple of 4) of
 * the vec4 view `view`, zero unless `ok` (WGSL over the loader's r, o and k).
 */
function load4Wgsl(ok: string, view: string, offset: string): (p: 'a' | 'b') => string {
  return (p) => `fn ${p}_load4(c: Ctx, r: ${p}_row, o: ${p}_out, k: ${p}_k) -> vec4<f32> {
  var v = vec4<f32>(0.0);
  if (${ok}) { v = vec4<f32>(${view}[(${offset}) >> 2u]); }
  return v;
}`;
}

/**
 * IM2COL with vectorised loads (GemmOperand.load4, binding x4: x as vec4s), for a 1×1 stride-1 unpadded
 * conv whose H·W is a multiple of 4: then output pixels m .. m+3 of a group are input pixels at
 * consecutive, aligned addresses of one image. Also the deconvolution forward's A (the same 1×1 GEMM).
 */
export const IM2COL_VEC4: GemmOperand = {
  ...IM2COL,
  load4: load4Wgsl('o.ok && k.ok', 'x4', 'o.off + k.ch * u.h * u.w'),
};

/** Whether IM2COL_VEC4 may read this conv's input: 1×1, stride 1, no padding, H·W a multiple of 4. */
export function im2colVec4(g: ConvGeom): boolean {
  return g.kh === 1 && g.kw === 1 && g.s === 1 && g.p === 0 && (g.h * g.w) % 4 === 0;
}

/**
 * The forward with K walked flat, for few input channels (the 7×7 stem's 3): k = tap·Ci + channel in one
 * level, so a BK-deep tile covers several taps. Tap-major with Ci = 3 and BK = 16, every tile of A and B
 * would hold 3 real rows and 13 zeros — 49 tiles where ⌈147 / 16⌉ = 10 carry the same products. The
 * price is decoding k into (ky, kx, channel) per staged element instead of once per tap, which is why
 * convForward picks it only where it saves at least a quarter of the tiles (fwdFlatK).
 */
export const FWD_FLAT_CTX = fwdCtx('(u.kh * u.kw * u.ci + BK - 1u) / BK', 'kin', '0u');

/** A = im2col(x) with a flat K (FWD_FLAT_CTX): row m = (n, oy, ox), k = tap·Ci + channel. */
export const IM2COL_FLAT: GemmOperand = {
  mode: 'row',
  wgsl: (p) => `${im2colRow(p)}
struct ${p}_out { ok: bool }
fn ${p}_outer(c: Ctx, r: ${p}_row, ko: u32) -> ${p}_out { return ${p}_out(r.ok); }
struct ${p}_k { ch: u32, ky: i32, kx: i32, ok: bool }
fn ${p}_k_of(c: Ctx, ko: u32, ki: u32, kk: u32) -> ${p}_k {
  let k = ki * BK + kk;
  let tap = k / u.ci;
  return ${p}_k(k % u.ci, i32(tap / u.kw), i32(tap % u.kw), k < u.kh * u.kw * u.ci);
}
fn ${p}_load(c: Ctx, r: ${p}_row, o: ${p}_out, k: ${p}_k) -> f32 {
  let iy = r.iy0 + k.ky;
  let ix = r.ix0 + k.kx;
  var v = 0.0;
  if (o.ok && k.ok && iy >= 0 && iy < i32(u.h) && ix >= 0 && ix < i32(u.w)) {
    v = f32(x[r.base + (k.ch * u.h + u32(iy)) * u.w + u32(ix)]);
  }
  return v;
}`,
};

/** The forward's K tiles of depth bk, walked tap-major or flat (what FWD_CTX / FWD_FLAT_CTX count). */
export function fwdKTiles(g: ConvGeom, bk: number, flat: boolean): number {
  const taps = g.kh * g.kw;
  return flat ? Math.ceil((taps * g.ci) / bk) : taps * Math.ceil(g.ci / bk);
}

/** Whether the forward walks K flat: when that takes at most 3/4 of the tap-major walk's K tiles. */
export function fwdFlatK(g: ConvGeom, bk: number): boolean {
  return g.kh * g.kw > 1 && 4 * fwdKTiles(g, bk, true) <= 3 * fwdKTiles(g, bk, false);
}

/**
 * B = a weight seen as [tap, channel, column] with strides u.ws_t, u.ws_c, u.ws_n (channels < u.ws_cn);
 * the context's `real_tap` maps the outer K index to the tap. Mode 'row' when the column stride is 1.
 * `vec4` (row mode; binding wt4: the weight as vec4s): vectorised loads — only where weightVec4 holds.
 */
export function weightOperand(mode: LoadMode, vec4 = false): GemmOperand {
  return {
    mode,
    ...(vec4
      ? {
          load4: load4Wgsl('r.ok && k.ok', 'wt4', 'o.off + k.ch * u.ws_c'),
        }
      : {}),
    wgsl: (p) => `struct ${p}_row { off: u32, ok: bool }
fn ${p}_row_of(c: Ctx, r: u32) -> ${p}_row { return ${p}_row(r * u.ws_n, r < c.n); }
struct ${p}_out { off: u32 }
fn ${p}_outer(c: Ctx, r: ${p}_row, ko: u32) -> ${p}_out { return ${p}_out(r.off + real_tap(c, ko) * u.ws_t); }
struct ${p}_k { ch: u32, ok: bool }
fn ${p}_k_of(c: Ctx, ko: u32, ki: u32, kk: u32) -> ${p}_k {
  let ch = ki * BK + kk;
  return ${p}_k(ch, ch < u.ws_cn);
}
fn ${p}_load(c: Ctx, r: ${p}_row, o: ${p}_out, k: ${p}_k) -> f32 {
  var v = 0.0;
  if (r.ok && k.ok) { v = f32(wt[o.off + k.ch * u.ws_c]); }
  return v;
}`,
  };
}

/**
 * Whether weightOperand('row', true) may read a weight with tap and channel strides wsT, wsC and `columns`
 * columns: 4 adjacent columns (column stride 1) at 16-byte aligned offsets, none straddling the edge.
 */
export function weightVec4(wsT: number, wsC: number, columns: number): boolean {
  return wsT % 4 === 0 && wsC % 4 === 0 && columns % 4 === 0;
}

/**
 * An inference epilogue fused into the forward convolution's store (or, after split-K, into the slice
 * sum): batch norm with running statistics, then a residual add, then ReLU — the conv → BN (→ + shortcut)
 * → ReLU chains of every ResNet block, without writing and re-reading the conv output. Bindings: bn_w,
 * bn_b, bn_rm, bn_rv (per output channel), res (the shortcut, shaped like y); uniform eps. The BN
 * expression is the batch-norm apply kernel's, term for term.
 */
export interface FwdEpilogue {
  bn: boolean;
  residual: boolean;
  relu: boolean;
}

export function epilogueKey(e: FwdEpilogue | null): string {
  return e ? `epi:${e.bn ? 'bn' : ''}${e.residual ? '+res' : ''}${e.relu ? '+relu' : ''}` : 'epi:-';
}

/** `fn epi(v, n, idx)`: the epilogue for output channel n at flat output offset idx. */
export function epilogueWgsl(e: FwdEpilogue | null): string {
  const lines = ['  var z = v;'];
  if (e?.bn) lines.push('  z = (z - bn_rm[n]) * ((1.0 / sqrt(bn_rv[n] + u.eps)) * bn_w[n]) + bn_b[n];');
  if (e?.residual) lines.push('  z = z + f32(res[idx]);');
  if (e?.relu) lines.push('  z = max(z, 0.0);');
  return `fn epi(v: f32, n: u32, idx: u32) -> f32 {
${lines.join('\n')}
  return z;
}`;
}

/**
 * Slice z goes to y + z·|y| (split-K partials in the output's layout); the bias is added by slice 0.
 * With `epilogue` (no split: one slice) the value goes through it; partials are stored raw and the
 * epilogue runs in the slice sum (splitSumEpilogueShader).
 */
export function fwdStore(
  bias: boolean,
  epilogue: FwdEpilogue | null = null,
  out: 'f32' | 'f16' = 'f32',
): string {
  const v = `v${bias ? ' + select(0.0, bias[n], c.z == 0u)' : ''}`;
  if (epilogue)
    return `${epilogueWgsl(epilogue)}
fn store_c(c: Ctx, m: u32, n: u32, v: f32) {
  let hw = u.ho * u.wo;
  let idx = ((m / hw) * u.co + n) * hw + m % hw;
  y[idx] = ${convert(`epi(${v}, n, idx)`, 'f32', out)};
}`;
  if (out !== 'f32') throw new Error('fwdStore: split-K partials (no epilogue) are stored in f32');
  return `fn store_c(c: Ctx, m: u32, n: u32, v: f32) {
  let hw = u.ho * u.wo;
  y[c.z * c.m * c.n + ((m / hw) * u.co + n) * hw + m % hw] = ${v};
}`;
}

/** y[i] = epi(Σ_z part[z·n + i]) for an NCHW output (channel (i / hw) % co): split-K plus the epilogue. */
export function splitSumEpilogueShader(
  e: FwdEpilogue,
  out: 'f32' | 'f16' = 'f32',
  wgSize = 256,
): (header: string) => string {
  return splitSumShader(wgSize, {
    prelude: epilogueWgsl(e),
    line: `y[i] = ${convert('epi(s, (i / u.hw) % u.co, i)', 'f32', out)};`,
  });
}

// ---- transposed conv (kernel 2, stride 2) forward, one GEMM ----

/**
 * The store of a 2×2 stride-2 transposed conv run as one GEMM (ops/conv.ts deconvForward): row m = input
 * pixel (n, y, x), column = (output channel o, i, j), so the weight [Cin, Cout, 2, 2] is read as the
 * [Cin, Cout·4] matrix it already is; the value goes to out[n, o, 2y + i, 2x + j]. Uniforms: those of the
 * 1×1 conv this GEMM is (co = 4·Cout; ho × wo = the input's H × W). Slice z (split-K) goes to y + z·|y|,
 * raw; without a split, `epilogue` (batch norm, residual, ReLU on channel o) runs here, as in fwdStore.
 */
export function deconvStore(epilogue: FwdEpilogue | null = null, out: 'f32' | 'f16' = 'f32'): string {
  const index = `fn deconv_index(c: Ctx, m: u32, n: u32) -> u32 {
  let hw = u.ho * u.wo;
  let pix = m % hw;
  let oy = 2u * (pix / u.wo) + ((n >> 1u) & 1u);
  let ox = 2u * (pix % u.wo) + (n & 1u);
  return (((m / hw) * (u.co >> 2u) + (n >> 2u)) * 2u * u.ho + oy) * 2u * u.wo + ox;
}`;
  if (epilogue)
    return `${index}
${epilogueWgsl(epilogue)}
fn store_c(c: Ctx, m: u32, n: u32, v: f32) {
  let idx = deconv_index(c, m, n);
  y[idx] = ${convert('epi(v, n >> 2u, idx)', 'f32', out)};
}`;
  if (out !== 'f32') throw new Error('deconvStore: split-K partials (no epilogue) are stored in f32');
  return `${index}
fn store_c(c: Ctx, m: u32, n: u32, v: f32) {
  y[c.z * c.m * c.n + deconv_index(c, m, n)] = v;
}`;
}

/**
 * A = the space-to-depth view of g [N, Cout, 2H, 2W] for the input gradient of a 2×2 stride-2 transposed
 * conv as one GEMM (ops/conv.ts deconvDgrad): row m = (n, y, x) of the H × W input, k = (o, i, j) →
 * g[n, o, 2y + i, 2x + j], so the weight [Cin, Cout, 2, 2] is B as it is ([Cin, Cout·4], contiguous along
 * k). Uniforms: those of the 1×1 conv the GEMM is (ci = Cout·4, h × w = H × W, co = Cin).
 */
export const SPACE_TO_DEPTH: GemmOperand = {
  mode: 'row',
  wgsl: (p) => `struct ${p}_row { base: u32, off: u32, ok: bool }
fn ${p}_row_of(c: Ctx, m: u32) -> ${p}_row {
  let hw = u.h * u.w;
  let pix = m % hw;
  return ${p}_row((m / hw) * u.ci * hw, (2u * (pix / u.w)) * 2u * u.w + 2u * (pix % u.w), m < c.m);
}
struct ${p}_out { ok: bool }
fn ${p}_outer(c: Ctx, r: ${p}_row, ko: u32) -> ${p}_out { return ${p}_out(r.ok); }
struct ${p}_k { off: u32, ok: bool }
fn ${p}_k_of(c: Ctx, ko: u32, ki: u32, kk: u32) -> ${p}_k {
  let k = ki * BK + kk;
  return ${p}_k(((k >> 2u) * 2u * u.h + ((k >> 1u) & 1u)) * 2u * u.w + (k & 1u), k < u.ci);
}
fn ${p}_load(c: Ctx, r: ${p}_row, o: ${p}_out, k: ${p}_k) -> f32 {
  var v = 0.0;
  if (o.ok && k.ok) { v = g[r.base + r.off + k.off]; }
  return v;
}`,
};

// ---- dgrad (input gradient), one phase per workgroup_id.z ----

export const DGRAD_CTX = `struct Ctx {
  m: u32, n: u32, k_inner: u32, t0: u32, t1: u32,
  py: u32, px: u32, iy0: u32, ix0: u32, wc: u32, hwc: u32, tkx: u32, oyb: i32, oxb: i32,
}
fn make_ctx(z: u32) -> Ctx {
  let py = z / u.s;
  let px = z % u.s;
  let pm = u.p % u.s;
  // first input row/column of this phase: the smallest iy >= 0 with (iy + P) mod S = py
  let iy0 = (py + u.s - pm) % u.s;
  let ix0 = (px + u.s - pm) % u.s;
  let hc = select(0u, (u.h - iy0 + u.s - 1u) / u.s, iy0 < u.h);
  let wc = select(0u, (u.w - ix0 + u.s - 1u) / u.s, ix0 < u.w);
  let tky = select(0u, (u.kh - py + u.s - 1u) / u.s, py < u.kh);
  let tkx = select(0u, (u.kw - px + u.s - 1u) / u.s, px < u.kw);
  let kin = (u.co + BK - 1u) / BK;
  return Ctx(u.nb * hc * wc, u.ci, kin, 0u, tky * tkx * kin, py, px, iy0, ix0, max(wc, 1u),
    max(hc * wc, 1u), max(tkx, 1u), i32((iy0 + u.p - py) / u.s), i32((ix0 + u.p - px) / u.s));
}
fn real_tap(c: Ctx, ko: u32) -> u32 {
  return (c.py + u.s * (ko / c.tkx)) * u.kw + c.px + u.s * (ko % c.tkx);
}`;

/** A = the upstream gradient g [N, Co, Ho, Wo] at the output pixel that tap ko of pixel m reads. */
export const DGRAD_G: GemmOperand = {
  mode: 'row',
  wgsl: (p) => `struct ${p}_row { base: u32, a: i32, b: i32, ok: bool }
fn ${p}_row_of(c: Ctx, m: u32) -> ${p}_row {
  let r = m % c.hwc;
  return ${p}_row((m / c.hwc) * u.co * u.ho * u.wo, i32(r / c.wc), i32(r % c.wc), m < c.m);
}
struct ${p}_out { off: u32, ok: bool }
fn ${p}_outer(c: Ctx, r: ${p}_row, ko: u32) -> ${p}_out {
  let oy = c.oyb + r.a - i32(ko / c.tkx);
  let ox = c.oxb + r.b - i32(ko % c.tkx);
  let ok = r.ok && oy >= 0 && oy < i32(u.ho) && ox >= 0 && ox < i32(u.wo);
  return ${p}_out(select(0u, r.base + u32(oy) * u.wo + u32(ox), ok), ok);
}
struct ${p}_k { ch: u32, ok: bool }
fn ${p}_k_of(c: Ctx, ko: u32, ki: u32, kk: u32) -> ${p}_k {
  let ch = ki * BK + kk;
  return ${p}_k(ch, ch < u.co);
}
fn ${p}_load(c: Ctx, r: ${p}_row, o: ${p}_out, k: ${p}_k) -> f32 {
  var v = 0.0;
  if (o.ok && k.ok) { v = g[o.off + k.ch * u.ho * u.wo]; }
  return v;
}`,
};

/**
 * DGRAD_G with vectorised loads (binding g4: g as vec4s), for the input gradient of a 1×1 stride-1
 * unpadded conv whose H·W is a multiple of 4 (im2colVec4): one phase, pixel m of dx reads pixel m of g.
 */
export const DGRAD_G_VEC4: GemmOperand = {
  ...DGRAD_G,
  load4: load4Wgsl('o.ok && k.ok', 'g4', 'o.off + k.ch * u.ho * u.wo'),
};

export const DGRAD_STORE = `fn store_c(c: Ctx, m: u32, n: u32, v: f32) {
  let r = m % c.hwc;
  let iy = c.iy0 + u.s * (r / c.wc);
  let ix = c.ix0 + u.s * (r % c.wc);
  dx[(((m / c.hwc) * u.ci + n) * u.h + iy) * u.w + ix] = v;
}`;

// ---- wgrad (weight gradient), split-K over workgroup_id.z ----

export const WGRAD_CTX = `struct Ctx { m: u32, n: u32, k_inner: u32, t0: u32, t1: u32, z: u32 }
fn make_ctx(z: u32) -> Ctx {
  let kin = (u.ho * u.wo + BK - 1u) / BK;
  let total = u.nb * kin;
  let t0 = min(z * u.tps, total);
  return Ctx(u.co, u.ci * u.kh * u.kw, kin, t0, min(t0 + u.tps, total), z);
}`;

/** A = g viewed per image as [Co, Ho·Wo]: row o, k = (image ko, pixel). */
export const WGRAD_G: GemmOperand = {
  mode: 'k',
  wgsl: (p) => `struct ${p}_row { off: u32, ok: bool }
fn ${p}_row_of(c: Ctx, r: u32) -> ${p}_row { return ${p}_row(r * u.ho * u.wo, r < c.m); }
struct ${p}_out { off: u32 }
fn ${p}_outer(c: Ctx, r: ${p}_row, ko: u32) -> ${p}_out { return ${p}_out(ko * u.co * u.ho * u.wo + r.off); }
struct ${p}_k { pix: u32, ok: bool }
fn ${p}_k_of(c: Ctx, ko: u32, ki: u32, kk: u32) -> ${p}_k {
  let pix = ki * BK + kk;
  return ${p}_k(pix, pix < u.ho * u.wo);
}
fn ${p}_load(c: Ctx, r: ${p}_row, o: ${p}_out, k: ${p}_k) -> f32 {
  var v = 0.0;
  if (r.ok && k.ok) { v = f32(g[o.off + k.pix]); }
  return v;
}`,
};

/** B = im2col(x)ᵀ: k = (image, output pixel), column j = (channel, tap) — the dw layout. */
export const WGRAD_X: GemmOperand = {
  mode: 'k',
  wgsl: (p) => `struct ${p}_row { ch: u32, ky: i32, kx: i32, ok: bool }
fn ${p}_row_of(c: Ctx, j: u32) -> ${p}_row {
  let taps = u.kh * u.kw;
  let tap = j % taps;
  return ${p}_row(j / taps, i32(tap / u.kw), i32(tap % u.kw), j < c.n);
}
struct ${p}_out { off: u32 }
fn ${p}_outer(c: Ctx, r: ${p}_row, ko: u32) -> ${p}_out { return ${p}_out((ko * u.ci + r.ch) * u.h * u.w); }
struct ${p}_k { iy0: i32, ix0: i32, ok: bool }
fn ${p}_k_of(c: Ctx, ko: u32, ki: u32, kk: u32) -> ${p}_k {
  let pix = ki * BK + kk;
  return ${p}_k(i32((pix / u.wo) * u.s) - i32(u.p), i32((pix % u.wo) * u.s) - i32(u.p), pix < u.ho * u.wo);
}
fn ${p}_load(c: Ctx, r: ${p}_row, o: ${p}_out, k: ${p}_k) -> f32 {
  let iy = k.iy0 + r.ky;
  let ix = k.ix0 + r.kx;
  var v = 0.0;
  if (r.ok && k.ok && iy >= 0 && iy < i32(u.h) && ix >= 0 && ix < i32(u.w)) {
    v = f32(x[o.off + u32(iy) * u.w + u32(ix)]);
  }
  return v;
}`,
};

export const WGRAD_STORE = `fn store_c(c: Ctx, m: u32, n: u32, v: f32) {
  out[c.z * c.m * c.n + m * c.n + n] = v;
}`;

// ---- helpers: weight transpose, bias gradient ----

/**
 * y = x viewed as [d0, d1, d2] permuted: y has shape [e0, e1, e2] and y[i0, i1, i2] = x[i0·s0 + i1·s1 +
 * i2·s2] with (s0, s1, s2) the source strides of the dimensions that moved there: the weight copies the
 * GEMMs read (ops/conv.ts transposeWeight). A gather, coalesced on the writes only. A version that staged
 * 32×32 tiles in workgroup memory to coalesce both sides ran the 48 copies of an inference 11% faster on
 * lavapipe but made a training step 2.8× slower on SwiftShader (Chromium's WebGPU without a GPU: it pays
 * dearly for every barrier), so the gather stays until a GPU measurement says what the tile would win there.
 */
export function permute3Shader(wg: number, out: DType = 'f32'): (header: string) => string {
  return (h) => `${h}
${indexer('y', ['u.e0', 'u.e1', 'u.e2'])}
@compute @workgroup_size(${wg})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * ${wg}u;
  if (i >= u.n) { return; }
  let ix = y_idx(i);
  y[i] = ${out}(x[ix[0] * u.s0 + ix[1] * u.s1 + ix[2] * u.s2]);
}`;
}

/**
 * db[o] = Σ_{n, pixel} g[n, o, pixel]: one workgroup per channel; each invocation sums a strided part
 * sequentially (≤ N·H·W / 256 terms), then a tree reduction in workgroup memory.
 */
export function biasGradShader(wg = 256): (header: string) => string {
  return (h) => `${h}
var<workgroup> part: array<f32, ${wg}>;
@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let o = wid.x;
  var s = 0.0;
  for (var nb = 0u; nb < u.nb; nb = nb + 1u) {
    let base = (nb * u.co + o) * u.hw;
    for (var i = lid; i < u.hw; i = i + ${wg}u) { s = s + g[base + i]; }
  }
  part[lid] = s;
  for (var k = ${wg / 2}u; k > 0u; k = k >> 1u) {
    workgroupBarrier();
    if (lid < k) { part[lid] = part[lid] + part[lid + k]; }
  }
  if (lid == 0u) { db[o] = part[0]; }
}`;
}
