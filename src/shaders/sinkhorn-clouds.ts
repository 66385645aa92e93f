/**
 * Batched Sinkhorn divergence for LARGE point clouds (RD++ `--ssot pairwise`): B independent problems
 * x_b [N, D] vs y_b [M, D] with N, M up to thousands (spec §4.2 semantics, geomloss tensorized backend).
 * The small-cloud kernel (src/shaders/sinkhorn.ts) keeps a whole problem in one workgroup; here the four
 * cost matrices are far larger than shared memory (N = M = 4096: 3 × 64 MiB per problem), so every
 * ε-step streams them from global memory and the design is about bytes per step.
 *
 * Storage: C_xy, C_xx, C_yy of a problem are stored as 64×64 TILES (each tile 16 KiB, contiguous,
 * row-major inside), because every consumer works on whole tiles and a tile can then be read with
 * perfectly coalesced vec4 loads in either orientation. C_yx = C_xyᵀ is not stored, and of the symmetric
 * C_xx and C_yy only the upper tile triangle (J ≥ I) is: per problem N·M + N²/2 + M²/2 entries instead of
 * the 2NM + N² + M² geomloss builds (half the memory and half the bytes read per step). Tile order per
 * problem: all xy tiles (I·TM + J), then the xx triangle, then the yy triangle (row-major upper triangle).
 * Padding rows/columns (N, M rounded up to 64) are never written and always masked with `select`.
 *
 * Kernels (one family, all shapes in uniforms):
 * 1. clouds_norms — ‖z‖² of every point (64 lanes per point, tree sum).
 * 2. clouds_cost — the cost tiles from the tiled GEMM core (src/shaders/matmul.ts): z = workgroup_id.z
 *    indexes (problem, matrix, tile-row I); a tile-row of xx/yy only spans columns ≥ 64·I, so the
 *    triangle costs half a square GEMM. Epilogue C = ((‖a‖² − 2 a·b) + ‖b‖²)·½, geomloss's own order.
 * 3. clouds_step — one ε-step's log-sum-exp partials. A workgroup owns one tile-row I of one matrix and a
 *    segment of W column tiles; per tile it reads the 16 KiB once and derives BOTH reductions from it:
 *      rows    z = h_col − C/ε  (f_ba from C_xy, f_aa / g_bb from the stored triangle),
 *      columns z = h_row − C/ε  (g_ab from C_xy: the column softmin replaces C_yx; and the lower half of
 *                                C_xx / C_yy: rows J over columns I, by symmetry).
 *    Rows are accumulated online across the segment in registers (each of 256 invocations owns 4 rows ×
 *    4 columns of a tile: running max m and Σ exp(z − m), rescaled only when the max grows), so the
 *    row direction needs no barrier per tile; columns need a per-tile reduction over 64 rows (max, then
 *    Σ exp, through shared memory: 3 barriers per tile). Why not store C_yx and do only row softmins
 *    (one dispatch per step, no partials)? That reads 2× the bytes (C_xy twice, both triangle halves),
 *    and the steps are memory-bound: 128 MiB per N = 4096 problem per step here versus 256 MiB.
 *    Partials (m, s) go to a buffer indexed [problem][vector][slot][entry], slot = the other tile index
 *    (or the row segment), so every entry of the four potential vectors receives a fixed set of slots.
 *    The segment width W (op side) trades partial traffic against parallelism: 8 tiles at N = 4096, down
 *    to 1 for small problems. Interior tiles take a branch without the padding `select`s (uniform).
 * 4. clouds_combine — one invocation per potential entry: max over its slots, Σ s·exp(m_s − m),
 *    f̃ = −ε (m + log Σ); then init (f = f̃), averaging (f = ½(f + f̃)) or the final extrapolation
 *    (F = f̃, and the row normalisers m, 1/Σ of the transport plans for the gradient). Updating in place is
 *    safe because the next step's partial kernel is a later dispatch; the only cross-entry read is the
 *    gauge re-centring of the cross potentials (below), which goes through a tiny ping-pong buffer.
 *    So one ε-step = 2 dispatches, ε and 1/ε come from a schedule buffer indexed by the `step` uniform.
 * 5. clouds_value — S_b = Σ α (F_ba − F_aa) + Σ β (G_ab − G_bb), tree sums, one workgroup per problem.
 * 6. clouds_grad — envelope gradient dZ_r = g_b w_r Σ_c W_rc z_c as the GEMM core with the plan entries
 *    computed in the A loader from the stored costs and the final potentials (never materialised):
 *    W_rc = +π^self_rc (c in the row's own cloud), −π^cross_rc (c in the other cloud),
 *    π_rc = exp(h_c − C_rc/ε − m_r) / Σ_r. Since every plan row sums to one, Σ_c W_rc = 0 and the
 *    α Σ π (x_i − ·) terms of the spec reduce to the products (within float32 rounding of the row sums).
 *    K runs as 64-column blocks × 4 BK-tiles: which stored tile, its orientation (C_yx and the lower
 *    triangles are read transposed) and the row's normaliser are fixed per (row, block) in the loader's
 *    outer hook, so an entry costs one load, one z and one exp against 64 FMAs. The exp is recomputed
 *    per 64-column tile of D (D/64 times); materialising W instead would cost K² floats per problem.
 * 7. clouds_range / clouds_diameter / clouds_schedule — geomloss's default diameter (norm of the per-
 *    coordinate max − min over all points of both batches) and, for `diameter: 'auto'`, the ε schedule
 *    built ON THE GPU (a synchronous op cannot read the diameter back): n = #{i : d ≥ thr_i} with host-
 *    computed thresholds that reproduce numpy's ceil((2 ln blur − 2 ln d)/(2 ln scaling)) exactly for
 *    float32 d, and ε_i = d²·r_i with r_i = exp(i·2 ln scaling) from the host in float64 (≈ 2 ulp from
 *    numpy's values). The host records a fixed number of steps (from a diameter bound); steps past the
 *    measured schedule are idle (both kernels return at once).
 *
 * Float32 notes. With a huge first ε (diameter 1e7 → 1e14) every z of a row is the same number and the
 * log-sum-exp must come out as exactly 0: the log-weights are −log(count) with the same `log` as the
 * combine, exp(0) is taken as exactly 1 (`ex`), and the partial sums are then exact integers through the
 * tile, thread and slot combinations (exp(m_s − m) = exp(0) = 1). The gauge re-centring of the small
 * kernel (f_ba[0] = g_ab[0] as of the previous step, an exact symmetry of the iteration) is kept: the
 * drift it removes would otherwise cost digits of the value and the plans at the final ε (without it the
 * Appendix A test misses its 1e-5 tolerance). WGSL rejects NaN constants, so the NaN that poisons the
 * values of an unusable 'auto' schedule is carried in the schedule buffer's header (L, poisoned, NaN).
 */
