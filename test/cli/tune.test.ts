/**
 * `rdpp tune` and the tables it leaves (platform/tile-cache.ts): the table lands in the cache folder under
 * this adapter's name, lists the winner of every shape tuned under the keys the engine looks up, grows when
 * another part of the network is tuned, and every later command uses it — unless RDPP_TILE_TABLE=off or a
 * tile is named by hand — and says so, in its log and in benchmark JSON. Broken or mismatched tables are
 * clear errors, never a silent fallback.
 */
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { convTuning, runtime, setFlags, useTileTable } from '../../src/engine/index.js';
import { tileTablePath } from '../../src/platform/tile-cache.js';
import { cli } from '../helpers/cli.js';
import { gpu } from '../helpers/gpu.js';

const saved = { cache: process.env.RDPP_CACHE, table: process.env.RDPP_TILE_TABLE };
let dir = '';

beforeAll(async () => {
  await gpu();
  dir = mkdtempSync(join(tmpdir(), 'rdpp-tune-'));
  process.env.RDPP_CACHE = dir;
  delete process.env.RDPP_TILE_TABLE; // auto, as for a user (vitest.config.ts sets off for other files)
});

afterAll(() => {
  for (const [k, v] of [
    ['RDPP_CACHE', saved.cache],
    ['RDPP_TILE_TABLE', saved.table],
  ] as const)
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  useTileTable(null);
});

const NET = ['--teacher', 'resnet18', '--image-size', '32'];
const TUNE = [...NET, '--batch', '2', '--infer-batches', '1', '--tiles', 't32x32,t64x64', '--iters', '1'];

function tablePath(): string {
  return tileTablePath(runtime().gpu.report, 'f32');
}

