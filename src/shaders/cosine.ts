/**
 * Cosine similarities and the losses built on them (spec §4.0): per-sample cosines over D = C·H·W values
 * ("rows") and per-pixel cosines over channels ("map"), forward and backward.
 *
 * The record. Every forward writes, for each of its n cosines ("slots"), the cosine and the two squared
 * norms into one f32 buffer at offset `off`:
 *     rec[off + slot] = cos,   rec[off + n + 2·slot] = ‖a‖²,   rec[off + n + 2·slot + 1] = ‖b‖².
 * cosineRows / cosineMap return the first n values as their output tensor (the norms ride behind them in
 * the same buffer, so the backward needs no second tensor); the fused losses keep rec[0] for the loss.
 *
 * Rows forward: one pass over a and b reduces dot, ‖a‖², ‖b‖² together (vec3 in a vec4), with the chunked
 * two-pass layout of shaders/reduce.ts (coalesced, PER loads of each input in flight per invocation,
 * shared-memory tree): pass 1 writes vec4 partials per (row, workgroup), pass 2 (one workgroup per row)
 * finishes them and writes the record. A row of ≤ CHUNK values is done by pass 1 alone.
 *
 * Map forward: a workgroup of 256 = PX pixels × S channel slices. Invocation (x, s) accumulates channels
 * s, s + S, ... of pixel x; for a fixed channel the PX invocations of a slice read PX consecutive floats
 * (coalesced). The S partial sums meet in shared memory. S grows when there are few pixels (deep, small
 * feature maps) so that the GPU still gets ~2^17 invocations.
 *
 * Backward (spec §4.0): with c = cos and the effective norms, ∂c/∂a = b/(‖a‖‖b‖) − c·a/‖a‖², so every
 * element's gradient is da = α·b + βa·a, db = α·a + βb·b with per-cosine coefficients α, βa, βb computed
 * once per workgroup (rows) or invocation (map) from the record and the upstream gradient. The upstream
 * gradient is either per cosine (`each`: g[slot']) or a scalar loss gradient folded with the loss's
 * derivative (`oneMinus`: d(w·Σ(1 − c))/dc = −w; `hinge`: d(w·Σ max(0, c − m))/dc = w·[c > m]).
 *
 * Two cosine forms: `torch` = a·b / (max(‖a‖, 1e-8)·max(‖b‖, 1e-8)) (CosineSimilarity);
 * `embed` = a·b / √((‖a‖² + 1e-12)(‖b‖² + 1e-12)) (CosineEmbeddingLoss).
 */
import type { DType } from '../engine/tensor.js';
import { convert } from './common.js';
import { CHUNK, chunkLoop, mainRows, PER, RWG, treeReduce } from './reduce.js';

export type CosForm = 'torch' | 'embed';
export type GradMode = 'each' | 'oneMinus' | 'hinge';
export type Outs = 'a' | 'b' | 'ab';
export type LossTerm = 'oneMinus' | 'hinge';
const add = (x: string, y: string) => `${x} + ${y}`;

/** `let va`, `let vb`: element `e` of a and b as f32 (f16 inputs, activations under PRECISION=f16, widened). */
function loadPair(e: string, aType: DType, bType: DType): string {
  return `let va = ${convert(`a[${e}]`, aType, 'f32')};
        let vb = ${convert(`b[${e}]`, bType, 'f32')};`;
}

/** `cos_of(dot, aa, bb)` and `coef(c, aa, bb, gr) -> vec3(α, βa, βb)` for a form. */
function cosFns(form: CosForm): string {
  if (form === 'torch')
    return `const EPS: f32 = 1e-8;
fn cos_of(d: f32, aa: f32, bb: f32) -> f32 { return d / (max(sqrt(aa), EPS) * max(sqrt(bb), EPS)); }
fn coef(c: f32, aa: f32, bb: f32, gr: f32) -> vec3<f32> {
  let ra = sqrt(aa);
  let rb = sqrt(bb);
  let na = max(ra, EPS);
  let nb = max(rb, EPS);
  return vec3<f32>(gr / (na * nb), select(0.0, -gr * c / (na * na), ra >= EPS),
                   select(0.0, -gr * c / (nb * nb), rb >= EPS));
}`;
  return `const EPS2: f32 = 1e-12;
fn cos_of(d: f32, aa: f32, bb: f32) -> f32 { return d / (sqrt(aa + EPS2) * sqrt(bb + EPS2)); }
fn coef(c: f32, aa: f32, bb: f32, gr: f32) -> vec3<f32> {
  let ea = aa + EPS2;
  let eb = bb + EPS2;
  return vec3<f32>(gr / (sqrt(ea) * sqrt(eb)), -gr * c / ea, -gr * c / eb);
}`;
}

