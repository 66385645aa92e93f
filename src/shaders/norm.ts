/**
 * Normalisation kernels: BatchNorm2d (batch or running statistics) and InstanceNorm2d, forward and
 * backward, with an optional fused activation epilogue (ReLU / LeakyReLU).
 *
 * One geometry serves both norms. A *group* is the set of elements that share a statistic: for
 * BatchNorm the channel c of an NCHW tensor (N runs of H·W contiguous elements, `outer` = C·H·W apart),
 * for InstanceNorm one (n, c) plane (a single run; InstanceNorm is BatchNorm on x viewed as
 * [1, N·C, H, W]). Element j of group g lives at
 *     (j / inner) · outer + g · inner + j % inner          (all in units of V-wide vectors)
 * and the group of a flat element i is (i / inner) % groups.
 *
 * Reductions over a group (N·H·W reaches 16·128·128 = 262,144 elements for the teacher stem BN) are
 * split so that the whole GPU works on them: the group is cut into `splits` chunks of `chunk` vectors;
 * each (group, chunk) item is reduced by `tpg` threads (each sequentially over a strided slice,
 * coalesced, then a shared-memory tree), writing one partial — tpg = 256 for big groups (one item per
 * workgroup), fewer for small groups, several items sharing a workgroup; a second, tiny pass merges the
 * ≤ ~64 partials of each group (one thread per group, in order). Statistics use Welford per thread and Chan's
 * pairwise merge (tree and partials), never E[x²] − E[x]², so large means cost no precision.
 *
 * Passes (each a separate program; V = 4 when H·W is a multiple of 4, which RD++'s shapes all are):
 *   stats_partial  (n, mean, M2) per chunk                                     reads x once
 *   stats_final    per group: mean, 1/√(σ²+eps); BN train also updates the running stats in place
 *   stats_apply    groups one item reduces whole (IN; BN train): stats_partial, stats_final, apply in one
 *   eval_stats     per channel from the running stats (BN eval)
 *   apply          y = act((x − mean)·invstd·γ + β)                            reads x, writes y
 *   grad_partial   per chunk: Σg', Σg'·x̂, with g' = g·act'(z) (z recomputed from x, not stored)
 *   grad_final     per group: dβ = Σg', dγ = Σg'·x̂
 *   dx             batch stats: dx = γ·invstd·(g' − (Σg' + x̂·Σg'x̂)/n); fixed stats: dx = γ·invstd·g'
 *   grad_dx        groups one item reduces whole, batch stats: grad_partial, grad_final and dx in one
 * Forward costs one read for the statistics plus one read and one write; backward two reads for the
 * sums plus two reads and one write for dx (ideal for a two-pass design on tensors larger than cache).
 */

import { convert } from './common.js';

export type Act = 'none' | 'relu' | 'leaky';

/** The WGSL type of one V-wide element (f32 or vec4<f32>; f16 / vec4<f16> for f16 storage). */
export function vecType(v: 1 | 4, dtype: 'f32' | 'f16' = 'f32'): string {
  return v === 4 ? `vec4<${dtype}>` : dtype;
}

/**
 * `e`, an element of a tensor stored as `dtype`, as the f32 type the kernels compute in (f16 storage: the
 * inference path's instance norm under PRECISION=f16 reads and writes halves; the statistics and the
 * arithmetic stay f32).
 */
function widen(v: 1 | 4, dtype: 'f32' | 'f16', e: string): string {
  return convert(e, vecType(v, dtype), vecType(v));
}

/** Threads per workgroup of the reduction kernels. */
export const REDUCE_WG = 256;

/**
 * Entry of the reduction kernels: a workgroup of REDUCE_WG threads serves REDUCE_WG / tpg work items
 * (one item = one chunk of one group), tpg threads each, so that small groups (IN at 16×16, BN at 2×2)
 * do not leave most of a workgroup idle. Inactive items (past u.total) still reach every barrier.
 */
