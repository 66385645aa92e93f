/**
 * The debiased Sinkhorn divergence of geomloss (spec §4.2, Appendix A) for point clouds x [B, N, D] and
 * y [B, M, D] with uniform weights, in four kernels per call (three forward, one backward).
 *
 * Notation: Z_b = [x_b; y_b] is the joint cloud of K = N + M points (rows 0..N−1 are x, N..K−1 are y).
 * Every quantity of the algorithm is then one K×K matrix or one K-vector per problem:
 *   - C[r][c] = ½((‖z_r‖² − 2 z_r·z_c) + ‖z_c‖²): its blocks are C_xx, C_xy, C_yx, C_yy, each evaluated in
 *     geomloss's own order of operations (D_xx − 2 D_xy + D_yy, then /2);
 *   - two potential vectors: "cross" (f_ba on x rows, g_ab on y rows) and "self" (f_aa on x rows, g_bb on
 *     y rows). Row r's cross update is a softmin over the *other* cloud's columns, its self update a
 *     softmin over its *own* cloud's columns, so the four softmins are 2K identical row tasks.
 *
 * 1. gram_partial — the heavy part (K ≤ 32 in RD++, D up to 2^20): Z Zᵀ over one chunk of D per workgroup.
 *    The workgroup stages Kc×TD tiles of Z in shared memory (row stride TD+1: conflict-free); each
 *    invocation accumulates a 4×4 block (i-block ≤ j-block: the upper triangle only) over a slice of the
 *    tile's columns (S slices × P block pairs ≤ 256 invocations; with more pairs than invocations each
 *    owns PPT pairs), 8 shared loads per 16 FMAs; the slices meet in shared memory and the chunk writes
 *    its 16·P partial sums.
 * 2. gram_reduce — one 64-invocation workgroup per (entry, problem) adds the chunks' partials (strided
 *    sums, then a tree: pairwise-grade float32 accuracy) and writes the symmetric Gram matrix G [B, K, K].
 * 3. sinkhorn_loop — ONE workgroup per problem runs the whole ε schedule (the ~375 values come in a buffer
 *    of (ε, 1/ε), computed on the CPU in float64 like numpy's arange): it forms C from G (in shared memory
 *    when it fits, else in a global scratch buffer), and invocation t < 2K owns row task t — its potential
 *    lives in a register; the vectors h = log w + potential/ε that the other rows' softmins read are double
 *    buffered in shared memory, so each ε-step is exactly one barrier:
 *        f̃_r = −ε (m + log Σ_c exp(z_c − m)),  z_c = h_c − C[r][c]/ε,  m = max_c z_c   (log-sum-exp)
 *        init: potential = f̃ (at ε_0, h = log w);   each ε: potential = ½(potential + f̃);
 *    then the final extrapolation at the last ε (no averaging), the value
 *        S = Σ_{i<N} α (F_ba,i − F_aa,i) + Σ_{j≥N} β (G_ab,j − G_bb,j),
 *    and the transport plans' row softmaxes π folded into one signed weight matrix A (K×K) such that the
 *    envelope-theorem gradient (spec §4.2) is ∂S/∂z_r = Σ_c A[r][c] z_c:
 *        A[r][c] = −w_r π^cross_rc (c in the other cloud),   +w_r π^self_rc (c ≠ r in the own cloud),
 *        A[r][r] = w_r (Σ_c π^cross_rc − Σ_{c≠r} π^self_rc),   w_r = α = 1/N (x rows) or β = 1/M (y rows).
 *    Float32 notes (do not "fix"): the first steps run at ε ≈ 1e14 where C/ε vanishes below the rounding
 *    of h, every z_c is the same number and the log-sum-exp is exactly log w + log(count) = 0; for that to
 *    hold on every GPU the log-weights are −log(count) computed in the kernel with the same `log` as the
 *    log-sum-exp (geomloss's log(fl(1/N)) is off by an ulp for some N, e.g. 7, and would inject ~1e7 into
 *    the potentials), and exp(0) is taken as exactly 1. Later, while C/ε is still barely resolved, the
 *    rounding of the log-sum-exps moves the cross potentials along the gauge direction (f_ba − c, g_ab + c),
 *    an exact symmetry of the iteration that the value and the plans ignore; but |c| became ~30 with
 *    lavapipe's exp (PyTorch's run: ~2), and at ε = 0.0025 h then carries |f|/ε ~ 1e4, whose rounding cost
 *    the plans three digits (5× PyTorch's own float32 error on sinkhorn_batched). So every step re-centres
 *    the gauge (f_ba[0] = g_ab[0], from the previous step's values kept in shared memory).
 * 4. sinkhorn_grad — dZ = g_b · A Z over D: a workgroup owns 32 rows × 64 columns, stages 32×64 tiles
 *    of Z and 32×32 tiles of A in shared memory, 4×4 outputs per invocation, and writes dx and dy.
 */