/** WGSL expression of the upstream gradient of a cosine (`gi`: index into g for mode `each`). */
function gradExpr(mode: GradMode, gi: string): string {
  if (mode === 'each') return `g[${gi}]`;
  if (mode === 'oneMinus') return '-g[0] * u.w';
  return 'select(0.0, g[0] * u.w, c > u.margin)';
}

/** Statements writing the record of `slot` from r = vec(dot, aa, bb). */
function writeRecord(slot: string): string {
  return `let c = cos_of(r.x, r.y, r.z);
    rec[u.off + ${slot}] = c;
    rec[u.off + u.n + 2u * ${slot}] = r.y;
    rec[u.off + u.n + 2u * ${slot} + 1u] = r.z;`;
}

/**
 * Rows forward pass. source `ab`: inputs a, b (f32), viewed as [R, D]; `partials`: input p (vec4) viewed
 * as [R, D]. sink `partials`: output part (vec4) [R, nwg.x]; `record`: output rec (f32) at slots slot0 + row.
 * Uniforms: D, nChunks, R, off, n, slot0. Dispatch: [workgroups per row, rowGrid(R)].
 */
export function cosRowsWGSL(
  form: CosForm,
  source: 'ab' | 'partials',
  sink: 'partials' | 'record',
  aType: DType = 'f32',
  bType: DType = 'f32',
) {
  const body =
    source === 'ab'
      ? (j: string) => `${loadPair(`base + ${j}`, aType, bType)}
        loc = loc + vec4<f32>(va * vb, va * va, vb * vb, 0.0);`
      : (j: string) => `loc = loc + p[base + ${j}];`;
  return (h: string) => `${h}
${cosFns(form)}
${treeReduce('wg_sum4', 'vec4<f32>', add)}
${mainRows()}
  let base = row * u.D;
  var acc = vec4<f32>(0.0);
  var loc = vec4<f32>(0.0);
${chunkLoop(body, 'acc = acc + loc;', 'loc = vec4<f32>(0.0);')}
  let r = wg_sum4(tid, acc);
  if (tid == 0u) {
    ${sink === 'partials' ? 'part[row * nwg.x + wid.x] = r;' : writeRecord('(u.slot0 + row)')}
  }
}`;
}

/** Statements of the gradient outputs for element index `e` given va, vb and k = (α, βa, βb). */
function gradStores(outs: Outs, e: string): string {
  const s: string[] = [];
  if (outs !== 'b') s.push(`da[${e}] = k.x * vb + k.y * va;`);
  if (outs !== 'a') s.push(`db[${e}] = k.x * va + k.z * vb;`);
  return s.join(' ');
}

/**
 * Rows backward: inputs a, b, rec, g; outputs da and/or db. Uniforms: D, nChunks, R, off, n, slot0, w,
 * margin. Dispatch: [min(nChunks, 65535), rowGrid(R)]; each workgroup loads its row's coefficients once.
 */
export function cosRowsBwdWGSL(
  form: CosForm,
  mode: GradMode,
  outs: Outs,
  aType: DType = 'f32',
  bType: DType = 'f32',
) {
  return (h: string) => `${h}
${cosFns(form)}
${mainRows()}
  let slot = u.slot0 + row;
  let c = rec[u.off + slot];
  let aa = rec[u.off + u.n + 2u * slot];
  let bb = rec[u.off + u.n + 2u * slot + 1u];
  let k = coef(c, aa, bb, ${gradExpr(mode, 'row')});
  let base = row * u.D;
  for (var ch = wid.x; ch < u.nChunks; ch = ch + nwg.x) {
    let start = ch * ${CHUNK}u + tid;
    for (var t = 0u; t < ${PER}u; t = t + 1u) {
      let j = start + t * ${RWG}u;
      if (j < u.D) {
        let e = base + j;
        ${loadPair('e', aType, bType)}
        ${gradStores(outs, 'e')}
      }
    }
  }
}`;
}

/** Channel slices per pixel for P pixels of C channels (power of two, 1..16, ≤ C). */
export function mapSlices(pixels: number, channels: number): number {
  let s = 1;
  while (s < 16 && s * 2 <= channels && pixels * s < 1 << 17) s *= 2;
  return s;
}

/** Entry of the map kernels: pixel q of this invocation, its slice s, `valid`, and element index idx0. */
function mainMap(S: number): string {
  const PX = RWG / S;
  return `const S: u32 = ${S}u;
const PX: u32 = ${PX}u;
@compute @workgroup_size(${RWG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) tid: u32) {
  let lx = tid % PX;
  let s = tid / PX;
  let q = (wid.x + wid.y * nwg.x) * PX + lx;
  let valid = q < u.P;
  let bi = q / u.HW;
  let px = q - bi * u.HW;
  let idx0 = (bi * u.C + s) * u.HW + px;
  let step = S * u.HW;`;
}

