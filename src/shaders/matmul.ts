/**
 * The tiled GEMM core: C[m, n] = Σ_k A(m, k) · B(k, n), shared by matmul and the whole convolution family
 * (forward, input gradient, weight gradient, transposed convolution). What differs between them is only
 * where A(m, k) and B(k, n) live in memory and where C goes; that is plugged in as WGSL "loaders".
 *
 * Algorithm (the classic shared-memory block tile, as in tfjs's matmul_packed and CUTLASS's SIMT GEMM):
 *   - a workgroup of (BM/TM)·(BN/TN) invocations owns a BM×BN block of C; each invocation owns a TM×TN
 *     sub-block (4×4 by default, up to 8×8) held in vec4 accumulators;
 *   - the K dimension is walked in tiles of BK: the workgroup stages the BK×BM slice of A and the BK×BN
 *     slice of B in workgroup memory (k-major, so the inner loop reads one vec4 of A and one of B per k
 *     and does 16 FMAs), each invocation loading BM·BK/WG elements of each operand;
 *   - global loads of tile t+1 go to registers while tile t is multiplied (register prefetch), so the
 *     memory latency overlaps the arithmetic with only one shared buffer (fits WebGPU's default 16 KiB);
 *     the double-buffered tiles (`db`, names ending in d) stage into two buffers in turn and need one
 *     barrier per K tile instead of two, for twice the workgroup memory (gemm-loop.ts, kLoopDouble);
 *   - each invocation stages groups of 4 consecutive rows at one k of each operand (one vec4 store each);
 *     where an operand's groups are contiguous and aligned in memory (GemmOperand.load4, flag GEMM_VEC4)
 *     a group is also one vec4 load, with one row and one address computed for it instead of four;
 *   - edge tiles: loaders return 0 outside the problem, stores are bounds-checked, so any M, N, K work.
 * On the H200 this tile (64×64, 4×4 per invocation, BK 16) reached 19.5 TFLOP/s f32 as a plain matmul.
 *
 * K is iterated as a two-level space (kOuter × kInner tiles): for a convolution the outer index is the
 * filter tap (ky, kx) and the inner one runs over channel tiles, so a loader computes the spatial part of
 * an address once per tap instead of decoding k with divisions per element. The flattened range
 * [t0, t1) of K tiles a workgroup walks comes from the loader's context (`make_ctx(z)`, z = workgroup_id.z),
 * which is how split-K (z = split) and the stride-phase decomposition of dgrad (z = phase) are expressed.
 *
 * A loader for operand P (prefix `a` or `b`) is WGSL defining
 *   struct P_row;  fn P_row_of(c: Ctx, r: u32) -> P_row               once per owned row (m for A, n for B)
 *   struct P_out;  fn P_outer(c: Ctx, r: P_row, ko: u32) -> P_out     once per outer K index
 *   struct P_k;    fn P_k_of(c: Ctx, ko: u32, ki: u32, kk: u32) -> P_k  once per tile for each owned kk
 *   fn P_load(c: Ctx, r: P_row, o: P_out, k: P_k) -> f32              the element (0 outside)
 * and a mode: 'row' (adjacent invocations load adjacent groups of 4 rows: for operands contiguous along
 * M or N) or 'k' (adjacent invocations load adjacent k: for operands contiguous along K), so global
 * loads coalesce.
 * The context is `struct Ctx` with at least m, n, k_inner, t0, t1 and `fn make_ctx(z: u32) -> Ctx`;
 * the store is `fn store_c(c: Ctx, m: u32, n: u32, v: f32)`, called for m < c.m and n < c.n only.
 * Every program also has the uniforms `tiles_m`, `tiles_n` (the 2-D grid is linearised, see gemmGrid).
 *
 * Precision (GemmSpec.precision, the engine flag PRECISION): 'f32' stages f32 operands; 'f16' stages the
 * tiles as vec4<f16> — each loaded f32 value is rounded to f16 once, when it is staged — and converts
 * them back to f32 before the FMA, so every product of two f16 values is exact in f32 and the sum is an
 * f32 accumulation: "f16 operands, f32 accumulate", the numerics of tensor cores and of PyTorch AMP. The
 * loaders, the store and any epilogue are the same f32 code in both (a conv loader reading an f16 tensor
 * widens it to f32 first — exact — so an f16-stored value is staged unchanged). The staging tiles take half the
 * workgroup memory; the arithmetic is still f32 FMAs (no packed f16 math, no tensor cores here).
 */