/** Invocations per workgroup of gram_partial and sinkhorn_loop. */
const WG = 256;

export interface GramConfig {
  /** 4×4 blocks per side (the kernel's capacity is Kc = 4·nb points). */
  nb: number;
  /** Columns of D per shared tile. */
  td: number;
  /** Block pairs (upper triangle incl. diagonal). */
  pairs: number;
  /** Column slices (invocations per pair). */
  slices: number;
  /** Pairs per invocation (1 unless pairs > 256). */
  ppt: number;
  /** Shared memory floats. */
  shared: number;
}

const NB_BUCKETS = [1, 2, 4, 8, 12, 16, 24, 32];

/** The largest joint cloud (N + M points) the kernels support. */
export const MAX_POINTS = 4 * NB_BUCKETS[NB_BUCKETS.length - 1]!;

/** Kernel configuration for a joint cloud of k points (buckets keep the number of pipelines small). */
export function gramConfig(k: number): GramConfig {
  const need = Math.ceil(k / 4);
  const nb = NB_BUCKETS.find((b) => b >= need);
  if (nb === undefined) throw new Error(`gramConfig: ${k} points exceed ${MAX_POINTS}`);
  const kc = 4 * nb;
  const td = kc <= 16 ? 128 : kc <= 32 ? 64 : kc <= 64 ? 32 : 16;
  const pairs = (nb * (nb + 1)) / 2;
  const slices = pairs <= WG ? Math.min(64, Math.floor(WG / pairs)) : 1;
  const ppt = pairs <= WG ? 1 : Math.ceil(pairs / WG);
  const shared = Math.max(kc * (td + 1), slices > 1 ? slices * pairs * 16 : 0);
  return { nb, td, pairs, slices, ppt, shared };
}

/** Row-major upper-triangle block pair p → (ib, jb), ib ≤ jb < NB. */
const PAIR_OF = `fn pair_of(p: u32) -> vec2<u32> {
  var ib = 0u;
  var rem = p;
  loop {
    let n = NB - ib;
    if (rem < n) { break; }
    rem -= n;
    ib += 1u;
  }
  return vec2<u32>(ib, ib + rem);
}`;

/** The joint cloud's value z_r[d] (x rows first, then y). */
const ZVAL = `fn zval(b: u32, r: u32, d: u32) -> f32 {
  if (r < u.N) { return x[(b * u.N + r) * u.D + d]; }
  return y[(b * u.M + (r - u.N)) * u.D + d];
}`;

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/**
 * Pass 1: inputs x, y; outputs part [B, chunks, 16·pairs]. Uniforms: N, M, K, D, chunkLen, chunks.
 * Dispatch [chunks, B].
 */
