/**
 * Separable gaussian blur with scipy.ndimage's 'reflect' boundary, on planes of [planes, H, W]
 * (spec §7.5: σ = 4, radius 16, 33 taps, applied to the 256×256 anomaly maps).
 *
 * Two 1-D passes, as scipy does them (axis H first, then axis W), each a correlation with the 2R + 1
 * normalised weights `kern` (a storage buffer computed in float64 on the CPU). Out-of-range source indices
 * are reflected with the edge sample repeated — period 2n: j ↦ j mod 2n, then 2n − 1 − j for the upper
 * half — which is what scipy does when the radius exceeds the image (it keeps reflecting).
 *
 * Tiled kernels (R ≤ MAX_TILED_RADIUS; R is compiled in, so the tile and the tap loop have fixed sizes):
 *   - vertical pass: a workgroup of 256 invocations owns a 64-row × 32-column output tile; it stages the
 *     (64 + 2R) × 32 source rows (reflected row indices) in workgroup memory with coalesced 128-byte row
 *     loads, then each invocation produces 8 outputs of one column from workgroup memory (consecutive
 *     invocations read consecutive banks). Every source sample is read from global memory once per tile
 *     instead of 2R + 1 times.
 *   - horizontal pass: a workgroup owns 8 rows × 128 columns and stages 8 × (128 + 2R) samples (reflected
 *     column indices), each invocation producing 2 × 2 outputs.
 * Workgroups are numbered flat over (plane, tile row, tile column) and launched as a 2-D grid, so any
 * number of planes fits the 65,535-per-dimension limit.
 *
 * Direct kernel (any radius, the fallback when the tile would not fit the 16 KiB of workgroup memory
 * every adapter has): one invocation per output reading its 2R + 1 taps straight from global memory.
 */
import { indexer, main1d } from './common.js';

/** Largest radius served by the tiled kernels: (64 + 2R)·32 + 2R + 1 floats must fit 16 KiB. */
export const MAX_TILED_RADIUS = 24;
/** Threads per tiled workgroup. */
export const BLUR_WG = 256;
/** Vertical-pass tile: rows × columns. */
export const V_TILE = { rows: 64, cols: 32 } as const;
/** Horizontal-pass tile: rows × columns. */
export const H_TILE = { rows: 8, cols: 128 } as const;

const REFLECT = `// scipy 'reflect' (d c b a | a b c d | d c b a), repeating with period 2n for any distance
fn refl(j: i32, n: i32) -> i32 {
  if (j >= 0 && j < n) { return j; }
  let p = 2 * n;
  var m = j % p;
  if (m < 0) { m += p; }
  if (m >= n) { m = p - 1 - m; }
  return m;
}`;

/** Shared prologue of the tiled kernels: find this workgroup's tile, stage the weights. */
function tilePrologue(taps: number): string {
  return `@compute @workgroup_size(${BLUR_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let g = wid.x + wid.y * nwg.x;
  if (g >= u.groups) { return; }
  let per_plane = u.tiles_x * u.tiles_y;
  let plane = g / per_plane;
  let rem = g % per_plane;
  let tile_row = rem / u.tiles_x;
  let tile_col = rem % u.tiles_x;
  let base = plane * u.h * u.w;
  for (var k = lid; k < ${taps}u; k += ${BLUR_WG}u) { wts[k] = kern[k]; }`;
}

/**
 * Tiled vertical pass (along H). Bindings: inputs `src`, `kern` (the weights); output `dst`; uniforms groups, tiles_x,
 * tiles_y, h, w (tiles_x = ⌈W/32⌉, tiles_y = ⌈H/64⌉).
 */