/**
 * Map forward: inputs a, b [B, C, HW]; output rec with slots q = b·HW + p. Uniforms: C, HW, P, off, n.
 * Dispatch: grid1d(P, 256 / S).
 */
export function cosMapWGSL(S: number, aType: DType = 'f32', bType: DType = 'f32') {
  // f16 inputs (activations under f16 storage) are widened as they are read; the sums stay f32
  const A = (e: string) => convert(`a[${e}]`, aType, 'f32');
  const B = (e: string) => convert(`b[${e}]`, bType, 'f32');
  return (h: string) => `${h}
${cosFns('torch')}
var<workgroup> sh: array<vec4<f32>, ${RWG}>;
${mainMap(S)}
  var acc = vec4<f32>(0.0);
  if (valid) {
    var e = idx0;
    var ch = s;
    for (; ch + 3u * S < u.C; ch = ch + 4u * S) {
      let a0 = ${A('e')}; let b0 = ${B('e')};
      let a1 = ${A('e + step')}; let b1 = ${B('e + step')};
      let a2 = ${A('e + 2u * step')}; let b2 = ${B('e + 2u * step')};
      let a3 = ${A('e + 3u * step')}; let b3 = ${B('e + 3u * step')};
      acc = acc + vec4<f32>((a0 * b0 + a1 * b1) + (a2 * b2 + a3 * b3),
                            (a0 * a0 + a1 * a1) + (a2 * a2 + a3 * a3),
                            (b0 * b0 + b1 * b1) + (b2 * b2 + b3 * b3), 0.0);
      e = e + 4u * step;
    }
    for (; ch < u.C; ch = ch + S) {
      let va = ${A('e')}; let vb = ${B('e')};
      acc = acc + vec4<f32>(va * vb, va * va, vb * vb, 0.0);
      e = e + step;
    }
  }
  sh[tid] = acc;
  workgroupBarrier();
  for (var st = S / 2u; st > 0u; st = st >> 1u) {
    if (s < st) { sh[tid] = sh[tid] + sh[tid + st * PX]; }
    workgroupBarrier();
  }
  if (s == 0u && valid) {
    let r = sh[tid];
    ${writeRecord('q')}
  }
}`;
}

/**
 * Map backward: inputs a, b, rec, g; outputs da and/or db. Uniforms: C, HW, P, off, n, w.
 * Dispatch: grid1d(P, 256 / S).
 */
export function cosMapBwdWGSL(
  S: number,
  mode: GradMode,
  outs: Outs,
  aType: DType = 'f32',
  bType: DType = 'f32',
) {
  return (h: string) => `${h}
${cosFns('torch')}
${mainMap(S)}
  if (!valid) { return; }
  let c = rec[u.off + q];
  let aa = rec[u.off + u.n + 2u * q];
  let bb = rec[u.off + u.n + 2u * q + 1u];
  let k = coef(c, aa, bb, ${gradExpr(mode, 'q')});
  var e = idx0;
  for (var ch = s; ch < u.C; ch = ch + S) {
    ${loadPair('e', aType, bType)}
    ${gradStores(outs, 'e')}
    e = e + step;
  }
}`;
}

function termExpr(term: LossTerm, x: string): string {
  return term === 'oneMinus' ? `(1.0 - ${x})` : `max(0.0, ${x} - u.margin)`;
}

/**
 * Loss over the n cosines of a record at offset 1: Σ term(rec[1 + i]). sink `partials`: input rec,
 * output part [nwg.x] (finished by the reduce_sum kernel into rec[0] with scale w); `inplace` (one
 * workgroup, n ≤ CHUNK): rec bound read-write, rec[0] = w · Σ. Uniforms: D (= n), nChunks, R (= 1),
 * w, margin. Dispatch: [workgroups, 1].
 */
export function cosLossWGSL(term: LossTerm, sink: 'partials' | 'inplace') {
  return (h: string) => `${h}
${treeReduce('wg_sum', 'f32', add)}
${mainRows()}
  var acc: f32 = 0.0;
  var loc: f32 = 0.0;
${chunkLoop((j) => `loc = loc + ${termExpr(term, `rec[1u + ${j}]`)};`, 'acc = acc + loc;', 'loc = 0.0;')}
  let r = wg_sum(tid, acc);
  if (tid == 0u) {
    ${sink === 'partials' ? 'part[wid.x] = r;' : 'rec[0] = r * u.w;'}
  }
}`;
}