import { type GemmSpec, gemmShader } from './matmul.js';

/** Storage tile side (also the GEMM block tile: 64×64, BK 16). */
export const TILE = 64;

const NEG = '-3.0e38';

/** exp with exp(0) = 1 exactly (scalar and vec4), and the upper-triangle tile index. */
const HELPERS = `const NEG: f32 = ${NEG};
fn ex(d: f32) -> f32 { return select(exp(d), 1.0, d == 0.0); }
fn ex4(d: vec4<f32>) -> vec4<f32> { return select(exp(d), vec4<f32>(1.0), d == vec4<f32>(0.0)); }
fn tri(i: u32, j: u32, t: u32) -> u32 { return (i * (2u * t + 1u - i)) / 2u + (j - i); }`;

/**
 * Offsets of the four potential vectors inside one problem's block of 2·(NP + MP) entries:
 * v0 f_ba (x), v1 g_ab (y), v2 f_aa (x), v3 g_bb (y). Uniforms NP, MP.
 */
const VOFF = `fn voff(v: u32) -> u32 {
  if (v == 0u) { return 0u; }
  if (v == 1u) { return u.NP; }
  if (v == 2u) { return u.NP + u.MP; }
  return 2u * u.NP + u.MP;
}`;

/** Offsets (vec2 units) of the four vectors' partial blocks inside one problem. Uniforms po1..po3. */
const POFF = `fn poff(v: u32) -> u32 {
  if (v == 0u) { return 0u; }
  if (v == 1u) { return u.po1; }
  if (v == 2u) { return u.po2; }
  return u.po3;
}`;

/**
 * clouds_norms: inputs x, y; output sq [B, NP + MP]. Uniforms B, N, M, D, NP, KP.
 * 4 points per 256-invocation workgroup; dispatch grid1d(points · 64, 256).
 */