export function blurTiledVWgsl(header: string, r: number): string {
  const { rows, cols } = V_TILE;
  const taps = 2 * r + 1;
  const staged = (rows + 2 * r) * cols;
  const perThread = (rows * cols) / BLUR_WG;
  return `${header}
${REFLECT}
var<workgroup> tile: array<f32, ${staged}>;
var<workgroup> wts: array<f32, ${taps}>;
${tilePrologue(taps)}
  let row0 = tile_row * ${rows}u;
  let col0 = tile_col * ${cols}u;
  for (var k = lid; k < ${staged}u; k += ${BLUR_WG}u) {
    let col = col0 + k % ${cols}u;
    var v = 0.0;
    if (col < u.w) {
      let row = u32(refl(i32(row0 + k / ${cols}u) - ${r}, i32(u.h)));
      v = src[base + row * u.w + col];
    }
    tile[k] = v;
  }
  workgroupBarrier();
  let c = lid % ${cols}u;
  let col = col0 + c;
  if (col >= u.w) { return; }
  let first = (lid / ${cols}u) * ${perThread}u;
  for (var j = 0u; j < ${perThread}u; j++) {
    let lr = first + j;
    let row = row0 + lr;
    if (row >= u.h) { break; }
    var acc = 0.0;
    for (var t = 0u; t < ${taps}u; t++) { acc += wts[t] * tile[(lr + t) * ${cols}u + c]; }
    dst[base + row * u.w + col] = acc;
  }
}`;
}

/**
 * Tiled horizontal pass (along W). Same bindings as the vertical pass; tiles_x = ⌈W/128⌉,
 * tiles_y = ⌈H/8⌉.
 */
export function blurTiledHWgsl(header: string, r: number): string {
  const { rows, cols } = H_TILE;
  const taps = 2 * r + 1;
  const width = cols + 2 * r;
  const lanes = BLUR_WG / (rows / 2); // invocations per row group: each covers 2 rows × 2 columns
  return `${header}
${REFLECT}
var<workgroup> tile: array<f32, ${rows * width}>;
var<workgroup> wts: array<f32, ${taps}>;
${tilePrologue(taps)}
  let row0 = tile_row * ${rows}u;
  let col0 = tile_col * ${cols}u;
  for (var k = lid; k < ${rows * width}u; k += ${BLUR_WG}u) {
    let row = row0 + k / ${width}u;
    var v = 0.0;
    if (row < u.h) {
      let col = u32(refl(i32(col0 + k % ${width}u) - ${r}, i32(u.w)));
      v = src[base + row * u.w + col];
    }
    tile[k] = v;
  }
  workgroupBarrier();
  let cx = lid % ${lanes}u;
  let ry = lid / ${lanes}u;
  for (var a = 0u; a < 2u; a++) {
    let lr = ry + a * ${rows / 2}u;
    let row = row0 + lr;
    if (row >= u.h) { continue; }
    for (var b = 0u; b < 2u; b++) {
      let lc = cx + b * ${lanes}u;
      let col = col0 + lc;
      if (col >= u.w) { continue; }
      var acc = 0.0;
      for (var t = 0u; t < ${taps}u; t++) { acc += wts[t] * tile[lr * ${width}u + lc + t]; }
      dst[base + row * u.w + col] = acc;
    }
  }
}`;
}

/**
 * Direct pass along H (`axis` 'v') or W ('h') for any radius: inputs `src`, `kern`; output `dst`;
 * uniforms n (= planes·h·w), planes, h, w, r. Launched with grid1d(n).
 */
export function blurDirectWgsl(header: string, axis: 'v' | 'h'): string {
  const [len, pos, at] =
    axis === 'v'
      ? ['u.h', 'id[1]', 'src_at(id[0], u32(j), id[2])']
      : ['u.w', 'id[2]', 'src_at(id[0], id[1], u32(j))'];
  return `${header}
${REFLECT}
${indexer('src', ['u.planes', 'u.h', 'u.w'])}
${main1d()}
  if (i >= u.n) { return; }
  let id = src_idx(i);
  let r = i32(u.r);
  var acc = 0.0;
  for (var t = 0; t <= 2 * r; t++) {
    let j = refl(i32(${pos}) + t - r, i32(${len}));
    acc += kern[t] * src[${at}];
  }
  dst[i] = acc;
}`;
}
