/**
 * Reductions: sum / max over whole tensors or over the rows of a [R, D] view, and the WGSL building
 * blocks the cosine family shares (chunk layout, workgroup tree reduction, row grids).
 *
 * Algorithm (two passes, CUB/tfjs-style "reduce by blocks, then reduce the partials"):
 *   pass 1: a row of D values is cut into chunks of CHUNK = WG · PER consecutive elements. A workgroup of
 *     WG = 256 invocations takes chunks wid.x, wid.x + nwg.x, ... of its row (the number of workgroups
 *     per row is chosen per adapter, see targetWorkgroups, and is at most MAX_PARTIALS); in a chunk,
 *     invocation t reads elements t, t + WG, ...,
 *     t + (PER − 1)·WG — every load instruction of a warp reads consecutive addresses (coalesced) and each
 *     invocation has PER independent loads in flight. Each invocation sums its PER values locally, adds
 *     that to its running value, and the workgroup combines its 256 values with a shared-memory tree
 *     (log2 256 = 8 levels). One partial per workgroup is written.
 *   pass 2: the same kernel run on the partials [R, W] with one workgroup per row (W ≤ MAX_PARTIALS =
 *     CHUNK, so one chunk) writes the result. When a row fits one chunk, pass 1 writes the result.
 * Float32 accuracy: values are summed in blocks of PER; an invocation adds up one block sum per chunk it
 * visits (a handful on a GPU), then a binary tree takes over, so the error grows like
 * O(PER + chunks per workgroup + log n) ulps instead of O(n): a 16M-element sum stays within ~1e-6.
 * Rows go in the y (and, beyond 65,535 rows, z) workgroup dimension. Rows of at most SMALL_ROW values
 * (e.g. many tiny rows) use one invocation per row instead (no idle 256-wide workgroups).
 */
import { main1d } from './common.js';

/** Invocations per reduction workgroup. */
export const RWG = 256;
/** Elements per invocation per chunk. */
export const PER = 8;
/** Elements per chunk (one workgroup's share of a row per loop step). */
export const CHUNK = RWG * PER;
/** Pass-1 workgroups per row at most (= partials per row; ≤ CHUNK so pass 2 is a single chunk). */
export const MAX_PARTIALS = 2048;
/** Rows this short use one invocation per row. */
export const SMALL_ROW = 32;

const MAX_DIM = 65535;

export type ReduceOp = 'sum' | 'max';

/** Identity and combine expression of an op. */
export const OPS: Record<ReduceOp, { ident: string; combine: (a: string, b: string) => string }> = {
  sum: { ident: '0.0', combine: (a, b) => `${a} + ${b}` },
  max: { ident: '-0x1.fffffep+127f', combine: (a, b) => `max(${a}, ${b})` },
};

/** Chunks of a row of d values. */
export function chunksOf(d: number): number {
  return Math.ceil(d / CHUNK);
}

/**
 * Pass-1 workgroups in all, by adapter: a GPU wants many resident workgroups per multiprocessor to hide
 * memory latency (4096 ≈ 31 per SM on an H200's 132); a CPU adapter (lavapipe, SwiftShader) runs
 * workgroups one after another on a few cores and pays ~50 µs for each workgroup's barriers, so few,
 * long workgroups are 4-6× faster there. Only the dispatch size changes, never the WGSL.
 */
export function targetWorkgroups(adapter: { isFallbackAdapter: boolean; architecture: string }): number {
  return adapter.isFallbackAdapter || /software|swiftshader|cpu/i.test(adapter.architecture) ? 64 : 4096;
}

/** Pass-1 workgroups per row for `rows` rows of d values, about `target` workgroups in all. */
export function partialsOf(d: number, rows: number, target: number): number {
  return Math.max(1, Math.min(chunksOf(d), MAX_PARTIALS, Math.ceil(target / rows)));
}

/** Workgroup counts (y, z) for `rows` rows (z only beyond 65,535 rows). */
export function rowGrid(rows: number): [number, number] {
  if (rows <= MAX_DIM) return [Math.max(rows, 1), 1];
  const z = Math.ceil(rows / MAX_DIM);
  return [Math.ceil(rows / z), z];
}