export function normsWGSL(): (h: string) => string {
  return (h) => `${h}
var<workgroup> red: array<f32, 256>;
@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) t: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let pt = (wid.x + wid.y * nwg.x) * 4u + t / 64u;
  let lane = t % 64u;
  let nx = u.B * u.N;
  let ok = pt < nx + u.B * u.M;
  var s = 0.0;
  if (ok) {
    if (pt < nx) {
      for (var d = lane; d < u.D; d += 64u) { let v = x[pt * u.D + d]; s += v * v; }
    } else {
      for (var d = lane; d < u.D; d += 64u) { let v = y[(pt - nx) * u.D + d]; s += v * v; }
    }
  }
  red[t] = s;
  workgroupBarrier();
  for (var k = 32u; k > 0u; k = k / 2u) {
    if (lane < k) { red[t] = red[t] + red[t + k]; }
    workgroupBarrier();
  }
  if (ok && lane == 0u) {
    if (pt < nx) { sq[(pt / u.N) * u.KP + pt % u.N] = red[t]; }
    else { let q = pt - nx; sq[(q / u.M) * u.KP + u.NP + q % u.M] = red[t]; }
  }
}`;
}

/**
 * clouds_cost (GEMM core): inputs x, y, sq; output cost [P, Q, 64, 64]. z = p·zper + r with
 * r < TN: C_xy tile-row r;  r < 2TN: C_xx tile-row r − TN;  else C_yy tile-row r − 2TN.
 * Uniforms: tiles_m, tiles_n, b0, N, M, D, NP, KP, TN, TM, Q, xxBase, yyBase, zper.
 */
export function costSpec(): GemmSpec {
  const ctx = `${HELPERS}
struct Ctx { m: u32, n: u32, k_inner: u32, t0: u32, t1: u32, p: u32, kind: u32, ti: u32, ay: bool,
             by: bool, arow: u32, brow: u32 }
fn make_ctx(z: u32) -> Ctx {
  let p = z / u.zper;
  let r = z % u.zper;
  var kind = 0u;
  var ti = r;
  if (r >= 2u * u.TN) { kind = 2u; ti = r - 2u * u.TN; } else if (r >= u.TN) { kind = 1u; ti = r - u.TN; }
  let ay = kind == 2u;
  let by = kind != 1u;
  let arow = ti * 64u;
  let brow = select(0u, arow, kind != 0u);
  let rows = select(u.N, u.M, ay);
  let cols = select(u.N, u.M, by);
  let kt = (u.D + BK - 1u) / BK;
  return Ctx(min(64u, rows - arow), cols - brow, kt, 0u, kt, p, kind, ti, ay, by, arow, brow);
}`;
  const operand = (side: 'a' | 'b') => (p: 'a' | 'b') =>
    `struct ${p}_row { off: u32, ok: bool }
fn ${p}_row_of(c: Ctx, r: u32) -> ${p}_row {
  let isy = c.${side}y;
  let cnt = select(u.N, u.M, isy);
  return ${p}_row(((u.b0 + c.p) * cnt + c.${side}row + r) * u.D, r < c.${side === 'a' ? 'm' : 'n'});
}
struct ${p}_out { off: u32 }
fn ${p}_outer(c: Ctx, r: ${p}_row, ko: u32) -> ${p}_out { return ${p}_out(r.off); }
struct ${p}_k { k: u32, ok: bool }
fn ${p}_k_of(c: Ctx, ko: u32, ki: u32, kk: u32) -> ${p}_k {
  let k = ki * BK + kk;
  return ${p}_k(k, k < u.D);
}
fn ${p}_load(c: Ctx, r: ${p}_row, o: ${p}_out, k: ${p}_k) -> f32 {
  var v = 0.0;
  if (r.ok && k.ok) {
    if (c.${side}y) { v = y[o.off + k.k]; } else { v = x[o.off + k.k]; }
  }
  return v;
}`;
  const store = `fn store_c(c: Ctx, m: u32, n: u32, v: f32) {
  let b = u.b0 + c.p;
  let i = c.arow + m;
  let j = c.brow + n;
  let sa = sq[b * u.KP + select(0u, u.NP, c.ay) + i];
  let sb = sq[b * u.KP + select(0u, u.NP, c.by) + j];
  let cv = ((sa - 2.0 * v) + sb) * 0.5;
  let tj = j / 64u;
  var tile = c.ti * u.TM + tj;
  if (c.kind == 1u) { tile = u.xxBase + tri(c.ti, tj, u.TN); }
  if (c.kind == 2u) { tile = u.yyBase + tri(c.ti, tj, u.TM); }
  cost[(c.p * u.Q + tile) * 4096u + m * 64u + j % 64u] = cv;
}`;
  return {
    tile: { bm: 64, bn: 64, bk: 16 },
    ctx,
    a: { mode: 'k', wgsl: operand('a') },
    b: { mode: 'k', wgsl: operand('b') },
    store,
    fast: 'n',
  };
}

export function costWGSL(): (h: string) => string {
  return gemmShader(costSpec());
}