describe('rdpp tune', () => {
  it('writes the winners under the engine’s keys, adds to the table on a second run, and bench uses it', async () => {
    const report = join(dir, 'tune-report.json');
    const r = await cli(['tune', ...TUNE, '--filter', 'fwd +conv3x3 .*\\(infer\\)', '--out', report]);
    expect(r.code).toBe(0);
    expect(r.err).toMatch(/infer b1: [\d.]+ ms of convs per step with t64x64 everywhere, [\d.]+ ms tuned/);
    const path = tablePath();
    expect(r.err).toContain(`wrote ${path}`);
    const table = JSON.parse(readFileSync(path, 'utf8'));
    expect(table.precision).toBe('f32');
    expect(table.made).toMatch(/^resnet18 32² infer b1; tiles t32x32,t64x64; \d{4}-\d\d-\d\d$/);
    const timings = JSON.parse(readFileSync(report, 'utf8'));
    // every tuned shape is a forward conv (one GEMM each; shapes that differ only in a bias or a frozen
    // weight share it), and each key gets the tile with the least time over the shapes that run it
    const keys = Object.keys(table.tiles);
    expect(keys.length).toBeGreaterThan(3);
    expect(keys.length).toBeLessThanOrEqual(timings.best_tiles.length);
    expect(timings.tune_choices.map((c: { key: string }) => c.key).sort()).toEqual([...keys].sort());
    for (const k of keys) expect(k).toMatch(/^fwd:1x\d+x\d+x\d+x\d+x3x3x[12]x1$/);
    for (const c of timings.tune_choices) {
      const ms = Object.values(c.ms_by_tile) as number[];
      // both tiles, and fixed split counts of the best one where it splits K (batch-1 forwards do)
      expect(Object.keys(c.ms_by_tile)).toEqual(expect.arrayContaining(['t32x32', 't64x64']));
      for (const choice of Object.keys(c.ms_by_tile)) expect(choice).toMatch(/^t(32x32|64x64)(\/s\d+)?$/);
      expect(c.ms_by_tile[table.tiles[c.key]]).toBe(Math.min(...ms));
    }
    expect(timings.tune_gains[0].group).toBe('infer b1');
    expect(JSON.parse(r.out)).toEqual({
      table: path,
      gemms_tuned: keys.length,
      gemms_in_table: keys.length,
      // no --budget: every shape (of one workload, infer b1: a shape is its name)
      shapes_tuned: new Set(timings.results.map((x: { name: string }) => x.name)).size,
      shapes_total: new Set(timings.results.map((x: { name: string }) => x.name)).size,
      gains: timings.tune_gains,
    });

    // another part of the network: its GEMMs join the table, the first ones stay
    const again = await cli(['tune', ...TUNE, '--filter', 'deconv .*\\(infer\\)']);
    expect(again.code).toBe(0);
    const grown = JSON.parse(readFileSync(path, 'utf8'));
    expect(Object.keys(grown.tiles).length).toBeGreaterThan(keys.length);
    for (const k of keys) expect(grown.tiles[k]).toBe(table.tiles[k]);
    expect(Object.keys(grown.tiles).some((k) => k.startsWith('deconv:'))).toBe(true);

    // a later command finds it, says so, and benchmark JSON records it
    const out = join(dir, 'infer.json');
    const b = await cli(['bench', 'infer', ...NET, '--batch', '1', '--iters', '1', '--out', out]);
    expect(b.code).toBe(0);
    expect(b.err).toContain(
      `GEMM tiles: tuned on this adapter (${path}, ${Object.keys(grown.tiles).length} GEMMs`,
    );
    expect(JSON.parse(readFileSync(out, 'utf8')).gemm_tiles).toMatch(
      /^tuned table: \d+ GEMMs \(resnet18 32²/,
    );

    const i = await cli(['info']);
    expect(i.out).toMatch(
      /\nGEMM tiles: tuned table: \d+ GEMMs \(resnet18 32² infer b1; .*\), others GEMM_TILE=t64x64$/,
    );

    // a tile named by hand wins, and off means off
    process.env.RDPP_GEMM_TILE = 't32x32';
    const restoreFlags = setFlags({}); // the command sets the flag in this process: put it back after
    try {
      const h = await cli(['bench', 'infer', ...NET, '--batch', '1', '--iters', '1', '--out', out]);
      expect(h.code).toBe(0);
      expect(h.err).toMatch(
        /RDPP_GEMM_TILE=t32x32 for every GEMM \(the tuned table .* is not used while it is set\)/,
      );
      expect(JSON.parse(readFileSync(out, 'utf8')).gemm_tiles).toBe('GEMM_TILE=t32x32');
    } finally {
      delete process.env.RDPP_GEMM_TILE;
      restoreFlags();
    }
    process.env.RDPP_TILE_TABLE = 'off';
    try {
      const o = await cli(['bench', 'infer', ...NET, '--batch', '1', '--iters', '1', '--out', out]);
      expect(o.code).toBe(0);
      expect(o.err).not.toContain('GEMM tiles');
      expect(JSON.parse(readFileSync(out, 'utf8')).gemm_tiles).toBe('GEMM_TILE=t64x64');
      expect((await cli(['info'])).out).toMatch(/\nGEMM tiles: GEMM_TILE=t64x64 \(`rdpp tune` measures/);
    } finally {
      delete process.env.RDPP_TILE_TABLE;
    }
  });

  it('also times fixed split counts where the best tile splits K, and keeps the fastest choice', async () => {
    const before = convTuning.minKTilesPerSplit;
    convTuning.minKTilesPerSplit = 1; // at 32² the weight gradients split only with this lowered
    const table = join(dir, 'splits.json');
    const report = join(dir, 'splits-report.json');
    try {
      const r = await cli([
        'tune',
        ...TUNE,
        '--filter',
        'wgrad conv3x3 (4x4|8x8)',
        '--table',
        table,
        '--out',
        report,
      ]);
      expect(r.code).toBe(0);
      const t = JSON.parse(readFileSync(table, 'utf8'));
      const { tune_choices } = JSON.parse(readFileSync(report, 'utf8'));
      const split = tune_choices.filter((c: { ms_by_tile: object }) =>
        Object.keys(c.ms_by_tile).some((k) => k.endsWith('/s1')),
      );
      expect(split.length).toBeGreaterThan(0); // K split by the engine: also timed in one pass, and more
      for (const c of tune_choices) {
        expect(c.key).toMatch(/^wgrad:/);
        const ms = Object.values(c.ms_by_tile) as number[];
        expect(c.ms_by_tile[t.tiles[c.key]]).toBe(Math.min(...ms));
        for (const choice of Object.keys(c.ms_by_tile)) expect(choice).toMatch(/^t(32x32|64x64)(\/s\d+)?$/);
      }
      expect(r.err).toMatch(/\[1\/\d+\] shapes-resnet18 wgrad conv3x3 /); // progress
      expect(r.err).toMatch(/\[split\] shapes-resnet18 wgrad conv3x3 .* ms {2}t(32x32|64x64)\/s1/);
    } finally {
      convTuning.minKTilesPerSplit = before;
    }
  });

  it('refuses a broken table or one of another precision, naming the file and the way out', async () => {
    const broken = join(dir, 'broken.json');
    writeFileSync(broken, '{"version": 1, "adapter": ');
    const f16 = join(dir, 'f16.json');
    const t = JSON.parse(readFileSync(tablePath(), 'utf8'));
    writeFileSync(f16, JSON.stringify({ ...t, precision: 'f16' }));
    const args = ['bench', 'infer', ...NET, '--batch', '1', '--iters', '1'];
    try {
      process.env.RDPP_TILE_TABLE = broken;
      const b = await cli(args);
      expect(b.code).not.toBe(0);
      expect(b.err).toMatch(/broken\.json: not JSON .*make it again with `rdpp tune`/);
      process.env.RDPP_TILE_TABLE = f16;
      const p = await cli(args);
      expect(p.code).not.toBe(0);
      expect(p.err).toMatch(
        /f16\.json was tuned for f16 GEMMs, and this run's are f32: run `rdpp tune --precision f32`/,
      );
      process.env.RDPP_TILE_TABLE = join(dir, 'missing.json');
      const m = await cli(args);
      expect(m.code).not.toBe(0);
      expect(m.err).toMatch(/cannot read the tile table .*missing\.json/);
    } finally {
      delete process.env.RDPP_TILE_TABLE;
    }
  });

  it('checks its options before touching the GPU', async () => {
    const one = await cli(['tune', ...NET, '--tiles', 't64x64']);
    expect(one.code).toBe(2);
    expect(one.err).toMatch(/--tiles: name at least two tiles/);
    const batches = await cli(['tune', ...NET, '--infer-batches', '1,0']);
    expect(batches.code).toBe(2);
    expect(batches.err).toMatch(/--infer-batches must be positive integers/);
    for (const budget of ['0', 'soon']) {
      const r = await cli(['tune', ...NET, '--budget', budget]);
      expect(r.code).toBe(2);
      expect(r.err).toContain(`--budget: a number of seconds above 0, got '${budget}'`);
    }
    const same = join(dir, 't.json');
    const clash = await cli(['tune', ...NET, '--table', same, '--out', same]);
    expect(clash.code).toBe(2);
    expect(clash.err).toMatch(/--out .*t\.json is the --table file itself/);
    expect(existsSync(same)).toBe(false);
  });
});