const entry = (tpg: number) => `@compute @workgroup_size(${REDUCE_WG})
fn main(@builtin(local_invocation_index) t: u32, @builtin(workgroup_id) wgid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let item = (wgid.x + wgid.y * nwg.x) * ${REDUCE_WG / tpg}u + t / ${tpg}u;
  let lane = t % ${tpg}u;
  let live = item < u.total;
  let grp = item / u.splits;
  let start = (item % u.splits) * u.chunk;
  let stop = select(start, min(start + u.chunk, u.count), live);`;

/** Segmented tree over the tpg lanes of each item; `op` combines sh[t] and sh[t + k]. */
const segmentTree = (tpg: number, op: string) => `  workgroupBarrier();
  for (var k = ${tpg / 2}u; k > 0u; k = k >> 1u) {
    if (lane < k) { sh[t] = ${op}; }
    workgroupBarrier();
  }`;

const groupOffset =
  'fn goff(grp: u32, j: u32) -> u32 { return (j / u.inner) * u.outer + grp * u.inner + j % u.inner; }';

/** Chan's merge of two (count, mean, M2) triples. */
const chan = `fn chan(a: vec3<f32>, b: vec3<f32>) -> vec3<f32> {
  if (b.x == 0.0) { return a; }
  let n = a.x + b.x;
  let d = b.y - a.y;
  let f = b.x / n;
  return vec3<f32>(n, a.y + d * f, a.z + b.z + d * d * a.x * f);
}`;

/**
 * The top of every reduction kernel (stats_partial, stats_apply, grad_partial, grad_dx): the bindings'
 * header, the workgroup array the tree reduces in (`sh` of `elem`), the group addressing, `helpers`
 * (chan for the statistics) and the entry with its item, lane and range.
 */
function reductionKernel(header: string, elem: 'vec3<f32>' | 'vec2<f32>', tpg: number, helpers = ''): string {
  return `${header}
var<workgroup> sh: array<${elem}, ${REDUCE_WG}>;
${groupOffset}
${helpers}
${entry(tpg)}`;
}

/** Activation and its gradient (the mask is taken on z, the pre-activation, recomputed from x). */
function actExpr(act: Act, T: string, z: string): string {
  if (act === 'relu') return `max(${z}, ${T}(0.0))`;
  if (act === 'leaky') return `select(u.slope * ${z}, ${z}, ${z} > ${T}(0.0))`;
  return z;
}
function actGrad(act: Act, T: string, g: string, z: string): string {
  if (act === 'relu') return `select(${T}(0.0), ${g}, ${z} > ${T}(0.0))`;
  if (act === 'leaky') return `select(u.slope * ${g}, ${g}, ${z} > ${T}(0.0))`;
  return g;
}

/**
 * The reduction of stats_partial and stats_apply: Welford per thread (per vector lane), lanes merged, then
 * a Chan tree in workgroup memory; afterwards sh[t − lane] holds the item's (n, mean, M2).
 */
function welfordWgsl(v: 1 | 4, tpg: number, xType: 'f32' | 'f16'): string {
  const T = vecType(v);
  const laneMerge =
    v === 4
      ? `  let lm = dot(mean, vec4<f32>(0.25));
  let dm = mean - vec4<f32>(lm);
  var acc = vec3<f32>(n * 4.0, lm, dot(m2, vec4<f32>(1.0)) + n * dot(dm, dm));`
      : `  var acc = vec3<f32>(n, mean, m2);`;
  return `  var n = 0.0;
  var mean = ${T}(0.0);
  var m2 = ${T}(0.0);
  for (var j = start + lane; j < stop; j += ${tpg}u) {
    let v = ${widen(v, xType, 'x[goff(grp, j)]')};
    n += 1.0;
    let d = v - mean;
    mean += d * (1.0 / n);
    m2 += d * (v - mean);
  }
${laneMerge}
  sh[t] = acc;
${segmentTree(tpg, 'chan(sh[t], sh[t + k])')}`;
}