/**
 * clouds_step: inputs cost (vec4), pot, sched (vec4), tasks (u32); output part (vec2).
 * Uniforms: step, b0, ntasks, N, M, NP, MP, TN, TM, W, Q, xxBase, yyBase, PS, po1, po2, po3, pstride.
 * Dispatch [min(ntasks, 65535), ⌈ntasks/65535⌉, P]. Task word: kind | I << 2 | segment << 17.
 */
export function stepWGSL(): (h: string) => string {
  const ks = [0, 1, 2, 3];
  const comp = ['x', 'y', 'z', 'w'];
  /**
   * One tile's work: the rows' online update and, off the triangles' diagonal, the columns' reduction.
   * `masked`: the tile has padding rows or columns (the last tile-row / tile-column): invalid entries are
   * excluded with `select`; full tiles (all but the edges) skip those selects.
   */
  const body = (masked: boolean) => {
    const zr = (k: number) => (masked ? `select(vec4<f32>(NEG), hc - c${k} * ie, cv)` : `hc - c${k} * ie`);
    const zc = (k: number) =>
      masked
        ? `select(vec4<f32>(NEG), vec4<f32>(hr.${comp[k]}) - c${k} * ie, vec4<bool>(rv.${comp[k]}))`
        : `vec4<f32>(hr.${comp[k]}) - c${k} * ie`;
    const ec = (k: number) =>
      masked ? `select(vec4<f32>(0.0), ex4(z${k} - cm), vec4<bool>(rv.${comp[k]}))` : `ex4(z${k} - cm)`;
    return `${ks.map((k) => `      a${k} = row_upd(a${k}, ${zr(k)}, ${masked ? 'cv' : 'vec4<bool>(true)'});`).join('\n')}
      if (kind == 0u || J != I) {
        // column reductions of this tile: z = h_row − C/ε over its 64 rows
${ks.map((k) => `        let z${k} = ${zc(k)};`).join('\n')}
        let lm = max(max(z0, z1), max(z2, z3));
${ks.map((j) => `        sA[rr * 64u + 4u * q + ${j}u] = lm.${comp[j]};`).join('\n')}
        workgroupBarrier();
        if (t < 64u) {
          var mm = NEG;
          for (var r2 = 0u; r2 < 16u; r2++) { mm = max(mm, sA[r2 * 64u + t]); }
          cmx[t] = mm;
        }
        workgroupBarrier();
        let cm = vec4<f32>(cmx[4u * q], cmx[4u * q + 1u], cmx[4u * q + 2u], cmx[4u * q + 3u]);
        let ls = ${ks.map(ec).join('\n          + ')};
${ks.map((j) => `        sB[rr * 64u + 4u * q + ${j}u] = ls.${comp[j]};`).join('\n')}
        workgroupBarrier();
        if (t < 64u) {
          var ss = 0.0;
          for (var r2 = 0u; r2 < 16u; r2++) { ss += sB[r2 * 64u + t]; }
          part[pbase + poff(vc) + I * Lc + 64u * J + t] = vec2<f32>(cmx[t], ss);
        }
      }`;
  };
  return (h) => `${h}
${HELPERS}
${VOFF}
${POFF}
var<workgroup> wTask: u32;
var<workgroup> wMode: u32;
var<workgroup> sA: array<f32, 1024>;
var<workgroup> sB: array<f32, 1024>;
var<workgroup> cmx: array<f32, 64>;

/**
 * Online row update with 4 more columns: (m, s) → (max, rescaled Σ exp(z − m)); masked entries are
 * NEG in z and excluded from the sum.
 */
fn row_upd(ms: vec2<f32>, z: vec4<f32>, ok: vec4<bool>) -> vec2<f32> {
  let mx = max(max(z.x, z.y), max(z.z, z.w));
  var m = ms.x;
  var s = ms.y;
  if (mx > m) {
    s = s * ex(m - mx);
    m = mx;
  }
  let e = select(vec4<f32>(0.0), ex4(z - vec4<f32>(m)), ok);
  return vec2<f32>(m, s + ((e.x + e.y) + (e.z + e.w)));
}

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) t: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let ti = wid.x + wid.y * nwg.x;
  if (ti >= u.ntasks) { return; }
  let sc = sched[1u + u.step];
  if (t == 0u) {
    wTask = tasks[ti];
    wMode = u32(sc.z);
  }
  let task = workgroupUniformLoad(&wTask);
  let mode = workgroupUniformLoad(&wMode);
  if (mode > 2u) { return; }
  let ie = sc.y;
  let p = wid.z;
  let b = u.b0 + p;
  let kind = task & 3u;
  let I = (task >> 2u) & 0x7fffu;
  let seg = task >> 17u;
  let lwx = -log(f32(u.N));
  let lwy = -log(f32(u.M));
  // defaults: C_xy (rows x / f_ba, columns y / g_ab)
  var T = u.TM;
  var j0 = seg * u.W;
  var nrows = u.N;
  var ncols = u.M;
  var vr = 0u;
  var vc = 1u;
  var lwr = lwx;
  var lwc = lwy;
  var rslot = seg;
  var Lr = u.NP;
  var Lc = u.MP;
  var tbase = 0u;
  if (kind == 1u) {
    T = u.TN; j0 = I + seg * u.W; ncols = u.N; vr = 2u; vc = 2u; lwc = lwx; rslot = I + seg;
    Lc = u.NP; tbase = u.xxBase;
  } else if (kind == 2u) {
    T = u.TM; j0 = I + seg * u.W; nrows = u.M; vr = 3u; vc = 3u; lwr = lwy; rslot = I + seg;
    Lr = u.MP; tbase = u.yyBase;
  }
  let j1 = min(T, j0 + u.W);
  let q = t % 16u;
  let rr = t / 16u;
  let prow = b * u.PS + voff(vr);
  let pcol = b * u.PS + voff(vc);
  let rowi = vec4<u32>(64u * I + rr) + vec4<u32>(0u, 16u, 32u, 48u);
  let rv = rowi < vec4<u32>(nrows);
  let fullRows = 64u * I + 64u <= nrows;
  let hr = vec4<f32>(lwr) + vec4<f32>(${ks.map((k) => `pot[prow + rowi.${comp[k]}]`).join(', ')}) * ie;
${ks.map((k) => `  var a${k} = vec2<f32>(NEG, 0.0);`).join('\n')}
  let pbase = p * u.pstride;
  for (var J = j0; J < j1; J++) {
    var tile = I * u.TM + J;
    if (kind != 0u) { tile = tbase + tri(I, J, T); }
    let cb = (p * u.Q + tile) * 1024u + t;
${ks.map((k) => `    let c${k} = cost[cb + ${256 * k}u];`).join('\n')}
    let colj = vec4<u32>(64u * J + 4u * q) + vec4<u32>(0u, 1u, 2u, 3u);
    let cv = colj < vec4<u32>(ncols);
    let hc = vec4<f32>(lwc) + vec4<f32>(${ks.map((k) => `pot[pcol + colj.${comp[k]}]`).join(', ')}) * ie;
    if (fullRows && 64u * J + 64u <= ncols) {
${body(false)}
    } else {
${body(true)}
    }
  }
  // the rows' partials over this segment: combine the 16 invocations of each row
  workgroupBarrier();
${ks.map((k) => `  sA[(rr + ${16 * k}u) * 16u + q] = a${k}.x;\n  sB[(rr + ${16 * k}u) * 16u + q] = a${k}.y;`).join('\n')}
  workgroupBarrier();
  if (t < 64u) {
    var mm = NEG;
    for (var q2 = 0u; q2 < 16u; q2++) { mm = max(mm, sA[t * 16u + q2]); }
    var ss = 0.0;
    for (var q2 = 0u; q2 < 16u; q2++) { ss += sB[t * 16u + q2] * ex(sA[t * 16u + q2] - mm); }
    part[pbase + poff(vr) + rslot * Lr + 64u * I + t] = vec2<f32>(mm, ss);
  }
}`;
}