import type { Precision } from '../engine/flags.js';
import { convert } from './common.js';
import { kLoop, kLoopDouble, type Staging, TILE_ORIGIN } from './gemm-loop.js';
import { type MmaTile, mmaBlock, mmaKey, mmaProblem, mmaShader, mmaSharedBytes, mmaThreads } from './mma.js';

/**
 * Block tile: BM×BN outputs per workgroup, BK deep; each invocation computes TM×TN outputs (4 or 8 each,
 * default 4×4). With TM = 8 an invocation owns two groups of 4 rows half a tile apart (BM/2), not 8
 * adjacent rows, so adjacent invocations still read adjacent vec4s of the staging tile and store
 * adjacent groups of 4 outputs (CUTLASS's SIMT layout).
 */
export interface GemmTile {
  bm: number;
  bn: number;
  bk: number;
  tm?: 4 | 8;
  tn?: 4 | 8;
  /**
   * Two staging buffers per operand, filled in turn (one barrier per K tile instead of two; twice the
   * workgroup memory). Which of the two is faster on a GPU is measured (`rdpp tune`), not assumed.
   */
  db?: boolean;
  /**
   * Subgroup matrices (tensor cores) instead of the SIMT inner loop: see mma.ts. bm, bn and bk are then
   * the block the MMA tile covers (mmaGemmTile builds such a tile); f16 precision only.
   */
  mma?: MmaTile;
}

/** The GemmTile of a subgroup-matrix configuration. */
export function mmaGemmTile(x: MmaTile): GemmTile {
  return { ...mmaBlock(x), mma: x };
}

export const DEFAULT_TILE: GemmTile = { bm: 64, bn: 64, bk: 16 };

/**
 * The tiles the engine knows, by name (pipeline keys, flags and benchmarks use the names). 64×64 is the
 * default: as a plain 4096³ matmul on the H200 it reached 19.3–19.6 TFLOP/s where a 128×128 tile with 8×8
 * per invocation (the register-blocked tile of big-GPU GEMMs, half the staging traffic per FMA) reached
 * 16.1–16.3 in a probe (../shared/docs/webgpu-runtime.md) — so bigger is not better by default there, and
 * which tile wins each conv shape is measured (`rdpp bench shapes --tiles all`), not assumed. The
 * rectangular tiles suit GEMMs with few rows (deep layers at small batch) or few columns; 32×32 gives
 * small problems more workgroups. The names ending in d are the same tiles double-buffered (`db`).
 */
export const GEMM_TILES: Readonly<Record<string, GemmTile>> = Object.freeze({
  t64x64: DEFAULT_TILE,
  t128x128: { bm: 128, bn: 128, bk: 8, tm: 8, tn: 8 },
  t128x64: { bm: 128, bn: 64, bk: 16, tm: 8, tn: 4 },
  t64x128: { bm: 64, bn: 128, bk: 16, tm: 4, tn: 8 },
  t32x32: { bm: 32, bn: 32, bk: 16 },
  t64x64d: { bm: 64, bn: 64, bk: 16, db: true },
  t128x128d: { bm: 128, bn: 128, bk: 8, tm: 8, tn: 8, db: true },
  t128x64d: { bm: 128, bn: 64, bk: 16, tm: 8, tn: 4, db: true },
  t64x128d: { bm: 64, bn: 128, bk: 16, tm: 4, tn: 8, db: true },
});

function micro(t: GemmTile): { tm: number; tn: number } {
  return { tm: t.tm ?? 4, tn: t.tn ?? 4 };
}

/** Invocations per workgroup for a tile. */
export function tileThreads(t: GemmTile): number {
  if (t.mma) return mmaThreads(t.mma);
  const { tm, tn } = micro(t);
  return (t.bm / tm) * (t.bn / tn);
}

/** The part of a pipeline key that the tile configuration determines. */
export function tileKey(t: GemmTile): string {
  if (t.mma) return mmaKey(t.mma);
  const { tm, tn } = micro(t);
  return `t${t.bm}x${t.bn}x${t.bk}${tm === 4 && tn === 4 ? '' : `r${tm}x${tn}`}${t.db ? 'd' : ''}`;
}

/** Groups of 4 rows × 1 k that each invocation stages per K tile for an operand of `rows` rows. */
function stageGroups(rows: number, t: GemmTile): number {
  return (rows * t.bk) / (4 * tileThreads(t));
}

