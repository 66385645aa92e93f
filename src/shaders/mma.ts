/**
 * The GEMM core on subgroup matrices (tensor cores): the same contract as gemmShader in matmul.ts — the
 * same loaders, context, split-K ranges and `store_c` epilogues — with the multiply done by
 * `subgroupMatrixMultiplyAccumulate` of Dawn's `chromium_experimental_subgroup_matrix` (WGSL) on f16
 * operands with f32 results: the numerics of `--precision f16` (each operand rounded to f16 once, where it
 * is staged; products exact, sums f32), only the summation order differs.
 *
 * Algorithm:
 *   - a workgroup is SGM×SGN subgroups of `lanes` invocations (the device's subgroup size); it owns a
 *     BM×BN block of C, each subgroup an FM×FN grid of M×N result fragments (the device's configuration,
 *     e.g. 16×16×16 f16→f32 on an H200), held as `subgroup_matrix_result<f32>` values;
 *   - K is walked in tiles of BK = steps·K: every invocation loads its share of the BM×BK slice of A and
 *     the BK×BN slice of B through the loaders (the next tile into registers while this one is multiplied,
 *     as in matmul.ts) and stages them as f16 in workgroup memory, row-major (A as [m][k], B as [k][n],
 *     rows padded to a multiple of 8 elements; aligned operands read 4 rows per vec4 load, as in
 *     matmul.ts), where `subgroupMatrixLoad` reads the fragments; with `db`
 *     in two buffers filled in turn (gemm-loop.ts kLoopDouble: one barrier per K tile instead of two);
 *   - at the end each subgroup stores one fragment at a time to its own f32 slot in workgroup memory and
 *     its invocations hand the slot's elements to `store_c` (so fused epilogues and split-K partials work
 *     unchanged), adjacent invocations on adjacent outputs along the output's contiguous dimension.
 *
 * Subgroup-matrix calls must be made in subgroup-uniform control flow with uniform offsets. One subgroup
 * per workgroup satisfies WGSL's (workgroup) uniformity analysis as is; with several, the subgroup index is
 * lid / lanes — uniform per subgroup when subgroups are consecutive invocations of full size, which the
 * kernel asks for by needing subgroupMinSize = subgroupMaxSize — and the uniformity diagnostic is turned
 * off. The engine checks every configuration on the device against the SIMT f16 kernel before using it
 * (engine/mma.ts), so a device where either assumption fails falls back instead of computing garbage.
 *
 * `emulate` builds the same kernel with the subgroup-matrix types and calls replaced by plain WGSL (an
 * operand fragment is its offset in workgroup memory, read by the product; a result fragment is spread over
 * the subgroup's lanes, as on the hardware): slow, but it runs on any device with shader-f16, so the
 * tiling, staging, K stepping, fragment addressing and the epilogue — everything but the three builtins —
 * are tested on lavapipe, which has no subgroup matrices.
 */
import { kLoop, kLoopDouble, type Staging, TILE_ORIGIN } from './gemm-loop.js';
import type { GemmOperand, GemmSpec } from './matmul.js';

/**
 * The WGSL diagnostic rule the kernel turns off when a workgroup has several subgroups (Dawn's Tint knows it
 * in its `chromium` namespace; a rule in a namespace Tint does not know is ignored without a word, so a
 * misspelt namespace would leave the check on and the kernel would not compile).
 */
export const MMA_UNIFORMITY_RULE = 'chromium.subgroup_matrix_uniformity';

/** A subgroup-matrix configuration of the device: M×N results from M×K by K×N operands. */
export interface MmaConfig {
  m: number;
  n: number;
  k: number;
}

export interface MmaTile {
  config: MmaConfig;
  /** Invocations per subgroup (the device's subgroup size; the emulation takes any multiple of 4). */
  lanes: number;
  /** Subgroups per workgroup along M and along N. */
  sgm: number;
  sgn: number;
  /** Result fragments per subgroup along M and along N. */
  fm: number;
  fn: number;
  /** K steps (of config.k) per staged tile. */
  steps: number;
  /** Plain-WGSL stand-ins for the subgroup-matrix builtins (tests, devices without the feature). */
  emulate: boolean;
  /** Double-buffered staging (twice the staging memory, one barrier per K tile; see matmul.ts GemmTile.db). */
  db?: boolean;
}

