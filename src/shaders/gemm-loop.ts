/**
 * The parts of a GEMM kernel both cores share — the SIMT core (matmul.ts) and the subgroup-matrix core
 * (mma.ts) differ in how they stage a tile and multiply it, not in how a workgroup finds its tile or walks
 * K: the tile origin from the linearised grid, and the K loop that stages the registers loaded for this
 * tile while the loaders fetch the next one (register prefetch), then runs the core's multiply — with one
 * staging buffer per operand (kLoop) or two (kLoopDouble).
 */

/** What a core generates for one operand: declarations, the per-outer-step refresh, loads, stores. */
export interface Staging {
  decl: string[];
  outer: string[];
  load: string[];
  put: string[];
}

/** Lines indented by n spaces, joined. */
export function indent(lines: string[], n: number): string {
  return lines.map((l) => `${' '.repeat(n)}${l}`).join('\n');
}

/** The workgroup's context `c` and tile origin (m0, n0); workgroups past the edges return. */
export const TILE_ORIGIN = `  let c = make_ctx(wid.z);
  let tile = wid.x + wid.y * nwg.x;
  let mt = tile % u.tiles_m;
  let nt = tile / u.tiles_m;
  let m0 = mt * BM;
  let n0 = nt * BN;
  if (nt >= u.tiles_n || m0 >= c.m || n0 >= c.n) { return; }`;

/** The loop's state: the outer and inner K index of the first tile, and the operands' declarations. */
function kStart(A: Staging, B: Staging): string {
  return `  let kin = max(c.k_inner, 1u);
  var ko = c.t0 / kin;
  var ki = c.t0 % kin;
${A.decl.join('\n')}
${B.decl.join('\n')}`;
}

/**
 * Advance to the next K tile (the outer index, and the loaders' per-outer values, when the inner one
 * wraps) and load it into registers; indented for the body of an `if` at depth 4.
 */
function prefetchNext(A: Staging, B: Staging): string {
  return `      ki = ki + 1u;
      if (ki == kin) {
        ki = 0u;
        ko = ko + 1u;
${indent(A.outer, 8)}
${indent(B.outer, 8)}
      }
${indent(A.load, 6)}
${indent(B.load, 6)}`;
}

/**
 * The K loop over tiles t0..t1 of this workgroup's slice: stage the loaded registers, prefetch the next
 * tile, then `multiply` the staged tile.
 */
export function kLoop(A: Staging, B: Staging, multiply: string[]): string {
  return `${kStart(A, B)}
  if (c.t0 < c.t1) {
${indent(A.load, 4)}
${indent(B.load, 4)}
  }
  for (var t = c.t0; t < c.t1; t = t + 1u) {
    workgroupBarrier();
${indent(A.put, 4)}
${indent(B.put, 4)}
    workgroupBarrier();
    if (t + 1u < c.t1) {
${prefetchNext(A, B)}
    }
${indent(multiply, 4)}
  }`;
}

/**
 * kLoop with two staging buffers per operand (double buffering, as CUTLASS's SIMT mainloop): tile t is
 * multiplied out of half `half` while the registers prefetched for tile t+1 are stored into the other
 * half, so one barrier per K tile suffices where kLoop needs two (one before overwriting the tile, one
 * before reading it). The price is twice the workgroup memory. The operands' `put` lines store at offsets
 * AW / BW (in vec4s) and `multiply` reads at AR / BR; AH / BH are the sizes of one half.
 */
export function kLoopDouble(A: Staging, B: Staging, multiply: string[]): string {
  return `${kStart(A, B)}
  var half = 0u;
  if (c.t0 < c.t1) {
${indent(A.load, 4)}
${indent(B.load, 4)}
    let AW = 0u;
    let BW = 0u;
${indent(A.put, 4)}
${indent(B.put, 4)}
  }
  workgroupBarrier();
  for (var t = c.t0; t < c.t1; t = t + 1u) {
    let more = t + 1u < c.t1;
    if (more) {
${prefetchNext(A, B)}
    }
    let AR = half * AH;
    let BR = half * BH;
${indent(multiply, 4)}
    if (more) {
      let AW = (1u - half) * AH;
      let BW = (1u - half) * BH;
${indent(A.put, 6)}
${indent(B.put, 6)}
    }
    // every read of this half and every store into the other are done before either is reused
    workgroupBarrier();
    half = 1u - half;
  }`;
}