/**
 * Groups of 4 rows each invocation of a SIMT tile stages per K tile, for the operand with more of them (1
 * for t64x64 and t128x128; 2 or more for t32x32, t128x64, t64x128 at BK 16); 0 for a subgroup-matrix tile.
 */
export function tileStageGroups(t: GemmTile): number {
  return t.mma ? 0 : Math.max(stageGroups(t.bm, t), stageGroups(t.bn, t));
}

/** Why a tile is not a valid configuration, or null when it is. */
export function tileProblem(t: GemmTile): string | null {
  if (t.mma) {
    if (t.db) return 'a subgroup-matrix tile is double-buffered by its MmaTile (mma.db), not by db';
    const b = mmaBlock(t.mma);
    if (b.bm !== t.bm || b.bn !== t.bn || b.bk !== t.bk) return 'bm, bn, bk differ from the MMA block';
    return mmaProblem(t.mma);
  }
  const { tm, tn } = micro(t);
  if (![4, 8].includes(tm) || ![4, 8].includes(tn)) return 'TM and TN must be 4 or 8';
  if (t.bm % tm !== 0 || t.bn % tn !== 0) return 'BM must be a multiple of TM and BN of TN';
  if (tileThreads(t) > 256) return 'more than 256 invocations per workgroup';
  for (const rows of [t.bm, t.bn]) {
    const g = stageGroups(rows, t);
    if (!Number.isInteger(g) || g < 1)
      return `a ${rows}×${t.bk} operand tile does not split into 4-row groups`;
  }
  return null;
}

function checkTile(t: GemmTile): void {
  const problem = tileProblem(t);
  if (problem) throw new Error(`GEMM tile ${tileKey(t)} is not a valid configuration: ${problem}`);
}

/** Workgroup memory a tile stages (both operands, padded; both buffers when double-buffered), in bytes. */
export function tileSharedBytes(t: GemmTile, precision: Precision = 'f32'): number {
  if (t.mma) return mmaSharedBytes(t.mma);
  return (t.db ? 2 : 1) * (precision === 'f16' ? 2 : 4) * t.bk * (t.bm + 4 + t.bn + 4);
}

/**
 * The part of a pipeline key that the precision determines: empty for f32, so f32 keys (and kernels)
 * are exactly those from before precisions existed.
 */
export function precisionKey(p: Precision): string {
  return p === 'f16' ? '|f16' : '';
}

export type LoadMode = 'row' | 'k';

/** The part of a pipeline key that the operands' vectorised loads determine (empty when neither has). */
export function vec4Key(a: GemmOperand, b: GemmOperand): string {
  const v = `${a.load4 ? 'a' : ''}${b.load4 ? 'b' : ''}`;
  return v ? `|v4:${v}` : '';
}

export interface GemmOperand {
  mode: LoadMode;
  /** WGSL for prefix `a` or `b` (see the header comment). */
  wgsl: (p: 'a' | 'b') => string;
  /**
   * Vectorised loads ('row' mode only): WGSL of `fn P_load4(c: Ctx, r: P_row, o: P_out, k: P_k) ->
   * vec4<f32>`, rows r .. r+3 at one k in one 16-byte load, from the first row's structs. An op supplies it
   * only where every 4-row group of the problem is contiguous, 16-byte aligned and wholly inside or outside
   * it (sizes multiples of 4); the SIMT core then computes one row and one outer offset per group instead
   * of four, and issues a quarter of the load instructions; so does the tensor-core core (mma.ts) where
   * the groups split evenly over its invocations.
   */
  load4?: (p: 'a' | 'b') => string;
}

export interface GemmSpec {
  tile: GemmTile;
  /** `struct Ctx` and `fn make_ctx(z: u32) -> Ctx`, plus any helpers the loaders share. */
  ctx: string;
  a: GemmOperand;
  b: GemmOperand;
  /** `fn store_c(c: Ctx, m: u32, n: u32, v: f32)`. */
  store: string;
  /** Which output dimension adjacent invocations own (the one contiguous in the output's memory). */
  fast: 'm' | 'n';
  /**
   * Operand precision in the staging tiles (default f32; see the header comment). 'f16' emits
   * `enable f16`: only for a device with `shader-f16` (engine/precision.ts decides).
   */
  precision?: Precision;
}