export function mmaThreads(x: MmaTile): number {
  return x.sgm * x.sgn * x.lanes;
}

export function mmaBlock(x: MmaTile): { bm: number; bn: number; bk: number } {
  return { bm: x.sgm * x.fm * x.config.m, bn: x.sgn * x.fn * x.config.n, bk: x.steps * x.config.k };
}

export function mmaKey(x: MmaTile): string {
  const c = x.config;
  return `mma${c.m}x${c.n}x${c.k}l${x.lanes}s${x.sgm}x${x.sgn}f${x.fm}x${x.fn}k${x.steps}${x.emulate ? 'e' : ''}${x.db ? 'd' : ''}`;
}

/**
 * Row strides of the staging tiles (elements): BK and BN plus 8, so every row, fragment offset and stride
 * is a multiple of 16 bytes (what cooperative-matrix loads on Vulkan require) and consecutive rows start in
 * different banks.
 */
function strides(x: MmaTile): { sa: number; sb: number } {
  const { bn, bk } = mmaBlock(x);
  return { sa: bk + 8, sb: bn + 8 };
}

/**
 * Workgroup memory of the kernel, in bytes: f16 staging of A and B (twice with `db`), one f32 fragment per
 * subgroup (and the emulation's result fragments).
 */
export function mmaSharedBytes(x: MmaTile): number {
  const { bm, bk } = mmaBlock(x);
  const { sa, sb } = strides(x);
  const emulated = x.emulate ? 4 * x.sgm * x.sgn * x.fm * x.fn * x.config.m * x.config.n : 0;
  return (x.db ? 2 : 1) * 2 * (bm * sa + bk * sb) + 4 * x.sgm * x.sgn * x.config.m * x.config.n + emulated;
}

/** Why a configuration cannot be built, or null. */
export function mmaProblem(x: MmaTile): string | null {
  const T = mmaThreads(x);
  const { bm, bn, bk } = mmaBlock(x);
  const { m, n, k } = x.config;
  if (![m, n, k].every((d) => d % 8 === 0)) return 'fragment sizes must be multiples of 8';
  if (x.lanes < 4 || x.lanes % 4 !== 0) return 'lanes must be a multiple of 4';
  if (T > 256) return 'more than 256 invocations per workgroup';
  if ((bm * bk) % T !== 0 || (bn * bk) % T !== 0)
    return `the ${bm}×${bk} and ${bk}×${bn} operand tiles must split evenly over ${T} invocations`;
  if ((m * n) % x.lanes !== 0) return 'a fragment must split evenly over the lanes';
  return null;
}

/**
 * The loads of one operand: every invocation stages units e = lid + q·T (q < E) of the rows×BK tile, a
 * unit being one element, or with vectorised loads (GemmOperand.load4, 'row' mode, when the groups split
 * evenly over the invocations) a group of 4 adjacent rows at one k, read as one vec4. Unit e is at
 * (row, kk) = (w·(e % (rows/w)), e / (rows/w)) in 'row' mode (adjacent invocations, adjacent rows; w = 1
 * or 4) or (e / BK, e % BK) in 'k' mode. When T divides the fast extent, the row (or kk) is the same for
 * every q and is computed once: the loader's per-row and per-tap work is not repeated.
 */
