/**
 * Shared WGSL building blocks: launch grids larger than 65,535 workgroups, and index helpers so that no
 * kernel writes NCHW offset arithmetic by hand.
 *
 * Grids: a 1-D problem of n invocations is dispatched as a 2-D grid of workgroups of `wg` threads;
 * `LINEAR_INDEX` recovers the flat index inside the kernel from `global_invocation_id` and
 * `num_workgroups` (kernels then guard `if (i >= n) { return; }`).
 */

/** Default threads per workgroup for elementwise kernels (fits every adapter's 256-invocation floor). */
export const WG = 256;

/** Workgroup counts for `n` invocations of `wg` threads (2-D when n exceeds one dimension's limit). */
export function grid1d(n: number, wg = WG, maxPerDim = 65535): [number, number] {
  const groups = Math.ceil(n / wg);
  if (groups <= maxPerDim) return [Math.max(groups, 1), 1];
  const y = Math.ceil(groups / maxPerDim);
  return [Math.ceil(groups / y), y];
}

/** Entry point signature + flat index for kernels launched with grid1d. */
export function main1d(wg = WG): string {
  return `@compute @workgroup_size(${wg})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * ${wg}u;`;
}

/**
 * `e`, a WGSL value of type `from`, as type `to` (`f32`, `f16`, `vec4<f32>`, …): a conversion only where
 * the types differ, so a kernel generated for f32 storage is the same text as before f16 storage existed.
 * Widening f16 → f32 is exact; narrowing rounds (to nearest even on every GPU we know; WGSL allows either
 * neighbour).
 */
export function convert(e: string, from: string, to: string): string {
  return from === to ? e : `${to}(${e})`;
}

/**
 * An index helper (after onnxruntime's IndicesHelper): for a tensor `name` whose dims are the WGSL
 * expressions `dims` (usually uniforms), generates
 *   fn <name>_at(i0: u32, ..., ik: u32) -> u32      (row-major offset)
 * and
 *   fn <name>_idx(offset: u32) -> array<u32, k+1>   (offset -> indices).
 */
export function indexer(name: string, dims: string[]): string {
  const k = dims.length;
  const args = dims.map((_, j) => `i${j}: u32`).join(', ');
  let off = 'i0';
  for (let j = 1; j < k; j++) off = `(${off}) * (${dims[j]}) + i${j}`;
  const idx: string[] = [];
  idx.push(`  var r = o;`);
  idx.push(`  var out: array<u32, ${k}>;`);
  for (let j = k - 1; j > 0; j--) idx.push(`  out[${j}] = r % (${dims[j]}); r = r / (${dims[j]});`);
  idx.push(`  out[0] = r;`);
  return `fn ${name}_at(${args}) -> u32 { return ${off}; }
fn ${name}_idx(o: u32) -> array<u32, ${k}> {
${idx.join('\n')}
  return out;
}`;
}