/**
 * stats_partial: (n, mean, M2) of each item (welfordWgsl). Bindings: x (V-vectors), part (3 floats per
 * item). Uniforms: inner, outer, count, groups, chunk, splits, total (see the header).
 */
export function statsPartialWgsl(
  header: string,
  v: 1 | 4,
  tpg: number,
  xType: 'f32' | 'f16' = 'f32',
): string {
  return `${reductionKernel(header, 'vec3<f32>', tpg, chan)}
${welfordWgsl(v, tpg, xType)}
  if (lane == 0u && live) {
    let r = sh[t];
    part[3u * item] = r.x;
    part[3u * item + 1u] = r.y;
    part[3u * item + 2u] = r.z;
  }
}`;
}

/**
 * stats_apply: statistics and apply in one pass, for groups one item reduces whole (splits = 1: every
 * instance-norm plane of RD++ up to 64×64, and batch-norm channels of up to 2,048 vectors of N·H·W — the
 * OCBE's and the decoder's deep layers in training). The item's lanes reduce the group as stats_partial
 * does, read its (n, mean, M2) back from workgroup memory, compute mean and 1/√(σ² + eps) as stats_final
 * does (a Chan merge of one partial into nothing is that partial, so the numbers are the same), write them
 * for the backward (`running`: and update the running statistics as stats_final does), and write
 * y = act(z) over the group, z as apply computes it — one dispatch instead of three, and no statistics
 * round trip through memory. Bindings: x, (w, b with `affine`), y, stats, (rm, rv with `running`).
 * Uniforms: the reduction's, eps, slope, momentum.
 */
export function statsApplyWgsl(
  header: string,
  v: 1 | 4,
  tpg: number,
  act: Act,
  dtype: 'f32' | 'f16' = 'f32',
  o: { affine?: boolean; running?: boolean } = {},
): string {
  const y = convert(actExpr(act, vecType(v), 'z'), vecType(v), vecType(v, dtype));
  const xv = widen(v, dtype, 'x[o]');
  // the statistics as computed here: lane 0 is still writing them to `stats`
  const z = zExpr(o.affine === true, xv, 'mu', 'invstd');
  return `${reductionKernel(header, 'vec3<f32>', tpg, chan)}
${welfordWgsl(v, tpg, dtype)}
  let r = chan(vec3<f32>(0.0), sh[t - lane]);
  let g = grp;
  let mu = r.y;
  let invstd = 1.0 / sqrt(r.z / r.x + u.eps);
  if (lane == 0u && live) {
    stats[2u * g] = mu;
    stats[2u * g + 1u] = invstd;
${
  o.running
    ? `    rm[g] = (1.0 - u.momentum) * rm[g] + u.momentum * r.y;
    rv[g] = (1.0 - u.momentum) * rv[g] + u.momentum * (r.z / (r.x - 1.0));`
    : ''
}
  }
  for (var j = start + lane; j < stop; j += ${tpg}u) {
    let o = goff(g, j);
    let z = ${z};
    y[o] = ${y};
  }
}`;
}

/**
 * stats_final: one thread per group merges its `splits` partials in order (Chan), writes
 * stats[2g] = mean, stats[2g+1] = 1/√(σ²_biased + eps); with `running`, also
 * rm ← (1−m)·rm + m·mean and rv ← (1−m)·rv + m·M2/(n−1) in place.
 */
export function statsFinalWgsl(header: string, running: boolean): string {
  return `${header}
${chan}
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let g = gid.x + gid.y * nwg.x * 64u;
  if (g >= u.groups) { return; }
  var acc = vec3<f32>(0.0);
  for (var s = 0u; s < u.splits; s++) {
    let p = 3u * (g * u.splits + s);
    acc = chan(acc, vec3<f32>(part[p], part[p + 1u], part[p + 2u]));
  }
  stats[2u * g] = acc.y;
  stats[2u * g + 1u] = 1.0 / sqrt(acc.z / acc.x + u.eps);
${
  running
    ? `  rm[g] = (1.0 - u.momentum) * rm[g] + u.momentum * acc.y;
  rv[g] = (1.0 - u.momentum) * rv[g] + u.momentum * (acc.z / (acc.x - 1.0));`
    : ''
}
}`;
}