function stage(
  p: 'a' | 'b',
  op: GemmOperand,
  rows: number,
  bk: number,
  T: number,
  f16: string,
  db: boolean,
): Staging {
  const origin = p === 'a' ? 'm0' : 'n0';
  // double-buffered: the half being filled starts at AW / BW (kLoopDouble)
  const at = db ? `${p.toUpperCase()}W + ` : '';
  const w = op.load4 && op.mode === 'row' && ((rows / 4) * bk) % T === 0 ? 4 : 1;
  const E = (rows * bk) / (w * T);
  const across = op.mode === 'row' ? rows / w : bk;
  const shared = T % across === 0;
  const rowIdx: string[] = [];
  const kkIdx: string[] = [];
  for (let q = 0; q < E; q++) {
    const e = q === 0 ? 'lid' : `(lid + ${q * T}u)`;
    const scaled = (x: string) => (w === 1 ? x : `(${x}) * ${w}u`);
    if (op.mode === 'row') {
      rowIdx.push(scaled(shared ? `lid % ${across}u` : `${e} % ${across}u`));
      kkIdx.push(shared ? `lid / ${across}u + ${(q * T) / across}u` : `${e} / ${across}u`);
    } else {
      kkIdx.push(shared ? `lid % ${bk}u` : `${e} % ${bk}u`);
      rowIdx.push(shared ? `lid / ${bk}u + ${(q * T) / bk}u` : `${e} / ${bk}u`);
    }
  }
  const rowsU = [...new Set(rowIdx)];
  const kksU = [...new Set(kkIdx)];
  const r = (q: number) => rowsU.indexOf(rowIdx[q]!);
  const kq = (q: number) => kksU.indexOf(kkIdx[q]!);
  const decl: string[] = [];
  const outer: string[] = [];
  rowsU.forEach((expr, i) => {
    decl.push(`  let ${p}I${i} = ${expr};`);
    decl.push(`  let ${p}R${i} = ${p}_row_of(c, ${origin} + ${p}I${i});`);
    decl.push(`  var ${p}O${i} = ${p}_outer(c, ${p}R${i}, ko);`);
    outer.push(`${p}O${i} = ${p}_outer(c, ${p}R${i}, ko);`);
  });
  kksU.forEach((expr, i) => {
    decl.push(`  let ${p}KK${i} = ${expr};`);
  });
  const type = w === 1 ? 'f32' : 'vec4<f32>';
  decl.push(`  var ${Array.from({ length: E }, (_, q) => `v${p}${q}`).join(`: ${type}; var `)}: ${type};`);
  const fn = w === 1 ? `${p}_load` : `${p}_load4`;
  const load = [
    ...kksU.map((_, i) => `let ${p}K${i} = ${p}_k_of(c, ko, ki, ${p}KK${i});`),
    ...Array.from(
      { length: E },
      (_, q) => `v${p}${q} = ${fn}(c, ${p}R${r(q)}, ${p}O${r(q)}, ${p}K${kq(q)});`,
    ),
  ];
  // A as [m][k] (stride SA), B as [k][n] (stride SB); a vec4 unit as its 4 rows
  const put = Array.from({ length: E }, (_, q) =>
    Array.from({ length: w }, (_, i) => {
      const v = w === 1 ? `v${p}${q}` : `v${p}${q}.${'xyzw'[i]}`;
      const row = i === 0 ? `${p}I${r(q)}` : `(${p}I${r(q)} + ${i}u)`;
      return p === 'a'
        ? `As[${at}${row} * SA + ${p}KK${kq(q)}] = ${f16}(${v});`
        : `Bs[${at}${p}KK${kq(q)} * SB + ${row}] = ${f16}(${v});`;
    }),
  ).flat();
  return { decl, outer, load, put };
}