/**
 * clouds_combine: inputs part (vec2), sched (vec4); outputs pot, gauge [B, 2, 2], fin, mi (vec2).
 * Uniforms: step, b0, total, N, M, NP, MP, TN, TM, W, S0, PS, po1, po2, po3, pstride.
 * One invocation per entry of the chunk's 4 potential vectors; dispatch grid1d(total).
 */
export function combineWGSL(): (h: string) => string {
  return (h) => `${h}
${HELPERS}
${VOFF}
${POFF}
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= u.total) { return; }
  let per = u.PS;
  let p = i / per;
  let k = i % per;
  var v = 0u;
  var e = k;
  if (k >= 2u * u.NP + u.MP) { v = 3u; e = k - (2u * u.NP + u.MP); }
  else if (k >= u.NP + u.MP) { v = 2u; e = k - (u.NP + u.MP); }
  else if (k >= u.NP) { v = 1u; e = k - u.NP; }
  let isy = v == 1u || v == 3u;
  if (e >= select(u.N, u.M, isy)) { return; }
  let sc = sched[1u + u.step];
  let mode = u32(sc.z);
  if (mode > 2u) { return; }
  var S = u.S0;
  if (v == 1u) { S = u.TN; }
  if (v >= 2u) {
    let T = select(u.TN, u.TM, isy);
    let I = e / 64u;
    S = I + (T - I + u.W - 1u) / u.W;
  }
  let L = select(u.NP, u.MP, isy);
  let base = p * u.pstride + poff(v) + e;
  var m = NEG;
  for (var s = 0u; s < S; s++) { m = max(m, part[base + s * L].x); }
  var sum = 0.0;
  for (var s = 0u; s < S; s++) {
    let pr = part[base + s * L];
    sum += pr.y * ex(pr.x - m);
  }
  let f = -sc.x * (m + log(sum));
  let b = u.b0 + p;
  let pi = b * per + k;
  if (mode == 2u) {
    fin[pi] = f;
    mi[pi] = vec2<f32>(m, 1.0 / sum);
    return;
  }
  var pt = f;
  if (mode == 1u) { pt = 0.5 * (pot[pi] + f); }
  if (v < 2u) {
    // gauge: (f_ba − c, g_ab + c) is the same solution; keep f_ba[0] = g_ab[0] (as of the last step)
    let par = u.step % 2u;
    let gp = b * 4u + (1u - par) * 2u;
    let c = 0.5 * (gauge[gp] - gauge[gp + 1u]);
    pt = select(pt + c, pt - c, v == 0u);
    if (e == 0u) { gauge[b * 4u + par * 2u + v] = pt; }
  }
  pot[pi] = pt;
}`;
}