/** Workgroups and the grid uniforms for a GEMM over at most `maxM` × `n` outputs and `z` slices. */
export function gemmGrid(
  maxM: number,
  n: number,
  z: number,
  tile: GemmTile = DEFAULT_TILE,
  maxPerDim = 65535,
): { workgroups: [number, number, number]; tiles_m: number; tiles_n: number } {
  const tiles_m = Math.max(1, Math.ceil(maxM / tile.bm));
  const tiles_n = Math.max(1, Math.ceil(n / tile.bn));
  const total = tiles_m * tiles_n;
  const x = Math.min(total, maxPerDim);
  const y = Math.ceil(total / x);
  if (y > maxPerDim || z > maxPerDim)
    throw new Error(`GEMM of ${maxM}×${n}×(${z} slices) needs more workgroups than the device allows`);
  return { workgroups: [x, y, z], tiles_m, tiles_n };
}

/**
 * Code that loads this invocation's share of one operand tile (groups of 4 consecutive rows at one k)
 * into registers v<p><q><i>, and stores each group to the staging tile as one whole vec4 (no dynamic
 * vector-component writes: some backends lower those to a read-modify-write of the vector, a race in
 * shared memory). Group q of invocation lid is the linear index lid + q·threads of the tile's groups.
 */
function operandCode(p: 'a' | 'b', op: GemmOperand, rows: number, t: GemmTile, f16: boolean): Staging {
  const P = p.toUpperCase();
  // double-buffered: the half being filled starts at AW / BW (kLoopDouble)
  const at = t.db ? `${P}W + ` : '';
  const origin = p === 'a' ? 'm0' : 'n0';
  const perK = rows / 4;
  const threads = tileThreads(t);
  const groups = Array.from({ length: stageGroups(rows, t) }, (_, q) => q);
  const q4 = [0, 1, 2, 3];
  const decl: string[] = [];
  const outer: string[] = [];
  const load: string[] = [];
  const put: string[] = [];
  const vec = op.load4 !== undefined;
  if (vec && op.mode !== 'row') throw new Error('GEMM operand: vectorised loads need row mode');
  for (const q of groups) {
    const L = q === 0 ? 'lid' : `(lid + ${q * threads}u)`;
    // 'row': adjacent invocations load adjacent groups of 4 rows; 'k': adjacent k
    if (op.mode === 'row')
      decl.push(`  let ${p}G${q} = ${L} % ${perK}u;`, `  let ${p}KK${q} = ${L} / ${perK}u;`);
    else decl.push(`  let ${p}G${q} = ${L} / ${t.bk}u;`, `  let ${p}KK${q} = ${L} % ${t.bk}u;`);
    if (vec) {
      // the group's first row stands for all four (GemmOperand.load4)
      decl.push(`  let ${p}R${q} = ${p}_row_of(c, ${origin} + ${p}G${q} * 4u);`);
      decl.push(`  var ${p}O${q} = ${p}_outer(c, ${p}R${q}, ko);`, `  var v${p}${q}: vec4<f32>;`);
      outer.push(`${p}O${q} = ${p}_outer(c, ${p}R${q}, ko);`);
      load.push(`v${p}${q} = ${p}_load4(c, ${p}R${q}, ${p}O${q}, ${p}_k_of(c, ko, ki, ${p}KK${q}));`);
      put.push(
        `${P}s[${at}${p}KK${q} * ${P}S4 + ${p}G${q}] = ${f16 ? `vec4<f16>(v${p}${q})` : `v${p}${q}`};`,
      );
      continue;
    }
    for (const i of q4) {
      decl.push(`  let ${p}R${q}${i} = ${p}_row_of(c, ${origin} + ${p}G${q} * 4u + ${i}u);`);
      decl.push(`  var ${p}O${q}${i} = ${p}_outer(c, ${p}R${q}${i}, ko);`);
      outer.push(`${p}O${q}${i} = ${p}_outer(c, ${p}R${q}${i}, ko);`);
    }
    decl.push(`  var ${q4.map((i) => `v${p}${q}${i}`).join(': f32; var ')}: f32;`);
    load.push(`let ${p}K${q} = ${p}_k_of(c, ko, ki, ${p}KK${q});`);
    for (const i of q4) load.push(`v${p}${q}${i} = ${p}_load(c, ${p}R${q}${i}, ${p}O${q}${i}, ${p}K${q});`);
    const v4 = `vec4<f32>(${q4.map((i) => `v${p}${q}${i}`).join(', ')})`;
    // f16: the one rounding of the operand. WGSL allows either neighbour and leaves values beyond
    // ±65504 indeterminate; lavapipe rounds to nearest, keeps subnormals (below 6.1e-5 the precision
    // drops, below 3e-8 it is 0) and gives ±inf beyond the range
    put.push(`${P}s[${at}${p}KK${q} * ${P}S4 + ${p}G${q}] = ${f16 ? `vec4<f16>(${v4})` : v4};`);
  }
  return { decl, outer, load, put };
}