/** The subgroup-matrix vocabulary: native builtins, or plain-WGSL stand-ins with the same call shape. */
function vocabulary(x: MmaTile) {
  const { m, n, k } = x.config;
  if (!x.emulate) {
    const L = `subgroup_matrix_left<f16, ${k}, ${m}>`;
    const R = `subgroup_matrix_right<f16, ${n}, ${k}>`;
    return {
      prelude: '',
      left: L,
      right: R,
      result: `subgroup_matrix_result<f32, ${n}, ${m}>`,
      loadA: (off: string) => `subgroupMatrixLoad<${L}>(&As, ${off}, false, SA)`,
      loadB: (off: string) => `subgroupMatrixLoad<${R}>(&Bs, ${off}, false, SB)`,
      mma: (a: string, b: string, c: string) => `subgroupMatrixMultiplyAccumulate(${a}, ${b}, ${c})`,
      store: (off: string, v: string) => `subgroupMatrixStore(&Cs, ${off}, ${v}, false, ${n}u);`,
      initAcc: (_f: number) => '',
    };
  }
  // Result fragments live in workgroup memory (Ce: one m×n slot per fragment of every subgroup), each lane
  // owning elements lane + p·lanes; the fragment value is the slot's offset. Private arrays would be
  // indexed dynamically, which lavapipe lowers to select ladders that take minutes to compile.
  const per = (m * n) / x.lanes;
  const frags = x.fm * x.fn;
  return {
    prelude: `// emulated subgroup matrices: a fragment is its offset in workgroup memory (operands in As / Bs,
// results in Ce); every lane computes elements lane + p·${x.lanes} of the row-major ${m}×${n} result
var<workgroup> Ce: array<f32, ${x.sgm * x.sgn * frags * m * n}>;
// 0 at run time, unknown to the compiler: keeps the loops below rolled (unrolled, lavapipe took minutes
// to compile one kernel); set by main
var<private> sg_rolled: u32;
fn sg_mma(a: u32, b: u32, c: u32, lane: u32) -> u32 {
  for (var p = 0u; p < ${per}u + sg_rolled; p++) {
    let e = lane + p * ${x.lanes}u;
    let i = e / ${n}u;
    let j = e % ${n}u;
    var s = Ce[c + e];
    for (var t = 0u; t < ${k}u + sg_rolled; t++) { s = fma(f32(As[a + i * SA + t]), f32(Bs[b + t * SB + j]), s); }
    Ce[c + e] = s;
  }
  return c;
}
fn sg_store(off: u32, c: u32, lane: u32) {
  for (var p = 0u; p < ${per}u; p++) { Cs[off + lane + p * ${x.lanes}u] = Ce[c + lane + p * ${x.lanes}u]; }
}`,
    left: 'u32',
    right: 'u32',
    result: 'u32',
    initAcc: (f: number) =>
      `${f === 0 ? 'sg_rolled = u.tiles_m >> 31u;\n  ' : ''}acc[${f}] = (sgi * ${frags}u + ${f}u) * ${m * n}u;
  for (var p = 0u; p < ${per}u; p++) { Ce[acc[${f}] + lane + p * ${x.lanes}u] = 0.0; }`,
    loadA: (off: string) => off,
    loadB: (off: string) => off,
    mma: (a: string, b: string, c: string) => `sg_mma(${a}, ${b}, ${c}, lane)`,
    store: (off: string, v: string) => `sg_store(${off}, ${v}, lane);`,
  };
}

/** The complete kernel (after the runtime's binding header) for a GEMM spec whose tile has `mma`. */
export function mmaShader(spec: GemmSpec, x: MmaTile): (header: string) => string {
  const problem = mmaProblem(x);
  if (problem) throw new Error(`subgroup-matrix tile ${mmaKey(x)} is not a valid configuration: ${problem}`);
  if (spec.precision !== 'f16')
    throw new Error('subgroup-matrix GEMM tiles take f16 operands: use them with precision f16 only');
  // the text is built when the runtime compiles the pipeline (a cache miss), not at every dispatch
  return (header) => mmaWgsl(spec, x, header);
}