export function gramPartialWGSL(cfg: GramConfig): (h: string) => string {
  const { nb, td, pairs, slices, ppt, shared } = cfg;
  const qs = range(ppt);
  const ab = range(4).flatMap((a) => range(4).map((b) => [a, b] as const));
  const decl = qs
    .map(
      (q) => `  let p${q} = ${slices > 1 ? 't % NP' : `t + ${q * WG}u`};
  let on${q} = ${slices > 1 ? 't / NP < S' : `p${q} < NP`};
  let pr${q} = pair_of(min(p${q}, NP - 1u));
  let i${q} = pr${q}.x * 4u * STR;
  let j${q} = pr${q}.y * 4u * STR;
${ab.map(([a, b]) => `  var acc${q}_${a}${b} = 0.0;`).join('\n')}`,
    )
    .join('\n');
  const body = qs
    .map(
      (q) => `        {
${range(4)
  .map((a) => `          let a${a} = sh[i${q} + ${a}u * STR + c];`)
  .join('\n')}
${range(4)
  .map((b) => `          let b${b} = sh[j${q} + ${b}u * STR + c];`)
  .join('\n')}
${ab.map(([a, b]) => `          acc${q}_${a}${b} += a${a} * b${b};`).join('\n')}
        }`,
    )
    .join('\n');
  const finish =
    slices > 1
      ? `  if (on0) {
    let o = (t / NP) * E + p0 * 16u;
${ab.map(([a, b], e) => `    sh[o + ${e}u] = acc0_${a}${b};`).join('\n')}
  }
  workgroupBarrier();
  for (var o = t; o < E; o += WG) {
    var s = 0.0;
    for (var q = 0u; q < S; q++) { s += sh[q * E + o]; }
    part[pbase + o] = s;
  }`
      : qs
          .map(
            (q) => `  if (on${q}) {
${ab.map(([a, b], e) => `    part[pbase + p${q} * 16u + ${e}u] = acc${q}_${a}${b};`).join('\n')}
  }`,
          )
          .join('\n');
  return (h) => `${h}
const WG: u32 = ${WG}u;
const NB: u32 = ${nb}u;
const KC: u32 = ${4 * nb}u;
const TD: u32 = ${td}u;
const STR: u32 = ${td + 1}u;
const NP: u32 = ${pairs}u;
const S: u32 = ${slices}u;
const E: u32 = ${16 * pairs}u;
var<workgroup> sh: array<f32, ${shared}>;
${PAIR_OF}
${ZVAL}
@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_index) t: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  let chunk = wid.x;
  let b = wid.y;
  let d0 = chunk * u.chunkLen;
  let d1 = min(u.D, d0 + u.chunkLen);
  let col0 = ${slices > 1 ? 't / NP' : '0u'};
${decl}
  for (var dt = d0; dt < d1; dt += TD) {
    for (var e = t; e < KC * TD; e += WG) {
      let r = e / TD;
      let c = e % TD;
      var v = 0.0;
      if (r < u.K && dt + c < d1) { v = zval(b, r, dt + c); }
      sh[r * STR + c] = v;
    }
    workgroupBarrier();
    if (${qs.map((q) => `on${q}`).join(' || ')}) {
      for (var c = col0; c < TD; c += S) {
${body}
      }
    }
    workgroupBarrier();
  }
  let pbase = (b * u.chunks + chunk) * E;
${finish}
}`;
}

/**
 * Pass 2: inputs part; outputs G [B, K, K]. Uniforms: K, chunks. Dispatch [16·pairs, B], 64 invocations.
 */
export function gramReduceWGSL(cfg: GramConfig): (h: string) => string {
  return (h) => `${h}
const NB: u32 = ${cfg.nb}u;
const E: u32 = ${16 * cfg.pairs}u;
var<workgroup> red: array<f32, 64>;
${PAIR_OF}
@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) t: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  let o = wid.x;
  let b = wid.y;
  var s = 0.0;
  for (var c = t; c < u.chunks; c += 64u) { s += part[(b * u.chunks + c) * E + o]; }
  red[t] = s;
  workgroupBarrier();
  for (var k = 32u; k > 0u; k = k / 2u) {
    if (t < k) { red[t] = red[t] + red[t + k]; }
    workgroupBarrier();
  }
  if (t == 0u) {
    let pr = pair_of(o / 16u);
    let r = pr.x * 4u + (o % 16u) / 4u;
    let c = pr.y * 4u + o % 4u;
    if (r < u.K && c < u.K) {
      G[(b * u.K + r) * u.K + c] = red[0];
      if (pr.x != pr.y) { G[(b * u.K + c) * u.K + r] = red[0]; }
    }
  }
}`;
}

/**
 * Pass 3: inputs G, eps (vec2: ε, 1/ε) [L]; outputs value [B], A [B, K, K] and, for `global` cost
 * storage, cg [B, K, K] (scratch). Uniforms: B, N, M, K, L. Dispatch grid1d(B, 1).
 * `kc` > 0: the cost matrix lives in shared memory (K ≤ kc); 0: in cg.
 */
