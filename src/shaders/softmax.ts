/**
 * Row softmax y = exp(x − max) / Σ exp(x − max) over rows of length D (up to ~10^6 and beyond), and its
 * backward dx = y ⊙ (g − Σ g⊙y).
 *
 * Layout. A row is cut into chunks of CHUNK = WG·PER values; one workgroup owns one (row, chunk) and each
 * invocation reads PER values at stride WG (coalesced: a warp reads 32 consecutive floats per load, PER
 * independent loads in flight). Workgroups are numbered w = row·chunks + chunk on a 2-D grid (grid1d), so
 * any number of rows and chunks fits the 65,535-per-dimension limit.
 *
 * Forward, the reduction is a pair (m, s) = (max, Σ exp(v − m)): an invocation first takes the max of its
 * PER values, then sums exp(v − m) (one exp per value), and pairs merge as
 *     (m, s) ⊕ (m', s') = (M, s·exp(m − M) + s'·exp(m' − M)),  M = max(m, m'),
 * which is exact up to rounding in any order, so the shared-memory tree and the later merge of the chunks'
 * pairs keep float32 accuracy for D ~ 10^6 (each sum is PER sequential adds, then log2 levels of a tree).
 *   - one chunk per row (D ≤ CHUNK): a single kernel keeps the values in registers, reduces, writes y;
 *   - several chunks: `stats` writes one (m, s) per (row, chunk); `norm` merges the row's pairs (every
 *     workgroup of the row redoes this small merge, ≤ a few hundred pairs, instead of a third dispatch)
 *     and writes y over its chunk. Two reads of x and one write of y: bandwidth-bound, as it must be.
 * Backward, the same two shapes with a plain sum: `dot` writes Σ g·y per (row, chunk), `apply` adds the
 * row's partial dots (tree) and writes dx = y·(g − dot); one fused kernel when D ≤ CHUNK.
 *
 * A sentinel NEG = −3e38 stands for −∞ (an invocation without values), so no inf arithmetic happens.
 */
import { WG } from './common.js';

/** Values per invocation; a chunk is WG·PER values. */
export const SOFTMAX_PER = 16;
export const SOFTMAX_CHUNK = WG * SOFTMAX_PER;

const PRELUDE = `const WG: u32 = ${WG}u;
const PER: u32 = ${SOFTMAX_PER}u;
const CHUNK: u32 = ${SOFTMAX_CHUNK}u;
const NEG: f32 = -3.0e38;`;

/** Entry point: the workgroup's (row, chunk) from a grid1d-shaped grid; returns early past the end. */
const ENTRY = `@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_index) t: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let w = wid.x + wid.y * nwg.x;
  if (w >= u.rows * u.chunks) { return; }
  let row = w / u.chunks;
  let chunk = w % u.chunks;
  let base = row * u.D;
  let start = chunk * CHUNK;`;

/** (max, sum-of-exp) pairs: merge and a shared-memory tree over the workgroup. */
const PAIR_TREE = `var<workgroup> red2: array<vec2<f32>, ${WG}>;
fn merge(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
  let m = max(a.x, b.x);
  return vec2<f32>(m, a.y * exp(a.x - m) + b.y * exp(b.x - m));
}
fn tree2(t: u32, v: vec2<f32>) -> vec2<f32> {
  red2[t] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    if (t < s) { red2[t] = merge(red2[t], red2[t + s]); }
    workgroupBarrier();
  }
  let r = red2[0];
  workgroupBarrier();
  return r;
}`;

/** Plain sums: a shared-memory tree. */
const SUM_TREE = `var<workgroup> red1: array<f32, ${WG}>;
fn tree1(t: u32, v: f32) -> f32 {
  red1[t] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    if (t < s) { red1[t] = red1[t] + red1[t + s]; }
    workgroupBarrier();
  }
  let r = red1[0];
  workgroupBarrier();
  return r;
}`;