/** The complete kernel for a GEMM spec (after the runtime's binding header). */
export function gemmShader(spec: GemmSpec): (header: string) => string {
  const t = spec.tile;
  checkTile(t);
  if (t.mma) return mmaShader(spec, t.mma);
  // the text is built when the runtime compiles the pipeline (a cache miss), not at every dispatch:
  // building it took ~40 µs per conv dispatch, 12 % of recording an inference pass
  return (header) => simtWgsl(spec, header);
}

function simtWgsl(spec: GemmSpec, header: string): string {
  const t = spec.tile;
  const { tm, tn } = micro(t);
  const f16 = spec.precision === 'f16';
  const A = operandCode('a', spec.a, t.bm, t, f16);
  const B = operandCode('b', spec.b, t.bn, t, f16);
  // f16 staging: widened to f32 when read, so the FMAs (and the accumulators) stay f32
  const stage = f16 ? 'f16' : 'f32';
  const halves = t.db ? 2 : 1;
  const widen = (e: string) => convert(e, `vec4<${stage}>`, 'vec4<f32>');
  // invocations along M and N; strip j of an invocation's rows starts j·(BM/TM) groups of 4 further on
  const im = t.bm / tm;
  const inN = t.bn / tn;
  const ja = Array.from({ length: tm / 4 }, (_, j) => j);
  const jb = Array.from({ length: tn / 4 }, (_, j) => j);
  const q4 = [0, 1, 2, 3];
  const comp = ['x', 'y', 'z', 'w'];
  const tmExpr = spec.fast === 'm' ? `lid % ${im}u` : `lid / ${inN}u`;
  const tnExpr = spec.fast === 'm' ? `lid / ${im}u` : `lid % ${inN}u`;
  const acc = (a: number, i: number, b: number) => `acc${a}_${i}_${b}`;
  const accDecl = ja.flatMap((a) =>
    q4.flatMap((i) => jb.map((b) => `  var ${acc(a, i, b)} = vec4<f32>(0.0);`)),
  );
  // double-buffered: the half being multiplied starts at AR / BR (kLoopDouble)
  const [ar, br] = t.db ? ['AR + ', 'BR + '] : ['', ''];
  const inner = [
    ...ja.map((a) => `let av${a} = ${widen(`As[${ar}kk * AS4 + ${a * im}u + tm]`)};`),
    ...jb.map((b) => `let bv${b} = ${widen(`Bs[${br}kk * BS4 + ${b * inN}u + tn]`)};`),
    ...ja.flatMap((a) =>
      q4.flatMap((i) =>
        jb.map((b) => `${acc(a, i, b)} = fma(vec4<f32>(av${a}.${comp[i]}), bv${b}, ${acc(a, i, b)});`),
      ),
    ),
  ];
  const stores = ja
    .flatMap((a) =>
      q4.map(
        (i) => `  {
    let m = m0 + (${a * im}u + tm) * 4u + ${i}u;
    if (m < c.m) {
${jb
  .flatMap((b) =>
    q4.map(
      (j) =>
        `      { let n = n0 + (${b * inN}u + tn) * 4u + ${j}u; if (n < c.n) { store_c(c, m, n, ${acc(a, i, b)}[${j}]); } }`,
    ),
  )
  .join('\n')}
    }
  }`,
      ),
    )
    .join('\n');
  // `enable` must precede every declaration of the module, the runtime's bindings included
  return `${f16 ? 'enable f16;\n' : ''}${header}
const BM = ${t.bm}u;
const BN = ${t.bn}u;
const BK = ${t.bk}u;
const AS4 = ${(t.bm + 4) / 4}u;
const BS4 = ${(t.bn + 4) / 4}u;
const AH = ${(t.bk * (t.bm + 4)) / 4}u;
const BH = ${(t.bk * (t.bn + 4)) / 4}u;
// k-major staging tiles (two halves of AH / BH vec4s when double-buffered), padded by one vec4 per k row
// against bank conflicts on the transposing stores
var<workgroup> As: array<vec4<${stage}>, ${(halves * t.bk * (t.bm + 4)) / 4}>;
var<workgroup> Bs: array<vec4<${stage}>, ${(halves * t.bk * (t.bn + 4)) / 4}>;

${spec.ctx}
${spec.a.wgsl('a')}
${spec.a.load4?.('a') ?? ''}
${spec.b.wgsl('b')}
${spec.b.load4?.('b') ?? ''}
${spec.store}

@compute @workgroup_size(${tileThreads(t)})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
${TILE_ORIGIN}
  let tm = ${tmExpr};
  let tn = ${tnExpr};
${accDecl.join('\n')}
${(t.db ? kLoopDouble : kLoop)(A, B, ['for (var kk = 0u; kk < BK; kk = kk + 1u) {', ...inner.map((l) => `  ${l}`), '}'])}
${stores}
}`;
}