export function sinkhornLoopWGSL(kc: number): (h: string) => string {
  const H = 2 * MAX_POINTS;
  const cost =
    kc > 0
      ? `var<workgroup> cs: array<f32, ${kc * kc}>;
fn cost(b: u32, r: u32, c: u32) -> f32 { return cs[r * u.K + c]; }`
      : `fn cost(b: u32, r: u32, c: u32) -> f32 { return cg[(b * u.K + r) * u.K + c]; }`;
  const store = kc > 0 ? 'cs[e] = v;' : 'cg[gb + e] = v;';
  return (h) => `${h}
const WG: u32 = ${WG}u;
const H: u32 = ${H}u;
const NEG: f32 = -3.0e38;
var<workgroup> hb: array<f32, ${2 * H}>;
var<workgroup> ps: array<f32, ${2 * H}>;
var<workgroup> fin: array<f32, ${H}>;
var<workgroup> wsum: array<f32, ${H}>;
${cost}

/** z_c = h_c − C[r][c]/ε of a row task; exp with exp(0) = 1 exactly (the uniform first steps need it). */
fn zv(b: u32, r: u32, c: u32, hq: u32, ie: f32) -> f32 { return hb[hq + c] - cost(b, r, c) * ie; }
fn ex(d: f32) -> f32 { return select(exp(d), 1.0, d == 0.0); }

/**
 * Row task: m = max_c z_c and Σ_c exp(z_c − m) over columns [c0, c1). Four independent accumulators per
 * pass keep the dependency chains short (this loop is the latency of every ε-step).
 */
fn lse_parts(b: u32, r: u32, c0: u32, c1: u32, hq: u32, ie: f32) -> vec2<f32> {
  var m0 = NEG;
  var m1 = NEG;
  var m2 = NEG;
  var m3 = NEG;
  var c = c0;
  for (; c + 4u <= c1; c += 4u) {
    m0 = max(m0, zv(b, r, c, hq, ie));
    m1 = max(m1, zv(b, r, c + 1u, hq, ie));
    m2 = max(m2, zv(b, r, c + 2u, hq, ie));
    m3 = max(m3, zv(b, r, c + 3u, hq, ie));
  }
  for (; c < c1; c++) { m0 = max(m0, zv(b, r, c, hq, ie)); }
  let m = max(max(m0, m1), max(m2, m3));
  var s0 = 0.0;
  var s1 = 0.0;
  var s2 = 0.0;
  var s3 = 0.0;
  c = c0;
  for (; c + 4u <= c1; c += 4u) {
    s0 += ex(zv(b, r, c, hq, ie) - m);
    s1 += ex(zv(b, r, c + 1u, hq, ie) - m);
    s2 += ex(zv(b, r, c + 2u, hq, ie) - m);
    s3 += ex(zv(b, r, c + 3u, hq, ie) - m);
  }
  for (; c < c1; c++) { s0 += ex(zv(b, r, c, hq, ie) - m); }
  return vec2<f32>(m, (s0 + s1) + (s2 + s3));
}

@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_index) t: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let b = wid.x + wid.y * nwg.x;
  if (b >= u.B) { return; }
  let K = u.K;
  let N = u.N;
  let gb = b * K * K;
  for (var e = t; e < K * K; e += WG) {
    let r = e / K;
    let c = e % K;
    let v = ((G[gb + r * K + r] - 2.0 * G[gb + e]) + G[gb + c * K + c]) * 0.5;
    ${store}
  }
  ${kc > 0 ? '' : 'storageBarrier();'}
  workgroupBarrier();

  // invocation t < 2K owns row task t: row r, cross (t < K) or self (t ≥ K)
  let live = t < 2u * K;
  let self_ = t >= K;
  let r = t % K;
  let inX = r < N;
  let lw = select(-log(f32(u.M)), -log(f32(N)), inX);
  // columns: the other cloud for a cross task, the row's own cloud for a self task
  let c0 = select(select(0u, N, inX), select(N, 0u, inX), self_);
  let c1 = select(select(N, K, inX), select(K, N, inX), self_);
  let hoff = select(0u, K, self_);
  if (live) {
    hb[t] = lw;
    ps[t] = 0.0;
  }
  workgroupBarrier();

  // it = 0: initialisation at ε_0 (h = log w); it = 1..L: the ε-steps with averaging
  var pot = 0.0;
  var q = 0u;
  for (var it = 0u; it <= u.L; it++) {
    let e = eps[select(it - 1u, 0u, it == 0u)];
    if (live) {
      let ms = lse_parts(b, r, c0, c1, q * H + hoff, e.y);
      let f = -e.x * (ms.x + log(ms.y));
      pot = select(0.5 * (pot + f), f, it == 0u);
      if (!self_) {
        // gauge: (f_ba − c, g_ab + c) is the same solution; keep f_ba[0] = g_ab[0] (as of the last step)
        let c = 0.5 * (ps[q * H] - ps[q * H + N]);
        pot -= select(-c, c, inX);
      }
      ps[(1u - q) * H + t] = pot;
      let en = eps[min(it, u.L - 1u)];
      hb[(1u - q) * H + t] = lw + pot * en.y;
    }
    q = 1u - q;
    workgroupBarrier();
  }

  // final extrapolation at the last ε: potentials, value, and the plans folded into A
  let e = eps[u.L - 1u];
  let w = select(1.0 / f32(u.M), 1.0 / f32(N), inX);
  if (live) {
    let hq = q * H + hoff;
    let ms = lse_parts(b, r, c0, c1, hq, e.y);
    fin[t] = -e.x * (ms.x + log(ms.y));
    let inv = 1.0 / ms.y;
    let sg = select(-w, w, self_);
    var ws = 0.0;
    for (var c = c0; c < c1; c++) {
      if (c != r) {
        let pi = ex(zv(b, r, c, hq, e.y) - ms.x) * inv;
        A[gb + r * K + c] = sg * pi;
        ws += pi;
      }
    }
    wsum[t] = ws;
  }
  workgroupBarrier();
  if (t < K) { A[gb + t * K + t] = w * (wsum[t] - wsum[K + t]); }
  if (t == 0u) {
    let wa = 1.0 / f32(N);
    let wb = 1.0 / f32(u.M);
    var sx = 0.0;
    for (var i = 0u; i < N; i++) { sx += wa * (fin[i] - fin[K + i]); }
    var sy = 0.0;
    for (var j = N; j < K; j++) { sy += wb * (fin[j] - fin[K + j]); }
    value[b] = sx + sy;
  }
}`;
}