/** Load this invocation's PER values of x into v (NEG past the row's end) and their max into m. */
const LOAD_MAX = `  var v: array<f32, PER>;
  var m = NEG;
  for (var k = 0u; k < PER; k++) {
    let d = start + t + k * WG;
    v[k] = NEG;
    if (d < u.D) { v[k] = x[base + d]; }
    m = max(m, v[k]);
  }
  var s = 0.0;
  for (var k = 0u; k < PER; k++) {
    if (start + t + k * WG < u.D) { s += exp(v[k] - m); }
  }`;

/**
 * Forward. `fused` (one chunk per row): inputs x; outputs y. Otherwise pass `stats`: inputs x; outputs
 * st (vec2) [rows·chunks]. Uniforms: rows, chunks, D.
 */
export function softmaxStatsWGSL(fused: boolean): (h: string) => string {
  return (h) => `${h}
${PRELUDE}
${PAIR_TREE}
${ENTRY}
${LOAD_MAX}
  let r = tree2(t, vec2<f32>(m, s));
${
  fused
    ? `  let inv = 1.0 / r.y;
  for (var k = 0u; k < PER; k++) {
    let d = start + t + k * WG;
    if (d < u.D) { y[base + d] = exp(v[k] - r.x) * inv; }
  }`
    : `  if (t == 0u) { st[w] = r; }`
}
}`;
}

/** Forward pass 2 (several chunks): inputs x, st (vec2); outputs y. Uniforms: rows, chunks, D. */
export function softmaxNormWGSL(): (h: string) => string {
  return (h) => `${h}
${PRELUDE}
${PAIR_TREE}
${ENTRY}
  var acc = vec2<f32>(NEG, 0.0);
  for (var c = t; c < u.chunks; c += WG) { acc = merge(acc, st[row * u.chunks + c]); }
  let r = tree2(t, acc);
  let inv = 1.0 / r.y;
  for (var k = 0u; k < PER; k++) {
    let d = start + t + k * WG;
    if (d < u.D) { y[base + d] = exp(x[base + d] - r.x) * inv; }
  }
}`;
}

/**
 * Backward. `fused` (one chunk per row): inputs y, g; outputs dx. Otherwise pass `dot`: inputs y, g;
 * outputs pd [rows·chunks]. Uniforms: rows, chunks, D.
 */
export function softmaxBwdDotWGSL(fused: boolean): (h: string) => string {
  return (h) => `${h}
${PRELUDE}
${SUM_TREE}
${ENTRY}
  var yv: array<f32, PER>;
  var gv: array<f32, PER>;
  var s = 0.0;
  for (var k = 0u; k < PER; k++) {
    let d = start + t + k * WG;
    yv[k] = 0.0;
    gv[k] = 0.0;
    if (d < u.D) { yv[k] = y[base + d]; gv[k] = g[base + d]; }
    s += gv[k] * yv[k];
  }
  let dot = tree1(t, s);
${
  fused
    ? `  for (var k = 0u; k < PER; k++) {
    let d = start + t + k * WG;
    if (d < u.D) { dx[base + d] = yv[k] * (gv[k] - dot); }
  }`
    : `  if (t == 0u) { pd[w] = dot; }`
}
}`;
}

/** Backward pass 2 (several chunks): inputs y, g, pd; outputs dx. Uniforms: rows, chunks, D. */
export function softmaxBwdApplyWGSL(): (h: string) => string {
  return (h) => `${h}
${PRELUDE}
${SUM_TREE}
${ENTRY}
  var acc = 0.0;
  for (var c = t; c < u.chunks; c += WG) { acc += pd[row * u.chunks + c]; }
  let dot = tree1(t, acc);
  for (var k = 0u; k < PER; k++) {
    let d = start + t + k * WG;
    if (d < u.D) { dx[base + d] = y[base + d] * (g[base + d] - dot); }
  }
}`;
}
