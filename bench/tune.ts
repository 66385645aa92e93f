/**
 * `rdpp tune`: the tile table for this adapter (engine/tile-table.ts), measured on the network's own GEMMs.
 *
 * Every distinct conv GEMM of a training step and of inference (bench shapes: traced, scaled to the image
 * size and batches asked for) is timed with each candidate tile; where the fastest tile splits K, the same
 * tile is timed again with K in one pass and with half and twice the engine's split count. The fastest
 * choice is recorded under the keys of the GEMMs that shape runs (traceGemmKeys: the keys gemmTileFor is
 * asked for, so the table uses exactly the keys the engine looks up). What the table gives is reported per
 * workload: the conv time of one step with the flag GEMM_TILE's tile on every GEMM against the choices
 * made, from the same timings.
 */
import {
  adapterIdentity,
  convTuning,
  flag,
  gemmPrecision,
  runtime,
  TILE_TABLE_VERSION,
  type TileTable,
  tileChoice,
  traceGemmKeys,
} from '../src/engine/index.js';
import { type BenchCase, type BenchReport, runBench, runCase, workloadOf } from './harness.js';
import { type ShapeOptions, shapeCases } from './shapes.js';

export interface TuneOptions extends Omit<ShapeOptions, 'tiles'> {
  /** candidate tiles (names from GEMM_TILES), at least two */
  tiles: string[];
  iters: number;
  /** only shapes whose "family name" matches */
  filter?: RegExp;
  /**
   * seconds of timing at most: the shapes are timed in order of their share of a step (FLOPs × calls),
   * every tile of one shape before the next; at the budget no further case starts, and the table holds
   * the GEMMs whose shapes were timed with every tile (the rest keep GEMM_TILE's tile)
   */
  budgetS?: number;
  /** the clock the budget is read on, in ms (default performance.now; tests step it by hand) */
  now?: () => number;
  log?: (line: string) => void;
}

export interface TuneResult {
  table: TileTable;
  /** every timing (bench shapes --tiles JSON) */
  report: BenchReport;
  /** per GEMM key: the tile chosen and each tile's time (Σ calls × median over the shapes that run it) */
  choices: { key: string; tile: string; ms_by_tile: Record<string, number> }[];
  /**
   * per workload: conv ms per step with the flag's tile on every GEMM, and with the tuned ones, summed
   * over the workload's `shapes` tuned (all of them unless the budget ran out)
   */
  gains: {
    group: string;
    shapes: number;
    flag_tile: string;
    flag_tile_ms: number;
    tuned_ms: number;
    speedup: number;
  }[];
  /** shapes timed with every tile, of all the shapes (fewer when the budget ran out) */
  shapes_tuned: number;
  shapes_total: number;
}

/** One traced conv GEMM of one workload: its case per tile, its GEMM keys, its time per choice. */
interface Shape {
  cases: Map<string, BenchCase>;
  keys: string[];
  /** choice (a tile name, or a tile with a fixed split count) → calls per step × median ms */
  ms: Map<string, number>;
}

