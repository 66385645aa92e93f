/**
 * `rdpp tune`: the tile table for this adapter (engine/tile-table.ts), measured on the network's own GEMMs.
 *
 * Every distinct conv GEMM of a training step and of inference (bench shapes: traced, scaled to the image
 * size and batches asked for) is timed with each candidate tile; the fastest tile of each is recorded under
 * the keys of the GEMMs that shape runs (traceGemmKeys: the keys gemmTileFor is asked for, so the table
 * uses exactly the keys the engine looks up). What the table gives is reported per workload: the conv time
 * of one step with the flag GEMM_TILE's tile on every GEMM against the tuned tiles, from the same timings.
 */
import {
  adapterIdentity,
  flag,
  gemmPrecision,
  runtime,
  TILE_TABLE_VERSION,
  type TileTable,
  traceGemmKeys,
} from '../src/engine/index.js';
import { GEMM_TILES } from '../src/shaders/matmul.js';
import { type BenchCase, type BenchReport, runBench } from './harness.js';
import { type ShapeOptions, shapeCases } from './shapes.js';

export interface TuneOptions extends Omit<ShapeOptions, 'tiles'> {
  /** candidate tiles (names from GEMM_TILES), at least two */
  tiles: string[];
  iters: number;
  /** only shapes whose "family name" matches */
  filter?: RegExp;
  log?: (line: string) => void;
}

export interface TuneResult {
  table: TileTable;
  /** every timing (bench shapes --tiles JSON) */
  report: BenchReport;
  /** per GEMM key: the tile chosen and each tile's time (Σ calls × median over the shapes that run it) */
  choices: { key: string; tile: string; ms_by_tile: Record<string, number> }[];
  /** per workload: conv ms per step with the flag's tile on every GEMM, and with the tuned ones */
  gains: { group: string; flag_tile: string; flag_tile_ms: number; tuned_ms: number; speedup: number }[];
}

/** Strip the tile from a case's group ("infer b1 t64x64" → "infer b1"). */
function workloadOf(c: { group?: string; tile?: string }): string {
  return (c.group ?? '').replace(` ${c.tile}`, '');
}

export async function tuneTiles(o: TuneOptions): Promise<TuneResult> {
  if (o.tiles.length < 2) throw new Error('tune: name at least two tiles to choose from');
  const all = await shapeCases({ ...o, tiles: o.tiles });
  const cases = all.filter((c) => !o.filter || o.filter.test(`${c.family} ${c.name}`));
  if (cases.length === 0) throw new Error('tune: no shape matches the filter');
  const report = await runBench(cases, 'shapes', { iters: o.iters, warmup: 1, log: o.log });

  // per GEMM key, each tile's time summed over the shapes that run it (Σ calls × median): shapes that
  // differ only in what the key leaves out (a bias, a frozen weight) are the same GEMM, timed twice
  const byKey = new Map<string, Map<string, number>>();
  const shapes = new Map<string, BenchCase>();
  for (const c of cases)
    shapes.set(`${workloadOf(c)}|${c.name}`, shapes.get(`${workloadOf(c)}|${c.name}`) ?? c);
  for (const [shape, c] of shapes) {
    const keys = await gemmKeysOf(c);
    for (const r of report.results) {
      if (`${workloadOf(r)}|${r.name}` !== shape || r.tile === undefined) continue;
      for (const k of keys) {
        const m = byKey.get(k) ?? new Map<string, number>();
        m.set(r.tile, (m.get(r.tile) ?? 0) + (r.calls_per_step ?? 1) * r.median_ms);
        byKey.set(k, m);
      }
    }
  }
  const tiles: Record<string, string> = {};
  const choices: TuneResult['choices'] = [];
  for (const [key, m] of byKey) {
    const ms = Object.fromEntries([...m].map(([t, v]) => [t, +v.toFixed(4)]));
    const best = [...m].sort((a, b) => a[1] - b[1])[0]![0];
    tiles[key] = best;
    choices.push({ key, tile: best, ms_by_tile: ms });
  }

  // what the table changes, from the same timings: each workload's Σ calls × median, flag tile vs best
  const flagTile = flag('GEMM_TILE');
  const gains: TuneResult['gains'] = [];
  const byGroup = new Map<string, { flag: number; tuned: number; complete: boolean }>();
  for (const best of report.best_tiles ?? []) {
    const r = report.results.find(
      (x) => x.name === best.name && x.tile === flagTile && workloadOf(x) === best.group,
    );
    const calls = r?.calls_per_step ?? 1;
    const g = byGroup.get(best.group) ?? { flag: 0, tuned: 0, complete: true };
    g.tuned += calls * best.median_ms;
    if (r) g.flag += calls * r.median_ms;
    else g.complete = false;
    byGroup.set(best.group, g);
  }
  for (const [group, g] of byGroup)
    if (g.complete && g.tuned > 0)
      gains.push({
        group,
        flag_tile: flagTile,
        flag_tile_ms: +g.flag.toFixed(3),
        tuned_ms: +g.tuned.toFixed(3),
        speedup: +(g.flag / g.tuned).toFixed(3),
      });

  const batches = [...new Set(cases.map(workloadOf))].join(', ');
  const table: TileTable = {
    version: TILE_TABLE_VERSION,
    adapter: adapterIdentity(runtime().gpu.report),
    precision: gemmPrecision(),
    made: `${o.teacher} ${o.imageSize}² ${batches}; tiles ${o.tiles.join(',')}; ${new Date().toISOString().slice(0, 10)}`,
    tiles,
  };
  return { table, report, choices, gains };
}

/** The GEMM keys one case's run asks tiles for (run once, outside the timings). */
async function gemmKeysOf(c: BenchCase): Promise<string[]> {
  const { run, dispose } = await c.setup();
  try {
    return traceGemmKeys(run).keys;
  } finally {
    dispose();
    await runtime().sync();
  }
}

/** `old` with `fresh`'s entries added (fresh wins where both list a GEMM): tables for several networks. */
export function mergeTileTables(old: TileTable | null, fresh: TileTable): TileTable {
  if (!old || old.adapter !== fresh.adapter || old.precision !== fresh.precision) return fresh;
  // one line per network, size and batches: a re-tune replaces its own line
  const what = (m: string) => m.split(';')[0];
  const made = [...old.made.split(' | ').filter((m) => what(m) !== what(fresh.made)), fresh.made].join(' | ');
  return { ...fresh, made, tiles: { ...old.tiles, ...fresh.tiles } };
}

/** The tile names of GEMM_TILES, for usage messages. */
export const TILE_NAMES = Object.keys(GEMM_TILES);