/** Rows × columns of dZ per workgroup of sinkhorn_grad (128 invocations, 4×4 each). */
export const GRAD_ROWS = 32;
export const GRAD_COLS = 64;

/**
 * Pass 4 (backward): inputs x, y, A [B, K, K], g [B]; outputs dx [B, N, D], dy [B, M, D].
 * Uniforms: B, N, M, K, D, tiles (= ceil(D/64)), groups (= ceil(K/32)). Dispatch grid1d(tiles·groups·B, 1).
 */
export function sinkhornGradWGSL(): (h: string) => string {
  const ak = range(4).flatMap((a) => range(4).map((k) => [a, k] as const));
  return (h) => `${h}
const RG: u32 = ${GRAD_ROWS}u;
const TD: u32 = ${GRAD_COLS}u;
const SK: u32 = 32u;
const AS: u32 = 33u;
var<workgroup> zs: array<f32, ${32 * GRAD_COLS}>;
var<workgroup> as_: array<f32, ${GRAD_ROWS * 33}>;
${ZVAL}
@compute @workgroup_size(128)
fn main(@builtin(local_invocation_index) t: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let w = wid.x + wid.y * nwg.x;
  if (w >= u.tiles * u.groups * u.B) { return; }
  let tile = w % u.tiles;
  let rest = w / u.tiles;
  let r0 = (rest % u.groups) * RG;
  let b = rest / u.groups;
  let d0 = tile * TD;
  let K = u.K;
  let rb = t / 16u;
  let cb = t % 16u;
${ak.map(([a, k]) => `  var acc${a}${k} = 0.0;`).join('\n')}
  for (var s0 = 0u; s0 < K; s0 += SK) {
    for (var e = t; e < SK * TD; e += 128u) {
      let rr = s0 + e / TD;
      let d = d0 + e % TD;
      var v = 0.0;
      if (rr < K && d < u.D) { v = zval(b, rr, d); }
      zs[e] = v;
    }
    for (var e = t; e < RG * SK; e += 128u) {
      let rr = r0 + e / SK;
      let cc = s0 + e % SK;
      var v = 0.0;
      if (rr < K && cc < K) { v = A[(b * K + rr) * K + cc]; }
      as_[(e / SK) * AS + e % SK] = v;
    }
    workgroupBarrier();
    for (var s = 0u; s < SK; s++) {
${range(4)
  .map((k) => `      let z${k} = zs[s * TD + cb + ${16 * k}u];`)
  .join('\n')}
${range(4)
  .map((a) => `      let a${a} = as_[(rb * 4u + ${a}u) * AS + s];`)
  .join('\n')}
${ak.map(([a, k]) => `      acc${a}${k} += a${a} * z${k};`).join('\n')}
    }
    workgroupBarrier();
  }
  let gs = g[b];
${ak
  .map(
    ([a, k]) => `  {
    let r = r0 + rb * 4u + ${a}u;
    let d = d0 + cb + ${16 * k}u;
    if (r < K && d < u.D) {
      if (r < u.N) { dx[(b * u.N + r) * u.D + d] = gs * acc${a}${k}; }
      else { dy[(b * u.M + (r - u.N)) * u.D + d] = gs * acc${a}${k}; }
    }
  }`,
  )
  .join('\n')}
}`;
}