export async function tuneTiles(o: TuneOptions): Promise<TuneResult> {
  if (o.tiles.length < 2) throw new Error('tune: name at least two tiles to choose from');
  const now = o.now ?? (() => performance.now());
  o.log?.('tracing the network’s convolutions…');
  const all = await shapeCases({ ...o, tiles: o.tiles });
  // the budget is for timing: tracing the network (a training step, on a slow GPU many seconds) is not in it
  const stopAt = o.budgetS === undefined ? Number.POSITIVE_INFINITY : now() + o.budgetS * 1000;
  const spent = () => now() >= stopAt;
  const cases = byShare(all.filter((c) => !o.filter || o.filter.test(`${c.family} ${c.name}`)));
  if (cases.length === 0) throw new Error('tune: no shape matches the filter');
  // progress: the timed (shape, tile) pairs of the first pass counted, the few of the second named
  let done = 0;
  const log = (l: string) => o.log?.(`[${++done}/${cases.length}] ${l}`);
  const report = await runBench(cases, 'shapes', {
    iters: o.iters,
    warmup: 1,
    log,
    stop: spent,
  });

  // each shape's time (calls × median) per choice: a tile name (split-K as the engine decides) here, a
  // tile with a fixed split count ("t64x64/s4") in the second pass
  const shapes = new Map<
    string,
    { cases: Map<string, BenchCase>; keys: string[]; ms: Map<string, number> }
  >();
  for (const c of cases) {
    const id = `${workloadOf(c)}|${c.name}`;
    const sh = shapes.get(id) ?? { cases: new Map(), keys: [], ms: new Map() };
    sh.cases.set(c.tile!, c);
    shapes.set(id, sh);
  }
  for (const r of report.results) {
    const sh = shapes.get(`${workloadOf(r)}|${r.name}`);
    if (sh && r.tile !== undefined) sh.ms.set(r.tile, (r.calls_per_step ?? 1) * r.median_ms);
  }
  // a shape the budget cut short is left out: the table holds only choices made among every tile
  const shapesTotal = shapes.size;
  for (const [id, sh] of shapes) if (sh.ms.size < sh.cases.size) shapes.delete(id);
  if (shapes.size < shapesTotal)
    o.log?.(
      `budget of ${o.budgetS} s spent: ${shapes.size} of ${shapesTotal} shapes timed with every tile (the largest first); the others keep GEMM_TILE's tile`,
    );
  for (const sh of shapes.values()) sh.keys = (await gemmKeysOf(sh.cases.values().next().value!)).keys;
  // GEMM key → its shapes: shapes that differ only in what the key leaves out (a bias, a frozen weight)
  // are the same GEMM, timed twice
  const shapesOf = new Map<string, Shape[]>();
  for (const sh of shapes.values())
    for (const k of sh.keys) shapesOf.set(k, [...(shapesOf.get(k) ?? []), sh]);
  const total = (k: string, choice: string) => {
    let t = 0;
    for (const sh of shapesOf.get(k)!) {
      const v = sh.ms.get(choice);
      if (v === undefined) return Number.POSITIVE_INFINITY;
      t += v;
    }
    return t;
  };
  const bestOf = (k: string) => {
    const all = new Set(shapesOf.get(k)!.flatMap((sh) => [...sh.ms.keys()]));
    return [...all].sort((a, b) => total(k, a) - total(k, b))[0]!;
  };

  // second pass: where the best tile splits K, the same tile with half and twice the engine's split count
  // and with none (batch-1 inference and weight gradients live on this choice)
  for (const k of shapesOf.keys()) {
    if (spent()) break;
    const tile = bestOf(k).split('/')[0]!; // a tile name (a shape of two keys may hold split choices already)
    const auto = new Set<number>();
    for (const sh of shapesOf.get(k)!) {
      const n = (await gemmKeysOf(sh.cases.get(tile)!)).splits[k];
      if (n !== undefined) auto.add(n);
    }
    if (auto.size !== 1) continue; // not split-K capable, or shapes that disagree
    const s = [...auto][0]!;
    if (s <= 1) continue;
    for (const n of new Set([1, Math.ceil(s / 2), 2 * s]))
      if (n !== s)
        for (const sh of shapesOf.get(k)!) {
          const choice = tileChoice(tile, n);
          if (sh.ms.has(choice)) continue;
          const base = sh.cases.get(tile)!;
          const r = await runCase(withSplits(base, n, choice), 1, o.iters);
          o.log?.(
            `[split] ${base.family.padEnd(10)} ${base.name.padEnd(48)} ${r.median_ms.toFixed(3).padStart(10)} ms  ${choice}`,
          );
          sh.ms.set(choice, (base.callsPerStep ?? 1) * r.median_ms);
        }
  }

  const tiles: Record<string, string> = {};
  const choices: TuneResult['choices'] = [];
  for (const k of shapesOf.keys()) {
    const best = bestOf(k);
    tiles[k] = best;
    const all = new Set(shapesOf.get(k)!.flatMap((sh) => [...sh.ms.keys()]));
    choices.push({
      key: k,
      tile: best,
      ms_by_tile: Object.fromEntries([...all].map((c) => [c, +total(k, c).toFixed(4)])),
    });
  }

  // what the table changes, from the same timings: each workload's Σ calls × median, the flag's tile on
  // every GEMM against the choices made
  const flagTile = flag('GEMM_TILE');
  const byGroup = new Map<string, { flag: number; tuned: number; shapes: number }>();
  for (const [id, sh] of shapes) {
    const group = id.slice(0, id.indexOf('|'));
    const g = byGroup.get(group) ?? { flag: 0, tuned: 0, shapes: 0 };
    g.shapes++;
    g.flag += sh.ms.get(flagTile) ?? Number.NaN;
    g.tuned += sh.keys.length > 0 ? (sh.ms.get(tiles[sh.keys[0]!]!) ?? Number.NaN) : Number.NaN;
    byGroup.set(group, g);
  }
  const gains: TuneResult['gains'] = [];
  for (const [group, g] of byGroup)
    if (Number.isFinite(g.flag) && Number.isFinite(g.tuned) && g.tuned > 0)
      gains.push({
        group,
        shapes: g.shapes,
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
  return { table, report, choices, gains, shapes_tuned: shapes.size, shapes_total: shapesTotal };
}

/**
 * The cases with each shape's tiles together, the shapes in order of their share of a step (FLOPs × calls
 * per step, largest first): what a time budget should cover first.
 */
function byShare(cases: BenchCase[]): BenchCase[] {
  const groups = new Map<string, BenchCase[]>();
  for (const c of cases) {
    const id = `${workloadOf(c)}|${c.name}`;
    groups.set(id, [...(groups.get(id) ?? []), c]);
  }
  const share = (g: BenchCase[]) => (g[0]!.flops ?? 0) * (g[0]!.callsPerStep ?? 1);
  return [...groups.values()].sort((a, b) => share(b) - share(a)).flat();
}

/** The GEMM keys one case's run asks tiles for, and the split counts they ran with (run once, untimed). */
async function gemmKeysOf(c: BenchCase): Promise<{ keys: string[]; splits: Record<string, number> }> {
  const { run, dispose } = await c.setup();
  try {
    const { keys, splits } = traceGemmKeys(run);
    return { keys, splits };
  } finally {
    dispose();
    await runtime().sync();
  }
}

/** `c` with every split-K capable GEMM in exactly `splits` slices. */
function withSplits(c: BenchCase, splits: number, tile: string): BenchCase {
  return {
    ...c,
    tile,
    setup: async () => {
      const { run, dispose } = await c.setup();
      return {
        run: () => {
          const before = convTuning.splits;
          convTuning.splits = splits;
          try {
            run();
          } finally {
            convTuning.splits = before;
          }
        },
        dispose,
      };
    },
  };
}

/** `old` with `fresh`'s entries added (fresh wins where both list a GEMM): tables for several networks. */
export function mergeTileTables(old: TileTable | null, fresh: TileTable): TileTable {
  if (!old || old.adapter !== fresh.adapter || old.precision !== fresh.precision) return fresh;
  // one line per network, size and batches: a re-tune replaces its own line
  const what = (m: string) => m.split(';')[0];
  const made = [...old.made.split(' | ').filter((m) => what(m) !== what(fresh.made)), fresh.made].join(' | ');
  return { ...fresh, made, tiles: { ...old.tiles, ...fresh.tiles } };
}
