/**
 * Tuned tile tables (engine/tile-table.ts): every GEMM asks for its tile under a key that names it, a table
 * entry for that key decides the tile (and so the dispatch's grid), and nothing else changes: the result is
 * the convolution's, whatever tile runs it. Tables from another adapter, another precision or with unknown
 * tiles are refused or ignored, as the module promises.
 */
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { mergeTileTables } from '../../bench/tune.js';
import {
  adapterIdentity,
  backward,
  checkTileTable,
  conv2d,
  convTranspose2d,
  convTuning,
  gemmTileFor,
  gemmTileSource,
  matmul,
  runtime,
  setFlags,
  sum,
  TILE_TABLE_VERSION,
  type TileTable,
  tensor,
  traceGemmKeys,
  useTileTable,
} from '../../src/engine/index.js';
import { GEMM_TILES } from '../../src/shaders/matmul.js';
import { type Conv, convRef, relErr } from '../helpers/conv-ref.js';
import { gpu } from '../helpers/gpu.js';
import { randn } from '../helpers/gradcheck.js';

beforeAll(async () => {
  await gpu();
});

afterEach(() => {
  useTileTable(null);
  convTuning.tile = null;
});

function table(tiles: Record<string, string>, o: Partial<TileTable> = {}): TileTable {
  return {
    version: TILE_TABLE_VERSION,
    adapter: adapterIdentity(runtime().gpu.report),
    precision: 'f32',
    made: 'test',
    tiles,
    ...o,
  };
}

// a 3×3 conv whose forward GEMM is M = 2·8·8 = 128 pixels × N = 64 channels: 2 tiles of 64×64, 8 of 32×32
const c: Conv = { n: 2, ci: 8, h: 8, w: 8, co: 64, kh: 3, kw: 3, s: 1, p: 1 };
const FWD_KEY = 'fwd:2x8x8x8x64x3x3x1x1';

/** The conv forward's output and the workgroup grid of its GEMM dispatch. */
async function forward(): Promise<{ y: Float32Array; grid: string }> {
  const x = tensor(randn(2 * 8 * 8 * 8, 1), [2, 8, 8, 8]);
  const w = tensor(randn(64 * 8 * 9, 2, 0.2), [64, 8, 3, 3]);
  const log = vi.spyOn(console, 'log').mockImplementation(() => {});
  const restore = setFlags({ LOG_DISPATCHES: true });
  try {
    const y = conv2d(x, w, null, { padding: 1 });
    const line = log.mock.calls.map((a) => String(a[0])).find((l) => l.startsWith('dispatch conv2d_fwd'));
    const out = await y.read();
    y.dispose();
    return { y: out, grid: line ?? 'none' };
  } finally {
    restore();
    log.mockRestore();
    x.dispose();
    w.dispose();
  }
}

describe('GEMM keys', () => {
  it('every conv pass, the transposed conv and matmul ask for a tile under a key naming their sizes', async () => {
    const x = tensor(randn(2 * 8 * 8 * 8, 1), [2, 8, 8, 8]);
    const w = tensor(randn(64 * 8 * 9, 2, 0.2), [64, 8, 3, 3]);
    w.requiresGrad = true;
    x.requiresGrad = true;
    const d = tensor(randn(64 * 16 * 4, 3, 0.2), [64, 16, 2, 2]);
    d.requiresGrad = true;
    const a = tensor(randn(6 * 5, 4), [6, 5]);
    const b = tensor(randn(5 * 7, 5), [5, 7]);
    const { keys } = traceGemmKeys(() => {
      const y = convTranspose2d(conv2d(x, w, null, { padding: 1 }), d);
      backward(sum(y));
      matmul(a, b).dispose();
      y.dispose();
    });
    await runtime().sync();
    expect(keys).toContain(FWD_KEY);
    expect(keys).toContain('dgrad:2x8x8x8x64x3x3x1x1');
    expect(keys).toContain('wgrad:2x8x8x8x64x3x3x1x1');
    // the transposed conv under the geometry of the 2×2 s2 conv it transposes (16×16 → 8×8, 16 → 64)
    expect(keys).toContain('deconv:2x16x16x16x64x2x2x2x0');
    expect(keys).toContain('deconv-dx:2x16x16x16x64x2x2x2x0');
    expect(keys.some((k) => k.startsWith('matmul:6x7x5x'))).toBe(true);
    for (const t of [x, w, d, a, b]) t.dispose();
  });
});