/**
 * A strided 2-D operand: element (row, k) of `buf` at row·u.<p>_sr + k·u.<p>_sk, rows < u.<p>_rows,
 * k < u.<p>_ks. Covers A, Aᵀ, B and Bᵀ of a row-major matrix; mode 'k' when the k stride is 1.
 */
export function stridedOperand(buf: string, mode: LoadMode): GemmOperand {
  return {
    mode,
    wgsl: (p) => `struct ${p}_row { off: u32, ok: bool }
fn ${p}_row_of(c: Ctx, r: u32) -> ${p}_row { return ${p}_row(r * u.${p}_sr, r < u.${p}_rows); }
struct ${p}_out { off: u32 }
fn ${p}_outer(c: Ctx, r: ${p}_row, ko: u32) -> ${p}_out { return ${p}_out(r.off); }
struct ${p}_k { k: u32, ok: bool }
fn ${p}_k_of(c: Ctx, ko: u32, ki: u32, kk: u32) -> ${p}_k {
  let k = ki * BK + kk;
  return ${p}_k(k, k < u.${p}_ks);
}
fn ${p}_load(c: Ctx, r: ${p}_row, o: ${p}_out, k: ${p}_k) -> f32 {
  var v = 0.0;
  if (r.ok && k.ok) { v = ${buf}[o.off + k.k * u.${p}_sk]; }
  return v;
}`,
  };
}

/**
 * Context of a plain (optionally split-K) GEMM of u.gm × u.gn × u.gk: slice z walks K tiles
 * [z·tps, (z+1)·tps). The store writes slice z at z·m·n (split-K partials, summed by splitSumShader).
 */
export const PLAIN_CTX = `struct Ctx { m: u32, n: u32, k_inner: u32, t0: u32, t1: u32, z: u32 }
fn make_ctx(z: u32) -> Ctx {
  let kt = (u.gk + BK - 1u) / BK;
  let t0 = min(z * u.tps, kt);
  return Ctx(u.gm, u.gn, kt, t0, min(t0 + u.tps, kt), z);
}`;

export const PLAIN_STORE = `fn store_c(c: Ctx, m: u32, n: u32, v: f32) {
  out[c.z * c.m * c.n + m * c.n + n] = v;
}`;

/** The uniforms of a strided operand (see stridedOperand). */
export function stridedUniforms(
  p: 'a' | 'b',
  rows: number,
  ks: number,
  sr: number,
  sk: number,
): Record<string, ['u32', number]> {
  return {
    [`${p}_rows`]: ['u32', rows],
    [`${p}_ks`]: ['u32', ks],
    [`${p}_sr`]: ['u32', sr],
    [`${p}_sk`]: ['u32', sk],
  };
}

/**
 * out[i] = Σ_z part[z·n + i] over u.splits slices (the split-K reduction; slices are few, ≤ 64). `store`
 * replaces the plain `out[i] = s;` (e.g. a fused epilogue), with any WGSL it needs in `prelude`.
 */
export function splitSumShader(
  wgSize = 256,
  store: { prelude: string; line: string } = { prelude: '', line: 'out[i] = s;' },
): (header: string) => string {
  return (h) => `${h}
${store.prelude}
@compute @workgroup_size(${wgSize})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * ${wgSize}u;
  if (i >= u.n) { return; }
  var s = 0.0;
  for (var z = 0u; z < u.splits; z = z + 1u) { s = s + part[z * u.n + i]; }
  ${store.line}
}`;
}