/**
 * clouds_value: inputs fin, sched (vec4); output value [B]. Uniforms b0, N, M, NP, MP, PS.
 * One 256-invocation workgroup per problem of the chunk.
 */
export function valueWGSL(): (h: string) => string {
  return (h) => `${h}
var<workgroup> rx: array<f32, 256>;
var<workgroup> ry: array<f32, 256>;
@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) t: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  let b = u.b0 + wid.x;
  let o = b * u.PS;
  let wa = 1.0 / f32(u.N);
  let wb = 1.0 / f32(u.M);
  var sx = 0.0;
  for (var i = t; i < u.N; i += 256u) { sx += wa * (fin[o + i] - fin[o + u.NP + u.MP + i]); }
  var sy = 0.0;
  for (var j = t; j < u.M; j += 256u) { sy += wb * (fin[o + u.NP + j] - fin[o + 2u * u.NP + u.MP + j]); }
  rx[t] = sx;
  ry[t] = sy;
  workgroupBarrier();
  for (var k = 128u; k > 0u; k = k / 2u) {
    if (t < k) {
      rx[t] = rx[t] + rx[t + k];
      ry[t] = ry[t] + ry[t + k];
    }
    workgroupBarrier();
  }
  if (t == 0u) {
    // a schedule the GPU could not build (diameter not finite or above the bound) poisons the value
    value[b] = select(rx[0] + ry[0], sched[0].z, sched[0].y > 0.5);
  }
}`;
}

/**
 * clouds_grad (GEMM core, backward): inputs x, y, cost, pot, mi (vec2), sched (vec4), g; output out
 * (dx [B, N, D] for ry = 0, dy [B, M, D] for ry = 1). Output rows r are the points of one cloud, K runs
 * over the joint padded index c < NP + MP (x columns, then y columns), n over D.
 * Uniforms: tiles_m, tiles_n, b0, ry, N, M, D, NP, MP, TN, TM, Q, xxBase, yyBase, PS, ie.
 */