function mmaWgsl(spec: GemmSpec, x: MmaTile, header: string): string {
  const T = mmaThreads(x);
  const { bm, bn, bk } = mmaBlock(x);
  const { sa, sb } = strides(x);
  const { m: CM, n: CN, k: CK } = x.config;
  const v = vocabulary(x);
  const db = x.db === true;
  const A = stage('a', spec.a, bm, bk, T, 'f16', db);
  const B = stage('b', spec.b, bn, bk, T, 'f16', db);
  // double-buffered: the half being multiplied starts at AR / BR (kLoopDouble)
  const [ar, br] = db ? ['AR + ', 'BR + '] : ['', ''];
  const nsg = x.sgm * x.sgn;
  const frags: [number, number][] = [];
  for (let i = 0; i < x.fm; i++) for (let j = 0; j < x.fn; j++) frags.push([i, j]);
  const mul: string[] = [];
  for (let s = 0; s < x.steps; s++) {
    // fragments in function-scope arrays, as in Dawn's examples (not `let`-bound)
    mul.push(`{`, `  var fa: array<${v.left}, ${x.fm}>;`, `  var fb: array<${v.right}, ${x.fn}>;`);
    for (let i = 0; i < x.fm; i++)
      mul.push(`  fa[${i}] = ${v.loadA(`${ar}(am0 + ${i * CM}u) * SA + ${s * CK}u`)};`);
    for (let j = 0; j < x.fn; j++)
      mul.push(`  fb[${j}] = ${v.loadB(`${br}${s * CK * sb}u + bn0 + ${j * CN}u`)};`);
    for (const [i, j] of frags) {
      const f = i * x.fn + j;
      mul.push(`  acc[${f}] = ${v.mma(`fa[${i}]`, `fb[${j}]`, `acc[${f}]`)};`);
    }
    mul.push(`}`);
  }
  // the slot's element e: along the output's contiguous dimension for adjacent lanes
  const rc = spec.fast === 'm' ? { r: `e % ${CM}u`, c: `e / ${CM}u` } : { r: `e / ${CN}u`, c: `e % ${CN}u` };
  const epilogue = frags
    .map(([i, j], idx) => {
      const f = i * x.fn + j;
      return `  ${idx > 0 ? 'workgroupBarrier();\n  ' : ''}${v.store('slot', `acc[${f}]`)}
  workgroupBarrier();
  for (var p = 0u; p < ${(CM * CN) / x.lanes}u; p++) {
    let e = lane + p * ${x.lanes}u;
    let r = ${rc.r};
    let cc = ${rc.c};
    let m = m0 + am0 + ${i * CM}u + r;
    let n = n0 + bn0 + ${j * CN}u + cc;
    if (m < c.m && n < c.n) { store_c(c, m, n, Cs[slot + r * ${CN}u + cc]); }
  }`;
    })
    .join('\n');
  const sgIndex =
    nsg === 1
      ? `  let sgi = 0u;\n  let am0 = 0u;\n  let bn0 = 0u;\n  let slot = 0u;\n  let lane = lid;`
      : `  let sgi = lid / ${x.lanes}u;
  let lane = lid % ${x.lanes}u;
  let am0 = (sgi % ${x.sgm}u) * ${x.fm * CM}u;
  let bn0 = (sgi / ${x.sgm}u) * ${x.fn * CN}u;
  let slot = sgi * ${CM * CN}u;`;
  const directives = x.emulate
    ? 'enable f16;\n'
    : `enable f16;\nenable chromium_experimental_subgroup_matrix;\n${
        nsg > 1 ? `diagnostic(off, ${MMA_UNIFORMITY_RULE});\n` : ''
      }`;
  return `${directives}${header}
const BM = ${bm}u;
const BN = ${bn}u;
const BK = ${bk}u;
const SA = ${sa}u;
const SB = ${sb}u;
const AH = ${bm * sa}u;
const BH = ${bk * sb}u;
var<workgroup> As: array<f16, ${(db ? 2 : 1) * bm * sa}>;
var<workgroup> Bs: array<f16, ${(db ? 2 : 1) * bk * sb}>;
var<workgroup> Cs: array<f32, ${nsg * CM * CN}>;
${v.prelude}

${spec.ctx}
${spec.a.wgsl('a')}
${spec.a.load4?.('a') ?? ''}
${spec.b.wgsl('b')}
${spec.b.load4?.('b') ?? ''}
${spec.store}

@compute @workgroup_size(${T})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
${TILE_ORIGIN}
${sgIndex}
  var acc: array<${v.result}, ${frags.length}>;
${frags
  .map((_, f) => v.initAcc(f))
  .filter(Boolean)
  .map((l) => `  ${l}`)
  .join('\n')}
${(db ? kLoopDouble : kLoop)(A, B, mul)}
${epilogue}
}`;
}