/** Entry point of a row-reduction kernel: defines `row`, `tid`, `wid`, `nwg`; returns for rows past R. */
export function mainRows(): string {
  return `@compute @workgroup_size(${RWG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) tid: u32) {
  let row = wid.y + wid.z * nwg.y;
  if (row >= u.R) { return; }`;
}

/**
 * A workgroup tree reduction: `fn ${name}(tid: u32, v: T) -> T` returns the combination of the 256
 * values to every invocation. Must be called from uniform control flow.
 */
export function treeReduce(name: string, type: string, combine: (a: string, b: string) => string): string {
  return `var<workgroup> ${name}_sh: array<${type}, ${RWG}>;
fn ${name}(tid: u32, v: ${type}) -> ${type} {
  ${name}_sh[tid] = v;
  workgroupBarrier();
  for (var s = ${RWG / 2}u; s > 0u; s = s >> 1u) {
    if (tid < s) { ${name}_sh[tid] = ${combine(`${name}_sh[tid]`, `${name}_sh[tid + s]`)}; }
    workgroupBarrier();
  }
  return ${name}_sh[0];
}`;
}

/**
 * The loop over a workgroup's chunks of its row. `body(j)` is WGSL that folds element j (offset in the
 * row) into the invocation's local value(s); `flush` adds the locals into the running value(s). Full
 * chunks skip the bounds check so their PER loads can all be in flight at once.
 */
export function chunkLoop(body: (j: string) => string, flush: string, reset: string): string {
  return `  for (var c = wid.x; c < u.nChunks; c = c + nwg.x) {
    let start = c * ${CHUNK}u + tid;
    ${reset}
    if ((c + 1u) * ${CHUNK}u <= u.D) {
      for (var k = 0u; k < ${PER}u; k = k + 1u) {
        let j = start + k * ${RWG}u;
        ${body('j')}
      }
    } else {
      for (var k = 0u; k < ${PER}u; k = k + 1u) {
        let j = start + k * ${RWG}u;
        if (j < u.D) { ${body('j')} }
      }
    }
    ${flush}
  }`;
}

/**
 * One reduction pass over x viewed as [R, D]. `final`: write out[row] = result · scale; otherwise write
 * the workgroup's partial to out[row · nwg.x + wid.x].
 * Uniforms: D, nChunks, R, scale. Dispatch: [partials (or 1 when final), rowGrid(R)].
 */
export function reduceRowsWGSL(op: ReduceOp, final: boolean): (h: string) => string {
  const { ident, combine } = OPS[op];
  return (h) => `${h}
${treeReduce('wg_reduce', 'f32', combine)}
${mainRows()}
  let base = row * u.D;
  var acc: f32 = ${ident};
  var loc: f32 = ${ident};
${chunkLoop((j) => `loc = ${combine('loc', `x[base + ${j}]`)};`, `acc = ${combine('acc', 'loc')};`, `loc = ${ident};`)}
  let r = wg_reduce(tid, acc);
  if (tid == 0u) {
    ${final ? 'out[row] = r * u.scale;' : 'out[row * nwg.x + wid.x] = r;'}
  }
}`;
}

/** One invocation per row for short rows (D ≤ SMALL_ROW). Uniforms: D, R, scale. Dispatch: grid1d(R). */
export function reduceSmallRowsWGSL(op: ReduceOp): (h: string) => string {
  const { ident, combine } = OPS[op];
  return (h) => `${h}
${main1d()}
  if (i >= u.R) { return; }
  var acc: f32 = ${ident};
  for (var j = 0u; j < u.D; j = j + 1u) { acc = ${combine('acc', 'x[i * u.D + j]')}; }
  out[i] = acc * u.scale;
}`;
}

/** Gradient of a row sum: dx[i] = g[i / D] · scale. Uniforms: n, D, scale. Dispatch: grid1d(n). */
export function broadcastRowsWGSL(): (h: string) => string {
  return (h) => `${h}
${main1d()}
  if (i >= u.n) { return; }
  dx[i] = g[i / u.D] * u.scale;
}`;
}