describe('a tuned table', () => {
  it("decides the tile of the GEMMs it lists, and the result stays the convolution's", async () => {
    const plain = await forward();
    const flagged = await (async () => {
      const restore = setFlags({ GEMM_TILE: 't32x32' });
      try {
        return await forward();
      } finally {
        restore();
      }
    })();
    expect(flagged.grid).not.toBe(plain.grid); // the tile shows in the grid
    useTileTable(table({ [FWD_KEY]: 't32x32' }));
    const tuned = await forward();
    expect(tuned.grid).toBe(flagged.grid);
    const want = convRef(
      c,
      randn(2 * 8 * 8 * 8, 1),
      randn(64 * 8 * 9, 2, 0.2),
      null,
      new Float32Array(2 * 64 * 64),
    );
    expect(relErr(tuned.y, want.y)).toBeLessThan(1e-5);
    expect(relErr(plain.y, want.y)).toBeLessThan(1e-5);
    // another GEMM (not listed) keeps the flag's tile
    expect(gemmTileFor(128, 64, 'fwd:1x1x1x1x1x1x1x1x0')).toBe(GEMM_TILES.t64x64);
    expect(gemmTileSource()).toMatch(/^tuned table: 1 GEMMs \(test\), others GEMM_TILE=t64x64$/);
  });

  it('is not consulted for GEMMs of another precision, nor over a tile forced by convTuning', async () => {
    useTileTable(table({ [FWD_KEY]: 't32x32' }, { precision: 'f16' }));
    expect(gemmTileFor(128, 64, FWD_KEY)).toBe(GEMM_TILES.t64x64);
    expect(gemmTileSource()).toBe('GEMM_TILE=t64x64');
    useTileTable(table({ [FWD_KEY]: 't32x32' }));
    expect(gemmTileFor(128, 64, FWD_KEY)).toBe(GEMM_TILES.t32x32);
    convTuning.tile = GEMM_TILES.t128x128!;
    expect(gemmTileFor(128, 64, FWD_KEY)).toBe(GEMM_TILES.t128x128);
    // the key is still traced under a forced tile (rdpp tune forces tiles while it collects keys)
    expect(traceGemmKeys(() => gemmTileFor(128, 64, FWD_KEY)).keys).toEqual([FWD_KEY]);
  });

  it('from another adapter is refused, with what to do', () => {
    expect(() => useTileTable(table({}, { adapter: 'node: nvidia / hopper / H200' }))).toThrow(
      /measured on 'node: nvidia \/ hopper \/ H200', not on this adapter .*run `rdpp tune` here/,
    );
  });

  it('read from a file is checked: version, precision and every tile name', () => {
    const good = table({ [FWD_KEY]: 't128x64' });
    expect(checkTileTable(JSON.parse(JSON.stringify(good)), 'f.json')).toEqual(good);
    expect(() => checkTileTable([1], 'f.json')).toThrow(/f\.json: not a tile table \(version undefined/);
    expect(() => checkTileTable({ ...good, version: 2 }, 'f.json')).toThrow(/version 2, expected 1/);
    expect(() => checkTileTable({ ...good, precision: 'bf16' }, 'f.json')).toThrow(/precision bf16/);
    expect(() => checkTileTable({ ...good, tiles: { [FWD_KEY]: 't7x7' } }, 'f.json')).toThrow(
      /GEMM fwd:2x8x8x8x64x3x3x1x1: unknown tile 't7x7' \(known: t64x64, t128x128/,
    );
    expect(() => checkTileTable(null, 'f.json')).toThrow(/make one with `rdpp tune` or delete the file/);
  });
});

describe('mergeTileTables', () => {
  it('adds a new network’s GEMMs to a table, replaces a re-tuned one’s, and starts over for another adapter', () => {
    const a = table({ k1: 't64x64', k2: 't32x32' }, { made: 'wrn50 256² train b16; tiles all; 2026-12-01' });
    const b = table(
      { k2: 't128x128', k3: 't128x64' },
      { made: 'resnet18 64² infer b1; tiles all; 2026-12-02' },
    );
    const ab = mergeTileTables(a, b);
    expect(ab.tiles).toEqual({ k1: 't64x64', k2: 't128x128', k3: 't128x64' });
    expect(ab.made).toBe(`${a.made} | ${b.made}`);
    const again = mergeTileTables(ab, { ...a, made: 'wrn50 256² train b16; tiles all; 2026-12-03' });
    expect(again.made).toBe(`${b.made} | wrn50 256² train b16; tiles all; 2026-12-03`);
    expect(mergeTileTables(a, { ...b, adapter: 'elsewhere' })).toEqual({ ...b, adapter: 'elsewhere' });
    expect(mergeTileTables(a, { ...b, precision: 'f16' }).tiles).toEqual(b.tiles);
  });
});