/** eval_stats: stats from the running statistics (BN eval mode). */
export function evalStatsWgsl(header: string): string {
  return `${header}
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let g = gid.x + gid.y * nwg.x * 64u;
  if (g >= u.groups) { return; }
  stats[2u * g] = rm[g];
  stats[2u * g + 1u] = 1.0 / sqrt(rv[g] + u.eps);
}`;
}

/** The normalised value z of element `i` (flat, vectors) of group `g`: (x − mean)·invstd·γ + β. */
function zExpr(affine: boolean, xv: string, mean = 'stats[2u * g]', invstd = 'stats[2u * g + 1u]'): string {
  return affine ? `(${xv} - ${mean}) * (${invstd} * w[g]) + b[g]` : `(${xv} - ${mean}) * ${invstd}`;
}

/** g' = the upstream gradient `gy` through the activation (its mask taken on z, recomputed from xv). */
function actGradOf(act: Act, v: 1 | 4, affine: boolean, gy: string): string {
  return act === 'none' ? gy : actGrad(act, vecType(v), gy, `(${zExpr(affine, 'xv')})`);
}

/** The factor of dx: γ·invstd (invstd without affine). */
const dxScale = (affine: boolean) => (affine ? 'stats[2u * g + 1u] * w[g]' : 'stats[2u * g + 1u]');

/** dx with batch statistics, into `dst`, from the group's Σg' and Σg'·x̂ (`sg`, `sgx`), g' in gp, s = dxScale. */
const batchDx = (indent: string, dst: string, sg: string, sgx: string) =>
  `${indent}let xh = (xv - stats[2u * g]) * stats[2u * g + 1u];
${indent}${dst} = s * (gp - (${sg} + xh * ${sgx}) * u.inv_n);`;

/** apply: y = act(z), elementwise over V-vectors, grid1d launch. */
export function applyWgsl(
  header: string,
  main: string,
  v: 1 | 4,
  affine: boolean,
  act: Act,
  dtype: 'f32' | 'f16' = 'f32',
): string {
  const y = convert(actExpr(act, vecType(v), 'z'), vecType(v), vecType(v, dtype));
  return `${header}
${main}
  if (i >= u.n) { return; }
  let g = (i / u.inner) % u.groups;
  let z = ${zExpr(affine, widen(v, dtype, 'x[i]'))};
  y[i] = ${y};
}`;
}

/**
 * The reduction of grad_partial and grad_dx: per thread Σg' and Σg'·(x − mean) over the item's slice, g'
 * the upstream gradient through the activation; afterwards sh[t − lane] holds the item's two sums.
 */
function gradSumsWgsl(v: 1 | 4, tpg: number, affine: boolean, act: Act, xType: 'f32' | 'f16'): string {
  const T = vecType(v);
  const sum = (e: string) => (v === 4 ? `dot(${e}, vec4<f32>(1.0))` : e);
  const gp =
    act === 'none'
      ? '    let gp = gy[o];'
      : `    let z = ${zExpr(affine, 'xv')};
    let gp = ${actGrad(act, T, 'gy[o]', 'z')};`;
  return `  let g = min(grp, u.groups - 1u);
  let mean = stats[2u * g];
  var sg = ${T}(0.0);
  var sgx = ${T}(0.0);
  for (var j = start + lane; j < stop; j += ${tpg}u) {
    let o = goff(grp, j);
    let xv = ${widen(v, xType, 'x[o]')};
${gp}
    sg += gp;
    sgx += gp * (xv - mean);
  }
  sh[t] = vec2<f32>(${sum('sg')}, ${sum('sgx')});
${segmentTree(tpg, 'sh[t] + sh[t + k]')}`;
}

