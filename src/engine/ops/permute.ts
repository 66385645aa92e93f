/**
 * Data movement for the SSOT losses (spec §4.2):
 * - row permutation: y[b] = x[perm[b]] for x viewed as [B, D] (SSOT pairs each sample with another one
 *   of the batch); the gradient is the inverse permutation: dx[perm[b]] = g[b];
 * - batched transpose of the last two axes, [B, R, C] → [B, C, R] (a feature map [B, C, H·W] becomes a
 *   cloud of H·W points in C dimensions for `--ssot pairwise`); its gradient is the same transpose of g.
 *   The kernel moves 32×32 tiles through workgroup memory so that both the reads (along C) and the
 *   writes (along R) are contiguous across a warp; the tile row is padded by one to avoid bank conflicts.
 */
import { grid1d, main1d } from '../../shaders/common.js';
import { record } from '../autograd.js';
import { runtime } from '../runtime.js';
import { empty, type Tensor, tensor } from '../tensor.js';

const TILE = 32;
const ROWS = 8; // invocations per tile column: each one moves TILE / ROWS elements

/**
 * A row permutation held on the GPU, with its inverse (the gradient's), as f32 indices [B]: what a
 * captured training step takes as an input, since data uploaded inside a graph is replayed as captured.
 */
export interface RowPermutation {
  perm: Tensor;
  inverse: Tensor;
}

function checkPermutation(perm: readonly number[], b: number, what: string): void {
  const sorted = [...perm].sort((p, q) => p - q);
  if (perm.length !== b || sorted.some((v, i) => v !== i))
    throw new Error(`permuteRows: [${perm.join(', ')}] is not a permutation of 0..${b - 1} for ${what}`);
}

/** inv[perm[i]] = i */
function inversePermutation(perm: readonly number[]): number[] {
  const inv = new Array<number>(perm.length);
  perm.forEach((p, i) => {
    inv[p] = i;
  });
  return inv;
}

/** `perm` and its inverse uploaded (the caller disposes both). */
export function rowPermutation(perm: readonly number[]): RowPermutation {
  checkPermutation(perm, perm.length, `${perm.length} rows`);
  const n = [perm.length];
  return {
    perm: tensor(Float32Array.from(perm), n),
    inverse: tensor(Float32Array.from(inversePermutation(perm)), n),
  };
}

function gatherRows(x: Tensor, idx: Tensor): Tensor {
  const b = x.shape[0]!;
  const d = x.size / b;
  const y = empty(x.shape);
  runtime().run({
    name: 'gather_rows',
    inputs: [
      { name: 'x', buffer: x.buffer },
      { name: 'perm', buffer: idx.buffer },
    ],
    outputs: [{ name: 'y', buffer: y.buffer }],
    uniforms: { n: ['u32', x.size], d: ['u32', d] },
    workgroups: grid1d(x.size),
    wgsl: (h) => `${h}
${main1d()}
  if (i >= u.n) { return; }
  let row = i / u.d;
  let col = i % u.d;
  y[i] = x[u32(perm[row]) * u.d + col];
}`,
  });
  return y;
}

/** gatherRows with indices uploaded for this one call. */
function gatherHost(x: Tensor, perm: readonly number[]): Tensor {
  const idx = tensor(Float32Array.from(perm), [perm.length]);
  const y = gatherRows(x, idx);
  idx.dispose();
  return y;
}

/** y[b] = x[perm[b]] along the first axis; `perm` as numbers or on the GPU (rowPermutation). */
export function permuteRows(x: Tensor, perm: readonly number[] | RowPermutation): Tensor {
  const b = x.shape[0] ?? 0;
  if (Array.isArray(perm)) {
    checkPermutation(perm, b, x.describe());
    const inv = inversePermutation(perm);
    return record('permute_rows', gatherHost(x, perm), [x], (g) => [gatherHost(g, inv)], []);
  }
  const { perm: p, inverse } = perm as RowPermutation;
  if (p.size !== b || inverse.size !== b)
    throw new Error(
      `permuteRows: a permutation of ${p.size} rows (inverse ${inverse.size}) for ${x.describe()}`,
    );
  return record('permute_rows', gatherRows(x, p), [x], (g) => [gatherRows(g, inverse)], []);
}

function transposeKernel(x: Tensor, b: number, r: number, c: number): Tensor {
  const y = empty([b, c, r]);
  const tilesC = Math.ceil(c / TILE);
  const tilesR = Math.ceil(r / TILE);
  const tiles = tilesC * tilesR * b;
  const gx = Math.min(tiles, 65535);
  runtime().run({
    name: 'transpose_last2',
    inputs: [{ name: 'x', buffer: x.buffer }],
    outputs: [{ name: 'y', buffer: y.buffer }],
    uniforms: {
      R: ['u32', r],
      C: ['u32', c],
      tilesC: ['u32', tilesC],
      tilesR: ['u32', tilesR],
      tiles: ['u32', tiles],
    },
    workgroups: [gx, Math.ceil(tiles / gx)],
    wgsl: (h) => `${h}
var<workgroup> tile: array<f32, ${TILE * (TILE + 1)}>;
@compute @workgroup_size(${TILE}, ${ROWS})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
  let t = wid.x + wid.y * nwg.x;
  if (t >= u.tiles) { return; }
  let tc = t % u.tilesC;
  let tr = (t / u.tilesC) % u.tilesR;
  let bi = t / (u.tilesC * u.tilesR);
  let base = bi * u.R * u.C;
  // read rows r0..r0+TILE of x[bi] along c (contiguous)
  for (var k = lid.y; k < ${TILE}u; k = k + ${ROWS}u) {
    let row = tr * ${TILE}u + k;
    let col = tc * ${TILE}u + lid.x;
    if (row < u.R && col < u.C) { tile[k * ${TILE + 1}u + lid.x] = x[base + row * u.C + col]; }
  }
  workgroupBarrier();
  // write rows c0..c0+TILE of y[bi] along r (contiguous)
  for (var k = lid.y; k < ${TILE}u; k = k + ${ROWS}u) {
    let col = tc * ${TILE}u + k;
    let row = tr * ${TILE}u + lid.x;
    if (row < u.R && col < u.C) { y[base + col * u.R + row] = tile[lid.x * ${TILE + 1}u + k]; }
  }
}`,
  });
  return y;
}

/** y[b, j, i] = x[b, i, j] for x [B, R, C] → y [B, C, R]. */
export function transposeLast2(x: Tensor): Tensor {
  if (x.rank !== 3) throw new Error(`transposeLast2: expected a 3-D tensor [B, R, C], got ${x.describe()}`);
  const [b, r, c] = x.shape as [number, number, number];
  return record(
    'transpose_last2',
    transposeKernel(x, b, r, c),
    [x],
    (g) => [transposeKernel(g, b, c, r)],
    [],
  );
}
