/**
 * Tuned GEMM tiles in the browser app: the table `rdpp tune` makes (engine/tile-table.ts), measured from the
 * page on this GPU and kept in the browser's localStorage per adapter and precision — as the Node tool keeps
 * its file under the cache folder — so that every later task on this GPU runs each convolution with the
 * tile that was fastest for it here. Without a table the engine's default tile runs (GEMM_TILE).
 */

import type { BenchTeacher } from '../../../bench/e2e.js';
import { parseTiles } from '../../../bench/shapes.js';
import { mergeTileTables, tuneTiles } from '../../../bench/tune.js';
import {
  type AdapterReport,
  adapterIdentity,
  checkTileTable,
  type Precision,
  type TileTable,
  useTileTable,
} from '../../engine/index.js';

export function tileStoreKey(report: AdapterReport, precision: Precision): string {
  return `rdpp.tiles.${precision}.${adapterIdentity(report)}`;
}

/** The table stored for this adapter and precision (null: none), or why it cannot be used (then removed). */
export function storedTileTable(
  report: AdapterReport,
  precision: Precision,
): { table: TileTable | null; problem: string | null } {
  const key = tileStoreKey(report, precision);
  let text: string | null = null;
  try {
    text = localStorage.getItem(key);
  } catch (e) {
    return {
      table: null,
      problem: `the browser does not let this page read its storage (${(e as Error).message})`,
    };
  }
  if (text === null) return { table: null, problem: null };
  try {
    return { table: checkTileTable(JSON.parse(text), 'the stored tile table'), problem: null };
  } catch (e) {
    localStorage.removeItem(key);
    return { table: null, problem: `${(e as Error).message} — it was removed; tune again` };
  }
}

/** Use the stored table for this adapter and precision (or none); the line to show, null when none is stored. */
export function useStoredTiles(report: AdapterReport, precision: Precision): string | null {
  const { table, problem } = storedTileTable(report, precision);
  useTileTable(table);
  if (problem) return `Tuned tiles not used: ${problem}`;
  return table ? `Tuned tiles: ${Object.keys(table.tiles).length} convolutions (${table.made})` : null;
}

export interface TuneHere {
  teacher: BenchTeacher;
  imageSize: number;
  trainBatch: number;
  inferBatch: number;
  /** seconds of timing at most (the largest convolutions first) */
  seconds: number;
  log: (line: string) => void;
}

/**
 * Time every conv GEMM of the network (formula weights: the timings do not depend on the values) with each
 * tile this device can run, merge the fastest into the stored table for this adapter and the precision the
 * GEMMs run in, use it, and say what it gives.
 */
export async function tuneHere(report: AdapterReport, o: TuneHere): Promise<string> {
  useTileTable(null); // the baseline is the engine's own tile
  const r = await tuneTiles({
    teacher: o.teacher,
    imageSize: o.imageSize,
    trainBatch: o.trainBatch,
    inferBatches: [o.inferBatch],
    tiles: parseTiles('all'),
    iters: 3,
    budgetS: o.seconds,
    log: o.log,
  });
  if (r.shapes_tuned === 0)
    throw new Error(
      `No convolution was timed with every tile within ${o.seconds} s (the largest come first and take longer on this GPU): give the tuning more time. Nothing was stored.`,
    );
  const merged = mergeTileTables(storedTileTable(report, r.table.precision).table, r.table);
  useTileTable(merged);
  try {
    localStorage.setItem(tileStoreKey(report, r.table.precision), JSON.stringify(merged));
  } catch (e) {
    return `Tuned, but not kept: the browser refused to store the table (${(e as Error).message}); it is used until the page is closed.`;
  }
  const gains = r.gains
    .map((g) => `${g.group}: ${g.flag_tile_ms} → ${g.tuned_ms} ms of convolutions (×${g.speedup})`)
    .join('; ');
  return `Tuned ${r.shapes_tuned} of ${r.shapes_total} convolution shapes (${Object.keys(r.table.tiles).length} GEMMs; ${Object.keys(merged.tiles).length} in this GPU's table, ${r.table.precision}). ${gains}`;
}