/**
 * grad_partial: per chunk, Σg' and Σg'·x̂ (x̂ = (x − mean)·invstd), g' the upstream gradient through the
 * activation. Output: part[2·item], part[2·item+1].
 */
export function gradPartialWgsl(
  header: string,
  v: 1 | 4,
  tpg: number,
  affine: boolean,
  act: Act,
  xType: 'f32' | 'f16' = 'f32',
): string {
  return `${reductionKernel(header, 'vec2<f32>', tpg)}
${gradSumsWgsl(v, tpg, affine, act, xType)}
  if (lane == 0u && live) {
    part[2u * item] = sh[t].x;
    part[2u * item + 1u] = sh[t].y * stats[2u * g + 1u];
  }
}`;
}

/**
 * grad_dx: the input gradient with batch statistics in one pass where one item reduces each group whole
 * (as stats_apply): the item's lanes form Σg' and Σg'·x̂ as grad_partial does, read them back from
 * workgroup memory (grad_final's sum of one partial is that partial; with `affine` they are dβ and dγ,
 * written to sum_g and sum_gx) and write dx = γ·invstd·(g' − (Σg' + x̂·Σg'x̂)/n) over the group,
 * norm_dx's expression. Bindings: x, gy, stats, (w, b with `affine`), dx, (sum_g, sum_gx with `affine`).
 * Uniforms: the reduction's, slope, inv_n.
 */
export function gradDxWgsl(
  header: string,
  v: 1 | 4,
  tpg: number,
  act: Act,
  affine = false,
  xType: 'f32' | 'f16' = 'f32',
): string {
  return `${reductionKernel(header, 'vec2<f32>', tpg)}
${gradSumsWgsl(v, tpg, affine, act, xType)}
  let sgs = sh[t - lane].x;
  let sgxs = sh[t - lane].y * stats[2u * g + 1u];
${
  affine
    ? `  if (lane == 0u && live) {
    sum_g[g] = sgs;
    sum_gx[g] = sgxs;
  }`
    : ''
}
  for (var j = start + lane; j < stop; j += ${tpg}u) {
    let o = goff(grp, j);
    let xv = ${widen(v, xType, 'x[o]')};
    let gp = ${actGradOf(act, v, affine, 'gy[o]')};
    let s = ${dxScale(affine)};
${batchDx('    ', 'dx[o]', 'sgs', 'sgxs')}
  }
}`;
}

/** grad_final: one thread per group sums its partials: sg[g] = Σg' (dβ), sgx[g] = Σg'·x̂ (dγ). */
export function gradFinalWgsl(header: string): string {
  return `${header}
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let g = gid.x + gid.y * nwg.x * 64u;
  if (g >= u.groups) { return; }
  var a = vec2<f32>(0.0);
  for (var s = 0u; s < u.splits; s++) {
    let p = 2u * (g * u.splits + s);
    a += vec2<f32>(part[p], part[p + 1u]);
  }
  sg[g] = a.x;
  sgx[g] = a.y;
}`;
}

/**
 * dx, elementwise. `batch`: statistics depend on x (BN train, IN):
 *   dx = γ·invstd·(g' − (Σg' + x̂·Σg'x̂)/n);  otherwise (BN eval): dx = γ·invstd·g'.
 */
export function dxWgsl(
  header: string,
  main: string,
  v: 1 | 4,
  batch: boolean,
  affine: boolean,
  act: Act,
  xType: 'f32' | 'f16' = 'f32',
): string {
  const body = batch ? batchDx('  ', 'dx[i]', 'sg[g]', 'sgx[g]') : `  dx[i] = s * gp;`;
  return `${header}
${main}
  if (i >= u.n) { return; }
  let g = (i / u.inner) % u.groups;
  let xv = ${widen(v, xType, 'x[i]')};
  let gp = ${actGradOf(act, v, affine, 'gy[i]')};
  let s = ${dxScale(affine)};
${body}
}`;
}
