/**
 * Tuned GEMM tiles: for each GEMM a network runs, the block tile measured fastest on this adapter — what
 * `torch.backends.cudnn.benchmark` does for cuDNN's algorithms, made once and kept in a file.
 *
 * Why a table and not a rule: which tile wins depends on the GEMM's M×N×K, its loaders (im2col, stride,
 * space-to-depth), split-K and the GPU (SM count, registers, workgroup memory, the driver's compiler), and
 * the rule of GEMM_TILE=auto is a guess at all of that. `rdpp tune` (bench/tune.ts) times every distinct
 * conv GEMM of a network's training step and inference with every tile of GEMM_TILES — and, where the best
 * tile splits K over more workgroups, with other split counts — and records the winner under the GEMM's
 * key; the engine looks each GEMM up here first (ops/conv.ts gemmTileFor, and withSplitK for the split
 * count) and falls back to the flag GEMM_TILE and its own split rule for GEMMs the table does not list
 * (other image sizes or batches).
 *
 * A table belongs to one adapter and one precision: `useTileTable` refuses one made on another adapter,
 * and a table made for f32 is not consulted for f16 GEMMs (their tiles stage other operand types). Tiles
 * and split counts only change the summation order of float32 accumulation, never what is computed: a table
 * can make a run slower or faster, not wrong (every tile and split passes the same parity tests).
 *
 * The engine holds the table in memory only (it runs in the browser too); reading and writing the file is
 * platform/tile-cache.ts.
 */
import { GEMM_TILES, type GemmTile } from '../shaders/matmul.js';
import { adapterIdentity } from './device.js';
import { flag, PRECISIONS, type Precision } from './flags.js';
import { gemmPrecision } from './precision.js';
import { runtime } from './runtime.js';

export const TILE_TABLE_VERSION = 1;

export interface TileTable {
  version: typeof TILE_TABLE_VERSION;
  /** adapterIdentity() of the GPU it was measured on */
  adapter: string;
  /** the GEMM operand precision it was measured in */
  precision: Precision;
  /** when and for what it was measured (free text, e.g. "wrn50 256² train b16, infer b1 b32") */
  made: string;
  /**
   * GEMM key (gemmKey) → its choice: a tile name of GEMM_TILES ("t64x64": split-K as the engine decides),
   * or a name with a split count ("t64x64/s4": K in exactly 4 slices; "/s1": in one pass)
   */
  tiles: Record<string, string>;
}

let active: TileTable | null = null;
let keyTrace: Set<string> | null = null;
let splitTrace: Map<string, number> | null = null;

/** A table value read: the tile's name and the split count it fixes (null: the engine's own). */
export function parseTileChoice(v: string): { tile: string; splits: number | null } | null {
  const m = /^([a-z0-9]+)(?:\/s([1-9]\d*))?$/.exec(v);
  if (!m || !GEMM_TILES[m[1]!]) return null;
  return { tile: m[1]!, splits: m[2] === undefined ? null : Number(m[2]) };
}

/** A table value written: the tile, and the split count when one is fixed. */
export function tileChoice(tile: string, splits: number | null): string {
  return splits === null ? tile : `${tile}/s${splits}`;
}

/**
 * The key of one GEMM: its kind and every size its loaders depend on (two GEMMs with the same key run the
 * same kernel on the same grid).
 */
export function gemmKey(kind: string, sizes: readonly (number | string)[]): string {
  return `${kind}:${sizes.join('x')}`;
}

/** Check a table read from somewhere (a file, a setting) and say what is wrong with it. */
export function checkTileTable(t: unknown, where: string): TileTable {
  const o = t as Partial<TileTable> | null;
  const bad = (why: string) =>
    new Error(`${where}: not a tile table (${why}); make one with \`rdpp tune\` or delete the file`);
  if (typeof o !== 'object' || o === null) throw bad('not a JSON object');
  if (o.version !== TILE_TABLE_VERSION)
    throw bad(`version ${String(o.version)}, expected ${TILE_TABLE_VERSION}`);
  if (typeof o.adapter !== 'string') throw bad('no adapter');
  if (!PRECISIONS.includes(o.precision as Precision)) throw bad(`precision ${String(o.precision)}`);
  if (typeof o.tiles !== 'object' || o.tiles === null) throw bad('no tiles');
  for (const [k, v] of Object.entries(o.tiles))
    if (typeof v !== 'string' || !parseTileChoice(v))
      throw bad(
        `GEMM ${k}: unknown tile '${String(v)}' (known: ${Object.keys(GEMM_TILES).join(', ')}, each optionally with /s<splits>)`,
      );
  return {
    version: TILE_TABLE_VERSION,
    adapter: o.adapter,
    precision: o.precision!,
    made: String(o.made ?? ''),
    tiles: o.tiles,
  };
}

/**
 * Use `table` for the GEMMs from now on (null: none). Throws when it was measured on another adapter than
 * the engine's: its timings say nothing about this one.
 */
export function useTileTable(table: TileTable | null): void {
  if (table) {
    const here = adapterIdentity(runtime().gpu.report);
    if (table.adapter !== here)
      throw new Error(
        `this tile table was measured on '${table.adapter}', not on this adapter ('${here}'): run \`rdpp tune\` here`,
      );
  }
  active = table;
}

export function activeTileTable(): TileTable | null {
  return active;
}

/** Where the GEMMs' tiles come from, for benchmark JSON: the tuned table (and what it was made for) or the flag. */
export function gemmTileSource(): string {
  const fallback = `GEMM_TILE=${flag('GEMM_TILE')}`;
  if (!active || active.precision !== gemmPrecision()) return fallback;
  return `tuned table: ${Object.keys(active.tiles).length} GEMMs (${active.made}), others ${fallback}`;
}

/**
 * The tuned tile for the GEMM `key` in the current precision, or null (no table, another precision, a GEMM
 * it does not list). Records the key while traceGemmKeys runs.
 */
export function tunedTile(key: string): GemmTile | null {
  keyTrace?.add(key);
  const choice = tunedChoice(key);
  return choice ? GEMM_TILES[choice.tile]! : null;
}

/** The split count the table fixes for the GEMM `key` (null: none, the engine decides). */
export function tunedSplits(key: string): number | null {
  return tunedChoice(key)?.splits ?? null;
}

function tunedChoice(key: string): { tile: string; splits: number | null } | null {
  if (!active || active.precision !== gemmPrecision()) return null;
  const v = active.tiles[key];
  return v === undefined ? null : parseTileChoice(v);
}

/** Record the split count a GEMM ran with (ops/conv.ts withSplitK), while traceGemmKeys runs. */
export function traceSplits(key: string, splits: number): void {
  splitTrace?.set(key, splits);
}

/**
 * Run `body` and return, beside its result, the keys of the GEMMs it asked a tile for and the split count
 * each split-K capable one ran with (for `rdpp tune`).
 */
export function traceGemmKeys<T>(body: () => T): {
  result: T;
  keys: string[];
  splits: Record<string, number>;
} {
  const outer = [keyTrace, splitTrace] as const;
  const keys = new Set<string>();
  const splits = new Map<string, number>();
  keyTrace = keys;
  splitTrace = splits;
  try {
    return { result: body(), keys: [...keys], splits: Object.fromEntries(splits) };
  } finally {
    [keyTrace, splitTrace] = outer;
  }
}