export function gradSpec(): GemmSpec {
  // K runs as (64-column block ko) × (4 BK-tiles ki): everything that depends only on the row and the
  // block (self or cross plan, which stored tile, its orientation, the row's normaliser) is decided once
  // per block in a_outer, so a plan entry costs one load, one FMA-shaped z and one exp.
  const ctx = `${HELPERS}
${VOFF}
struct Ctx { m: u32, n: u32, k_inner: u32, t0: u32, t1: u32, p: u32 }
fn make_ctx(z: u32) -> Ctx {
  let kt = (u.NP + u.MP) / BK;
  return Ctx(select(u.N, u.M, u.ry == 1u), u.D, 64u / BK, 0u, kt, z);
}`;
  const a = (p: 'a' | 'b') => `struct ${p}_row { ok: bool, tr: u32, ir: u32, ms: vec2<f32>, mc: vec2<f32> }
fn ${p}_row_of(c: Ctx, r: u32) -> ${p}_row {
  let rc = min(r, c.m - 1u);
  let o = (u.b0 + c.p) * u.PS + rc;
  let ms = mi[o + voff(select(2u, 3u, u.ry == 1u))];
  let mc = mi[o + voff(select(0u, 1u, u.ry == 1u))];
  return ${p}_row(r < c.m, rc / 64u, rc % 64u, ms, mc);
}
struct ${p}_out { off: u32, stride: u32, self_: bool, mn: vec2<f32> }
fn ${p}_outer(c: Ctx, r: ${p}_row, ko: u32) -> ${p}_out {
  // column block ko: x columns for ko < TN, y columns after
  let ry = u.ry == 1u;
  let cy = ko >= u.TN;
  let tc = select(ko, ko - u.TN, cy);
  let self_ = cy == ry;
  var tile = 0u;
  var tr = false;
  if (self_) {
    let T = select(u.TN, u.TM, ry);
    let base = select(u.xxBase, u.yyBase, ry);
    tr = r.tr > tc;
    tile = base + select(tri(r.tr, tc, T), tri(tc, r.tr, T), tr);
  } else if (!ry) {
    tile = r.tr * u.TM + tc;
  } else {
    tile = tc * u.TM + r.tr;
    tr = true;
  }
  let off = (c.p * u.Q + tile) * 4096u + select(r.ir * 64u, r.ir, tr);
  return ${p}_out(off, select(1u, 64u, tr), self_, select(r.mc, r.ms, self_));
}
struct ${p}_k { ok: bool, ic: u32, h: f32 }
fn ${p}_k_of(c: Ctx, ko: u32, ki: u32, kk: u32) -> ${p}_k {
  let k = ko * 64u + ki * BK + kk;
  let isy = k >= u.NP;
  let lc = select(k, k - u.NP, isy);
  let lw = -log(f32(select(u.N, u.M, isy)));
  // the column's potential as its plan sees it: f_aa / g_bb for the self plan, f_ba / g_ab for the cross
  let v = select(select(0u, 1u, isy), select(2u, 3u, isy), isy == (u.ry == 1u));
  let h = lw + pot[(u.b0 + c.p) * u.PS + voff(v) + lc] * u.ie;
  return ${p}_k(lc < select(u.N, u.M, isy), lc % 64u, h);
}
fn ${p}_load(c: Ctx, r: ${p}_row, o: ${p}_out, k: ${p}_k) -> f32 {
  if (!(r.ok && k.ok)) { return 0.0; }
  let w = ex((k.h - cost[o.off + k.ic * o.stride] * u.ie) - o.mn.x) * o.mn.y;
  return select(-w, w, o.self_);
}`;
  const b = (p: 'a' | 'b') => `struct ${p}_row { d: u32, ok: bool }
fn ${p}_row_of(c: Ctx, r: u32) -> ${p}_row { return ${p}_row(r, r < u.D); }
struct ${p}_out { z: u32 }
fn ${p}_outer(c: Ctx, r: ${p}_row, ko: u32) -> ${p}_out { return ${p}_out(0u); }
struct ${p}_k { off: u32, isy: bool, ok: bool }
fn ${p}_k_of(c: Ctx, ko: u32, ki: u32, kk: u32) -> ${p}_k {
  let k = ko * 64u + ki * BK + kk;
  let isy = k >= u.NP;
  let lc = select(k, k - u.NP, isy);
  let cnt = select(u.N, u.M, isy);
  return ${p}_k(((u.b0 + c.p) * cnt + lc) * u.D, isy, lc < cnt);
}
fn ${p}_load(c: Ctx, r: ${p}_row, o: ${p}_out, k: ${p}_k) -> f32 {
  var v = 0.0;
  if (r.ok && k.ok) {
    if (k.isy) { v = y[k.off + r.d]; } else { v = x[k.off + r.d]; }
  }
  return v;
}`;
  const store = `fn store_c(c: Ctx, m: u32, n: u32, v: f32) {
  let b = u.b0 + c.p;
  let w = g[b] / f32(c.m);
  out[(b * c.m + m) * u.D + n] = select(w * v, sched[0].z, sched[0].y > 0.5);
}`;
  return {
    tile: { bm: 64, bn: 64, bk: 16 },
    ctx,
    a: { mode: 'k', wgsl: a },
    b: { mode: 'row', wgsl: b },
    store,
    fast: 'n',
  };
}

export function gradWGSL(): (h: string) => string {
  return gemmShader(gradSpec());
}

/**
 * clouds_range: inputs x, y; output part (vec2: min, max) [R, D]. Uniforms rows (= B·N + B·M), nx (= B·N),
 * D, per (rows per chunk). Dispatch [⌈D/64⌉, R]; 64 coordinates × 4 row lanes per workgroup.
 */
