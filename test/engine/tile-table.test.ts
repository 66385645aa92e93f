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
  conv2dBackwardWeight,
  convTranspose2d,
  convTuning,
  gemmTileFor,
  gemmTileSource,
  matmul,
  parseTileChoice,
  runtime,
  setFlags,
  sum,
  TILE_TABLE_VERSION,
  type TileTable,
  tensor,
  tileChoice,
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
  convTuning.splits = null;
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

describe('a fixed split count', () => {
  const WGRAD_KEY = 'wgrad:2x8x8x8x64x3x3x1x1';

  /** The weight gradient of `c`: its values, the split count it ran with, whether a slice sum ran. */
  async function wgrad(): Promise<{ dw: Float32Array; splits: number | undefined; sum: boolean }> {
    const x = tensor(randn(2 * 8 * 8 * 8, 1), [2, 8, 8, 8]);
    const gy = tensor(randn(2 * 64 * 64, 3), [2, 64, 8, 8]);
    const log = vi.spyOn(console, 'log').mockImplementation(() => {});
    const restore = setFlags({ LOG_DISPATCHES: true });
    try {
      const { result, splits } = traceGemmKeys(() =>
        conv2dBackwardWeight(x, gy, [64, 8, 3, 3], { padding: 1 }),
      );
      const sum = log.mock.calls.some((a) => String(a[0]).startsWith('dispatch splitk_sum'));
      const dw = await result.read();
      result.dispose();
      return { dw, splits: splits[WGRAD_KEY], sum };
    } finally {
      restore();
      log.mockRestore();
      x.dispose();
      gy.dispose();
    }
  }

  it("from the table decides how K is split (none, or exactly N slices), and dw stays the conv's", async () => {
    const before = convTuning.minKTilesPerSplit;
    convTuning.minKTilesPerSplit = 1; // K = 2·8·8 = 128 is 8 K tiles: split 8 ways by the engine's rule
    try {
      const want = convRef(
        c,
        randn(2 * 8 * 8 * 8, 1),
        new Float32Array(64 * 8 * 9),
        null,
        randn(2 * 64 * 64, 3),
      ).dw;
      const auto = await wgrad();
      expect(auto.splits).toBe(8);
      expect(auto.sum).toBe(true);
      useTileTable(table({ [WGRAD_KEY]: 't64x64/s1' }));
      const one = await wgrad();
      expect(one.splits).toBe(1);
      expect(one.sum).toBe(false);
      useTileTable(table({ [WGRAD_KEY]: 't64x64/s3' }));
      const three = await wgrad();
      expect(three.splits).toBe(3);
      expect(three.sum).toBe(true);
      for (const r of [auto, one, three]) expect(relErr(r.dw, want)).toBeLessThan(1e-5);
      // not over a forced tile (its split is the engine's), and convTuning.splits (rdpp tune) wins
      convTuning.tile = GEMM_TILES.t64x64!;
      expect((await wgrad()).splits).toBe(8);
      convTuning.splits = 2;
      expect((await wgrad()).splits).toBe(2);
    } finally {
      convTuning.minKTilesPerSplit = before;
      convTuning.splits = null;
    }
  });

  it('is written and read as <tile>/s<count>', () => {
    expect(tileChoice('t128x64', 4)).toBe('t128x64/s4');
    expect(tileChoice('t128x64', null)).toBe('t128x64');
    expect(parseTileChoice('t128x64/s4')).toEqual({ tile: 't128x64', splits: 4 });
    expect(parseTileChoice('t32x32')).toEqual({ tile: 't32x32', splits: null });
    for (const bad of ['t128x64/s0', 't128x64/4', 't7x7/s2', 't64x64/s'])
      expect(parseTileChoice(bad)).toBeNull();
    expect(checkTileTable(table({ [WGRAD_KEY]: 't64x64/s3' }), 'f.json').tiles[WGRAD_KEY]).toBe('t64x64/s3');
    expect(() => checkTileTable(table({ [WGRAD_KEY]: 't64x64/s0' }), 'f.json')).toThrow(
      /unknown tile 't64x64\/s0' \(known: .*, each optionally with \/s<splits>\)/,
    );
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