export function rangeWGSL(): (h: string) => string {
  return (h) => `${h}
var<workgroup> smn: array<f32, 256>;
var<workgroup> smx: array<f32, 256>;
@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) t: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  let d = wid.x * 64u + t % 64u;
  let r0 = wid.y * u.per;
  let r1 = min(u.rows, r0 + u.per);
  var mn = 3.0e38;
  var mx = -3.0e38;
  if (d < u.D) {
    for (var r = r0 + t / 64u; r < r1; r += 4u) {
      var v = 0.0;
      if (r < u.nx) { v = x[r * u.D + d]; } else { v = y[(r - u.nx) * u.D + d]; }
      mn = min(mn, v);
      mx = max(mx, v);
    }
  }
  smn[t] = mn;
  smx[t] = mx;
  workgroupBarrier();
  if (t < 64u && d < u.D) {
    let a = min(min(smn[t], smn[t + 64u]), min(smn[t + 128u], smn[t + 192u]));
    let c = max(max(smx[t], smx[t + 64u]), max(smx[t + 128u], smx[t + 192u]));
    part[wid.y * u.D + d] = vec2<f32>(a, c);
  }
}`;
}

/** clouds_diameter: input part (vec2) [R, D]; output diam [1]. Uniforms R, D. One workgroup. */
export function diameterWGSL(): (h: string) => string {
  return (h) => `${h}
var<workgroup> red: array<f32, 256>;
@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) t: u32) {
  var s = 0.0;
  for (var d = t; d < u.D; d += 256u) {
    var mn = 3.0e38;
    var mx = -3.0e38;
    for (var r = 0u; r < u.R; r++) {
      let v = part[r * u.D + d];
      mn = min(mn, v.x);
      mx = max(mx, v.y);
    }
    let w = mx - mn;
    s += w * w;
  }
  red[t] = s;
  workgroupBarrier();
  for (var k = 128u; k > 0u; k = k / 2u) {
    if (t < k) { red[t] = red[t] + red[t + k]; }
    workgroupBarrier();
  }
  if (t == 0u) { diam[0] = sqrt(red[0]); }
}`;
}

/**
 * clouds_schedule: inputs diam [1], tab (vec4: r_i, 1/r_i, thr_i, 0) [ncap + 1]; output sched (vec4)
 * [1 + steps]: entry 0 = (L, poisoned, NaN (from tab[0].w: WGSL has no NaN literal), 0), entry 1 + s = (ε, 1/ε, mode) of host step s (mode 0 init,
 * 1 averaging, 2 final extrapolation, 3 idle). Uniforms ncap, steps (= ncap + 4), eb (= blur²),
 * ieb (= 1/blur²). One workgroup.
 */
export function scheduleWGSL(): (h: string) => string {
  return (h) => `${h}
var<workgroup> cnt: array<u32, 256>;
@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) t: u32) {
  let d = diam[0];
  var c = 0u;
  for (var i = t; i <= u.ncap; i += 256u) { if (tab[i].z <= d) { c += 1u; } }
  cnt[t] = c;
  workgroupBarrier();
  for (var k = 128u; k > 0u; k = k / 2u) {
    if (t < k) { cnt[t] = cnt[t] + cnt[t + k]; }
    workgroupBarrier();
  }
  let n = cnt[0];
  let d2 = d * d;
  let id2 = 1.0 / d2;
  let finite = (bitcast<u32>(d2) & 0x7f800000u) != 0x7f800000u;
  let poison = !(finite && d > 0.0) || n > u.ncap;
  let L = n + 2u;
  if (t == 0u) { sched[0] = vec4<f32>(f32(L), select(0.0, 1.0, poison), tab[0].w, 0.0); }
  for (var s = t; s < u.steps; s += 256u) {
    var e = vec4<f32>(0.0, 0.0, 3.0, 0.0);
    if (!poison && s <= L + 1u) {
      // ε index of step s: 0 (init), s − 1 (averaging), L − 1 (final)
      var k = 0u;
      var mode = 0.0;
      if (s >= 1u && s <= L) { k = s - 1u; mode = 1.0; }
      if (s == L + 1u) { k = L - 1u; mode = 2.0; }
      var ep = vec2<f32>(d2, id2);
      if (k >= 1u && k <= n) { let r = tab[k - 1u]; ep = vec2<f32>(d2 * r.x, id2 * r.y); }
      if (k == n + 1u) { ep = vec2<f32>(u.eb, u.ieb); }
      e = vec4<f32>(ep, mode, 0.0);
    }
    sched[1u + s] = e;
  }
}`;
}
